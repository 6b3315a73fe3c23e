"""The documentation's generated reference pages: every command from the Typer app (what `--help`
prints), every config key from the settings' pydantic models. The docs build calls these, so the
pages cannot drift from the code; a setting without a description is an error, not a blank cell."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel


class UndocumentedSetting(Exception):
    """A config key whose model field has no description: the reference would have a hole."""


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


# ---------------------------------------------------------------------------------------------------
# commands


def _usage(path: str, command) -> str:
    pieces = [path]
    if any(not p.param_type_name == "argument" for p in command.params):
        pieces.append("[OPTIONS]")
    for param in command.params:
        if param.param_type_name != "argument":
            continue
        name = param.name.upper() + (" ..." if param.nargs == -1 else "")
        pieces.append(name if param.required else f"[{name}]")
    if hasattr(command, "commands"):
        pieces.append("COMMAND ...")
    return " ".join(pieces)


def _default(param) -> str:
    default = param.default
    if getattr(param, "is_flag", False) or default is None or default == () or default == []:
        return ""
    if isinstance(default, Path):
        default = str(default)
    return f"`{default}`"


def _command_section(path: str, command, level: int) -> list[str]:
    out = [f"{'#' * level} `{path}`", ""]
    if command.help:
        out += [command.help.strip().replace("\b\n", ""), ""]
    out += ["```", _usage(path, command), "```", ""]
    rows = []
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            name = f"`{param.name.upper()}`"
        else:
            name = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
        rows.append(f"| {name} | {_cell(getattr(param, 'help', None) or '')} | {_default(param)} |")
    if rows:
        out += ["| argument or option | what | default |", "|---|---|---|", *rows, ""]
    for name, sub in getattr(command, "commands", {}).items():
        out += _command_section(f"{path} {name}", sub, level + 1)
    return out


def cli_markdown() -> str:
    """The command reference: every command and subcommand of `lstm-trader`, with its help text,
    usage and options, read from the Typer app itself."""
    import typer

    from lstm_trader.cli import app

    root = typer.main.get_command(app)
    out = [
        "# Command reference",
        "",
        "Generated from the command line itself when the site is built: it says what "
        "`lstm-trader COMMAND --help` says. The [command line guide](../guide/commands.md) shows them in use.",
        "",
        root.help.strip() if root.help else "",
        "",
        "```",
        _usage("lstm-trader", root),
        "```",
        "",
        "| command | what |",
        "|---|---|",
    ]
    out += [
        f"| [`{name}`](#lstm-trader-{name}) | {_cell(cmd.get_short_help_str(120))} |"
        for name, cmd in root.commands.items()
    ]
    out.append("")
    for name in sorted(root.commands, key=lambda n: (hasattr(root.commands[n], "commands"), n)):
        out += _command_section(f"lstm-trader {name}", root.commands[name], 2)
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------------
# config keys


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f'`"{a}"`' if isinstance(a, str) else f"`{a}`" for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + (
            " (optional)" if len(args) < len(typing.get_args(annotation)) else ""
        )
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(field) -> str:
    parts = []
    for meta in field.metadata:
        for attr, sign in (
            ("gt", ">"),
            ("ge", "≥"),
            ("lt", "<"),
            ("le", "≤"),
            ("min_length", "length ≥"),
            ("max_length", "length ≤"),
        ):
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{sign} {value}")
    return ", ".join(parts)


def _field_default(field) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
        return ", ".join(str(getattr(v, "label", None) or getattr(v, "name", v)) for v in value)
    if isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
        return ", ".join(value)
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _is_section(annotation) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def config_rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str, str]]:
    """(key, type, default, bounds, description) of every setting of `model`, sections flattened as
    `section.key`; raises UndocumentedSetting for a field without a description."""
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        if _is_section(field.annotation):
            rows += config_rows(field.annotation, f"{key}.")
            continue
        if not (field.description or "").strip():
            raise UndocumentedSetting(
                f"config key '{key}' ({model.__name__}.{name}) has no description: "
                "give its Field(..., description=...) one line for the reference"
            )
        rows.append((key, _type_name(field.annotation), _field_default(field), _bounds(field), field.description))
    return rows


def config_markdown(model: type[BaseModel] | None = None) -> str:
    """The config reference: every key with its type, default, bounds and description, one table
    per section, read from the pydantic models that validate a config."""
    from backtests.config import ExperimentConfig, StrategySpec

    model = model or ExperimentConfig
    rows = config_rows(model)
    strategy_rows = config_rows(StrategySpec, "strategies[].")
    out = [
        "# Config reference",
        "",
        "Generated from the models that validate a config when the site is built, so it lists exactly "
        "the keys a config may hold: an unknown key is an error. Set any of them in the TOML file or "
        "with `--set section.key=value` (the [configs guide](../guide/config.md) shows how).",
        "",
    ]
    sections: dict[str, list] = {}
    for row in rows:
        section = row[0].split(".")[0] if "." in row[0] else "Top level"
        sections.setdefault(section, []).append(row)
    sections["strategies"] = strategy_rows
    for section, items in sections.items():
        out += [f"## {section if section == 'Top level' else f'`[{section}]`'}", ""]
        out += ["| key | type | default | bounds | what |", "|---|---|---|---|---|"]
        out += [f"| `{k}` | {t} | {_cell(d)} | {_cell(b)} | {_cell(desc)} |" for k, t, d, b, desc in items]
        out.append("")
    return "\n".join(out + strategy_table()).rstrip() + "\n"


def strategy_table() -> list[str]:
    """Every strategy a `[[strategies]]` table may name, with its parameters and their defaults."""
    from strategies.registry import STRATEGIES, strategy_params

    out = [
        "## Strategies and their parameters",
        "",
        "A `[[strategies]]` table's `params` may set these (an unknown one is an error); the "
        "[strategies guide](../guide/strategies.md) says what each does.",
        "",
        "| name | what | params (default) |",
        "|---|---|---|",
    ]
    for name, cls in STRATEGIES.items():
        doc = (cls.__doc__ or "").strip().split("\n\n")[0]
        params = ", ".join(f"`{key}` ({value!r})" for key, value in strategy_params(cls).items())
        out.append(f"| `{name}` | {_cell(doc)} | {_cell(params) or '-'} |")
    return out + [""]


# ---------------------------------------------------------------------------------------------------
# the committed pages

PAGES = {"reference/cli.md": cli_markdown, "reference/config.md": config_markdown}


def stale_pages(docs_dir: Path) -> list[str]:
    """The generated pages under `docs_dir` that differ from what the code generates now."""
    return list(_stale(docs_dir))


def write_pages(docs_dir: Path) -> list[str]:
    """(Re)write the generated pages; returns the ones that changed."""
    changed = _stale(docs_dir)
    for page, text in changed.items():
        (docs_dir / page).write_text(text, encoding="utf-8")
    return list(changed)


def _stale(docs_dir: Path) -> dict[str, str]:
    """Each page whose file differs from the code's text, with that text (each generated once)."""
    texts = {page: make() for page, make in PAGES.items()}
    return {page: text for page, text in texts.items() if _read(docs_dir / page) != text}


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


if __name__ == "__main__":  # make docs: python -m lstm_trader.reference docs
    import sys

    for page in write_pages(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")):
        print(f"wrote docs/{page}")
