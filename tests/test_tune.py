"""`lstm-trader tune`: the tuner never sees the out-of-sample span, studies resume, outputs run."""

import tomllib

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from backtests.config import load_config
from backtests.trials import TrialLedger, default_ledger_path
from backtests.tune import open_study, tune
from backtests.tune_objective import first_test_date, suggest
from lstm_trader.cli import app
from tests.helpers import hand_dsr, make_bars, run_dirs, write_yahoo_csv

runner = CliRunner()

SPACE = "tune.space={units={low=2, high=6}, epochs={low=1, high=2}, dropout={low=0.0, high=0.3}}"
SMALL = [
    "--set",
    'model.features=["log_return", "rsi_14"]',
    "--set",
    "model.lookback=5",
    "--set",
    "model.n_layers=1",
    "--set",
    "walk_forward.min_train=150",
    "--set",
    "walk_forward.retrain_every=30",
    "--set",
    "walk_forward.finetune_window=50",
    "--set",
    "walk_forward.finetune_epochs=1",
    "--set",
    SPACE,
]


def small_config(data, *extra):
    overrides = [SMALL[i + 1] for i in range(0, len(SMALL), 2)]
    return load_config(None, [*overrides, f"data.source=csv:{data}", *extra])


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "ACME.csv"
    write_yahoo_csv(make_bars(420, seed=11), path)
    return path


def prices_of(config):
    from backtests.experiment import load_experiment_prices

    return load_experiment_prices(config)


def test_trials_never_see_the_test_span(tmp_path, data):
    config = small_config(data)
    prices = prices_of(config)
    first = first_test_date(prices, config)
    result = tune(config, prices, 3, studies_root=tmp_path / "a", runs_root=tmp_path / "runs")
    assert result.tuning_end < first == result.first_test
    last_seen = {
        t.user_attrs["last_tuning_date"]
        for t in open_study(tmp_path / "a" / config.name, config.name, config).get_trials()
    }
    assert all(pd.Timestamp(d) < first for d in last_seen)
    # the outer run of the same config starts testing at that date
    from forecasting.walkforward import make_samples, make_split

    split = make_split(config.model, config.walk_forward)
    samples = make_samples(prices["ACME"], config.model)
    assert samples.dates[split.first_test()] >= first

    # change every price from the first test date on: every trial's value is unchanged
    frame = prices["ACME"].copy()
    after = frame.index >= first
    rng = np.random.default_rng(0)
    frame.loc[after, ["open", "high", "low", "close"]] *= np.exp(np.cumsum(rng.normal(0, 0.05, after.sum())))[:, None]
    frame.loc[after, "volume"] *= 3
    perturbed = tune(config, {"ACME": frame}, 3, studies_root=tmp_path / "b", runs_root=tmp_path / "runs-b")
    assert len(result.trials) == 3
    pd.testing.assert_series_equal(result.trials["value"], perturbed.trials["value"])


def test_a_resumed_study_counts_every_trial_once(tmp_path, data):
    config = small_config(data)
    prices = prices_of(config)
    kwargs = {"studies_root": tmp_path / "studies", "runs_root": tmp_path / "runs"}
    tune(config, prices, 2, **kwargs)
    # a tune killed mid-trial leaves a RUNNING trial behind: it is failed and retried, not counted twice
    study = open_study(tmp_path / "studies" / config.name, config.name, config)
    orphan = study.ask()
    orphan.suggest_int("units", 2, 6)
    resumed = tune(config, prices, 4, **kwargs)
    states = resumed.trials["state"].tolist()
    assert states.count("COMPLETE") + states.count("PRUNED") == 4
    assert states.count("FAIL") == 1 and "RUNNING" not in states
    retried = resumed.trials[resumed.trials["number"] > orphan.number]
    assert orphan.params["units"] in retried["param_units"].tolist()
    ledger = [r for r in TrialLedger(default_ledger_path()).rows() if r["kind"] == "tune"]
    assert len(ledger) == 4 and len({r["key"] for r in ledger}) == 4


def test_best_toml_runs_and_later_runs_count_the_trials(tmp_path, data):
    config = small_config(data)
    tune(config, prices_of(config), 3, studies_root=tmp_path / "studies", runs_root=tmp_path / "runs")
    best = tmp_path / "studies" / config.name / "best.toml"
    assert tomllib.loads(best.read_text())["model"]["units"] in range(2, 7)
    done = runner.invoke(app, ["run", str(best), "--runs-dir", str(tmp_path / "runs"), "--no-report"])
    assert done.exit_code == 0, done.output
    assert "4 configurations tried on this data" in done.output  # 3 trials + this run
    # the run's DSR is deflated for N = 4 (every configuration, tuning trials' included), with V from the
    # Sharpes measured out of sample alone (this run's one: the floor), not the trials' validation Sharpes
    (run,) = run_dirs(tmp_path / "runs")
    comparison = pd.read_csv(run / "comparison.csv")
    row = comparison.dropna(subset=["dsr"]).iloc[0]
    table = pd.read_parquet(run / "returns.parquet")
    returns = table[(table["strategy"] == row["strategy"]) & (table["ticker"] == "ACME")]["return"].fillna(0.0)
    rows = TrialLedger(default_ledger_path()).rows()
    sharpes = [r["sharpe"] for r in rows if r["sharpe"] is not None and r["span"] == "test"]
    assert len(sharpes) == 1 and sum(r["span"] == "validation" for r in rows) == 3
    assert row["dsr"] == pytest.approx(hand_dsr(returns, sharpes, n=4), rel=1e-9)
    for name in ("trials.csv", "index.html", "optimisation.png"):
        assert (tmp_path / "studies" / config.name / name).is_file(), name
    assert len(run_dirs(tmp_path / "runs")) == 1


def test_a_continued_study_draws_new_points_and_stays_reproducible(tmp_path, data):
    config = small_config(data)

    def two_sittings(folder) -> list[dict]:
        first = open_study(folder, "s", config)
        for _ in range(2):  # `tune --trials 2`
            trial = first.ask()
            suggest(trial, config.tune.space)
            first.tell(trial, 1.0)
        later = open_study(folder, "s", config)  # `tune --trials 3`: a new process opens the same study
        suggest(later.ask(), config.tune.space)
        return [t.params for t in later.get_trials()]

    drawn = two_sittings(tmp_path / "a")
    assert drawn[2] not in drawn[:2]  # the continuation does not replay the first start-up draws
    assert two_sittings(tmp_path / "b") == drawn  # and the same sittings draw the same points


def test_a_tuning_trial_records_the_per_day_validation_sharpe(data):
    from backtests.books import lstm_strategies
    from backtests.engine import run_backtest
    from backtests.tune_objective import _validation_sharpe, tuning_span

    config = small_config(data)
    span, _ = tuning_span(prices_of(config), config)
    ((ticker, frame),) = span.items()
    dates = frame.index[100:-1]
    predictions = pd.DataFrame(
        {
            "date": dates,
            "ticker": ticker,
            "model": "lstm",
            "y_pred": np.random.default_rng(4).normal(0, 0.01, len(dates)),
        }
    )
    sharpe = _validation_sharpe(span, predictions, config, lstm_strategies(config))
    daily = run_backtest({ticker: frame}, predictions, "lstm_signal", config.broker).returns.fillna(0.0)
    assert sharpe == pytest.approx(daily.mean() / daily.std(), rel=1e-9)  # per day, over cash at rate 0


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--study", "../escape"], "study name '../escape' may hold only"),
        (["--study", ".."], "study name '..' may hold only"),
        (["--trials", "0"], "--trials must be at least 1"),
        (["--set", "tune.space={units={low=64, high=16}}"], "empty or inverted search range"),
        (["--set", "tune.space={unitz={low=8, high=16}}"], "did you mean 'units'"),
        (["--set", "tune.space={units={}}"], "give low and high"),
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--timeout", "0"], "--timeout must be a positive"),
        (["--set", "tune.space={units={low=0, high=4}}"], "tune.space.units: the value 0 is not a valid model.units"),
        (["--set", "tune.space={dropout={low=0.5, high=1.5}}"], "tune.space.dropout: the value 1.5"),
    ],
)
def test_bad_tuning_input_is_one_line_and_exit_2(tmp_path, data, args, fragment):
    result = runner.invoke(
        app,
        [
            "tune",
            "--set",
            f"data.source=csv:{data}",
            *SMALL,
            *args,
            "--studies-dir",
            str(tmp_path / "studies"),
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert result.stdout == ""  # nothing printed before the error
    assert not (tmp_path / "studies").exists() and not (tmp_path / "escape").exists()  # and no study started


def test_a_study_of_another_config_is_refused_untouched(tmp_path, data):
    common = [
        "tune",
        "--set",
        f"data.source=csv:{data}",
        *SMALL,
        "--study",
        "s",
        "--studies-dir",
        str(tmp_path / "studies"),
        "--runs-dir",
        str(tmp_path / "runs"),
    ]
    first = runner.invoke(app, [*common, "--trials", "1"])
    assert first.exit_code == 0, first.output
    journal = (tmp_path / "studies" / "s" / "journal.log").read_bytes()
    other = runner.invoke(app, [*common, "--trials", "2", "--set", "model.n_layers=2"])
    assert other.exit_code == 2 and "another config" in other.stderr and other.stdout == ""
    assert (tmp_path / "studies" / "s" / "journal.log").read_bytes() == journal


def test_the_next_line_printed_and_on_the_study_page_evaluates_that_study_as_it_was_started(tmp_path, data):
    import html
    import shlex

    first = runner.invoke(
        app,
        [
            "tune",
            "--set",
            f"data.source=csv:{data}",
            *SMALL,
            "--trials",
            "1",
            "--study",
            "s",
            "--studies-dir",
            str(tmp_path / "studies"),
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
    )
    assert first.exit_code == 0, first.output
    line = next(x for x in first.output.splitlines() if x.startswith("next: ")).removeprefix("next: ")
    page = (tmp_path / "studies" / "s" / "index.html").read_text()
    assert html.escape(line) in page
    args = shlex.split(line)
    assert args[0] == "lstm-trader" and args[-1] == "--evaluate"
    followed = runner.invoke(app, args[1:])
    assert followed.exit_code == 0, followed.output
    assert "evaluated once each" in followed.output and "nothing to run" in followed.output  # not continued
    assert len(pd.read_csv(tmp_path / "studies" / "s" / "trials.csv")) == 1


def test_evaluate_runs_the_tuned_and_the_base_config_once_each(tmp_path, data):
    result = runner.invoke(
        app,
        [
            "tune",
            "--set",
            f"data.source=csv:{data}",
            *SMALL,
            "--trials",
            "2",
            "--evaluate",
            "--studies-dir",
            str(tmp_path / "studies"),
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "evaluated once each" in result.output and "tuned" in result.output and "base" in result.output
    runs = [r for r in TrialLedger(default_ledger_path()).rows() if r["kind"] == "run"]
    assert len(runs) == 2 and len(run_dirs(tmp_path / "runs")) == 2
    assert "4 configurations tried on this data" in result.output  # 2 trials + 2 evaluated runs
    assert "…" not in result.output  # no run name cut short
    lines = result.output.splitlines()
    header = [c.strip() for c in next(line for line in lines if "config" in line and "run" in line).split("┃")]
    for label in ("tuned", "base"):  # both rows deflated with the same, final N
        row = [c.strip() for c in next(line for line in lines if line.strip("│ ").startswith(label)).split("│")]
        assert row[header.index("N")] == "4", row
