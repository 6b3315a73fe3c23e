"""`lstm-trader run`, `report`, `backtest` and `compare`: experiments, their reports, and runs side by side."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from backtests.rundir import check_output_file, check_output_folder
from lstm_trader.console import (
    IDENTITY,
    ConfigArg,
    ExecutorOpt,
    LedgerOpt,
    RayAddressOpt,
    RichProgress,
    SetOpt,
    WideOpt,
    WorkersOpt,
    _interrupt_hint,
    connect,
    console,
    errors,
    execution_sets,
    fitted_table,
    ledger_sets,
    progress_bars,
    show,
    toml_quote,
    user_errors,
)
from lstm_trader.views import (
    _pct,
    _u2,
    comparison_view,
    cross_section_view,
    dsr_line,
    metrics_table,
    overfit_line,
    volatility_view,
    warn_silent,
)

OpenOpt = Annotated[bool, typer.Option("--open", help="open the report in a browser when one is available")]


def _make_reports(run_dir: Path, open_browser: bool, phases: dict[str, float] | None = None) -> Path:
    from reports import build_reports

    started = time.perf_counter()
    with progress_bars() as bars:  # tear sheets and charts, one step each
        task = bars.add_task("reports", total=None)
        index = build_reports(run_dir, progress=lambda done, total: bars.update(task, completed=done, total=total))
    if phases is None:
        console.print(f"reports written in {time.perf_counter() - started:.1f} s")
    else:
        phases["reports"] = time.perf_counter() - started
    if open_browser:
        import webbrowser

        if not webbrowser.open(index.resolve().as_uri()):
            console.print("no browser found; open the file below by hand")
    return index


@user_errors
def run(
    config: ConfigArg = None,
    set_: SetOpt = None,
    runs_dir: Annotated[Path, typer.Option(help="where run dirs are created")] = Path("runs"),
    open_: OpenOpt = False,
    no_report: Annotated[bool, typer.Option("--no-report", help="skip the HTML reports")] = False,
    resume: Annotated[
        Path | None,
        typer.Option(help="finish an interrupted run dir from its last complete fold (uses that dir's config.toml)"),
    ] = None,
    executor: ExecutorOpt = None,
    workers: WorkersOpt = None,
    ray_address: RayAddressOpt = None,
    ledger: LedgerOpt = None,
    wide: WideOpt = False,
) -> None:
    """Run an experiment: walk-forward LSTM, forecast metrics, every strategy backtested, reports.

    Everything is saved in runs/<name>-<time>/; the last line printed is the index.html to open.
    """
    started = time.perf_counter()
    from backtests.config import load_config
    from backtests.errors import ConfigError
    from backtests.experiment import load_resumable
    from forecasting.tasks import task_of
    from lstm_trader.api import Experiment

    imported = time.perf_counter() - started
    check_output_folder(runs_dir, "--runs-dir")
    if resume is not None:
        if config is not None or set_:
            raise ConfigError("--resume takes the run dir's own config.toml", "drop CONFIG and --set")
        if (resume / "metrics.json").is_file() and not no_report and not (resume / "reports" / "index.html").is_file():
            why = (
                "interrupted while writing them"
                if (resume / "reports").is_dir()
                else "none were written: run with --no-report, by tune --evaluate, or stopped before they began"
            )
            console.print(f"{resume}: results complete, reports missing ({why}): writing them")
            console.print(f"open: {_make_reports(resume, open_)}", soft_wrap=True)
            return
        cfg, resume = load_resumable(resume)
        if executor or workers or ray_address:  # where it runs may change on resume; what it computes may not
            cfg = cfg.model_copy(
                update={"execution": load_config(None, execution_sets(executor, workers, ray_address)).execution}
            )
        if ledger is not None:
            cfg = cfg.model_copy(update={"ledger": str(ledger)})
    else:
        cfg = load_config(config, (set_ or []) + execution_sets(executor, workers, ray_address) + ledger_sets(ledger))
    connect(cfg)
    console.print(
        f"[bold]{cfg.name}[/]: {cfg.data.source}, {cfg.model.n_layers}x LSTM({cfg.model.units}), "
        f"lookback {cfg.model.lookback}, retrain every {cfg.walk_forward.retrain_every} "
        f"{'sessions, one network for the universe' if task_of(cfg.model).universe else 'bars'}"
        f" ({'warm start' if cfg.walk_forward.warm_start else 'from scratch'})"
    )

    def announce(run_dir: Path) -> None:
        _interrupt_hint["run"] = run_dir
        console.print(f"run dir: {run_dir}", soft_wrap=True)

    with progress_bars() as bars:
        result = Experiment(cfg, runs_dir=runs_dir).run(RichProgress(bars), resume=resume, announce=announce)
    for note in result.summary.get("notes", []):  # before any number: what the data is (a survivorship-biased universe)
        console.print(f"[yellow]note:[/] {note}")
    if result.volatility is not None:
        show(volatility_view(result.volatility, wide))
    elif result.cross_section is not None:
        show(cross_section_view(result.cross_section, wide))
        console.print(f"forecast errors of every ticker and model ({len(result.forecast)} rows): metrics.json, report")
    else:
        show(metrics_table(result.forecast, wide))
    show(comparison_view(result.comparison, wide=wide))
    console.print(dsr_line(result.comparison, result.trials))
    if overfit_line(result.trials.overfitting):
        console.print(overfit_line(result.trials.overfitting))
    warn_silent(result.silent)
    phases = {"start-up": imported, **result.phases}
    index = None if no_report else _make_reports(result.path, open_, phases)
    phases["total"] = time.perf_counter() - started
    console.print("time: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items()))
    if index is not None:
        console.print(f"open: {index}", soft_wrap=True)


@user_errors
def report(run_dir: Annotated[Path, typer.Argument(help="a run dir under runs/")], open_: OpenOpt = False) -> None:
    """(Re)generate a run's reports: tear sheets, forecast plots and reports/index.html."""
    console.print(f"open: {_make_reports(run_dir, open_)}", soft_wrap=True)


@user_errors
def backtest(
    predictions: Annotated[
        Path, typer.Argument(help="predictions.parquet (from a run dir, or any table with date, ticker, model, y_pred)")
    ],
    data: Annotated[str | None, typer.Option(help="data URI of the prices; default: the config's data.source")] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="TOML experiment for broker and strategies; default: the "
            "config.toml of the predictions' run dir, else "
            "configs/default.toml"
        ),
    ] = None,
    set_: SetOpt = None,
    volatility: Annotated[
        Path | None,
        typer.Option(
            help="a volatility run's predictions.parquet, joined as models vol_lstm, vol_garch, ...: lstm_signal "
            'with target_vol and vol_forecast = "vol_lstm" sizes its trades by that forecast'
        ),
    ] = None,
    runs_dir: Annotated[Path, typer.Option(help="where the run dir is created")] = Path("runs"),
    no_report: Annotated[bool, typer.Option("--no-report", help="skip the HTML reports")] = False,
    ledger: LedgerOpt = None,
    wide: WideOpt = False,
) -> None:
    """Backtest an existing predictions table with the configured strategies; writes a new run dir."""
    from backtests.backtest_only import origin_config, run_backtest_only
    from backtests.config import load_config
    from backtests.errors import ConfigError

    check_output_folder(runs_dir, "--runs-dir")
    origin = origin_config(predictions) if config is None else None
    sets = (set_ or []) + ([f"data.source={toml_quote(data)}"] if data else [])
    if origin is not None:
        try:
            load_config(origin)
        except ConfigError as exc:  # written by another version: say so and use the default
            errors.print(
                f"warning: {origin} cannot be used ({exc.message}); using configs/default.toml",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            origin = None
    source = (
        str(config)
        if config is not None
        else (f"{origin} (the predictions' own run)" if origin else "configs/default.toml (the default)")
    )
    cfg = load_config(config or origin, sets + ledger_sets(ledger))
    if set_:
        source += " with " + ", ".join(set_)
    result = run_backtest_only(predictions, cfg, runs_dir, config_source=source, volatility_path=volatility)
    console.print(f"config: {source}", markup=False, highlight=False, soft_wrap=True)
    if result.skipped:
        console.print(f"left out {', '.join(result.skipped)}: the predictions have no rows for its forecast")
    show(comparison_view(result.comparison, wide=wide))
    console.print(dsr_line(result.comparison, result.trials))
    if overfit_line(result.trials.overfitting):
        console.print(overfit_line(result.trials.overfitting))
    warn_silent(result.silent)
    console.print(f"run dir: {result.path}", soft_wrap=True)
    if not no_report:
        console.print(f"open: {_make_reports(result.path, False)}", soft_wrap=True)


@user_errors
def compare(
    runs: Annotated[list[Path], typer.Argument(help="run dirs to put side by side")],
    out: Annotated[Path | None, typer.Option(help="also write the table to this CSV")] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            help="also write an HTML page: equity curves overlaid, the table, and what differs between the configs"
        ),
    ] = None,
    strategy: Annotated[
        list[str] | None,
        typer.Option(help="strategies drawn on the --html page (repeatable); default: the LSTM ones and buy_and_hold"),
    ] = None,
    wide: WideOpt = False,
) -> None:
    """Put runs side by side: each strategy's results and the LSTM's forecast error of each run."""
    from backtests.compare import compare_runs, distinct_runs, write_compare_html, write_rows

    for target, flag in ((out, "--out"), (html, "--html")):
        if target is not None:
            check_output_file(target, flag)
    runs, repeated = distinct_runs(runs)
    for name in repeated:
        errors.print(f"warning: {name} was given twice; it is compared once", markup=False, highlight=False)
    rows = compare_runs(runs)
    columns = [
        ("run", "left", IDENTITY),
        ("ticker", "left", IDENTITY),
        ("strategy", "left", IDENTITY),
        ("CAGR", "right", 7),
        ("Sharpe", "right", 9),
        ("max DD", "right", 8),
        ("trades", "right", 4),
        ("LSTM RMSE", "right", 3),
        ("Theil U", "right", 5),
    ]
    table = [
        [
            row["run"],
            str(row["ticker"]),
            str(row["strategy"]),
            _pct(row.get("cagr"), "+.2%"),
            _pct(row.get("sharpe"), ".2f"),
            _pct(row.get("max_drawdown"), ".1%"),
            str(row.get("trades")),
            _pct(row["lstm_price_rmse"], ",.3f"),
            _u2(row["lstm_theil_u"]),
        ]
        for row in rows
    ]
    show(fitted_table("Runs compared", columns, table, wide))
    if out is not None:
        write_rows(out, rows)
        console.print(f"saved {out}", soft_wrap=True)
    if html is not None:
        console.print(f"open: {write_compare_html(html, runs, rows, strategy)}", soft_wrap=True)
