"""One experiment end to end: data -> walk-forward predictions -> metrics -> backtests -> run dir."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from backtests.config import ExperimentConfig, StrategySpec, config_differences, dump_config, load_config
from backtests.engine import BacktestResult, run_backtest
from backtests.errors import BacktestError
from backtests.execution import run_tasks
from backtests.provenance import provenance
from backtests.rundir import FolderLock, new_run_dir, write_csv, write_json, write_parquet, write_text
from backtests.stats import comparison_table, excess_returns, per_period_sharpe
from backtests.trials import (
    TrialCount,
    TrialLedger,
    config_hash,
    data_fingerprint,
    legacy_fingerprint,
    open_trial_ledger,
)
from forecasting import PREDICTION_COLUMNS, forecast_metrics, load_prices
from forecasting.checkpoint import FoldCheckpoints
from forecasting.faults import inject
from forecasting.features import check_feature_columns
from forecasting.model import import_keras
from forecasting.tasks import task_of
from forecasting.walkforward import Progress
from strategies import forecast_model, resolve

PORTFOLIO = "portfolio"


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


def load_experiment_prices(config: ExperimentConfig, notes: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Load and check that every ticker has enough bars for warm-up, lookback and the first fold.

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
    check_forecasts(config)
    return prices


def benchmark_name(config: ExperimentConfig) -> str:
    """What every strategy is compared with: buy-and-hold of its ticker, or for a universe model the
    universe held in equal weights, rebalanced on the portfolio's schedule."""
    return "equal_weight" if task_of(config.model).universe else "buy_and_hold"


def strategies_with_benchmark(config: ExperimentConfig) -> list[StrategySpec]:
    specs = list(config.strategies)
    benchmark = benchmark_name(config)
    if not any(s.name == benchmark and _schedule_only(s, config) for s in specs):
        specs.append(benchmark_spec(config))
    titles = [s.title for s in specs]
    duplicated = {t for t in titles if titles.count(t) > 1}
    if duplicated:
        raise BacktestError(
            f"two strategies are both called '{sorted(duplicated)[0]}'", 'give one of them a different label = "..."'
        )
    return specs


def benchmark_spec(config: ExperimentConfig) -> StrategySpec:
    """The benchmark's entry: the equal-weight universe rebalances as often as the first ranked portfolio."""
    if benchmark_name(config) == "buy_and_hold":
        return StrategySpec(name="buy_and_hold")
    every = next((s.params["rebalance_every"] for s in config.strategies if "rebalance_every" in s.params), None)
    return StrategySpec(name="equal_weight", params={} if every is None else {"rebalance_every": every})


def _schedule_only(spec: StrategySpec, config: ExperimentConfig) -> bool:
    return spec.params == benchmark_spec(config).params


def is_universe_strategy(spec: StrategySpec) -> bool:
    """Whether a strategy decides a whole universe at once (xs_rank, equal_weight) rather than each ticker."""
    cls, _ = resolve(spec.name, spec.params)
    return bool(getattr(cls, "universe", False))


def produced_models(config: ExperimentConfig) -> tuple[str, ...]:
    """The models whose rows the config's walk-forward writes: what a strategy's `forecast` may name."""
    return task_of(config.model).models()


def check_forecasts(config: ExperimentConfig) -> None:
    """Every strategy trades a forecast the run will write, checked before anything trains."""
    from forecasting.errors import did_you_mean

    task = task_of(config.model)
    models = task.models()
    for spec in config.strategies:
        if spec.params.get("vol_forecast"):
            raise BacktestError(
                f"strategy '{spec.title}' sizes by the '{spec.params['vol_forecast']}' volatility forecast, "
                "which a run of one target does not make",
                "run the volatility config too, then: lstm-trader backtest RUN/predictions.parquet --volatility "
                "VOL_RUN/predictions.parquet",
            )
        wanted = traded_forecast(spec)
        if wanted is not None and task.forecasts == "variance" and spec.name != "vol_target":
            raise BacktestError(
                f"strategy '{spec.title}' trades a return forecast, but this run forecasts variance "
                "(model.target = realized_vol)",
                "trade it with vol_target (see configs/volatility.toml), or leave it out",
            )
        if spec.name == "vol_target" and wanted is not None and task.forecasts != "variance":
            raise BacktestError(
                f"strategy '{spec.title}' sizes by a variance forecast, but this run forecasts returns",
                'run it on a volatility config (model.target = "realized_vol", see configs/volatility.toml)',
            )
        if wanted is not None and wanted not in models:
            raise BacktestError(
                f"strategy '{spec.title}' trades the '{wanted}' forecast, which this run does not make",
                did_you_mean(wanted, models, "its models: " + ", ".join(models)),
            )


def check_universe_strategies(config: ExperimentConfig, n_tickers: int) -> None:
    """A ranked portfolio's k against the universe's size, before anything is trained or written."""
    from strategies.decision import XsParams, check_universe

    for spec in config.strategies:
        if spec.name == "xs_rank":
            check_universe(XsParams.of(spec.params), n_tickers)


def lstm_strategies(config: ExperimentConfig) -> set[str]:
    """Labels of the strategies that trade the LSTM's predictions: the ones the trial ledger deflates."""
    return {spec.title for spec in strategies_with_benchmark(config) if traded_forecast(spec) == "lstm"}


def traded_forecast(spec: StrategySpec) -> str | None:
    """Which model's rows of the predictions table a strategy trades (None for rule-based ones)."""
    cls, params = resolve(spec.name, spec.params)
    return forecast_model(cls, params)


def silent_strategies(predictions: pd.DataFrame, config: ExperimentConfig) -> list[str]:
    """'strategy on ticker' for each forecast-trading strategy whose forecast has no finite value on that
    ticker: it never had a signal, so its row of the comparison is cash, not a verdict on the forecast."""
    finite = predictions.assign(ok=np.isfinite(pd.to_numeric(predictions["y_pred"], errors="coerce")))
    counts = finite.groupby(["model", "ticker"])["ok"].sum()
    silent = []
    for spec in config.strategies:
        model = traded_forecast(spec)
        if model is None:
            continue
        silent += [
            f"{spec.title} on {ticker} (no finite '{model}' prediction)"
            for ticker in dict.fromkeys(predictions["ticker"])
            if not counts.get((model, ticker), 0)
        ]
    return silent


def run_strategies(
    prices: dict[str, pd.DataFrame], predictions: pd.DataFrame, config: ExperimentConfig
) -> list[tuple[str, BacktestResult]]:
    """Every per-ticker strategy on every ticker, plus an equal-weight LSTM portfolio when there are several
    tickers; a universe strategy (xs_rank, equal_weight) once, on the whole universe (the portfolio book)."""
    results = []
    specs = strategies_with_benchmark(config)
    universe = [s for s in specs if is_universe_strategy(s)]
    specs = [s for s in specs if not is_universe_strategy(s)]
    for spec in universe:
        results.append(
            (PORTFOLIO, run_backtest(prices, predictions, spec.name, config.broker, spec.params, label=spec.title))
        )
    for ticker in prices:
        for spec in specs:
            results.append(
                (
                    ticker,
                    run_backtest(
                        {ticker: prices[ticker]}, predictions, spec.name, config.broker, spec.params, label=spec.title
                    ),
                )
            )
    if len(prices) > 1 and not universe:
        for spec in specs:
            if spec.name in ("lstm_signal", "buy_and_hold"):
                results.append(
                    (
                        PORTFOLIO,
                        run_backtest(prices, predictions, spec.name, config.broker, spec.params, label=spec.title),
                    )
                )
    return results


def compare_results(
    results: list[tuple[str, BacktestResult]],
    prices: dict[str, pd.DataFrame],
    predictions: pd.DataFrame,
    config: ExperimentConfig,
    ledger: TrialLedger | None = None,
    ledger_key: str | None = None,
    kind: str = "run",
    params: dict | None = None,
) -> tuple[pd.DataFrame, TrialCount]:
    """The comparison table. With a `ledger`, the evaluation is recorded under `ledger_key` first and
    the LSTM strategies' deflated Sharpe counts every configuration in the ledger on the same data."""
    labels = lstm_strategies(config)
    trials = TrialCount(1, 0.0)
    if ledger is not None and ledger_key is not None:
        fingerprint = data_fingerprint(prices, config.data.start)
        # rows merged from an older ledger were recorded under the data's older fingerprint: they count too
        ledger.adopt(legacy_fingerprint(config.data.source, config.data.start, config.data.end, prices), fingerprint)
        chosen = lstm_result(results, labels)
        benchmark = benchmark_result(results, chosen, config)
        ledger.add(
            ledger_key,
            kind,
            fingerprint,
            trial_config_hash(predictions, config),
            params or network_params(config),
            "test",
            lstm_sharpe(results, labels),
            lstm_rmse(predictions),
            excess_returns(chosen[1]) if chosen else None,
            excess_returns(benchmark) if benchmark else None,
            config.data.source,
        )
        count = ledger.count(fingerprint)
        trials = TrialCount(count.n, count.variance, ledger.overfitting(fingerprint))
    return comparison_table(results, labels, trials.n, trials.variance), trials


def trial_config_hash(predictions: pd.DataFrame, config: ExperimentConfig) -> str:
    """What makes one configuration: the LSTM's predictions and the rules and costs that trade them.

    Backtesting the same predictions again with the same costs is not a new trial; a new seed,
    network or walk-forward (new predictions) or new costs or thresholds is.
    """
    lstm = predictions[predictions["model"] == "lstm"] if "model" in predictions else predictions
    content = pd.util.hash_pandas_object(lstm[[c for c in ("date", "ticker", "y_pred") if c in lstm]], index=False)
    labels = lstm_strategies(config)
    rules = [s.model_dump(mode="json") for s in config.strategies if s.title in labels]
    return config_hash(
        {"predictions": int(content.sum()), "broker": config.broker.model_dump(mode="json"), "strategies": rules}
    )


def backtest_all(
    prices: dict[str, pd.DataFrame],
    predictions: pd.DataFrame,
    config: ExperimentConfig,
    ledger: TrialLedger | None = None,
    ledger_key: str | None = None,
) -> tuple[list[tuple[str, BacktestResult]], pd.DataFrame, TrialCount]:
    """`run_strategies`, then `compare_results`."""
    results = run_strategies(prices, predictions, config)
    return (results, *compare_results(results, prices, predictions, config, ledger, ledger_key))


def network_params(config: ExperimentConfig) -> dict:
    """The settings a ledger row shows for a run (the hash is over the predictions themselves)."""
    return {
        "model": config.model.model_dump(mode="json"),
        "walk_forward": config.walk_forward.model_dump(mode="json"),
        "seed": config.seed,
    }


def lstm_result(results: list[tuple[str, BacktestResult]], labels: set[str]) -> tuple[str, BacktestResult] | None:
    """The (book, result) the ledger records: the first LSTM strategy, on the portfolio book when there is one."""
    chosen = [(b, r) for b, r in results if r.strategy in labels and b == PORTFOLIO] or [
        (b, r) for b, r in results if r.strategy in labels
    ]
    return chosen[0] if chosen else None


def benchmark_result(
    results: list[tuple[str, BacktestResult]], chosen: tuple[str, BacktestResult] | None, config: ExperimentConfig
) -> BacktestResult | None:
    """The benchmark on the recorded strategy's book (buy-and-hold, or the equal-weight universe)."""
    if chosen is None:
        return None
    wanted = benchmark_name(config)
    return next((r for b, r in results if b == chosen[0] and r.strategy == wanted), None)


def lstm_sharpe(results: list[tuple[str, BacktestResult]], labels: set[str]) -> float | None:
    """Per-day Sharpe of the first LSTM strategy (on the portfolio book when there is one)."""
    chosen = lstm_result(results, labels)
    return per_period_sharpe(excess_returns(chosen[1])) if chosen else None


def deflated_again(run: Path, book: str, strategy: str, cash_rate: float, trials: TrialCount) -> float:
    """The DSR of a run's strategy deflated by `trials` (a count taken after later evaluations), from the
    daily returns the run wrote."""
    from backtests.stats import deflated_sharpe, trial_variance
    from strategies.decision import per_bar_rate

    table = pd.read_parquet(run / "returns.parquet")
    returns = table[(table["ticker"] == book) & (table["strategy"] == strategy)]["return"]
    excess = returns.fillna(0.0).reset_index(drop=True) - per_bar_rate(cash_rate)
    return deflated_sharpe(excess, trials.n, trial_variance(excess, trials.variance))


def lstm_rmse(predictions: pd.DataFrame) -> float | None:
    if not {"y_true", "y_pred", "model"} <= set(predictions):
        return None
    rows = predictions[predictions["model"] == "lstm"].dropna(subset=["y_true", "y_pred"])
    return float(((rows["y_true"] - rows["y_pred"]) ** 2).mean() ** 0.5) if len(rows) else None


def returns_table(results: list[tuple[str, BacktestResult]]) -> pd.DataFrame:
    """Daily returns of every result as one long table (date, ticker = the book, strategy, return)."""
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "date": result.returns.index,
                    "ticker": book,
                    "strategy": result.strategy,
                    "return": result.returns.to_numpy(),
                }
            )
            for book, result in results
        ],
        ignore_index=True,
    )


def write_backtests(run: Path, results: list[tuple[str, BacktestResult]], comparison: pd.DataFrame) -> None:
    equity, trades, fills = {}, [], []
    for ticker, result in results:
        equity[f"{ticker}:{result.strategy}"] = result.equity
        trades.append(result.trades.assign(strategy=result.strategy, book=ticker))
        fills.append(result.fills.assign(strategy=result.strategy, book=ticker))
    write_parquet(run / "returns.parquet", returns_table(results))
    write_csv(run / "equity.csv", pd.DataFrame(equity).rename_axis("date"), index=True)
    write_csv(run / "trades.csv", pd.concat(trades, ignore_index=True))
    write_csv(run / "fills.csv", pd.concat(fills, ignore_index=True))
    write_csv(run / "comparison.csv", comparison)


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


def fill_rule(results: list[tuple[str, BacktestResult]]) -> str:
    """How orders filled: at the next open, or at the next close where the data has no open."""
    rules = sorted({r.fill_rule for _, r in results})
    return " and ".join(rules) if rules else "next open"


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
    from backtests.config import load_config

    run = Path(run_dir)
    if not (run / "config.toml").is_file():
        raise BacktestError(f"{run} is not a run dir (no config.toml)", "pass the folder printed as 'run dir:'")
    if (run / "metrics.json").is_file() and not (run / "checkpoints").exists():  # metrics.json is written last
        raise BacktestError(f"{run} has already finished", "start a new run, or `lstm-trader report` it")
    return load_config(run / "config.toml"), run


def read_predictions(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise BacktestError(f"predictions file not found: {path}", "pass predictions.parquet from a run dir")
    if path.is_dir():
        raise BacktestError(f"{path} is a folder", "pass the predictions.parquet file inside a run dir")
    try:
        table = pd.read_parquet(path) if path.suffix != ".csv" else pd.read_csv(path)
    except Exception as exc:  # pyarrow raises several kinds for a non-parquet file
        raise BacktestError(
            f"{path}: not a readable predictions table ({exc.__class__.__name__})",
            "pass predictions.parquet (or a CSV with the same columns)",
        ) from None
    needed = ["date", "ticker", "model", "y_pred"]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise BacktestError(
            f"{path}: missing column '{missing[0]}'",
            "the predictions table has columns " + ", ".join(PREDICTION_COLUMNS),
        )
    if table.empty:
        raise BacktestError(f"{path}: the predictions table has no rows", "pass the predictions of a finished run")
    dates = pd.to_datetime(table["date"], errors="coerce", format="mixed")
    for column, parsed, what in (
        ("date", dates, "a date"),
        ("y_pred", pd.to_numeric(table["y_pred"], errors="coerce"), "a number"),
    ):
        bad = parsed.isna() & table[column].notna() if column == "y_pred" else parsed.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise BacktestError(
                f"{path}: row {row + 1}, column '{column}': {table[column].iloc[row]!r} is not {what}",
                "repair the predictions file",
            )
        table[column] = parsed
    return table


def origin_config(predictions_path: str | Path) -> Path | None:
    """The config.toml of the run dir a predictions file sits in, if it does."""
    candidate = Path(predictions_path).parent / "config.toml"
    return candidate if candidate.is_file() else None


def changes_from_origin(predictions_path: str | Path, config: ExperimentConfig) -> dict[str, list]:
    """Data, broker and strategy settings of this backtest that differ from the predictions' own run."""
    origin = origin_config(predictions_path)
    if origin is None:
        return {}
    try:
        before = load_config(origin)
    except BacktestError:  # a foreign or outdated config.toml: nothing to compare with
        return {}
    return {
        key: values
        for key, values in config_differences([before, config]).items()
        if key.startswith(("data.", "broker.", "strategies."))
    }


def _tradable(config: ExperimentConfig, models: set[str]) -> tuple[ExperimentConfig, list[str]]:
    """Leave out the configured strategies whose forecast the predictions table lacks (e.g. `ridge_signal`
    on a table written before the ridge control existed); the LSTM's own strategy is never left out."""
    keep, skipped = [], []
    for spec in config.strategies:
        wanted = traded_forecast(spec)
        if wanted is None or wanted in models or wanted == "lstm":
            keep.append(spec)
        else:
            skipped.append(spec.title)
    return (config.model_copy(update={"strategies": keep}) if skipped else config), skipped


VOL_PREFIX = "vol_"  # a volatility table's models, backtested beside a return table's: vol_lstm, vol_garch, ...


def with_volatility(predictions: pd.DataFrame, volatility_path: str | Path) -> pd.DataFrame:
    """A return predictions table with a volatility run's rows beside it, their models renamed `vol_<model>`,
    so that `lstm_signal`'s `vol_forecast` can size the return forecast's trades by a variance forecast."""
    volatility = read_predictions(volatility_path)
    if "return_var_ratio" not in volatility:
        raise BacktestError(
            f"{volatility_path}: not a volatility run's predictions (no return_var_ratio column)",
            'pass the predictions.parquet of a run with model.target = "realized_vol"',
        )
    renamed = volatility.assign(model=VOL_PREFIX + volatility["model"].astype(str))
    return pd.concat([predictions, renamed], ignore_index=True)


def run_backtest_only(
    predictions_path: str | Path,
    config: ExperimentConfig,
    runs_root: str | Path = "runs",
    config_source: str = "",
    volatility_path: str | Path | None = None,
) -> RunResult:
    """Backtest an existing predictions table against the config's data and strategies.

    `config_source` says where the config came from (shown in the report); when the predictions
    sit in a run dir, the settings that differ from that run's config are recorded too. With
    `volatility_path`, a volatility run's rows join the table (`with_volatility`)."""
    started = time.perf_counter()
    predictions = read_predictions(predictions_path)
    forecasts = predictions  # the forecast errors are the return table's
    if volatility_path is not None:
        predictions = with_volatility(predictions, volatility_path)
    prices = load_prices(
        config.data.source, None, config.data.end, config.data.cache_dir, config.data.missing, config.data.dividends
    )
    unknown = sorted(set(predictions["ticker"]) - set(prices))
    if unknown:
        raise BacktestError(
            f"predictions are for '{unknown[0]}' but {config.data.source} holds {', '.join(prices)}",
            "pass the data source the predictions were made from (--data)",
        )
    prices = {t: prices[t] for t in prices if t in set(predictions["ticker"])}
    config, skipped = _tradable(config, set(predictions["model"]))
    ledger = open_trial_ledger(config.ledger, runs_root)
    results = run_strategies(prices, predictions, config)
    run = new_run_dir(runs_root, f"{config.name}-backtest")
    comparison, trials = compare_results(
        results,
        prices,
        predictions,
        config,
        ledger,
        f"backtest:{run.resolve()}",
        kind="backtest",
        params={"predictions": str(predictions_path)},
    )
    write_text(run / "config.toml", dump_config(config))
    write_parquet(run / "predictions.parquet", predictions)
    write_backtests(run, results, comparison)
    returns_table = {"y_true", "price_pred", "price_true"} <= set(forecasts) and "return_var_ratio" not in forecasts
    overall = forecast_metrics(forecasts) if returns_table else pd.DataFrame()  # (a variance table has none)
    write_json(
        run / "metrics.json",
        {
            "forecast": overall.to_dict(orient="records"),
            "backtest": comparison.to_dict(orient="records"),
            "summary": {
                "name": config.name,
                "source": config.data.source,
                "tickers": list(prices),
                "predictions": str(predictions_path),
                "config_source": config_source,
                "changed": changes_from_origin(predictions_path, config),
                "test_start": predictions["date"].min().date().isoformat(),
                "test_end": predictions["date"].max().date().isoformat(),
                "elapsed_s": round(time.perf_counter() - started, 2),
                **trial_summary(trials, prices),
            },
        },
    )
    return RunResult(
        run,
        predictions,
        overall,
        comparison,
        time.perf_counter() - started,
        trials=trials,
        skipped=skipped,
        silent=silent_strategies(predictions, config),
    )
