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
            raise BacktestError(
                f"{run}/metrics.json is not valid JSON", "rerun `lstm-trader report` or the run"
            ) from None
        lstm = {m["ticker"]: m for m in metrics.get("forecast", []) if m.get("model") == "lstm"}
        with open(run / "comparison.csv", newline="", encoding="utf-8") as handle:
            records = list(csv.DictReader(handle))
        if not records or "strategy" not in records[0]:
            raise BacktestError(
                f"{run}/comparison.csv has no strategy rows",
                f"backtest its predictions again (lstm-trader backtest {run / 'predictions.parquet'}) or leave it out",
            )
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


def distinct_runs(runs: list[str | Path]) -> tuple[list[Path], list[str]]:
    """The run dirs once each, in the order given, and the arguments that named one already given."""
    seen: dict[Path, Path] = {}
    repeated = []
    for path in runs:
        key = Path(path).resolve()
        if key in seen:
            repeated.append(str(path))
        else:
            seen[key] = Path(path)
    return list(seen.values()), repeated


def write_compare_html(path: Path, runs: list[Path], rows: list[dict], strategies: list[str] | None) -> Path:
    """The compare page: equity of the chosen strategies of every run on one chart (default: the
    LSTM strategies and buy-and-hold), every row of the table, and how the configs differ."""
    import pandas as pd

    from backtests.config import config_differences, load_config
    from reports.compare_page import write_compare_page

    names = [run.name if list(r.name for r in runs).count(run.name) == 1 else str(run) for run in runs]
    wanted = set(strategies or [])
    curves, configs, notes = {}, [], []
    for name, run in zip(names, runs):
        equity = (
            pd.read_csv(run / "equity.csv", index_col="date", parse_dates=["date"])
            if (run / "equity.csv").is_file()
            else pd.DataFrame()
        )
        books = {c.split(":", 1)[0] for c in equity.columns}
        for column in equity.columns:
            strategy = column.split(":", 1)[-1]
            if (strategy in wanted) if wanted else ("lstm" in strategy or strategy == "buy_and_hold"):
                label = f"{name} · {strategy}" if len(books) == 1 else f"{name} · {column}"
                curves[label] = equity[column]
        try:
            configs.append(load_config(run / "config.toml"))
        except BacktestError as exc:
            notes.append(f"{name}: its config.toml could not be read ({exc.message}), so the configs are not compared")
    if wanted and not curves:
        raise BacktestError(
            f"no run has the strategies {', '.join(sorted(wanted))}",
            "name strategies from the table, e.g. --strategy lstm_signal",
        )
    differences = config_differences(configs) if len(configs) == len(runs) else None
    return write_compare_page(path, names, rows, curves, differences, notes)
