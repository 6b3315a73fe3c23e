"""Wall time of configs/cross_section.toml by phase, and what the NumPy-backed feed saves a 20-stock backtest.

1. `lstm-trader run configs/cross_section.toml` in a fresh process, reports included: its phase
   times (start-up, data, TensorFlow import, walk-forward, backtests, reports) against the goal of
   120 s on 2 cores.
2. One `xs_rank` backtest of that run's predictions over the 20 stocks, with the project's feed
   (`strategies.feeds.PredictionData`, rows read from NumPy arrays) and with Backtrader's own
   `PandasData` loading (rows read with `DataFrame.iloc`), `--repeats` times each, interleaved: the
   ratio of the medians, measured in the same process.

    python benchmarks/cross_section_speed.py [--repeats 3] [--skip-run RUN_DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg"}
CONFIG = ROOT / "configs" / "cross_section.toml"


def run_once(scratch: Path) -> Path:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "lstm_trader.cli", "run", str(CONFIG), "--runs-dir", str(scratch)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    phases = next(line for line in done.stdout.splitlines() if line.startswith("time:"))
    print(f"cross_section run: {wall:.1f} s wall (goal <= 120 s on 2 cores)\n  {phases}")
    (run,) = [p for p in scratch.iterdir() if p.is_dir()]
    return run


def feed_ratio(run: Path, repeats: int) -> None:
    import backtrader as bt
    import pandas as pd

    import backtests.engine as engine
    from backtests.config import load_config
    from backtests.experiment import load_experiment_prices
    from strategies.feeds import PredictionData

    class PandasLoading(PredictionData):  # the same feed, loading rows the way Backtrader's PandasData does
        start = bt.feeds.PandasData.start
        _load = bt.feeds.PandasData._load

    config = load_config(CONFIG)
    prices = load_experiment_prices(config)
    predictions = pd.read_parquet(run / "predictions.parquet")
    spec = config.strategies[0]
    times: dict[str, list[float]] = {"numpy": [], "pandas": []}
    results = {}
    for _ in range(repeats):
        for name, feed in (("numpy", PredictionData), ("pandas", PandasLoading)):
            engine.PredictionData = feed
            started = time.perf_counter()
            results[name] = engine.run_backtest(prices, predictions, spec.name, config.broker, spec.params)
            times[name].append(time.perf_counter() - started)
    engine.PredictionData = PredictionData
    same = results["numpy"].equity.equals(results["pandas"].equity)
    numpy, pandas = statistics.median(times["numpy"]), statistics.median(times["pandas"])
    print(
        f"one {spec.title} backtest of 20 stocks: NumPy feed {numpy:.2f} s, PandasData loading {pandas:.2f} s "
        f"(median of {repeats}): {pandas / numpy:.2f}x faster; identical equity: {same}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-run", type=Path, default=None, help="time the backtest feeds on this run dir only")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="lstm-trader-xs-bench-"))
    try:
        run = args.skip_run if args.skip_run is not None else run_once(scratch)
        feed_ratio(run, args.repeats)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
