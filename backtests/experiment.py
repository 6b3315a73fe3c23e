"""One experiment end to end: data -> walk-forward predictions -> metrics -> backtests -> run dir."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from backtests.books import (
    backtest_all,
    check_forecasts,
    check_universe_strategies,
    fill_rule,
    silent_strategies,
    strategies_with_benchmark,
    write_backtests,
)
from backtests.config import ExperimentConfig, dump_config, load_config
from backtests.errors import BacktestError
from backtests.execution import run_tasks
from backtests.provenance import provenance
from backtests.rundir import FolderLock, new_run_dir, write_json, write_parquet, write_text
from backtests.trials import (
    TrialCount,
    TrialLedger,
    open_trial_ledger,
)
from forecasting import load_prices
from forecasting.checkpoint import FoldCheckpoints
from forecasting.faults import inject
from forecasting.features import check_feature_columns
from forecasting.model import import_keras
from forecasting.tasks import task_of
from forecasting.walkforward import Progress


@dataclass
class RunResult:
    path: Path
    predictions: pd.DataFrame
    metrics: pd.DataFrame
    comparison: pd.DataFrame
    elapsed_s: float
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase, in order
    trials: TrialCount = TrialCount(1, 0.0)  # what the LSTM strategies' DSR was deflated by
    skipped: list[str] = field(default_factory=list)  # strategies left out: their forecast is not in the table
    silent: list[str] = field(default_factory=list)  # strategies whose forecast never had a finite value
    notes: list[str] = field(default_factory=list)  # what the user should know: tickers left out, data caveats
    cross_section: pd.DataFrame | None = None  # rank IC and friends per model (a universe model's run)
    volatility: pd.DataFrame | None = None  # QLIKE and friends per (ticker, model) (a realized_vol run)


def load_experiment_prices(
    config: ExperimentConfig, notes: list[str] | None = None, beside: tuple[str, ...] = ()
) -> dict[str, pd.DataFrame]:
    """Load and check that every ticker has enough bars for warm-up, lookback and the first fold.
    `beside`: the variance forecasts made beside the run's own (a paper account's `vol_lstm`), which a
    strategy's `vol_forecast` may name.

    A global model's universe needs that of the universe's calendar, not of every ticker: a ticker
    too short for the features' warm-up and the lookback is left out, with a note added to `notes`."""
    prices = load_prices(
        config.data.source,
        config.data.start,
        config.data.end,
        config.data.cache_dir,
        config.data.missing,
        config.data.dividends,
    )
    if notes is not None:  # a gap filled or dropped is counted where the user reads the run
        verb = "filled with the last close" if config.data.missing == "ffill" else "left out"
        notes += [
            f"{t}: {f.attrs['gaps']} bars with a missing value {verb}" for t, f in prices.items() if f.attrs.get("gaps")
        ]
    for ticker, frame in prices.items():
        check_feature_columns(config.model.features, frame, f"{config.data.source} ({ticker})")
    prices = task_of(config.model).check_prices(prices, config.walk_forward, config.data.source, notes)
    check_universe_strategies(config, len(prices))
    check_forecasts(config, beside)
    return prices


def summary(
    config: ExperimentConfig,
    prices: dict[str, pd.DataFrame],
    predictions: pd.DataFrame,
    elapsed: float,
    phases: dict[str, float] | None = None,
) -> dict:
    lstm = predictions[predictions["model"] == "lstm"]
    m = config.model
    return {
        "name": config.name,
        "source": config.data.source,
        "tickers": list(prices),
        "data_start": min(f.index[0] for f in prices.values()).date().isoformat(),
        "data_end": max(f.index[-1] for f in prices.values()).date().isoformat(),
        "test_start": lstm["date"].min().date().isoformat(),
        "test_end": lstm["date"].max().date().isoformat(),
        "folds": int(lstm["fold"].max()) + 1,
        "retrain_every": config.walk_forward.retrain_every,
        "warm_start": config.walk_forward.warm_start,
        "network": f"{m.n_layers}x LSTM({m.units}), dropout {m.dropout}, lookback {m.lookback}, "
        + task_of(m).describe(len(prices)),
        "scope": m.scope,
        "seed": config.seed,
        "elapsed_s": round(elapsed, 2),
        "ensemble": (
            f"{m.n_seeds} seeds per fold, mean spread of the LSTM's predictions {lstm['y_pred_std'].mean():.2e}"
            if m.n_seeds > 1 and "y_pred_std" in lstm
            else "one seed"
        ),
        "phases_s": {name: round(seconds, 2) for name, seconds in (phases or {}).items()},
    }


def run_experiment(
    config: ExperimentConfig,
    runs_root: str | Path = "runs",
    progress: Progress | None = None,
    resume: Path | None = None,
    announce: Callable[[Path], None] | None = None,
) -> RunResult:
    """Run (or, with `resume`, finish) an experiment; `announce(run_dir)` is called once the dir exists.

    Each completed walk-forward fold is checkpointed in `<run>/checkpoints/`, so an interrupted run
    resumes after its last complete fold and ends with the same files as an unbroken one.
    """
    started = time.perf_counter()
    phases: dict[str, float] = {}
    clock = [started]

    def lap(name: str) -> None:
        now = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + now - clock[0]
        clock[0] = now

    if progress is not None:
        progress.stage("loading data")
    notes: list[str] = []
    prices = load_experiment_prices(config, notes)
    notes += data_notes(config)
    strategies_with_benchmark(config)  # fail on clashing strategy labels before hours of training
    ledger = open_trial_ledger(config.ledger, runs_root if resume is None else Path(resume).parent)
    if resume is None:
        run = new_run_dir(runs_root, config.name)
        write_text(run / "config.toml", dump_config(config))
    else:
        run = resume
    if announce is not None:
        announce(run)
    with FolderLock(run, "run dir", "another `lstm-trader run` is working on it; wait for it to finish"):
        return _run_in(run, config, prices, progress, resume, started, phases, lap, notes, ledger)


def _run_in(
    run: Path,
    config: ExperimentConfig,
    prices: dict[str, pd.DataFrame],
    progress: Progress | None,
    resume: Path | None,
    started: float,
    phases: dict[str, float],
    lap: Callable[[str], None],
    notes: list[str],
    ledger: TrialLedger,
) -> RunResult:
    lap("data")
    if resume is not None and (run / "predictions.parquet").is_file() and not (run / "checkpoints").exists():
        # interrupted after the walk-forward (in the backtests): its predictions are complete
        predictions = pd.read_parquet(run / "predictions.parquet")
    else:
        if runs_here(config, prices):
            if progress is not None:
                progress.stage("importing TF")
            import_keras()
            lap("TensorFlow import")
        predictions = predict_all(prices, config, progress, run / "checkpoints")
        write_parquet(run / "predictions.parquet", predictions)
        shutil.rmtree(run / "checkpoints", ignore_errors=True)  # predictions.parquet now holds every fold
    task = task_of(config.model)
    scores = task.score(predictions, k=ranked_k(config))
    if scores.daily is not None:  # the report's cumulative rank IC and quintile spread are drawn from it
        write_parquet(run / "cross_section_daily.parquet", scores.daily)
    lap("walk-forward")
    inject("run:backtests")
    results, comparison, trials = backtest_all(prices, predictions, config, ledger, f"run:{run.resolve()}")
    write_backtests(run, results, comparison)
    lap("backtests")
    write_json(
        run / "metrics.json",
        {
            **scores.sections(),
            "backtest": comparison.to_dict(orient="records"),
            "summary": {
                **summary(config, prices, predictions, time.perf_counter() - started, phases),
                "fill_rule": fill_rule(results),
                **task.summary_notes(prices),
                "notes": notes,
                **trial_summary(trials, prices),
            },
        },
    )
    return RunResult(
        run,
        predictions,
        scores.forecast,
        comparison,
        time.perf_counter() - started,
        phases,
        trials,
        silent=silent_strategies(predictions, config),
        notes=notes,
        cross_section=scores.table("cross_section"),
        volatility=scores.table("volatility"),
    )


def trial_summary(trials: TrialCount, prices: dict[str, pd.DataFrame]) -> dict:
    """What a run's and a backtest's metrics.json say about the trials behind its DSR, and the data's provenance."""
    return {
        "dsr_trials": trials.n,
        "ledger_variance": trials.variance,
        "overfitting": trials.overfitting,
        "provenance": provenance(prices),
    }


def ranked_k(config: ExperimentConfig) -> int:
    """The k of the first ranked portfolio (`xs_rank`): what a universe's top-k hit rate counts."""
    return next((s.params.get("k", 5) for s in config.strategies if s.name == "xs_rank"), 5)


def data_notes(config: ExperimentConfig) -> list[str]:
    """Caveats of the data that every page must carry."""
    if config.data.source.strip().lower() == "builtin:sp500_stocks":
        return [
            "builtin:sp500_stocks is survivorship-biased: 20 of today's large caps, chosen in hindsight, so "
            "buy-and-hold and momentum look better than they would have in real time"
        ]
    return []


def predict_all(
    prices: dict[str, pd.DataFrame],
    config: ExperimentConfig,
    progress: Progress | None = None,
    checkpoints: Path | None = None,
) -> pd.DataFrame:
    """The walk-forward of every ticker, one task per ticker on the configured executor (`[execution]`).

    Serially (or with one ticker on the local pool) it runs here, with fold-by-fold progress; each
    task sends its ticker's bars once and returns its rows, so the table is the same whichever runs it.
    """
    task = task_of(config.model)
    if runs_here(config, prices):
        return task.walk_forward(
            prices,
            config.walk_forward,
            seed=config.seed,
            progress=progress,
            checkpoints=FoldCheckpoints(checkpoints) if checkpoints is not None else None,
        )
    plan = task.parallel_plan(
        prices, config.walk_forward, config.seed, str(checkpoints) if checkpoints is not None else None
    )
    on_done = progress.tasks if progress is not None else None
    if on_done is not None:
        on_done(0, len(plan.tasks))
    return plan.assemble(run_tasks(plan.function, plan.tasks, plan.names, config.execution, on_done))


def runs_here(config: ExperimentConfig, prices: dict) -> bool:
    """Whether the walk-forward runs in this process (with fold-by-fold progress), as the task says."""
    return task_of(config.model).runs_here(config.execution.executor, len(prices), config.walk_forward)


def load_resumable(run_dir: str | Path) -> tuple[ExperimentConfig, Path]:
    """The config of an interrupted run dir, to finish it with `run_experiment(..., resume=dir)`."""

    run = Path(run_dir)
    if not (run / "config.toml").is_file():
        raise BacktestError(f"{run} is not a run dir (no config.toml)", "pass the folder printed as 'run dir:'")
    if (run / "metrics.json").is_file() and not (run / "checkpoints").exists():  # metrics.json is written last
        raise BacktestError(f"{run} has already finished", "start a new run, or `lstm-trader report` it")
    return load_config(run / "config.toml"), run
