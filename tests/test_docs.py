"""The documentation: generated references that agree with `--help` and with the config models, a
setting without a description refused, a README that fits on two screens. (`make test` also builds
the site with `mkdocs build --strict`: a broken link or a missing page fails it.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from backtests.config import ExperimentConfig
from forecasting.spec import ModelSpec, Strict
from lstm_trader.cli import app
from lstm_trader.reference import UndocumentedSetting, cli_markdown, config_markdown, config_rows

ROOT = Path(__file__).resolve().parent.parent


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys |= _keys(field.annotation, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def test_a_setting_added_without_a_description_fails_the_reference():
    class LaterModel(ModelSpec):
        new_knob: int = Field(3, ge=1)  # no description

    class LaterConfig(ExperimentConfig):
        model: LaterModel = Field(default_factory=LaterModel, description="the network")

    with pytest.raises(UndocumentedSetting, match=r"config key 'model.new_knob' \(LaterModel.new_knob\)"):
        config_markdown(LaterConfig)

    class Section(Strict):
        documented: int = Field(1, description="one")
        bare: str = "x"

    with pytest.raises(UndocumentedSetting, match="'s.bare'"):
        config_rows(type("Top", (Strict,), {"__annotations__": {"s": Section}, "s": Field(default_factory=Section)}))


def test_the_config_reference_lists_every_key_with_its_default_and_bounds():
    page = config_markdown()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([a-z_.\[\]]+)` \|.*$", page, re.M)}
    assert _keys(ExperimentConfig) <= set(rows)
    assert "| `model.units` | int | `32` | ≥ 1 |" in rows["model.units"]
    assert "| `model.n_layers` | int | `2` | ≥ 1, ≤ 8 |" in rows["model.n_layers"]
    assert '`"lstm"` \\| `"residual"`' in rows["model.head"]
    assert "| `walk_forward.train_window` | int (optional) | unset | ≥ 10 |" in rows["walk_forward.train_window"]
    from strategies.registry import STRATEGIES

    for name in STRATEGIES:
        assert f"| `{name}` |" in page


def _help_options(args: list[str]) -> set[str]:
    out = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"}, terminal_width=200)
    assert out.exit_code == 0, out.output
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", out.output)) - {"--help"}


def _commands(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_the_command_reference_says_what_help_says():
    page = cli_markdown()
    sections = re.split(r"^#+ `(lstm-trader[^`]*)`$", page, flags=re.M)
    by_command = dict(zip(sections[1::2], sections[2::2], strict=True))
    root = typer.main.get_command(app)
    for path, command in _commands(root):
        if not path:
            continue
        name = " ".join(("lstm-trader", *path))
        assert name in by_command, f"{name} is missing from the command reference"
        section = by_command[name]
        documented = set(re.findall(r"`(--[a-z][a-z0-9-]*)`", section))
        if not hasattr(command, "commands"):
            assert _help_options(list(path)) == documented, name
        first_line = (command.help or "").strip().splitlines()[0]
        assert first_line in section


def test_the_readme_fits_on_two_screens_and_points_into_the_site():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for line in ("make run", "make test", "make docs"):
        assert line in readme
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in re.findall(r"\]\((docs/[^)#]+\.md)", readme):
        assert (ROOT / page).is_file(), page
        assert page.removeprefix("docs/") in nav, f"{page} is not in the site's navigation"


def test_the_committed_reference_pages_are_what_the_code_generates():
    from lstm_trader.reference import stale_pages

    assert stale_pages(ROOT / "docs") == [], "run make docs and commit docs/reference/"
