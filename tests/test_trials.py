import numpy as np
import pandas as pd
import pytest

from backtests.stats import deflated_sharpe, probabilistic_sharpe, trial_variance
from backtests.trials import TrialLedger, default_ledger_path
from tests.helpers import hand_dsr


def daily_returns(seed: int = 0, n: int = 1000) -> pd.Series:
    rng = np.random.default_rng(seed)
    return pd.Series(rng.normal(0.0006, 0.01, n), index=pd.bdate_range("2015-01-01", periods=n))


def test_three_row_ledger_gives_the_hand_computed_dsr(tmp_path):
    ledger = TrialLedger(tmp_path)
    for i, sharpe in enumerate([0.0, 0.1, 0.2]):
        ledger.add(f"tune:s:{i}", "tune", "data-a", f"config-{i}", {"units": i}, "validation", sharpe, 0.01)
    ledger.add("run:other", "run", "data-b", "config-x", {}, "test", 5.0, 0.01)  # other data: not counted
    count = ledger.count("data-a", "validation")  # V pools the Sharpes of one span: these trials'
    assert count.n == 3 and count.variance == pytest.approx(0.01)
    returns = daily_returns()
    ours = deflated_sharpe(returns, count.n, trial_variance(returns, count.variance))
    assert ours == pytest.approx(hand_dsr(returns, [0.0, 0.1, 0.2]), rel=1e-9)
    assert ours < probabilistic_sharpe(returns)


def test_dsr_falls_strictly_as_equal_sharpe_rows_are_added(tmp_path):
    ledger = TrialLedger(tmp_path)
    returns = daily_returns(1)
    values = []
    for i in range(6):
        ledger.add(f"run:r{i}", "run", "data", f"config-{i}", {}, "test", 0.04, 0.01)
        count = ledger.count("data")
        assert count.n == i + 1 and count.variance == pytest.approx(0.0, abs=1e-18)
        values.append(deflated_sharpe(returns, count.n, trial_variance(returns, count.variance)))
    assert values[0] == pytest.approx(probabilistic_sharpe(returns))
    assert all(a > b for a, b in zip(values, values[1:])), values


def test_a_resumed_key_or_a_repeated_config_counts_once(tmp_path):
    ledger = TrialLedger(tmp_path)
    ledger.add("run:a", "run", "data", "config-1", {}, "test", 0.05, 0.01)
    ledger.add("run:a", "run", "data", "config-1", {}, "test", 0.07, 0.01)  # the same run, resumed
    ledger.add("backtest:b", "backtest", "data", "config-1", {}, "test", 0.05, 0.01)  # same predictions and costs
    assert len(ledger.rows()) == 2
    assert ledger.count("data").n == 1
    ledger.add("tune:s:3", "tune", "data", "config-2", {}, "validation", float("nan"), None)  # pruned
    count = ledger.count("data")
    assert count.n == 2 and count.variance == 0.0  # counted as tried, but no Sharpe for the variance


def test_a_run_and_a_backtest_record_per_day_sharpes_and_the_second_is_deflated_for_both(tmp_path):
    # the real paths: `run` writes a ledger row, `backtest` of its predictions with other costs a second
    # configuration; every number is rebuilt from the run dirs' daily returns with pandas and scipy
    from typer.testing import CliRunner

    from lstm_trader.cli import app
    from tests.helpers import TINY, make_bars, run_dirs, write_yahoo_csv

    runner = CliRunner()
    write_yahoo_csv(make_bars(320, seed=9), tmp_path / "ACME.csv")
    runs = tmp_path / "runs"
    first = runner.invoke(
        app, ["run", *TINY, "--set", f"data.source=csv:{tmp_path / 'ACME.csv'}", "--no-report", "--runs-dir", str(runs)]
    )
    assert first.exit_code == 0, first.output
    (run,) = run_dirs(runs)
    second = runner.invoke(
        app,
        [
            "backtest",
            str(run / "predictions.parquet"),
            "--set",
            "broker.commission_pct=0.01",
            "--no-report",
            "--runs-dir",
            str(runs),
        ],
    )
    assert second.exit_code == 0, second.output
    (tested,) = [r for r in run_dirs(runs) if r != run]

    def lstm_returns(folder) -> tuple[str, pd.Series]:
        comparison = pd.read_csv(folder / "comparison.csv")
        strategy = comparison.dropna(subset=["dsr"])["strategy"].iloc[0]  # the LSTM strategy the ledger keeps
        table = pd.read_parquet(folder / "returns.parquet")
        return strategy, table[(table["strategy"] == strategy) & (table["ticker"] == "ACME")]["return"].fillna(0.0)

    sharpes = []
    for folder in (run, tested):
        _, returns = lstm_returns(folder)
        sharpes.append(returns.mean() / returns.std())  # per day: no sqrt(252)
    rows = TrialLedger(default_ledger_path()).rows()
    assert [r["sharpe"] for r in rows] == pytest.approx(sharpes, rel=1e-9)
    assert all(abs(s) < 0.3 for s in sharpes)  # a daily Sharpe; annualised ones would be ~16x larger
    assert sharpes[0] != pytest.approx(sharpes[1])  # 1% commission changed it: two configurations

    strategy, returns = lstm_returns(tested)
    row = pd.read_csv(tested / "comparison.csv").set_index("strategy").loc[strategy]
    assert row["dsr"] == pytest.approx(hand_dsr(returns, sharpes), rel=1e-9)
    spread = (1 - returns.skew() * sharpes[1] + (returns.kurtosis() + 2) / 4 * sharpes[1] ** 2) / (len(returns) - 1)
    assert row["dsr_variance"] == pytest.approx(max(np.var(sharpes, ddof=1), spread), rel=1e-9)
    assert "deflated for 2 configurations" in second.output
    from backtests.books import deflated_again
    from backtests.trials import TrialCount

    again = deflated_again(tested, "ACME", strategy, 0.0, TrialCount(2, float(np.var(sharpes, ddof=1))))
    assert again == pytest.approx(row["dsr"], rel=1e-12)  # the DSR rebuilt from the returns the run wrote
    assert f"V = {row['dsr_variance']:.3g}" in second.output  # the V shown is the V used


def test_the_embedded_sp500_and_a_csv_copy_of_it_share_a_data_fingerprint(tmp_path):
    from backtests.trials import data_fingerprint
    from forecasting.data import load_prices
    from tests.helpers import write_yahoo_csv

    embedded = load_prices("builtin:sp500", "2009-01-01")
    write_yahoo_csv(load_prices("builtin:sp500")["sp500"], tmp_path / "SPX.csv")  # another name, every bar
    copy = load_prices(f"csv:{tmp_path / 'SPX.csv'}", "2009-01-01")
    assert data_fingerprint(embedded, "2009-01-01") == data_fingerprint(copy, "2009-01-01")
    # another span, or one changed bar, is other data
    assert data_fingerprint(embedded, "2010-01-01") != data_fingerprint(embedded, "2009-01-01")
    changed = {"sp500": embedded["sp500"].copy()}
    changed["sp500"].iloc[-1, 3] *= 1.0001
    assert data_fingerprint(changed, "2009-01-01") != data_fingerprint(embedded, "2009-01-01")


def test_the_bootstrap_interval_covers_the_true_sharpe_about_90_percent_of_the_time():
    from backtests.stats import bootstrap_intervals

    # 300 seeded series of 3 years of iid daily returns with a true annual Sharpe of 0.635 (an 80% interval
    # covers about 244 of them)
    rng = np.random.default_rng(1)
    mu, sd = 0.0004, 0.01
    true = mu / sd * np.sqrt(252)
    inside = 0
    for i in range(300):
        interval = bootstrap_intervals(pd.Series(rng.normal(mu, sd, 750)), seed=i)
        inside += interval["sharpe_low"] <= true <= interval["sharpe_high"]
        assert interval["max_drawdown_low"] <= interval["max_drawdown_high"] <= 0
    assert 259 <= inside <= 281  # 270 +- two binomial standard errors (5.2 each)


def ar1_returns(rng: np.random.Generator, n: int, phi: float, mu: float, sd: float) -> np.ndarray:
    """AR(1) daily returns with mean `mu` and marginal standard deviation `sd`."""
    shocks = rng.normal(0.0, sd * np.sqrt(1 - phi**2), n)
    values = np.empty(n)
    values[0] = rng.normal(0.0, sd)
    for t in range(1, n):
        values[t] = phi * values[t - 1] + shocks[t]
    return values + mu


def test_the_bootstrap_interval_widens_for_autocorrelated_returns_and_still_covers_the_sharpe():
    from backtests.stats import bootstrap_intervals

    # AR(1) with phi 0.5: the mean's variance is (1 + phi) / (1 - phi) = 3 times the iid one, so an honest
    # interval is about sqrt(3) = 1.73 times as wide as the iid width 2 x 1.645 sqrt(1 / n) sqrt(252) = 1.91
    # (Lo 2002). An iid resample gives about that iid width and covers about 66% of 300 series; the stationary
    # bootstrap about 1.6 times it and 86% (its data-driven block length is a little short at n = 750)
    rng = np.random.default_rng(7)
    mu, sd, n = 0.0004, 0.01, 750
    true = mu / sd * np.sqrt(252)
    inside, widths = 0, []
    for i in range(300):
        interval = bootstrap_intervals(pd.Series(ar1_returns(rng, n, 0.5, mu, sd)), seed=i)
        inside += interval["sharpe_low"] <= true <= interval["sharpe_high"]
        widths.append(interval["sharpe_high"] - interval["sharpe_low"])
    iid_width = 2 * 1.645 * np.sqrt(1 / n) * np.sqrt(252)
    assert np.mean(widths) > 1.4 * iid_width
    assert 246 <= inside <= 281  # 82% to 94%: about 90%, with room for the short blocks' small under-cover


def test_the_bootstrap_interval_is_seeded_and_brackets_the_point_estimates():
    from backtests.stats import bootstrap_intervals

    returns = daily_returns(3, 1500)
    a, b = bootstrap_intervals(returns), bootstrap_intervals(returns)
    assert a == b
    sharpe = returns.mean() / returns.std() * np.sqrt(252)
    assert a["sharpe_low"] < sharpe < a["sharpe_high"]
    # the width is about 2 x 1.645 standard errors: sqrt((1 + sr^2 / 2) / n) x sqrt(252) for iid returns,
    # sr the daily Sharpe (Lo 2002); about 0.41 over six years
    daily = sharpe / np.sqrt(252)
    standard_error = np.sqrt((1 + daily**2 / 2) / len(returns)) * np.sqrt(252)
    assert a["sharpe_high"] - a["sharpe_low"] == pytest.approx(2 * 1.645 * standard_error, rel=0.2)


def test_two_runs_in_two_runs_folders_count_two_configurations_in_the_users_ledger(tmp_path):
    from typer.testing import CliRunner

    from lstm_trader.cli import app
    from tests.helpers import TINY, make_bars, write_yahoo_csv

    data = tmp_path / "ACME.csv"
    write_yahoo_csv(make_bars(320, seed=9), data)
    outputs = []
    for folder, seed in (("one", 1), ("two", 2)):  # two seeds: two configurations, in two runs folders
        result = CliRunner().invoke(
            app,
            [
                "run",
                *TINY,
                "--set",
                f"data.source=csv:{data}",
                "--set",
                f"seed={seed}",
                "--runs-dir",
                str(tmp_path / folder),
                "--no-report",
            ],
        )
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert "1 configuration tried on this data" in outputs[0]
    assert "2 configurations tried on this data" in outputs[1]
    rows = TrialLedger(default_ledger_path()).rows()
    assert [r["kind"] for r in rows] == ["run", "run"]
    assert not (tmp_path / "one" / "ledger.sqlite").exists()


def test_a_runs_folders_old_ledger_is_merged_into_the_users_once(tmp_path):
    from backtests.trials import open_trial_ledger

    old = TrialLedger(tmp_path / "runs")
    old.add("run:a", "run", "data-a", "config-a", {}, "test", 0.1, 0.01)
    old.add("run:b", "run", "data-a", "config-b", {}, "test", 0.2, 0.01)
    book = open_trial_ledger(tmp_path / "mine.sqlite", tmp_path / "runs")
    assert book.count("data-a").n == 2
    old.add("run:c", "run", "data-a", "config-c", {}, "test", 0.3, 0.01)  # written there after the merge
    again = open_trial_ledger(tmp_path / "mine.sqlite", tmp_path / "runs")
    assert again.count("data-a").n == 2 and len(again.rows()) == 2


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda p: (p / "notes.sqlite").write_text("not a database at all " * 50) and p / "notes.sqlite",
            "file is not a database",
        ),
        (lambda p: (p / "afile").write_text("x") and p / "afile" / "ledger.sqlite", "cannot open the trial ledger"),
    ],
    ids=["not-sqlite", "under-a-file"],
)
def test_a_bad_ledger_location_is_one_error_before_any_work(tmp_path, make, message):
    from backtests.errors import BacktestError
    from backtests.trials import open_trial_ledger

    with pytest.raises(BacktestError, match=message):
        open_trial_ledger(make(tmp_path))


def test_n_counts_every_span_but_v_pools_only_the_out_of_sample_sharpes(tmp_path):
    ledger = TrialLedger(tmp_path)
    for i, sharpe in enumerate([0.5, -0.5, 0.9]):  # tuning trials: validation-span Sharpes, far apart
        ledger.add(f"tune:s:{i}", "tune", "data-a", f"config-{i}", {}, "validation", sharpe, 0.01)
    ledger.add("run:a", "run", "data-a", "config-a", {}, "test", 0.02, 0.01)
    ledger.add("run:b", "run", "data-a", "config-b", {}, "test", 0.04, 0.01)
    count = ledger.count("data-a")
    assert count.n == 5
    assert count.variance == pytest.approx(np.var([0.02, 0.04], ddof=1))  # 0.0002, the test span's alone
    assert ledger.count("data-a", "validation").variance == pytest.approx(np.var([0.5, -0.5, 0.9], ddof=1))


def test_rows_merged_from_an_older_ledger_count_under_the_datas_new_fingerprint(tmp_path):
    from backtests.trials import data_fingerprint, legacy_fingerprint, open_trial_ledger
    from forecasting.data import load_prices

    prices = load_prices("builtin:sp500", "2009-01-01")
    old = TrialLedger(tmp_path / "runs")  # a runs folder's ledger, written under the old fingerprint
    legacy = legacy_fingerprint("builtin:sp500", "2009-01-01", None, prices)
    for i in range(3):
        old.add(f"run:{i}", "run", legacy, f"config-{i}", {}, "test", 0.01 * i, 0.01)
    book = open_trial_ledger(tmp_path / "mine.sqlite", tmp_path / "runs")
    new = data_fingerprint(prices, "2009-01-01")
    assert book.count(new).n == 1  # (nothing under the new one yet)
    book.adopt(legacy, new)
    assert book.count(new).n == 3


def test_a_read_only_ledger_is_one_error_before_any_work(tmp_path):
    import os

    from backtests.errors import BacktestError
    from backtests.trials import open_trial_ledger

    path = tmp_path / "ledger.sqlite"
    TrialLedger(path).check()
    os.chmod(path, 0o444)
    if os.access(path, os.W_OK):  # (root may write anyway: nothing to prove then)
        pytest.skip("this user can write a read-only file")
    with pytest.raises(BacktestError, match="cannot write to the trial ledger"):
        open_trial_ledger(path)


def test_a_ledger_path_with_any_suffix_is_the_file_and_a_folder_holds_ledger_sqlite(tmp_path):
    assert TrialLedger(tmp_path / "trials.sqlite3").path == tmp_path / "trials.sqlite3"
    assert TrialLedger(tmp_path / "notes.txt").path == tmp_path / "notes.txt"
    assert TrialLedger(tmp_path).path == tmp_path / "ledger.sqlite"
    assert TrialLedger(tmp_path / "runs").path == tmp_path / "runs" / "ledger.sqlite"


def test_the_ledger_table_keeps_its_decision_columns_at_80_columns_and_wide_shows_the_rest(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from backtests.trials import TrialLedger
    from lstm_trader.cli import app
    from lstm_trader.console import console

    monkeypatch.setattr(console, "width", 80)
    days = pd.bdate_range("2015-01-01", periods=300)
    rng = np.random.default_rng(0)
    book = TrialLedger(tmp_path / "ledger.sqlite")
    source = "csv:/home/someone/research/data/universe/*.csv"  # a long source: cut, keeping its end
    for i in range(3):
        returns = pd.Series(rng.normal(0.0002, 0.01, len(days)), index=days)
        book.add(f"run:{i}", "run", "abcdef0123456789", f"config-{i}", {}, "test", 0.01, 0.01, returns, None, source)
    narrow = CliRunner().invoke(app, ["ledger", "--ledger", str(tmp_path / "ledger.sqlite")])
    assert narrow.exit_code == 0, narrow.output
    header = next(line for line in narrow.output.splitlines() if "fingerprint" in line)
    assert all(name in header for name in ("source", "N", "best DSR", "SPA p", "PBO")), header
    assert "csv:…data/universe/*.csv" in narrow.output
    assert max(len(line) for line in narrow.output.splitlines()[1:]) <= 80
    legend = [line for line in narrow.output.splitlines() if line.startswith(("N: distinct", "best DSR", "annualised"))]
    assert max(len(line.rstrip()) for line in legend) > len(header)  # the legend wraps at the terminal, not the table
    wide = CliRunner().invoke(app, ["ledger", "--ledger", str(tmp_path / "ledger.sqlite"), "--wide"])
    header = next(line for line in wide.output.splitlines() if "fingerprint" in line)
    assert all(name in header for name in ("V", "best Sharpe", "SPA p cash", "PBO tuning", "rows", "last"))
    assert source in wide.output and "not shown" not in wide.output
