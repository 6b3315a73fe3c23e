"""Side-by-side comparison of finished run dirs (standard library only: `compare` starts at once)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from backtests.errors import BacktestError
from backtests.rundir import require_run_dir

TEXT_COLUMNS = {"run", "ticker", "strategy"}


def _number(value: str | None) -> float | int | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number


def compare_runs(runs: list[str | Path]) -> list[dict]:
    """One row per (run, ticker, strategy) with its stats and the run's LSTM forecast error for that ticker."""
    rows = []
    for path in runs:
        run = require_run_dir(path, ("comparison.csv", "metrics.json"))
        try:
            metrics = json.loads((run / "metrics.json").read_text())
        except json.JSONDecodeError:
            raise BacktestError(f"{run}/metrics.json is not valid JSON", "rerun `lstm-trader report` or the run") from None
        lstm = {m["ticker"]: m for m in metrics.get("forecast", []) if m.get("model") == "lstm"}
        with open(run / "comparison.csv", newline="", encoding="utf-8") as handle:
            records = list(csv.DictReader(handle))
        if not records or "strategy" not in records[0]:
            raise BacktestError(f"{run}/comparison.csv has no strategy rows",
                                f"backtest its predictions again (lstm-trader backtest {run / 'predictions.parquet'}) "
                                "or leave it out")
        for record in records:
            row = {"run": run.name}
            row.update({k: v if k in TEXT_COLUMNS else _number(v) for k, v in record.items()})
            forecast = lstm.get(row.get("ticker"), {})
            row["lstm_price_rmse"] = forecast.get("price_rmse")
            row["lstm_theil_u"] = forecast.get("theil_u")
            rows.append(row)
    return rows


def write_rows(path: Path, rows: list[dict]) -> None:
    """The comparison as CSV (every column of every run)."""
    from forecasting.atomic import atomic_write

    columns = list(dict.fromkeys(key for row in rows for key in row))

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(Path(path), write)
