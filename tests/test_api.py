"""The Python API (`lstm_trader.Experiment` / `Result`) and the example notebook that shows it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtests.config import DEFAULT_CONFIG, load_config
from backtests.errors import ConfigError
from lstm_trader import Experiment, Result
from reports.errors import ReportError
from tests.helpers import TINY_SETTINGS

ROOT = Path(__file__).resolve().parent.parent


def test_a_config_given_as_path_dict_or_config_with_either_override_form_is_the_same_experiment():
    by_cli = load_config(DEFAULT_CONFIG, TINY_SETTINGS)
    raw = tomllib.loads(DEFAULT_CONFIG.read_text())
    as_dict = {key: value for key, _, value in (s.partition("=") for s in TINY_SETTINGS)}
    from backtests.config import parse_value

    as_dict = {key: parse_value(value) for key, value in as_dict.items()}
    forms = [
        Experiment(DEFAULT_CONFIG, TINY_SETTINGS),
        Experiment(None, as_dict),
        Experiment(raw, as_dict),
        Experiment(raw, TINY_SETTINGS),
        Experiment(by_cli),
    ]
    for experiment in forms:
        assert experiment.config == by_cli
    assert Experiment(raw).config == load_config(DEFAULT_CONFIG)
    assert raw == tomllib.loads(DEFAULT_CONFIG.read_text())  # the caller's dict is not changed


def test_bad_settings_raise_one_user_error_naming_the_key():
    with pytest.raises(ConfigError, match="unknown config key 'model.unitz'") as info:
        Experiment(overrides={"model.unitz": 3})
    assert "model.units" in info.value.hint
    with pytest.raises(ConfigError, match="model.epochs") as info:
        Experiment(overrides={"model.epochs": -1})
    assert "model.epochs=-1" in str(info.value)
    with pytest.raises(ConfigError, match="config file not found"):
        Experiment("no/such.toml")
    with pytest.raises(ConfigError, match="section.key=value"):
        Experiment(overrides=["model.units"])


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> Result:
    return Experiment(overrides=TINY_SETTINGS, runs_dir=tmp_path_factory.mktemp("runs")).run()


def test_the_result_holds_the_run_dirs_tables(result):
    assert result.path.is_dir() and (result.path / "predictions.parquet").is_file()
    on_disk = pd.read_parquet(result.path / "predictions.parquet")
    pd.testing.assert_frame_equal(result.predictions, on_disk)
    assert set(result.forecast["model"]) >= {"lstm", "ridge", "naive"}
    strategies = set(result.comparison["strategy"])
    assert {"lstm_signal", "buy_and_hold"} <= strategies
    assert list(result.equity.columns) == [f"sp500:{s}" for s in result.comparison["strategy"]]
    assert list(result.returns.columns) == list(result.equity.columns)
    assert set(result.phases) >= {"walk-forward", "backtests"}
    assert result.volatility is None and result.cross_section is None


def test_returns_are_the_equitys_daily_changes_and_drawdown_matches_the_comparison(result):
    changes = result.equity.pct_change().iloc[1:]
    returns = result.returns.reindex(changes.index)
    assert np.abs(changes.to_numpy() - returns.to_numpy()).max() < 1e-12
    drawdown = result.drawdown()
    assert (drawdown <= 0).all().all()
    at_peak = result.equity == result.equity.cummax()
    assert (drawdown.to_numpy()[at_peak.to_numpy()] == 0).all() and at_peak.to_numpy().sum() > 7
    worst = drawdown.min()
    for row in result.comparison.itertuples():
        assert worst[f"sp500:{row.strategy}"] == pytest.approx(row.max_drawdown, abs=1e-9)


def test_a_run_dir_opens_again_as_the_same_result(result):
    again = Result.load(result.path)
    pd.testing.assert_frame_equal(again.comparison, result.comparison)
    pd.testing.assert_frame_equal(again.equity, result.equity)
    assert again.config == result.config
    with pytest.raises(ReportError, match="run dir not found"):
        Result.load(result.path / "nope")


def test_plot_draws_equity_and_drawdown_of_the_strategies_asked_for(result):
    fig = result.plot(["lstm_signal", "buy_and_hold"])
    top, bottom = fig.axes
    assert [line.get_label() for line in top.lines] == ["lstm_signal", "buy_and_hold"]
    growth = top.lines[1].get_ydata()
    equity = result.equity["sp500:buy_and_hold"]
    assert growth[0] == 1.0 and growth[-1] == pytest.approx(equity.iloc[-1] / equity.iloc[0])
    assert min(bottom.lines[0].get_ydata()) == pytest.approx(result.drawdown()["sp500:lstm_signal"].min())
    assert len(result.plot().axes[0].lines) == len(result.comparison)
    with pytest.raises(ReportError, match="no strategy 'nope' on sp500"):
        result.plot(["nope"])
    with pytest.raises(ReportError, match="no book 'x'"):
        result.plot(book="x")


def test_notebook_display_names_every_strategy_and_the_run(result):
    page = result._repr_html_()
    assert result.config.name in page and str(result.path) in page
    for strategy in result.comparison["strategy"]:
        assert strategy in page


def test_a_tearsheet_is_written_for_a_strategy_that_traded(result):
    sheet = result.tearsheet("lstm_signal")
    assert sheet == result.path / "reports" / "tearsheet_sp500_lstm_signal.html"
    text = sheet.read_text()
    assert "lstm_signal" in text and "buy_and_hold" in text  # benchmarked
    with pytest.raises(ReportError, match="no strategy"):
        result.tearsheet("nope")


def test_the_quickstart_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel draws inline, as in Jupyter
    notebook = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    outputs = [cell.outputs for cell in notebook.cells if cell.cell_type == "code"]
    assert not [o for cell in outputs for o in cell if o.output_type == "error"]
    kinds = [{kind for o in cell for kind in o.get("data", {})} for cell in outputs]
    assert "image/png" in set().union(*kinds)  # the equity chart
    shown = "".join(o["data"].get("text/html", "") for cell in outputs for o in cell if "data" in o)
    assert "lstm_signal" in shown and "Strategies after costs" in shown
    assert outputs[-1][0]["data"]["text/plain"] == "('tearsheet_sp500_lstm_signal.html', 'index.html', True)"
    assert len(list((tmp_path / "runs").iterdir())) >= 1
