"""Side-by-side comparison of finished run dirs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from backtests.errors import BacktestError
from backtests.rundir import require_run_dir


def compare_runs(runs: list[str | Path]) -> pd.DataFrame:
    """One row per (run, ticker, strategy) with its stats and the run's LSTM forecast error for that ticker."""
    frames = []
    for path in runs:
        run = require_run_dir(path, ("comparison.csv", "metrics.json"))
        comparison = pd.read_csv(run / "comparison.csv")
        try:
            metrics = json.loads((run / "metrics.json").read_text())
        except json.JSONDecodeError:
            raise BacktestError(f"{run}/metrics.json is not valid JSON", "rerun `lstm-trader report` or the run") from None
        lstm = {m["ticker"]: m for m in metrics.get("forecast", []) if m.get("model") == "lstm"}
        comparison.insert(0, "run", run.name)
        comparison["lstm_price_rmse"] = [lstm.get(t, {}).get("price_rmse") for t in comparison["ticker"]]
        comparison["lstm_theil_u"] = [lstm.get(t, {}).get("theil_u") for t in comparison["ticker"]]
        frames.append(comparison)
    return pd.concat(frames, ignore_index=True).astype({"lstm_price_rmse": float, "lstm_theil_u": float})
