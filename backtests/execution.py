"""Where independent tasks run: in this process, in a local process pool, or on a Ray cluster.

Tasks are tickers of a walk-forward (and tuning workers). A task never depends on where it runs:
it seeds itself from the run's seed, and TensorFlow's results do not depend on its thread count
(checked: one and two intra-op threads give bit-identical predictions), so `serial`, `local` and
`ray` write byte-identical predictions. Each worker gets its share of the cores for TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import Field

from backtests.errors import BacktestError
from forecasting.spec import Strict

EXECUTORS = ("serial", "local", "ray")


class ExecutionSpec(Strict):
    executor: Literal[EXECUTORS] = Field(
        "local",
        description="serial (this process), local (a process pool on this machine) or ray (a Ray cluster, "
        "or a local Ray instance without ray_address)",
    )
    workers: int | None = Field(
        None, ge=1, description="parallel tasks; default: one per core (local) or the cluster's CPUs (ray)"
    )
    ray_address: str | None = Field(
        None,
        description="an existing cluster: 'auto', 'ray://host:10001' or 'host:6379'; omit for a local Ray instance",
    )


def worker_count(spec: ExecutionSpec, tasks: int) -> int:
    return max(1, min(spec.workers or os.cpu_count() or 1, tasks))


def tf_threads(workers: int, cpus: int | None = None) -> int:
    """TensorFlow threads per worker: the cores (this machine's, or a cluster's `cpus`) shared out."""
    return max(1, (cpus or os.cpu_count() or 1) // max(1, workers))


def pin_threads(threads: int) -> None:
    """Set TensorFlow's thread pools in a fresh worker process (before its first op)."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    from forecasting.model import import_keras

    import_keras()
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this process
        pass


def _call(fn: Callable, threads: int, args: tuple) -> Any:
    pin_threads(threads)
    return fn(*args)


def _call_spread(fn: Callable, threads: int, *args) -> Any:
    """As `_call`, with the task's arguments spread out, so that Ray resolves object-store references."""
    return _call(fn, threads, args)


def run_tasks(
    fn: Callable,
    tasks: Sequence[tuple],
    names: Sequence[str],
    spec: ExecutionSpec,
    on_done: Callable[[int, int], None] | None = None,
) -> list:
    """`fn(*task)` for every task, results in task order. `on_done(done, total)` after each one.

    A worker that dies (killed, out of memory) fails the whole call with one error naming the tasks
    that did not finish (local), or has its task retried on another worker (ray).
    """
    total = len(tasks)
    if spec.executor == "serial" or total <= 1 and spec.executor == "local":
        results = []
        for task in tasks:
            results.append(fn(*task))
            if on_done is not None:
                on_done(len(results), total)
        return results
    if spec.executor == "local":
        return _run_local(fn, tasks, names, spec, on_done)
    return _run_ray(fn, tasks, names, spec, on_done)


def _run_local(fn, tasks, names, spec, on_done) -> list:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    workers = worker_count(spec, len(tasks))
    threads = tf_threads(workers)
    results: dict[int, Any] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_call, fn, threads, task): index for index, task in enumerate(tasks)}
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if on_done is not None:
                    on_done(len(results), len(tasks))
        except BrokenProcessPool:
            lost = [names[i] for i in range(len(tasks)) if i not in results]
            raise BacktestError(
                f"a worker process died while running {', '.join(lost)}",
                "nothing of those was written; run again (--executor serial shows the error, if any)",
            ) from None
    return [results[i] for i in range(len(tasks))]


def start_ray(spec: ExecutionSpec, workers: int | None = None):
    """Connect to the cluster at `spec.ray_address`, or start a local Ray instance."""
    try:
        import ray
    except ImportError:
        raise BacktestError(
            "the ray executor needs Ray, which is not installed",
            "pip install 'lstm-trader[ray]', or use --executor local",
        ) from None
    if ray.is_initialized():
        return ray
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if spec.ray_address:
        _check_reachable(spec.ray_address)  # Ray itself retries an unreachable address for minutes
        options["address"] = spec.ray_address
    else:
        options["num_cpus"] = workers or spec.workers or os.cpu_count() or 1
    try:
        ray.init(**options)
    except Exception as exc:  # ConnectionError, TimeoutError, ValueError... all mean "no cluster there"
        raise BacktestError(
            f"cannot reach a Ray cluster at {spec.ray_address or 'this machine'} ({type(exc).__name__})",
            "start one with `ray start --head` and pass its address (--ray-address host:6379), "
            "or leave --ray-address out for a local instance",
        ) from None
    return ray


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A TCP connection to `host:port` (or `ray://host:port`) within `timeout` seconds; `auto` is left to Ray."""
    import socket

    target = address.removeprefix("ray://")
    if target == "auto" or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as exc:
        raise BacktestError(
            f"cannot reach a Ray cluster at {address} ({type(exc).__name__})",
            "start one with `ray start --head` and pass its address (--ray-address host:6379), "
            "or leave --ray-address out for a local instance",
        ) from None


def _run_ray(fn, tasks, names, spec, on_done) -> list:
    ray = start_ray(spec, worker_count(spec, len(tasks)))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    threads = tf_threads(spec.workers or cpus, cpus)
    remote = ray.remote(num_cpus=1, max_retries=2)(_call_spread)  # a task lost with its worker runs again
    shared: dict[int, Any] = {}  # a frame used by several tasks (a ticker's folds) goes to the object store once

    def once(value):
        if not hasattr(value, "to_parquet"):
            return value
        if id(value) not in shared:
            shared[id(value)] = ray.put(value)
        return shared[id(value)]

    refs = [remote.remote(fn, threads, *(once(arg) for arg in task)) for task in tasks]
    index = {ref: i for i, ref in enumerate(refs)}
    results: dict[int, Any] = {}
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                results[index[ref]] = ray.get(ref)
                if on_done is not None:
                    on_done(len(results), len(tasks))
    except ray.exceptions.RayError as exc:
        lost = [names[i] for i in range(len(tasks)) if i not in results]
        cause = getattr(exc, "cause", None)
        if isinstance(cause, Exception) and hasattr(cause, "hint"):  # a user error inside the task: as it is
            raise cause from None
        raise BacktestError(
            f"Ray could not finish {', '.join(lost)} ({type(exc).__name__}, after retries)",
            "see `ray status`; run again, or with --executor serial to see the error",
        ) from None
    return [results[i] for i in range(len(tasks))]
