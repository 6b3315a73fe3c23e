"""Warm-start vs from-scratch retraining on the same walk-forward folds.

Prints both wall times, their ratio and both RMSEs (price and return space) next to the naive
forecast. Target (issue 3): warm start >= 5x faster, RMSE within 2% of from-scratch.

    python benchmarks/walk_forward_speed.py [--config configs/default.toml] [--set k=v ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backtests.config import load_config  # noqa: E402
from backtests.experiment import load_experiment_prices  # noqa: E402
from forecasting import forecast_metrics, walk_forward_predict  # noqa: E402


def timed(prices, cfg, warm: bool):
    wf = cfg.walk_forward.model_copy(update={"warm_start": warm})
    started = time.perf_counter()
    pred = walk_forward_predict(prices, cfg.model, wf, seed=cfg.seed)
    elapsed = time.perf_counter() - started
    metrics = forecast_metrics(pred).set_index("model")
    return elapsed, metrics, pred


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    prices = load_experiment_prices(cfg)
    warm_s, warm, pred = timed(prices, cfg, True)
    folds = int(pred["fold"].max()) + 1
    print(f"warm start   : {warm_s:7.1f} s  ({folds} folds)", flush=True)
    cold_s, cold, _ = timed(prices, cfg, False)
    print(f"from scratch : {cold_s:7.1f} s", flush=True)
    ratio = cold_s / warm_s
    rmse_w, rmse_c, rmse_n = (
        warm.loc["lstm", "price_rmse"],
        cold.loc["lstm", "price_rmse"],
        warm.loc["naive", "price_rmse"],
    )
    rel = rmse_w / rmse_c - 1
    print(f"speed-up (from-scratch time / warm-start time): {ratio:.1f}x  (target >= 5x)")
    print(
        f"price RMSE  warm {rmse_w:.4f}  scratch {rmse_c:.4f}  naive {rmse_n:.4f}  warm vs scratch {rel:+.2%}"
        f"  (target within 2%)"
    )
    print(
        f"return RMSE warm {warm.loc['lstm', 'rmse']:.6f}  scratch {cold.loc['lstm', 'rmse']:.6f}"
        f"  naive {warm.loc['naive', 'rmse']:.6f}"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "warm_s": warm_s,
                    "scratch_s": cold_s,
                    "ratio": ratio,
                    "folds": folds,
                    "rmse_warm": rmse_w,
                    "rmse_scratch": rmse_c,
                    "rmse_naive": rmse_n,
                }
            )
        )


if __name__ == "__main__":
    main()
