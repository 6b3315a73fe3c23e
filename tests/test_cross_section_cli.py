"""configs/cross_section.toml's path from the command line, with a tiny network on a short span of the
embedded universe: the run, its metrics and report, the audit across tickers, and rank-IC tuning."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lstm_trader.cli import app
from tests.helpers import run_dirs

runner = CliRunner()
CONFIG = str(Path(__file__).resolve().parent.parent / "configs" / "cross_section.toml")
SHORT = [
    'data.start="2018-01-01"',
    'data.end="2019-12-31"',
    'model.features=["log_return", "log_return_5"]',
    "model.lookback=5",
    "model.units=4",
    "model.epochs=2",
    "walk_forward.min_train=250",
    "walk_forward.retrain_every=100",
    "walk_forward.finetune_window=30",
    'strategies=[{name="xs_rank", label="xs_rank_lstm", params={forecast="lstm", k=3, rebalance_every=5}}, '
    '{name="xs_rank", label="xs_rank_momentum", params={forecast="momentum_12_1", k=3, rebalance_every=5}}]',
]
SETS = [arg for s in SHORT for arg in ("--set", s)]


@pytest.fixture(scope="module")
def universe_run(tmp_path_factory):
    from lstm_trader.console import console

    root = tmp_path_factory.mktemp("runs")
    saved, console.width = console.width, 80  # a newcomer's terminal
    try:
        result = runner.invoke(app, ["run", CONFIG, *SETS, "--runs-dir", str(root)])
    finally:
        console.width = saved
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(root)
    return run, result.output


def test_a_universe_run_writes_rank_ic_icir_and_newey_west_t_for_every_model(universe_run):
    run, _ = universe_run
    metrics = json.loads((run / "metrics.json").read_text())
    xs = pd.DataFrame(metrics["cross_section"]).set_index("model")
    assert list(xs.index) == ["lstm", "ridge", "lightgbm", "naive", "momentum_12_1", "reversal_5"]
    for column in ("rank_ic", "rank_icir", "rank_ic_t", "ic", "icir", "top_k_hit", "spread"):
        assert xs.loc[["lstm", "ridge", "lightgbm", "momentum_12_1"], column].notna().all(), column
    assert xs["k"].eq(3).all()
    predictions = pd.read_parquet(run / "predictions.parquet")
    assert predictions["ticker"].nunique() == 20
    summary = metrics["summary"]
    assert summary["scope"] == "global" and summary["fill_rule"] == "next close (close-only data)"
    assert any("survivorship-biased" in note for note in summary["notes"])
    per_fold = pd.DataFrame(metrics["cross_section_per_fold"])
    assert set(per_fold["fold"]) == set(predictions["fold"])


def test_a_universe_run_trades_the_ranking_against_the_equal_weight_universe(universe_run):
    run, _ = universe_run
    comparison = pd.read_csv(run / "comparison.csv")
    assert list(comparison["strategy"]) == ["xs_rank_lstm", "xs_rank_momentum", "equal_weight"]
    assert set(comparison["ticker"]) == {"portfolio"}
    fills = pd.read_csv(run / "fills.csv")
    assert fills[fills["strategy"] == "xs_rank_lstm"]["ticker"].nunique() > 3  # it rotated through the universe


def test_the_terminal_shows_the_ranking_table_and_the_caveat_at_80_columns(universe_run):
    _, output = universe_run
    assert "Ranking the universe, out of sample" in output
    assert "survivorship-biased" in output
    # (lines naming a file are printed whole, to be copied)
    assert max(len(line) for line in output.splitlines() if not line.startswith(("run dir: ", "open: "))) <= 80


def test_the_report_shows_rank_ic_the_caveat_the_fill_rule_and_benchmarks_on_equal_weight(universe_run):
    run, _ = universe_run
    page = (run / "reports" / "index.html").read_text()
    assert 'id="cross-section-table"' in page and "survivorship-biased" in page
    assert "filled at the next close (close-only data)" in page
    for picture in ("rank_ic.png", "quintile_spread.png", "holdings_portfolio_xs_rank_lstm.png"):
        assert (run / "reports" / picture).is_file()
    sheet = (run / "reports" / "tearsheet_portfolio_xs_rank_lstm.html").read_text()
    assert "equal_weight" in sheet and "survivorship-biased" in sheet


def test_the_audit_of_a_universe_model_changes_one_ticker_per_cut_and_passes(tmp_path):
    result = runner.invoke(app, ["audit", CONFIG, *SETS, "--date", "2019-06-03"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "AAPL" in result.output  # the first cut changes the first ticker's prices
    assert "passed" in result.output


def test_tuning_a_universe_model_maximises_the_validation_rank_ic(tmp_path):
    space = "tune.space={units={low=2, high=4}}"
    result = runner.invoke(
        app,
        [
            "tune",
            CONFIG,
            *SETS,
            "--set",
            space,
            "--trials",
            "2",
            "--studies-dir",
            str(tmp_path / "studies"),
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        env={"COLUMNS": "120"},
    )
    assert result.exit_code == 0, result.output
    assert "best validation mean rank IC" in result.output
    trials = pd.read_csv(tmp_path / "studies" / "cross_section" / "trials.csv")
    complete = trials[trials["state"] == "COMPLETE"]
    assert len(complete) >= 1
    best = (tmp_path / "studies" / "cross_section" / "best.toml").read_text()
    assert f"validation mean rank IC = {complete['value'].max():.6f}" in best
