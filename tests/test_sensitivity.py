import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from backtests.config import load_config
from backtests.sensitivity import _crossing, break_even, cost_sensitivity
from backtests.trials import TrialLedger, default_ledger_path
from lstm_trader.cli import app
from tests.helpers import TINY, make_bars, predictions_for, run_dirs, write_yahoo_csv

runner = CliRunner()


def test_crossing_interpolates_linearly():
    costs = np.array([0.0, 10.0, 20.0])
    assert _crossing(costs, np.array([0.4, 0.1, -0.2])) == pytest.approx(10 + 10 * 0.1 / 0.3)
    assert _crossing(costs, np.array([-0.1, -0.2, -0.3])) == 0.0  # never above: at or below the lowest cost
    assert _crossing(costs + 5, np.array([-0.1, -0.2, -0.3])) == 5.0
    assert np.isnan(_crossing(costs, np.array([0.5, 0.4, 0.3])))  # above on the whole grid


def test_lstm_sharpe_does_not_rise_with_cost_on_fixed_predictions():
    bars = make_bars(400, seed=4)
    signal = np.sign(np.sin(np.arange(400) / 6.0)) * 0.001  # trades every few days
    preds = pd.concat([predictions_for(bars, signal, model=m, ticker="T") for m in ("lstm", "momentum", "ridge")])
    config = load_config(None, ['strategies=[{name="lstm_signal"}]'])
    table = cost_sensitivity({"T": bars}, preds, config, (0, 2, 5, 10, 20, 50))
    lstm = table[table["strategy"] == "lstm_signal"].sort_values("cost_bp")
    assert lstm["trades"].nunique() == 1 and lstm["trades"].iloc[0] >= 10  # the same trades at every cost
    assert (np.diff(lstm["sharpe"].to_numpy()) <= 1e-12).all()
    assert (np.diff(lstm["total_return"].to_numpy()) < 0).all()
    assert lstm["costs"].iloc[0] == 0
    even = break_even(table, config)
    assert list(even["strategy"]) == ["lstm_signal"]


def test_sensitivity_command_writes_tables_plot_and_ledger_rows(tmp_path):
    data = tmp_path / "ACME.csv"
    write_yahoo_csv(make_bars(320, seed=9), data)
    runs = tmp_path / "runs"
    done = runner.invoke(
        app, ["run", *TINY, "--set", f"data.source=csv:{data}", "--runs-dir", str(runs), "--no-report"]
    )
    assert done.exit_code == 0, done.output
    (run,) = run_dirs(runs)
    result = runner.invoke(app, ["sensitivity", str(run), "--costs", "0,10,50"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(run / "sensitivity.csv")
    assert sorted(table["cost_bp"].unique()) == [0, 10, 50] and len(table) == 3 * 7
    assert (run / "break_even.csv").is_file() and "lstm_signal on ACME" in result.output
    rows = TrialLedger(default_ledger_path()).rows()
    assert [r["kind"] for r in rows].count("sensitivity") == 3
    assert len({r["data"] for r in rows}) == 1  # counted on the same data as the run (warm-up bars aside)
    report = runner.invoke(app, ["report", str(run)])
    assert report.exit_code == 0, report.output
    assert (run / "reports" / "sensitivity_ACME.png").is_file()
    for costs, message in (
        ("5,x", "not a list of numbers"),
        ("nan", "from 0 to below 1000"),
        ("inf", "from 0 to below 1000"),
        (",", "--costs is empty"),
        ("-5", "from 0 to below 1000"),
    ):
        bad = runner.invoke(app, ["sensitivity", str(run), "--costs", costs])
        assert bad.exit_code == 2 and message in bad.stderr and "Traceback" not in bad.output, (costs, bad.output)
