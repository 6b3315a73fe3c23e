"""`lstm-trader tune`: Optuna over a nested walk-forward that never sees the out-of-sample span.

The outer walk-forward of `run` tests from its first test date on. The tuner cuts every ticker's
bars just before the earliest first test date any trial could have (the smallest `lookback` of the
search space), and each trial runs an inner walk-forward inside that tuning span: its first fold
trains on `inner_train_fraction` of it, the rest is validation. The objective is the LSTM's
return-space MSE over the validation span divided by the naive (zero-return) forecast's: below 1
beats "tomorrow = today". Each inner fold reports the running ratio, so a median pruner can stop
hopeless trials early.

A study lives in `studies/<name>/`: Optuna's journal file (safe for several worker processes,
resumable), the config it was started with, `trials.csv`, `best.toml` and `index.html`. Every trial
is also a row of the trial ledger, so the deflated Sharpe of later runs counts it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from backtests.config import TUNABLE, ExperimentConfig, dump_config, validate_config
from backtests.errors import ConfigError
from backtests.execution import tf_threads
from backtests.rundir import FolderLock, named_folder, write_csv, write_text
from backtests.trials import TrialCount, TrialLedger, data_fingerprint, legacy_fingerprint, open_trial_ledger
from backtests.tune_objective import make_objective, trial_config, tuning_span
from reports.tune_page import study_page


@dataclass
class TuneResult:
    study_dir: Path
    trials: pd.DataFrame
    best_value: float | None
    best_params: dict
    tuning_end: pd.Timestamp
    first_test: pd.Timestamp


def check_space(config: ExperimentConfig) -> None:
    """Every bound and choice of the search space must make a valid config, checked before any trial."""
    for name, spec in config.tune.space.items():
        for value in spec.choices if spec.choices is not None else (spec.low, spec.high):
            try:
                trial_config(config, {name: value})
            except ConfigError as exc:
                raise ConfigError(
                    f"tune.space.{name}: the value {value!r} is not a valid {TUNABLE[name][0]}.{name} "
                    f"({exc.message.split(': ', 2)[-1]})",
                    "narrow the range in [tune.space]",
                ) from None


def check_arguments(n_trials: int, jobs: int, timeout: float | None) -> None:
    if n_trials < 1:
        raise ConfigError("--trials must be at least 1", "e.g. --trials 30")
    if jobs < 1:
        raise ConfigError("--jobs must be at least 1", "e.g. --jobs 2 on two cores")
    if timeout is not None and not timeout > 0:
        raise ConfigError("--timeout must be a positive number of seconds", "e.g. --timeout 600, or leave it out")


def study_folder(studies_root: str | Path, name: str) -> Path:
    """`studies_root/name`, for a study name that is one plain folder name."""
    return named_folder(studies_root, name, "study name", "--study lstm-small")


def check_study(folder: Path, config: ExperimentConfig) -> int:
    """Refuse a study folder started with another config; the number of finished trials it holds."""
    saved = folder / "study.toml"
    if saved.is_file() and saved.read_text() != _study_identity(config):
        raise ConfigError(
            f"{folder} holds a study started with another config or search space",
            "use another --study name, or the config it was started with",
        )
    if not (folder / "journal.log").is_file():
        return 0
    return finished(open_study(folder, folder.name, config, create=False))


def open_study(folder: Path, name: str, config: ExperimentConfig, create: bool = True, worker: int = 0):
    """Optuna's study on its journal file; a folder made for another config is refused untouched."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    saved = folder / "study.toml"
    wanted = _study_identity(config)
    if saved.is_file():
        if saved.read_text() != wanted:
            raise ConfigError(
                f"{folder} holds a study started with another config or search space",
                "use another --study name, or the config it was started with",
            )
    elif create:
        folder.mkdir(parents=True, exist_ok=True)
        write_text(saved, wanted)
        write_text(folder / "study_id", uuid.uuid4().hex)  # this study's trials in the shared trial ledger
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(folder / "journal.log")))
    # no pruning in the first 5 epochs (validation loss is noisy there) nor before 3 trials have finished
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=5)
        if config.tune.pruner == "median"
        else optuna.pruners.NopPruner()
    )
    direction = "maximize" if config.tune.maximise else "minimize"
    study = optuna.create_study(
        study_name=name, storage=storage, direction=direction, load_if_exists=True, pruner=pruner
    )
    # Seeded by the config's seed, the worker and the trials the study already holds: a fresh study is
    # reproducible, and a continued one draws new points instead of replaying its first start-up draws.
    held = len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(seed=config.seed + 7919 * worker + 104_729 * held)
    return study


def study_id(folder: Path) -> str:
    """The study's id in the trial ledger's keys (a study made before ids existed: its folder's path)."""
    path = folder / "study_id"
    return path.read_text().strip() if path.is_file() else str(folder.resolve())


def _study_identity(config: ExperimentConfig) -> str:
    """What a study's trials depend on: everything but the trial count and the run name."""
    raw = config.model_dump(mode="json", exclude_none=True)
    raw["tune"].pop("trials", None)
    raw["name"] = "study"
    raw.pop("execution", None)  # where trials run never changes what they compute
    raw.pop("ledger", None)  # nor where they are recorded
    raw.pop("paper", None)
    return "# the config this study was started with (name and trial count aside)\n" + dump_config(
        validate_config(raw, "study")
    )


def finished(study) -> int:
    from optuna.trial import TrialState

    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.get_trials(deepcopy=False))


def requeue_stale(study) -> int:
    """Trials left RUNNING by a killed `tune` (only one runs per study): fail them and queue their
    parameters again, so they are retried once and never counted twice."""
    from optuna.trial import TrialState

    stale = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    for trial in stale:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)
    return len(stale)


def run_worker(
    folder: str,
    name: str,
    config_toml: str,
    n_trials: int,
    deadline: float | None,
    threads: int,
    span_file: str,
    fingerprint: str,
    ledger_path: str,
    worker: int = 0,
    budget: int | None = None,
) -> None:
    """One worker (process, Ray task or the main process): at most `budget` trials, and none once the
    study has `n_trials` finished. The budgets of all workers add up to what is missing, so a study
    never ends with more trials than asked, however the workers race."""
    if threads:
        from backtests.execution import pin_threads

        pin_threads(threads)
    import tomllib

    config = validate_config(tomllib.loads(config_toml), "study")
    span = pd.read_pickle(span_file)
    study = open_study(Path(folder), name, config, create=False, worker=worker)
    objective = make_objective(config, span, name, TrialLedger(ledger_path), fingerprint, study_id(Path(folder)))
    done = 0
    while (
        (budget is None or done < budget)
        and finished(study) < n_trials
        and (deadline is None or time.time() < deadline)
    ):
        study.optimize(objective, n_trials=1, catch=(), gc_after_trial=False)
        done += 1


def budgets(missing: int, jobs: int) -> list[int]:
    """`missing` trials shared out over `jobs` workers (the first ones take the remainder)."""
    return [missing // jobs + (1 if index < missing % jobs else 0) for index in range(jobs)]


def tune(
    config: ExperimentConfig,
    prices: dict[str, pd.DataFrame] | None,
    n_trials: int,
    jobs: int = 1,
    timeout: float | None = None,
    study_name: str | None = None,
    studies_root: str | Path = "studies",
    runs_root: str | Path = "runs",
    on_trial: Callable[[int, int], None] | None = None,
    evaluate_line: str | None = None,
    on_start: Callable[[str, int], None] | None = None,
) -> TuneResult:
    """Run (or continue) a study until it has `n_trials` finished trials; write its outputs.

    Every argument is checked before any data is loaded (`prices` None: the config's data, loaded
    once the checks pass). `on_start(name, finished)` hears the study's name and how many trials it
    already holds; `evaluate_line` is the command that evaluates this very study (every flag it was
    started with), which the study page shows as the next step."""
    from backtests.experiment import load_experiment_prices
    from backtests.rundir import check_output_folder

    check_output_folder(studies_root, "--studies-dir")
    check_output_folder(runs_root, "--runs-dir")
    check_arguments(n_trials, jobs, timeout)
    check_space(config)
    ledger = open_trial_ledger(config.ledger, runs_root)  # every trial is a row: it must open before one runs
    name = study_name or config.name
    folder = study_folder(studies_root, name)
    already = check_study(folder, config)
    prices = load_experiment_prices(config) if prices is None else prices
    if on_start is not None:
        on_start(name, already)
    span, first_test = tuning_span(prices, config)
    tuning_end = max(frame.index[-1] for frame in span.values())
    if not tuning_end < first_test:
        raise AssertionError("the tuning span reaches the test span")  # never: tuning_span cuts before it
    fingerprint = data_fingerprint(prices, config.data.start)
    ledger.adopt(legacy_fingerprint(config.data.source, config.data.start, config.data.end, prices), fingerprint)
    study = open_study(folder, name, config)
    with FolderLock(folder, "study", "wait for it, or use another --study name"):
        requeue_stale(study)
        span_file = folder / ".span.pkl"
        pd.to_pickle(span, span_file)
        deadline = None if timeout is None else time.time() + timeout
        args = (str(folder), name, dump_config(config), n_trials, deadline)
        try:
            executor = config.execution.executor
            if jobs == 1 and executor != "ray":
                _run_with_progress(
                    lambda: run_worker(*args, 0, str(span_file), fingerprint, str(ledger.path)),
                    study,
                    n_trials,
                    on_trial,
                )
            elif executor == "ray":
                _run_ray(
                    args,
                    jobs,
                    str(span_file),
                    fingerprint,
                    str(ledger.path),
                    study,
                    n_trials,
                    on_trial,
                    config.execution,
                )
            else:
                _run_pool(args, jobs, str(span_file), fingerprint, str(ledger.path), study, n_trials, on_trial)
        finally:
            span_file.unlink(missing_ok=True)
        result = write_outputs(folder, study, config, tuning_end, first_test, evaluate_line)
    return result


def _run_with_progress(work: Callable[[], None], study, n_trials: int, on_trial) -> None:
    import threading

    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(1.0):
            if on_trial is not None:
                on_trial(min(finished(study), n_trials), n_trials)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        work()
    finally:
        stop.set()
        watcher.join()
        if on_trial is not None:
            on_trial(min(finished(study), n_trials), n_trials)


def _run_pool(
    args: tuple, jobs: int, span_file: str, fingerprint: str, ledger_path: str, study, n_trials: int, on_trial
) -> None:
    """`jobs` worker processes, each with its share of the cores for TensorFlow's threads."""
    import multiprocessing

    threads = tf_threads(jobs)
    context = multiprocessing.get_context("spawn")
    shares = budgets(max(0, n_trials - finished(study)), jobs)
    workers = [
        context.Process(
            target=run_worker, args=(*args, threads, span_file, fingerprint, ledger_path, index, shares[index])
        )
        for index in range(jobs)
    ]

    def work() -> None:
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                worker.join()
        except BaseException:
            for worker in workers:
                worker.terminate()
            raise
        failed = [w.exitcode for w in workers if w.exitcode]
        if failed:
            raise ConfigError(
                f"{len(failed)} tuning worker(s) failed (exit code {failed[0]})",
                "run again to continue the study; rerun with --jobs 1 to see the error",
            )

    _run_with_progress(work, study, n_trials, on_trial)


def _run_ray(
    args: tuple,
    jobs: int,
    span_file: str,
    fingerprint: str,
    ledger_path: str,
    study,
    n_trials: int,
    on_trial,
    execution,
) -> None:
    """`jobs` tuning workers as Ray tasks; all of them write to the one study storage (on a multi-node
    cluster the studies folder must be shared storage). A worker lost with its node is retried; its
    trial left RUNNING is failed and queued again at the next `tune`, never counted twice."""
    from backtests.execution import start_ray

    ray = start_ray(execution, jobs)
    threads = tf_threads(jobs, int(ray.cluster_resources().get("CPU", 1)))
    shares = budgets(max(0, n_trials - finished(study)), jobs)
    remote = ray.remote(num_cpus=1, max_retries=1)(run_worker)

    def work() -> None:
        refs = [
            remote.remote(*args, threads, span_file, fingerprint, ledger_path, index, shares[index])
            for index in range(jobs)
        ]
        try:
            ray.get(refs)
        except ray.exceptions.RayError as exc:
            raise ConfigError(
                f"a tuning worker failed on Ray ({type(exc).__name__})",
                "run again to continue the study; rerun with --jobs 1 to see the error",
            ) from None

    _run_with_progress(work, study, n_trials, on_trial)


def write_outputs(
    folder: Path, study, config: ExperimentConfig, tuning_end, first_test, evaluate_line: str | None = None
) -> TuneResult:
    """`trials.csv`, `best.toml` and `index.html` (Optuna's own plots) in the study folder."""
    from optuna.trial import TrialState

    rows = []
    columns = ["number", "state", "value", "duration_s", "pruned_at", "validation_sharpe"]
    for t in study.get_trials(deepcopy=False):
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "duration_s": t.duration.total_seconds() if t.duration else None,
                "pruned_at": t.user_attrs.get("pruned_at") if t.state == TrialState.PRUNED else None,
                "validation_sharpe": t.user_attrs.get("validation_sharpe"),
                **{f"param_{k}": v for k, v in t.params.items()},
            }
        )
    trials = pd.DataFrame(rows, columns=list(dict.fromkeys(columns + [k for r in rows for k in r])))
    write_csv(folder / "trials.csv", trials)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    best_value, best_params = None, {}
    if complete:
        best = (max if config.tune.maximise else min)(complete, key=lambda t: t.value)
        best_value, best_params = best.value, dict(best.params)
        best_config = trial_config(config, best_params)
        write_text(
            folder / "best.toml",
            f"# best of {len(complete)} complete trials of study '{study.study_name}': "
            f"{config.tune.objective_label} = {best_value:.6f}\n"
            + dump_config(best_config.model_copy(update={"name": f"{config.name}-tuned"})),
        )
    write_text(
        folder / "index.html",
        study_page(
            folder,
            study,
            trials,
            best_value,
            best_params,
            tuning_end,
            first_test,
            evaluate_line,
            config.tune.objective,
        ),
    )
    return TuneResult(folder, trials, best_value, best_params, tuning_end, first_test)


@dataclass
class Evaluated:
    label: str  # "tuned" or "base"
    result: object  # the RunResult of its run
    lstm: pd.Series  # the LSTM's forecast metrics
    sharpe: float | None  # the first LSTM strategy's Sharpe
    dsr: float | None  # its DSR, deflated by the ledger's count once both runs are in it


def evaluate(
    base: ExperimentConfig, best_path: str | Path, runs_root: str | Path, progress: Callable[[str], tuple] | None = None
) -> tuple[list[Evaluated], TrialCount]:
    """Run the study's best.toml and the base config once each on the out-of-sample span.

    Both DSRs are deflated by the same, final count of the trial ledger (the second run's count
    includes the first). `progress(label)` returns (a context manager, a walk-forward Progress)."""
    from contextlib import nullcontext

    from backtests.books import deflated_again
    from backtests.config import load_config
    from backtests.experiment import run_experiment

    runs = []
    for label, cfg in (("tuned", load_config(best_path)), ("base", base)):
        context, reporter = progress(label) if progress else (nullcontext(), None)
        with context:
            runs.append((label, cfg, run_experiment(cfg, runs_root, reporter)))
    trials = runs[-1][2].trials
    evaluated = []
    for label, cfg, result in runs:
        lstm = result.metrics[result.metrics["model"] == "lstm"].iloc[0]
        searched = result.comparison.dropna(subset=["dsr"])
        first = searched.iloc[0] if len(searched) else None
        dsr = (
            None
            if first is None
            else deflated_again(result.path, first["ticker"], first["strategy"], cfg.broker.cash_rate, trials)
        )
        evaluated.append(Evaluated(label, result, lstm, None if first is None else float(first["sharpe"]), dsr))
    return evaluated, trials
