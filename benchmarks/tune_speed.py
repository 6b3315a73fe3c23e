"""Tuning throughput: `--jobs 2` against `--jobs 1`, and median pruning against none.

Every study gets the same 12 parameter sets (drawn once from the default search space with a
seeded random sampler and enqueued), so the comparisons time the same work on `builtin:sp500`:
  - jobs 2 vs jobs 1 (pruning on in both): target ratio >= 1.6x on 2 cores;
  - pruning on vs off (jobs 1): target >= 30% less time at the same best value or better.

    python benchmarks/tune_speed.py [--trials 12] [--config configs/default.toml]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backtests.config import load_config  # noqa: E402
from backtests.experiment import load_experiment_prices  # noqa: E402
from backtests.tune import open_study, tune  # noqa: E402
from backtests.tune_objective import suggest  # noqa: E402


def parameter_sets(config, n: int) -> list[dict]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    scratch = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=config.seed))
    sets = []
    for _ in range(n):
        trial = scratch.ask()
        sets.append(suggest(trial, config.tune.space))
        scratch.tell(trial, 0.0)
    return sets


def timed_study(config, prices, params: list[dict], jobs: int, root: Path, label: str):
    study_root = root / label.split()[0]
    name = label.split()[0]
    study = open_study(study_root / name, name, config)
    for p in params:
        study.enqueue_trial(p)
    started = time.perf_counter()
    result = tune(
        config, prices, len(params), jobs=jobs, study_name=name, studies_root=study_root, runs_root=root / "runs"
    )
    elapsed = time.perf_counter() - started
    states = result.trials["state"].value_counts().to_dict()
    print(f"{label:<22} {elapsed:7.1f} s  best {result.best_value:.5f}  {states}", flush=True)
    return elapsed, result.best_value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--config", default=None)
    args = parser.parse_args()
    config = load_config(args.config)
    prices = load_experiment_prices(config)
    params = parameter_sets(config, args.trials)
    root = Path(tempfile.mkdtemp(prefix="lstm-trader-tune-bench-"))
    try:
        # TensorFlow's import and first traces happen once per process: pay them before timing
        timed_study(config, prices, params[:1], 1, root, "warm-up (not compared)")
        one, best_one = timed_study(config, prices, params, 1, root, "jobs1-pruned")
        unpruned = config.model_copy(update={"tune": config.tune.model_copy(update={"pruner": "none"})})
        off, best_off = timed_study(unpruned, prices, params, 1, root, "jobs1-no-pruning")
        two, best_two = timed_study(config, prices, params, 2, root, "jobs2-pruned")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"jobs 2 vs jobs 1: {one / two:.2f}x faster (target >= 1.6x)")
    print(
        f"pruning on vs off: {1 - one / off:.0%} less time (target >= 30%), best value {best_one:.5f} vs "
        f"{best_off:.5f} ({'same or better' if best_one <= best_off + 1e-12 else 'worse'})"
    )


if __name__ == "__main__":
    main()
