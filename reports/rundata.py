"""What a run dir holds, read for the pages and the Python API: metrics.json, the comparison, the long
returns table, equity and predictions; a missing, empty or foreign file is a ReportError with a hint."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from reports.errors import ReportError


def read_run(run: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None, pd.DataFrame | None]:
    """A run dir's metrics.json, comparison, long returns, equity and predictions (None where absent)."""
    if not run.is_dir():
        raise ReportError(f"run dir not found: {run}", "pass a folder under runs/ written by `lstm-trader run`")
    if not (run / "metrics.json").is_file():
        raise ReportError(f"{run} has no metrics.json", "pass a run dir written by `lstm-trader run` or `backtest`")
    try:
        metrics = json.loads((run / "metrics.json").read_text())
    except json.JSONDecodeError:
        raise ReportError(f"{run}/metrics.json is not valid JSON", "rerun the experiment") from None
    comparison = _comparison(run)
    returns = pd.read_parquet(run / "returns.parquet") if (run / "returns.parquet").is_file() else None
    equity = (
        pd.read_csv(run / "equity.csv", index_col="date", parse_dates=["date"])
        if (run / "equity.csv").is_file()
        else None
    )
    predictions = pd.read_parquet(run / "predictions.parquet") if (run / "predictions.parquet").is_file() else None
    return metrics, comparison, returns, equity, predictions


def _comparison(run: Path) -> pd.DataFrame:
    """The run's comparison table; an empty or foreign file is an error, not a traceback or a blank page."""
    path = run / "comparison.csv"
    if not path.is_file():
        return pd.DataFrame()
    hint = f"backtest its predictions again: lstm-trader backtest {run / 'predictions.parquet'}"
    try:
        table = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        raise ReportError(f"{path} is empty or not a CSV table", hint) from None
    missing = {"strategy", "ticker", "sharpe"} - set(table.columns)
    if table.empty or missing:
        what = "has no rows" if not missing else f"lacks the column '{sorted(missing)[0]}'"
        raise ReportError(f"{path} {what}", hint)
    return table


def _read_csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path) if path.is_file() else None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return None
