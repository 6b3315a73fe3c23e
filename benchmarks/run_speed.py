"""Wall time of the default experiment and of the CLI's start-up, as a user sees them.

Runs `lstm-trader run` (default config, reports included) in a fresh process and prints its phase
times; then `lstm-trader report RUN` on its own (the reports rebuilt from scratch, target under 20 s);
then `lstm-trader --help` and `lstm-trader compare RUN` several times each and prints the median
start-up. Targets: the default run under 20 s, `--help` and `compare` under 0.5 s.

    python benchmarks/run_speed.py [--repeats 5] [--skip-run RUN_DIR]
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
CLI = [sys.executable, "-m", "lstm_trader.cli"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg"}


def timed(args: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(CLI + args, cwd=ROOT, env=ENV, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--skip-run", type=Path, default=None, help="time the report and start-up against (a copy of) this run dir only"
    )
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="lstm-trader-bench-"))
    try:
        run = None
        if args.skip_run is not None:  # a copy: the reports are rebuilt from scratch below
            run = Path(shutil.copytree(args.skip_run, scratch / args.skip_run.name))
        else:
            wall, out = timed(["run", "--runs-dir", str(scratch)])
            phases = next(line for line in out.splitlines() if line.startswith("time:"))
            print(f"default run: {wall:.1f} s wall (target < 20 s)\n  {phases}")
            (run,) = [p for p in scratch.iterdir() if p.is_dir()]  # the runs root also holds the ledger
        shutil.rmtree(run / "reports", ignore_errors=True)
        wall, _ = timed(["report", str(run)])
        print(
            f"lstm-trader report RUN: {wall:.1f} s wall, tear sheets, charts and index.html from scratch "
            "(target < 20 s)"
        )
        for label, command in (("--help", ["--help"]), ("compare RUN", ["compare", str(run)])):
            times = [timed(command)[0] for _ in range(args.repeats)]
            print(
                f"lstm-trader {label:<12} median {statistics.median(times):.2f} s over {args.repeats} runs "
                f"(min {min(times):.2f}, max {max(times):.2f}; target < 0.5 s)"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
