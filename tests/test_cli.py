import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lstm_trader.cli import app
from tests.helpers import TINY, make_bars, run_dirs, write_yahoo_csv

runner = CliRunner()


@pytest.fixture
def csv_data(tmp_path):
    path = tmp_path / "ACME.csv"
    write_yahoo_csv(make_bars(320, seed=9), path)
    return path


def test_run_writes_a_complete_run_dir(tmp_path, csv_data):
    result = runner.invoke(
        app,
        [
            "run",
            *TINY,
            "--set",
            f"data.source=csv:{csv_data}",
            "--set",
            "name=tiny",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--no-report",
        ],
    )
    assert result.exit_code == 0, result.output
    (run,) = run_dirs((tmp_path / "runs"))
    assert run.name.startswith("tiny-")
    for name in ("config.toml", "predictions.parquet", "metrics.json"):
        assert (run / name).is_file(), name
    pred = pd.read_parquet(run / "predictions.parquet")
    metrics = json.loads((run / "metrics.json").read_text())
    lstm = [m for m in metrics["forecast"] if m["model"] == "lstm"][0]
    assert lstm["n"] == (pred["model"] == "lstm").sum()
    assert "Forecast errors" in result.output and "naive" in result.output
    assert "time: start-up" in result.output and "walk-forward" in result.output and "total" in result.output
    assert "units = 4" in (run / "config.toml").read_text()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["run", "--set", "model.unit=4"], "did you mean 'model.units'?"),
        (["run", "--set", "data.source=csv:/no/such.csv"], "csv file not found"),
        (["run", "/no/such/config.toml"], "config file not found"),
        (["run", "--set", "data.source=builtin:sp500", "--set", "data.start=2018-06-01"], "rows"),
        (["forecast", "--data", "csv:/no/such.csv"], "csv file not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_two(tmp_path, args, fragment):
    result = runner.invoke(app, [*args, "--runs-dir", str(tmp_path)] if args[0] == "run" else args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "hint:" in lines[0], result.output
    assert "Traceback" not in result.output
    assert fragment in lines[0]
    assert not list(tmp_path.glob("*/predictions.parquet"))


def test_bad_run_leaves_existing_run_dirs_untouched(tmp_path, csv_data):
    runs = tmp_path / "runs"
    old = runs / "old-20200101-000000"
    old.mkdir(parents=True)
    (old / "config.toml").write_text("name = 'old'\n")
    result = runner.invoke(app, ["run", "--set", "model.units=-1", "--runs-dir", str(runs)])
    assert result.exit_code == 2
    assert [p.name for p in runs.iterdir()] == ["old-20200101-000000"]
    assert (old / "config.toml").read_text() == "name = 'old'\n"


def test_forecast_command_prints_and_saves(tmp_path, csv_data):
    out = tmp_path / "fc"
    result = runner.invoke(app, ["forecast", "--data", f"csv:{csv_data}", "--days", "3", *TINY, "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "forecast_ACME.csv", parse_dates=["date"])
    # the data ends on Wednesday 2016-03-23; Good Friday (03-25) is a New York Stock Exchange holiday
    assert make_bars(320, seed=9).index[-1] == pd.Timestamp("2016-03-23")
    assert [d.date().isoformat() for d in table["date"]] == ["2016-03-24", "2016-03-28", "2016-03-29"]
    assert (out / "forecast_ACME.png").is_file()


def test_the_forecast_table_fits_80_columns_with_its_band_on_one_line(tmp_path, csv_data, monkeypatch):
    from lstm_trader.console import console

    monkeypatch.setattr(console, "width", 80)
    bars = make_bars(320, seed=9)
    bars[["open", "high", "low", "close"]] *= 30  # an index near 3,000: the band's cell is at its widest
    write_yahoo_csv(bars, tmp_path / "INDEX.csv")
    result = runner.invoke(
        app,
        [
            "forecast",
            "--data",
            f"csv:{tmp_path / 'INDEX.csv'}",
            "--days",
            "3",
            *TINY,
            "--as-of",
            "2016-03-01",
            "--out",
            str(tmp_path / "fc"),
        ],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(next((tmp_path / "fc").glob("*.csv")))
    rows = [line for line in result.output.splitlines() if line.strip("│ ")[:10] in set(table["date"])]
    assert len(rows) == 3 and max(len(line) for line in result.output.splitlines() if not _a_path(line)) <= 80
    for line, low, high in zip(rows, table["price_low"], table["price_high"]):
        assert f"{low:,.2f} - {high:,.2f}" in line  # the band whole, on the date's own line


def test_a_forecast_from_the_past_keeps_its_own_files_and_shows_what_happened(tmp_path, csv_data):
    out = tmp_path / "fc"
    result = runner.invoke(
        app, ["forecast", "--data", f"csv:{csv_data}", "--days", "3", "--as-of", "2016-03-01", *TINY, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "forecast_ACME_2016-03-01.csv", parse_dates=["date"])
    bars = make_bars(320, seed=9)
    assert table["date"].tolist() == list(bars.index[bars.index > "2016-03-01"][:3])
    assert np.allclose(table["price_true"], bars["close"].loc[table["date"]].to_numpy())
    assert (out / "forecast_ACME_2016-03-01.png").is_file() and "actual" in result.output


def test_data_fetch_offline_is_one_clear_line(tmp_path):
    result = runner.invoke(app, ["data", "fetch", "ZZZNOTATICKER", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "builtin:sp500" in result.output and "csv:" in result.output


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "forecast", "data"):
        assert command in result.output


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny run (no reports) and a backtest of its predictions with the same config: (data, runs root,
    run dir, backtest dir, the run's output, the backtest's output)."""
    root = tmp_path_factory.mktemp("tiny-run")
    data = root / "ACME.csv"
    write_yahoo_csv(make_bars(320, seed=9), data)
    runs = root / "runs"
    ledger = ["--ledger", str(root / "ledger.sqlite")]  # the module's own trial ledger
    result = runner.invoke(
        app, ["run", *TINY, "--set", f"data.source=csv:{data}", "--runs-dir", str(runs), "--no-report", *ledger]
    )
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(runs)
    again = runner.invoke(
        app,
        [
            "backtest",
            str(run / "predictions.parquet"),
            "--data",
            f"csv:{data}",
            "--runs-dir",
            str(runs),
            "--no-report",
            *ledger,
        ],
    )
    assert again.exit_code == 0, again.output
    (second,) = [p for p in run_dirs(runs) if p != run]
    return data, runs, run, second, result.output, again.output


def test_run_backtests_every_strategy_and_writes_its_results(tiny_run):
    _, _, run, _, output, _ = tiny_run
    for name in ("returns.parquet", "equity.csv", "trades.csv", "fills.csv", "comparison.csv"):
        assert (run / name).is_file(), name
    comparison = pd.read_csv(run / "comparison.csv")
    assert set(comparison["strategy"]) == {
        "lstm_signal",
        "ridge_signal",
        "naive_signal",
        "sma_cross",
        "rsi_reversion",
        "macd_cross",
        "buy_and_hold",
    }
    assert "Strategies" in output
    metrics = json.loads((run / "metrics.json").read_text())
    assert [m["strategy"] for m in metrics["backtest"]] == list(comparison["strategy"])


def test_a_backtest_of_the_same_predictions_repeats_the_results_as_the_same_configuration(tiny_run):
    from backtests.trials import TrialLedger

    _, runs, run, second, output, _ = tiny_run
    comparison = pd.read_csv(run / "comparison.csv")
    pd.testing.assert_frame_equal(pd.read_csv(second / "comparison.csv"), comparison)
    # the trial ledger: a run and a backtest of the same predictions and costs are one configuration;
    # only the LSTM strategy is deflated, benchmarks and controls get PSR only
    rows = TrialLedger(runs.parent / "ledger.sqlite").rows()
    assert [r["kind"] for r in rows] == ["run", "backtest"] and rows[0]["config"] == rows[1]["config"]
    assert comparison.loc[comparison["strategy"] != "lstm_signal", "dsr"].isna().all()
    lstm_row = comparison.set_index("strategy").loc["lstm_signal"]
    assert lstm_row["dsr"] == pytest.approx(lstm_row["psr"])  # one configuration tried: DSR = PSR
    assert "1 configuration tried on this data" in output


def test_a_backtest_of_a_table_without_the_ridge_control_leaves_ridge_signal_out(tiny_run, tmp_path):
    data, _, run, _, _, _ = tiny_run
    old_table = pd.read_parquet(run / "predictions.parquet").query("model != 'ridge'")
    old_table.to_parquet(tmp_path / "old.parquet")
    older = runner.invoke(
        app,
        [
            "backtest",
            str(tmp_path / "old.parquet"),
            "--data",
            f"csv:{data}",
            "--runs-dir",
            str(tmp_path / "other-runs"),
            "--no-report",
        ],
    )
    assert older.exit_code == 0, older.output
    assert "left out ridge_signal" in older.output
    (third,) = run_dirs(tmp_path / "other-runs")
    assert "ridge_signal" not in set(pd.read_csv(third / "comparison.csv")["strategy"])


def test_a_backtest_at_other_costs_is_a_second_configuration(tiny_run, tmp_path):
    import shutil

    data, runs, run, _, _, _ = tiny_run
    copy = tmp_path / "runs"  # a copy of the runs folder and its ledger, so the shared one keeps its two rows
    shutil.copytree(runs, copy)
    shutil.copy(runs.parent / "ledger.sqlite", tmp_path / "ledger.sqlite")
    costly = runner.invoke(
        app,
        [
            "backtest",
            str(copy / run.name / "predictions.parquet"),
            "--data",
            f"csv:{data}",
            "--set",
            "broker.commission_pct=0.002",
            "--runs-dir",
            str(copy),
            "--no-report",
            "--ledger",
            str(tmp_path / "ledger.sqlite"),
        ],
    )
    assert costly.exit_code == 0, costly.output
    assert "2 configurations tried on this data" in costly.output


def test_compare_puts_the_runs_side_by_side(tiny_run, tmp_path):
    _, _, run, second, _, _ = tiny_run
    both = runner.invoke(app, ["compare", str(run), str(second), "--out", str(tmp_path / "cmp.csv")])
    assert both.exit_code == 0, both.output
    table = pd.read_csv(tmp_path / "cmp.csv")
    assert len(table) == 2 * len(pd.read_csv(run / "comparison.csv")) and set(table["run"]) == {run.name, second.name}


def test_a_backtest_of_a_forecast_with_no_finite_value_warns_that_it_never_had_a_signal(tmp_path, csv_data):
    dates = pd.read_csv(csv_data, parse_dates=["Date"])["Date"].iloc[-60:-1]
    table = pd.DataFrame({"date": dates, "ticker": "ACME", "model": "lstm", "y_pred": np.nan})
    table.to_csv(tmp_path / "silent.csv", index=False)
    result = runner.invoke(
        app,
        [
            "backtest",
            str(tmp_path / "silent.csv"),
            "--data",
            f"csv:{csv_data}",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--no-report",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "warning: never had a signal" in result.stderr and "lstm_signal on ACME" in result.stderr
    assert "nan" not in result.stdout  # a Sharpe of constant returns shows as '—'
    (run,) = run_dirs(tmp_path / "runs")
    row = pd.read_csv(run / "comparison.csv").set_index("strategy").loc["lstm_signal"]
    assert row["trades"] == 0 and row["total_return"] == 0


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["backtest", "/no/such.parquet"], "predictions file not found"),
        (["compare", "/no/such/run"], "run dir not found"),
        (["run", "--set", "broker.cash=-1"], "broker.cash"),
        (["run", "--set", "broker.commission_pct=-0.1"], "broker.commission_pct"),
    ],
)
def test_bad_backtest_input(tmp_path, args, fragment):
    result = runner.invoke(app, [*args, "--runs-dir", str(tmp_path)] if args[0] in ("run", "backtest") else args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.stderr


def test_unknown_strategy_in_config_fails_before_training(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[strategies]]\nname = "lstm_sigal"\n')
    result = runner.invoke(app, ["run", str(cfg), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "did you mean 'lstm_signal'" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_two_tickers_run_end_to_end_with_an_equal_weight_portfolio(tmp_path):
    a, b = tmp_path / "AAA.csv", tmp_path / "BBB.csv"
    write_yahoo_csv(make_bars(320, seed=21), a)
    write_yahoo_csv(make_bars(320, seed=22), b)
    runs = tmp_path / "runs"
    result = runner.invoke(
        app, ["run", *TINY, "--set", f"data.source=csv:{a},{b}", "--runs-dir", str(runs), "--no-report"]
    )
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(runs)
    pred = pd.read_parquet(run / "predictions.parquet")
    assert set(pred["ticker"]) == {"AAA", "BBB"}
    comparison = pd.read_csv(run / "comparison.csv")
    assert set(comparison["ticker"]) == {"AAA", "BBB", "portfolio"}
    assert set(comparison.loc[comparison["ticker"] == "portfolio", "strategy"]) == {"lstm_signal", "buy_and_hold"}
    fills = pd.read_csv(run / "fills.csv")
    first = (
        fills[(fills["book"] == "portfolio") & (fills["strategy"] == "buy_and_hold")].groupby("ticker")["value"].first()
    )
    assert set(first.index) == {"AAA", "BBB"}
    assert first.sum() == pytest.approx(100_000, rel=0.01) and first.min() > 0.45 * 100_000


LSTM_ONLY = ["--set", 'strategies=[{name="lstm_signal"}]']  # (buy-and-hold is always added)


def test_audit_passes_on_the_real_pipeline_with_dividends_in_adj_close(tmp_path):
    bars = make_bars(320, seed=9)
    path = tmp_path / "DIV.csv"
    write_yahoo_csv(bars, path)
    frame = pd.read_csv(path)
    paid = np.cumprod(np.where(np.arange(len(frame)) % 63 == 62, 0.99, 1.0))  # a 1% dividend every quarter
    frame["Adj Close"] = frame["Close"] * paid / paid[-1]
    frame.to_csv(path, index=False)
    result = runner.invoke(app, ["audit", *TINY, *LSTM_ONLY, "--set", f"data.source=csv:{path}"])
    assert result.exit_code == 0, result.output
    assert "passed" in result.output and "trained on a target after their date: 0 of" in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("│ 20")]) == 3  # three cut dates


def test_audit_catches_a_strategy_that_reads_tomorrows_bar(csv_data, monkeypatch):
    from strategies import TargetStrategy
    from strategies.registry import STRATEGIES

    class Peek(TargetStrategy):  # Backtrader's preloaded lines let close[1] read the next bar
        def target(self, data):
            try:
                return 1.0 if data.close[1] > data.close[0] else 0.0
            except IndexError:
                return 0.0

    monkeypatch.setitem(STRATEGIES, "peek", Peek)
    result = runner.invoke(
        app, ["audit", *TINY, "--set", f"data.source=csv:{csv_data}", "--set", 'strategies=[{name="peek"}]']
    )
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output and "moved by later prices: peek" in result.output


def test_audit_catches_a_split_that_trains_on_one_sample_too_many(csv_data, monkeypatch):
    from forecasting.walkforward import WalkForwardSplit

    honest = WalkForwardSplit.train_rows
    monkeypatch.setattr(
        WalkForwardSplit, "train_rows", lambda self, fold: np.append(honest(self, fold), honest(self, fold)[-1] + 1)
    )
    result = runner.invoke(app, ["audit", *TINY, *LSTM_ONLY, "--set", f"data.source=csv:{csv_data}"])
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output and "trained on a target after their date: 0 of" not in result.output


def test_audit_catches_a_leaky_feature(tmp_path, csv_data, monkeypatch):
    from forecasting import features

    # a feature that peeks at tomorrow's close: exactly the bug the audit exists to catch
    leak = (lambda f, w: f["close"].shift(-1).fillna(f["close"]) / f["close"], 0, False)
    monkeypatch.setitem(features.FEATURES, "tomorrow", leak)
    result = runner.invoke(
        app,
        [
            "audit",
            *TINY,
            *LSTM_ONLY,
            "--set",
            f"data.source=csv:{csv_data}",
            "--set",
            'model.features=["log_return", "tomorrow"]',
        ],
    )
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output


def test_bare_command_help_short_flag_and_version():
    bare = runner.invoke(app, [])
    assert bare.exit_code == 0 and "tune" in bare.output and "sensitivity" in bare.output
    short = runner.invoke(app, ["run", "-h"])
    assert short.exit_code == 0 and "--resume" in short.output
    version = runner.invoke(app, ["--version"])
    from importlib.metadata import version as installed

    assert version.exit_code == 0 and version.output.strip() == f"lstm-trader {installed('lstm-trader')}"


def _a_path(line: str) -> bool:
    """Lines that name a file or folder are printed whole, however long, so that they can be copied."""
    return line.startswith(("run dir: ", "open: ", "saved "))


def _hard_wrapped(page: str) -> bool:
    """A line that breaks mid-sentence far short of the width, in the text above the first panel or
    in a panel's help column: the docstring's own line breaks showing through."""
    intro = page.split("╭")[0].splitlines()[2:]
    lines = [line.rstrip() for line in intro]
    for line, after in zip(lines, lines[1:]):
        if line and after and len(line) < 60 and not line.endswith((".", ":")):
            return True
    return False


def test_every_help_page_is_free_of_type_artefacts_and_fits_80_columns():
    import os
    import re

    commands = [
        [],
        ["run"],
        ["report"],
        ["backtest"],
        ["compare"],
        ["audit"],
        ["tune"],
        ["sensitivity"],
        ["forecast"],
        ["data", "fetch"],
        ["paper"],
        ["paper", "init"],
        ["paper", "step"],
        ["paper", "status"],
        ["paper", "replay"],
    ]
    env = {**os.environ, "COLUMNS": "80", "TF_CPP_MIN_LOG_LEVEL": "3"}
    for command in commands:
        result = subprocess.run(
            [sys.executable, "-m", "lstm_trader.cli", *command, "-h"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage:" in result.stdout
        assert not re.search(r"<(bool|str|int|float|path|list\[[^]]*\])>|\{\}", result.stdout), (command, result.stdout)
        assert max(map(len, result.stdout.splitlines())) <= 80, command
        usage = next(line for line in result.stdout.splitlines() if "Usage:" in line)
        assert not re.search(r"\{|\[[a-z_]+\]|(?<![A-Z\[]) [a-z_]+$", usage.strip()), usage  # RUN_DIR, [CONFIG]
        assert not _hard_wrapped(result.stdout), (command, result.stdout)
    run_help = subprocess.run(
        [sys.executable, "-m", "lstm_trader.cli", "run", "-h"], capture_output=True, text=True, env=env, timeout=60
    ).stdout
    assert re.search(r"--runs-dir\s+PATH", run_help) and re.search(r"--workers\s+INTEGER", run_help)
    assert re.search(r"--open\s+open the report", run_help)  # a flag shows no type at all


def test_tables_fit_80_columns_without_cutting_a_cell_and_wide_shows_every_column(tmp_path, csv_data, monkeypatch):
    from lstm_trader.console import console

    monkeypatch.setattr(console, "width", 80)
    runs = tmp_path / "runs"
    result = runner.invoke(
        app, ["run", *TINY, "--set", f"data.source=csv:{csv_data}", "--no-report", "--runs-dir", str(runs)]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "…" not in result.output and max(len(line) for line in lines if not _a_path(line)) <= 80
    assert "rsi_reversion" in result.output and "--wide shows them" in result.output
    (run,) = run_dirs(runs)
    narrow = runner.invoke(app, ["compare", str(run)])
    assert "…" not in narrow.output and max(len(line) for line in narrow.output.splitlines()) <= 80
    wide = runner.invoke(app, ["compare", str(run), "--wide"])
    header = next(line for line in wide.output.splitlines() if "strategy" in line)
    assert all(name in header for name in ("CAGR", "Sharpe", "max DD", "trades", "LSTM RMSE", "Theil U"))
    assert "…" not in wide.output
