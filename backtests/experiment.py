"""One experiment end to end: data -> walk-forward predictions -> metrics -> run dir."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from backtests.config import ExperimentConfig, dump_config
from backtests.rundir import new_run_dir, write_json, write_parquet, write_text
from forecasting import forecast_metrics, load_prices, walk_forward_predict
from forecasting.data import require_rows
from forecasting.features import warmup_rows
from forecasting.walkforward import Progress


@dataclass
class RunResult:
    path: Path
    predictions: pd.DataFrame
    metrics: pd.DataFrame
    elapsed_s: float


def load_experiment_prices(config: ExperimentConfig) -> dict[str, pd.DataFrame]:
    """Load and check that every ticker has enough bars for warm-up, lookback and the first fold."""
    prices = load_prices(config.data.source, config.data.start, config.data.end, config.data.cache_dir)
    m, wf = config.model, config.walk_forward
    needed = warmup_rows(m.features) + m.lookback + wf.min_train + 2 * m.horizon + wf.gap + 1
    for ticker, frame in prices.items():
        require_rows(frame, needed, f"{config.data.source} ({ticker})",
                     "feature warm-up + lookback + min_train + horizon, and at least one test bar")
    return prices


def run_experiment(config: ExperimentConfig, runs_root: str | Path = "runs",
                   progress: Progress | None = None) -> RunResult:
    started = time.perf_counter()
    prices = load_experiment_prices(config)
    run = new_run_dir(runs_root, config.name)
    write_text(run / "config.toml", dump_config(config))
    predictions = walk_forward_predict(prices, config.model, config.walk_forward, seed=config.seed,
                                       progress=progress)
    write_parquet(run / "predictions.parquet", predictions)
    overall = forecast_metrics(predictions)
    per_fold = forecast_metrics(predictions, per_fold=True)
    elapsed = time.perf_counter() - started
    lstm = predictions[predictions["model"] == "lstm"]
    write_json(run / "metrics.json", {
        "forecast": overall.to_dict(orient="records"),
        "forecast_per_fold": per_fold.to_dict(orient="records"),
        "summary": {
            "source": config.data.source,
            "tickers": list(prices),
            "data_start": min(f.index[0] for f in prices.values()).date().isoformat(),
            "data_end": max(f.index[-1] for f in prices.values()).date().isoformat(),
            "test_start": lstm["date"].min().date().isoformat(),
            "test_end": lstm["date"].max().date().isoformat(),
            "folds": int(lstm["fold"].max()) + 1,
            "seed": config.seed,
            "elapsed_s": round(elapsed, 2),
        },
    })
    from reports.plots import plot_predicted_vs_actual

    for ticker in prices:
        plot_predicted_vs_actual(predictions, run / f"predicted_vs_actual_{ticker}.png", ticker)
    return RunResult(run, predictions, overall, time.perf_counter() - started)
