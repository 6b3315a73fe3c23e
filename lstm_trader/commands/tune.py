"""`lstm-trader tune`: Optuna on a nested walk-forward, every trial in the ledger; `--evaluate` runs the best."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lstm_trader.console import (
    IDENTITY,
    ConfigArg,
    ExecutorOpt,
    LedgerOpt,
    RayAddressOpt,
    RichProgress,
    SetOpt,
    connect,
    console,
    execution_sets,
    fitted_table,
    ledger_sets,
    progress_bars,
    show,
    user_errors,
)
from lstm_trader.views import (
    _fmt,
    _pct,
    _u2,
)


@user_errors
def tune(
    config: ConfigArg = None,
    set_: SetOpt = None,
    trials: Annotated[
        int | None, typer.Option(help="finished trials the study should have; default tune.trials")
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(help="workers: processes, or Ray tasks with --executor ray (TensorFlow threads are shared out)"),
    ] = 1,
    timeout: Annotated[float | None, typer.Option(help="stop starting trials after this many seconds")] = None,
    study: Annotated[
        str | None, typer.Option(help="study name (folder under --studies-dir); default: config name")
    ] = None,
    studies_dir: Annotated[Path, typer.Option(help="where studies live")] = Path("studies"),
    runs_dir: Annotated[
        Path,
        typer.Option(
            help="where --evaluate writes its runs (an older ledger there is merged into the trial ledger once)"
        ),
    ] = Path("runs"),
    evaluate: Annotated[
        bool,
        typer.Option(
            "--evaluate",
            help="then run best.toml and the base config on the out-of-sample span and show them side by side",
        ),
    ] = False,
    ledger: LedgerOpt = None,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Tune the network with Optuna on a nested walk-forward before the out-of-sample span.

    Resumable (run it again to continue). Writes trials.csv, best.toml, index.html in studies/NAME/.

    Every trial is a row of the trial ledger, so the deflated Sharpe of later runs counts it.
    """
    import shlex

    from backtests.config import load_config
    from backtests.tune import tune as run_tune

    cfg = load_config(config, (set_ or []) + execution_sets(executor, None, ray_address) + ledger_sets(ledger))
    connect(cfg, jobs)
    n_trials = cfg.tune.trials if trials is None else trials
    name = study or cfg.name
    same = (
        ([str(config)] if config else [])
        + [a for pair in (set_ or []) for a in ("--set", pair)]
        + ["--trials", str(n_trials), "--study", name, "--studies-dir", str(studies_dir), "--runs-dir", str(runs_dir)]
        + (["--timeout", f"{timeout:g}"] if timeout is not None else [])  # a study it did not finish goes on as it ran
        + (["--ledger", str(ledger)] if ledger is not None else [])  # its evaluations are counted where its trials are
    )
    evaluate_line = "lstm-trader tune " + " ".join(shlex.quote(a) for a in same) + " --evaluate"

    def started(name: str, already: int) -> None:
        if already >= n_trials:
            console.print(
                f"study '{name}' already has {already} finished trials (asked for {n_trials}): nothing to "
                "run; raise --trials to continue it"
            )
        else:
            console.print(
                f"[bold]tuning[/] {', '.join(cfg.tune.space)} on {cfg.data.source}: {n_trials - already} "
                f"more trials to reach {n_trials}, {jobs} worker{'s' if jobs > 1 else ''}"
            )

    with progress_bars() as bars:
        task = bars.add_task("trials", total=n_trials)
        result = run_tune(
            cfg,
            None,
            n_trials,
            jobs,
            timeout,
            name,
            studies_dir,
            runs_dir,
            on_trial=lambda done, total: bars.update(task, completed=done, total=total),
            evaluate_line=evaluate_line,
            on_start=started,
        )
    states = result.trials["state"].value_counts().to_dict() if len(result.trials) else {}
    console.print(
        f"trials: {', '.join(f'{n} {s.lower()}' for s, n in states.items())}; tuning span ends "
        f"{result.tuning_end.date()}, out-of-sample span starts {result.first_test.date()} (never loaded)"
    )
    if result.best_value is None:
        console.print("no complete trial yet: run the same command again to continue")
        return
    console.print(f"best {cfg.tune.objective_label}: {result.best_value:.5f} with {result.best_params}")
    console.print(f"saved {result.study_dir / 'trials.csv'}, {result.study_dir / 'best.toml'}", soft_wrap=True)
    console.print(f"open: {result.study_dir / 'index.html'}", soft_wrap=True)
    if not evaluate:
        console.print(f"next: {evaluate_line}", soft_wrap=True, markup=False, highlight=False)
        console.print(f"  (or: lstm-trader run {result.study_dir / 'best.toml'})", soft_wrap=True)
        return
    _evaluate(cfg, result.study_dir / "best.toml", runs_dir)


def _evaluate(base, best_path: Path, runs_dir: Path) -> None:
    """Run the tuned and the base config once on the out-of-sample span; show them side by side."""
    from backtests.tune import evaluate

    def bars_for(label: str):
        bars = progress_bars()
        return bars, RichProgress(bars)

    evaluated, trials = evaluate(base, best_path, runs_dir, progress=bars_for)
    columns = [
        ("config", "left", IDENTITY),
        ("run", "left", IDENTITY),
        ("RMSE (ret)", "right", 3),
        ("U2", "right", 8),
        ("DM p", "right", 4),
        ("dir. acc.", "right", 5),
        ("Sharpe", "right", 6),
        ("DSR", "right", 7),
        ("N", "right", 7),
    ]
    rows = [
        [
            e.label,
            e.result.path.name,
            _fmt(e.lstm["rmse"]),
            _u2(e.lstm["theil_u"]),
            _fmt(e.lstm["dm_pvalue"], 3),
            _pct(e.lstm["directional_accuracy"], ".1%"),
            _pct(e.sharpe, ".2f"),
            _pct(e.dsr, ".0%"),
            str(trials.n),
        ]
        for e in evaluated
    ]
    show(fitted_table("Out-of-sample span, evaluated once each", columns, rows))
    console.print(
        f"DSR: both rows {trials.describe()} (the trial ledger counts every tuning trial and both evaluations)"
    )
    console.print("reports: " + " and ".join(f"lstm-trader report {e.result.path}" for e in evaluated), soft_wrap=True)
