"""`lstm-trader backtest`: trade an existing predictions table (any run's, or a file with the contract's columns)
with the configured strategies, optionally joined with a volatility run's forecasts, into a new run dir."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from backtests.books import compare_results, run_strategies, silent_strategies, traded_forecast, write_backtests
from backtests.config import ExperimentConfig, config_differences, dump_config, load_config
from backtests.errors import BacktestError
from backtests.experiment import RunResult, trial_summary
from backtests.rundir import new_run_dir, write_json, write_parquet, write_text
from backtests.trials import (
    open_trial_ledger,
)
from forecasting import PREDICTION_COLUMNS, forecast_metrics, load_prices


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
