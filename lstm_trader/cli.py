"""The `lstm-trader` command line. Every user error is one line plus a hint and exit code 2."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from backtests.errors import BacktestError
from backtests.rundir import check_output_file, check_output_folder
from forecasting.progress import Progress as WalkForwardProgress
from lstm_trader.console import (
    HELP,
    IDENTITY,
    ConfigArg,
    ExecutorOpt,
    FittedTable,
    LedgerOpt,
    RayAddressOpt,
    SetOpt,
    WideOpt,
    WorkersOpt,
    _interrupt_hint,
    console,
    errors,
    execution_sets,
    fitted_table,
    ledger_sets,
    progress_bars,
    show,
    user_errors,
)
from lstm_trader.paper import paper_app
from lstm_trader.serve import serve

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=HELP,
    help="Walk-forward stacked-LSTM forecasts, traded in Backtrader, reported with QuantStats.",
)
data_app = typer.Typer(
    no_args_is_help=True,
    context_settings=HELP,
    help="Data sources: fill the download cache (Yahoo or Alpaca) ahead of a run.",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("lstm-trader")
        except PackageNotFoundError:  # run from a source tree that is not installed
            number = "unknown (not installed)"
        typer.echo(f"lstm-trader {number}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def main_options(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Walk-forward stacked-LSTM forecasts, traded in Backtrader, reported with QuantStats."""
    if ctx.invoked_subcommand is None:  # bare `lstm-trader`: the help, and success
        typer.echo(ctx.get_help())
        raise typer.Exit()


app.add_typer(data_app, name="data")
app.add_typer(paper_app, name="paper")
app.command("serve")(serve)


class RichProgress(WalkForwardProgress):
    """Two bars: folds of the current ticker and epochs of the current fit."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.folds = progress.add_task("folds", total=None)
        self.epochs = progress.add_task("epochs", total=None)

    def stage(self, text: str) -> None:
        self.progress.update(self.folds, description=text)

    def fold(self, ticker: str, done: int, total: int) -> None:
        self.progress.update(self.folds, completed=done, total=total, description=f"{ticker} folds")

    def epoch(self, done: int, total: int, logs: dict | None = None) -> None:
        self.progress.update(self.epochs, completed=done, total=total, description="epochs")

    def tasks(self, done: int, total: int) -> None:  # parallel tickers: one bar over all of them
        self.progress.update(self.folds, completed=done, total=total, description="tickers")
        self.progress.update(self.epochs, visible=False)


def connect(cfg, workers: int | None = None) -> None:
    """With the ray executor, reach the cluster (or start the local instance) before any output is written."""
    if cfg.execution.executor == "ray":
        from backtests.execution import start_ray

        start_ray(cfg.execution, workers)


def _fmt(value: float, digits: int = 4) -> str:
    if value is None or value != value:
        return "—"
    return f"{value:#.{digits}g}".rstrip(".") if abs(value) < 1e5 else f"{value:,.0f}"


def _count(value) -> str:
    return "—" if value is None or value != value else str(int(value))


def _u2(value: float | None) -> str:
    """Theil's U2 to four decimals: 1.0005 must not read as naive's 1."""
    return _pct(value, ".4f")


def _pct(value: float | None, spec: str) -> str:
    return "—" if value is None or value != value else format(value, spec)


def _interval(low, high, spec: str = ".2f") -> str:
    """A bootstrap interval as low..high; — where there is none (a constant return, an older run)."""
    if low is None or high is None or low != low or high != high:
        return "—"
    return f"{format(low, spec)}..{format(high, spec)}"


def _single_ticker(table) -> str | None:
    tickers = list(dict.fromkeys(table["ticker"])) if len(table) else []
    return tickers[0] if len(tickers) == 1 else None


def metrics_table(metrics, wide: bool = False) -> FittedTable:
    single = _single_ticker(metrics)
    columns = [
        ("ticker", "left", IDENTITY),
        ("model", "left", IDENTITY),
        ("n", "right", 2),
        ("RMSE (price)", "right", 6),
        ("RMSE (ret)", "right", 3),
        ("U2", "right", 9),
        ("DM p", "right", 8),
        ("CW p", "right", 7),
        ("dir. acc.", "right", 8),
        ("up days", "right", 7),
        ("PT p", "right", 4),
        ("corr.", "right", 5),
    ]
    rows = [
        [
            row.ticker,
            row.model,
            str(row.n),
            _pct(row.price_rmse, ",.3f"),
            _fmt(row.rmse),
            _u2(row.theil_u),
            _fmt(row.dm_pvalue, 3),
            _fmt(row.cw_pvalue, 3),
            _pct(row.directional_accuracy, ".1%"),
            _pct(row.da_base_rate, ".1%"),
            _fmt(row.da_pvalue, 3),
            _fmt(row.correlation, 3),
        ]
        for row in metrics.itertuples()
    ]
    if single is not None:  # one ticker: it goes in the title
        columns, rows = columns[1:], [r[1:] for r in rows]
    invalid = [
        f"{row.ticker} {row.model}: {row.n_invalid}" for row in metrics.itertuples() if getattr(row, "n_invalid", 0)
    ]
    caption = (
        (
            "predictions with no finite value (a predicted close <= 0), left out of the errors and traded as no "
            "signal: " + ", ".join(invalid)
        )
        if invalid
        else None
    )
    title = "Forecast errors, out of sample" + (f", {single}" if single else "") + " (naive: tomorrow = today)"
    return fitted_table(title, columns, rows, wide, caption)


def volatility_view(table, wide: bool = False) -> FittedTable:
    """A volatility run's scores per (ticker, model): QLIKE first, the tests against GARCH and HAR, MZ, VaR."""
    single = _single_ticker(table)
    columns = [
        ("ticker", "left", IDENTITY),
        ("model", "left", IDENTITY),
        ("QLIKE", "right", 9),
        ("DM p (GARCH)", "right", 8),
        ("DM p (HAR)", "right", 7),
        ("MZ slope", "right", 5),
        ("MZ R²", "right", 4),
        ("VaR 99% hits", "right", 6),
        ("Kupiec p", "right", 3),
        ("n", "right", 1),
    ]
    rows = [
        [
            row.ticker,
            row.model,
            _pct(row.qlike, ".4f"),
            _fmt(row.dm_garch_pvalue, 3),
            _fmt(row.dm_har_pvalue, 3),
            _pct(row.mz_slope, ".2f"),
            _pct(row.mz_r2, ".3f"),
            _pct(row.var_exceed, ".2%"),
            _fmt(row.kupiec_pvalue, 3),
            str(row.n),
        ]
        for row in table.itertuples()
    ]
    title = "Volatility forecasts, out of sample"
    if single is not None:
        columns, rows = columns[1:], [r[1:] for r in rows]
        title += f", {single}"
    caption = (
        "QLIKE: lower is better (0: perfect), against one realized-variance proxy for every model; DM p: "
        "Diebold-Mariano on QLIKE; MZ: proxy regressed on forecast (slope 1 unbiased); VaR 99% hits: days below "
        "the forecast's 99% value-at-risk (1% expected); Kupiec p: the test that the hit rate is 1%"
    )
    return fitted_table(title, columns, rows, wide, caption)


def cross_section_view(table, wide: bool = False) -> FittedTable:
    """A universe model's ranking statistics per model: what the cross-section forecast is worth."""
    columns = [
        ("model", "left", IDENTITY),
        ("rank IC", "right", 9),
        ("NW t", "right", 8),
        ("rank ICIR", "right", 5),
        ("IC", "right", 4),
        ("top-k hit", "right", 6),
        ("Q5-Q1/day", "right", 7),
        ("days", "right", 3),
    ]
    rows = [
        [
            row.model,
            _pct(row.rank_ic, ".4f"),
            _pct(row.rank_ic_t, ".2f"),
            _pct(row.rank_icir, ".3f"),
            _pct(row.ic, ".4f"),
            _pct(row.top_k_hit, ".1%"),
            _pct(row.spread, ".3%"),
            str(row.n_dates),
        ]
        for row in table.itertuples()
    ]
    k = int(table["k"].iloc[0]) if len(table) else 5
    caption = (
        f"per day across the tickers, then over days; NW t: Newey-West t of the mean rank IC; IC: against the "
        f"return; top-k hit: share of the {k} best-ranked beating the day's median (chance 50%); Q5-Q1: top fifth "
        "minus bottom fifth, before costs; naive predicts no difference, so it ranks nothing"
    )
    return fitted_table("Ranking the universe, out of sample", columns, rows, wide, caption)


def comparison_view(
    comparison, title: str = "Strategies (same out-of-sample dates, after costs)", wide: bool = False
) -> FittedTable:
    single = _single_ticker(comparison)
    columns = [
        ("ticker", "left", IDENTITY),
        ("strategy", "left", IDENTITY),
        ("total", "right", 8),
        ("CAGR", "right", 6),
        ("vol", "right", 3),
        ("Sharpe", "right", 9),
        ("90% interval", "right", 6),
        ("Sortino", "right", 2),
        ("max DD", "right", 7),
        ("exposure", "right", 4),
        ("trades", "right", 5),
        ("refused", "right", 6),
        ("turnover", "right", 1),
        ("win rate", "right", 2),
        ("costs", "right", 3),
    ]
    rows = [
        [
            row.ticker,
            row.strategy,
            f"{row.total_return:+.1%}",
            f"{row.cagr:+.2%}",
            f"{row.volatility:.1%}",
            _pct(row.sharpe, ".2f"),
            _interval(getattr(row, "sharpe_low", None), getattr(row, "sharpe_high", None)),
            _pct(row.sortino, ".2f"),
            f"{row.max_drawdown:.1%}",
            f"{row.exposure:.0%}",
            str(row.trades),
            _count(getattr(row, "rejected", None)),
            f"{row.turnover:.1f}x",
            "—" if row.win_rate != row.win_rate else f"{row.win_rate:.0%}",
            f"{row.costs:,.0f}",
        ]
        for row in comparison.itertuples()
    ]
    if single is not None:
        columns, rows = columns[1:], [r[1:] for r in rows]
        title = f"{title}, {single}"
    return fitted_table(title, columns, rows, wide)


def overfit_line(stats: dict) -> str | None:
    """SPA and PBO over every configuration tried on these data and days, in one line (None without them)."""
    if not stats or not stats.get("configurations"):
        return None
    n = stats["configurations"]
    spa = (
        f"SPA p-value of 'none of the {n} configuration{'s' if n != 1 else ''} tried beats the benchmark' "
        f"{_fmt(stats['spa_benchmark_pvalue'], 2)} ({_fmt(stats['spa_cash_pvalue'], 2)} against cash; small: the "
        "best does)"
    )
    pbo = (
        f"PBO {_fmt(stats['pbo'], 2)} (how often the in-sample best lands below the median out of sample)"
        if stats["pbo"] == stats["pbo"]
        else "PBO needs two configurations on the same days"
    )
    return f"{spa}; {pbo}"


def dsr_line(comparison, trials) -> str:
    """Which N the deflated Sharpe used, and the LSTM strategies' DSR."""
    searched = comparison.dropna(subset=["dsr"])
    values = ", ".join(f"{row.strategy} on {row.ticker} {row.dsr:.0%}" for row in searched.itertuples())
    from reports.index import variance_note

    used = [float(v) for v in searched.get("dsr_variance", [])]
    return (
        f"DSR {values or '—'}: {trials.describe()} (trial ledger; {variance_note(used, trials.variance, trials.n)}); "
        "benchmarks and controls get PSR only"
    )


def warn_silent(silent: list[str]) -> None:
    if silent:
        errors.print(
            f"warning: never had a signal, so these rows are cash, not a verdict: {'; '.join(silent)}",
            markup=False,
            highlight=False,
            soft_wrap=True,
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


@app.command()
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


@app.command()
@user_errors
def report(run_dir: Annotated[Path, typer.Argument(help="a run dir under runs/")], open_: OpenOpt = False) -> None:
    """(Re)generate a run's reports: tear sheets, forecast plots and reports/index.html."""
    console.print(f"open: {_make_reports(run_dir, open_)}", soft_wrap=True)


@app.command()
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
    from backtests.config import load_config
    from backtests.errors import ConfigError
    from backtests.experiment import origin_config, run_backtest_only

    check_output_folder(runs_dir, "--runs-dir")
    origin = origin_config(predictions) if config is None else None
    sets = (set_ or []) + ([f"data.source={_quote(data)}"] if data else [])
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


@app.command()
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


@app.command()
@user_errors
def audit(
    config: ConfigArg = None,
    set_: SetOpt = None,
    date: Annotated[
        list[str] | None,
        typer.Option(
            help="a cut date D (ISO; repeatable); default: a fold start "
            "mid-span, the session before it and one inside it"
        ),
    ] = None,
    executor: ExecutorOpt = None,
    workers: WorkersOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Prove there is no look-ahead: change every price after a date D and rerun.

    For a universe model (model.scope = global) each D changes one ticker's prices (another one at each
    D), which shows leakage across tickers too. For each D, checks that no prediction, decision, fill or equity value of any strategy made on or
    before D changed, and that every prediction's model was trained on targets known by its date.
    Exit code 1 if anything did. Costs one walk-forward per cut date, plus one.
    """
    from backtests.audit import parse_dates, run_audit
    from backtests.config import load_config
    from backtests.experiment import load_experiment_prices

    cfg = load_config(config, (set_ or []) + execution_sets(executor, workers, ray_address))
    connect(cfg)
    prices = load_experiment_prices(cfg)
    cuts = parse_dates(cfg, prices, date)
    with progress_bars() as bars:
        result = run_audit(cfg, prices, cuts, RichProgress(bars))
    view = Table(title="Look-ahead audit: prices after D changed; what was made on or before D must not move")
    from forecasting.tasks import task_of

    universe = task_of(cfg.model).universe
    for col in (
        ("D",)
        + (("changed",) if universe else ())
        + (
            "predictions",
            "decisions",
            "fills",
            "equity days",
            "later preds moved",
        )
    ):
        view.add_column(col, justify="right")
    for cut in result.cuts:
        view.add_row(
            str(cut.date.date()),
            *((cut.perturbed,) if universe else ()),
            f"{cut.predictions_changed}/{cut.predictions_checked}",
            f"{cut.decisions_changed}/{cut.decisions_checked}",
            f"{cut.fills_changed}/{cut.fills_checked}",
            f"{cut.equity_days_changed}/{cut.equity_days_checked}",
            str(cut.later_changed),
        )
    console.print(view)
    console.print(
        "changed/checked on or before D, over every strategy; 'later preds moved' shows the "
        "perturbation did reach the model"
    )
    console.print(
        f"predictions whose model was trained on a target after their date: "
        f"{result.trained_after} of {result.predictions}"
    )
    for cut in result.cuts:
        if cut.changed_strategies:
            console.print(f"{cut.date.date()}: moved by later prices: {', '.join(cut.changed_strategies)}")
    if result.passed:
        console.print("[green]passed[/]: nothing made on or before D depends on prices after it")
    else:
        console.print("[red]FAILED[/]: something made on or before D depends on later prices")
        raise typer.Exit(1)


@app.command()
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


@app.command()
@user_errors
def sensitivity(
    run_dir: Annotated[Path, typer.Argument(help="a run dir written by `lstm-trader run` or `backtest`")],
    costs: Annotated[str, typer.Option(help="costs per side in basis points, comma-separated")] = "0,2,5,10,20,50",
    ledger: LedgerOpt = None,
) -> None:
    """Trade the run's predictions again at other costs: Sharpe and return per cost, break-even costs.

    Writes sensitivity.csv and break_even.csv into the run dir (`report` then plots them); each
    cost of the LSTM strategies is a configuration tried, so it goes into the trial ledger.
    """
    from backtests.sensitivity import parse_costs, run_sensitivity

    grid = parse_costs(costs)
    with console.status(f"backtesting every strategy at {len(grid)} costs"):
        run, table, even = run_sensitivity(run_dir, grid, ledger)
    view = Table(title="Sharpe by cost per side (bp)")
    view.add_column("book", justify="left")
    view.add_column("strategy", justify="left")
    for cost in grid:
        view.add_column(f"{cost:g}", justify="right")
    for (book, strategy), rows in table.groupby(["ticker", "strategy"], sort=False):
        view.add_row(book, strategy, *(f"{v:.2f}" for v in rows.sort_values("cost_bp")["sharpe"]))
    console.print(view)
    for row in even.itertuples():
        console.print(
            f"{row.strategy} on {row.book}: Sharpe falls to buy-and-hold's at "
            f"{_bp(row.break_even_vs_buy_and_hold_bp, grid)} and to 0 at "
            f"{_bp(row.break_even_vs_zero_bp, grid)} per side"
        )
    console.print(f"saved {run / 'sensitivity.csv'} and {run / 'break_even.csv'}", soft_wrap=True)


def _bp(value: float, grid: list[float]) -> str:
    if value != value:
        return f"more than {grid[-1]:g} bp (the largest cost tried)"
    if value == grid[0]:
        return f"or below {grid[0]:g} bp (already there at the lowest cost tried)"
    return f"{value:.1f} bp"


def short_source(source: str, width: int = 24) -> str:
    """A data source as a table cell: each of its sources cut to `width` characters, keeping the scheme and
    the end of the path (what tells two files apart); the CSV and --wide have it whole."""

    def cut(one: str) -> str:
        if len(one) <= width:
            return one
        scheme, _, rest = one.partition(":")
        if not scheme.isalpha():  # (no scheme: a path, perhaps with a colon in it)
            scheme, rest = "", one
        head = f"{scheme}:" if scheme else ""
        return head + "…" + rest[len(rest) - (width - len(head) - 1) :]

    return ", ".join(cut(part) for part in source.split(", "))


@app.command("ledger")
@user_errors
def ledger_cmd(
    data: Annotated[
        str | None, typer.Option(help="a data fingerprint (or its first characters): list its configurations")
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="also write the rows shown to this CSV file")] = None,
    ledger: LedgerOpt = None,
    wide: WideOpt = False,
) -> None:
    """The trial ledger: per data set, the configurations tried (N), their Sharpes' spread (V), SPA, PBO.

    Without --data, one line per data fingerprint: N, V, the best configuration's deflated Sharpe,
    Hansen's SPA p-values (does the best beat the benchmark, and cash, after accounting for all?) and
    the probability of backtest overfitting. With --data, that data's configurations, one line each
    (kind, when, span, annualised Sharpe, settings). The deflated Sharpe of a run counts them."""
    from backtests.rundir import write_csv
    from backtests.trials import TrialLedger, ledger_configurations, ledger_summary, open_trial_ledger

    if csv is not None:
        check_output_file(csv, "--csv")
    if ledger is not None and not TrialLedger(ledger).path.is_file():  # --ledger names one to read, never a new one
        raise BacktestError(
            f"no trial ledger at {TrialLedger(ledger).path}", "name an existing ledger file, or leave --ledger out"
        )
    book = open_trial_ledger(ledger)
    console.print(f"trial ledger: {book.path}", soft_wrap=True, highlight=False)
    if data is None:
        table = ledger_summary(book)
        columns = [  # what decides (N, best DSR, SPA p, PBO) stays longest at a narrow terminal
            ("data fingerprint", "left", IDENTITY),
            ("source", "left", 7),
            ("N", "right", 9),
            ("V", "right", 6),
            ("best DSR", "right", 9),
            ("best Sharpe", "right", 5),
            ("SPA p", "right", 8),
            ("SPA p cash", "right", 4),
            ("PBO", "right", 8),
            ("PBO tuning", "right", 3),
            ("rows", "right", 2),
            ("last", "right", 2),
        ]
        rows = [
            [
                r.data,
                short_source(r.source) if not wide else r.source,
                str(r.n),
                _fmt(r.variance, 3),
                _pct(r.best_dsr, ".0%"),
                _pct(r.best_sharpe, ".2f"),
                _pct(r.spa_benchmark_pvalue, ".2f"),
                _pct(r.spa_cash_pvalue, ".2f"),
                _pct(r.pbo_test, ".2f"),
                _pct(r.pbo_validation, ".2f"),
                str(r.rows),
                r.last[:10],
            ]
            for r in table.itertuples()
        ]
        title = "Data sets and the configurations tried on them"
        caption = (
            "N: distinct configurations; V: variance of their per-day out-of-sample Sharpes; best DSR: the best "
            "configuration's deflated Sharpe by N and V; best Sharpe: annualised; SPA p: Hansen's test "
            "that the best out-of-sample configuration beats the benchmark (cash), small: it does; PBO: probability "
            "of backtest overfitting over the out-of-sample runs (the tuning trials), about 0.5 for noise"
        )
    else:
        table = ledger_configurations(book, data)
        columns = [
            ("kind", "left", IDENTITY),
            ("when", "left", 6),
            ("span", "left", 5),
            ("Sharpe", "right", 8),
            ("key", "left", 3),
            ("settings", "left", 2),
        ]
        rows = [
            [r.kind, r.time[:16], r.span, _pct(r.sharpe_annual, ".2f"), r.key, r.params[:60]]
            for r in table.itertuples()
        ]
        title, caption = f"Configurations tried on {table['data'].iloc[0]}", "Sharpe: annualised, of the LSTM strategy"
    show(fitted_table(title, columns, rows, wide, caption))
    if csv is not None:
        write_csv(csv, table)
        console.print(f"saved {csv}", soft_wrap=True)


@app.command("forecast")
@user_errors
def forecast_cmd(
    data: Annotated[str | None, typer.Option(help="data URI; default: the config's data.source")] = None,
    days: Annotated[
        int,
        typer.Option(
            min=1, max=260, help="trading days to forecast (exchange calendar paper.calendar, XNYS by default)"
        ),
    ] = 10,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="forecast from the close of this date (ISO) instead of the last bar, using no later bar"
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="TOML experiment for the network settings")] = None,
    set_: SetOpt = None,
    out: Annotated[Path, typer.Option(help="folder for the forecast CSV and plot")] = Path("runs/forecasts"),
) -> None:
    """Forecast the next N trading days: a direct multi-horizon network (one output per day ahead)
    with an 80% band."""
    from backtests.config import load_config
    from backtests.forecast_files import forecast_to_files, parse_as_of

    day = parse_as_of(as_of)
    cfg = load_config(config, (set_ or []) + ([f"data.source={_quote(data)}"] if data else []))
    with progress_bars() as bars:
        saved = list(forecast_to_files(cfg, days, day, out, RichProgress(bars)))
    seeds = f", {cfg.model.n_seeds} seeds" if cfg.model.n_seeds > 1 else ""
    for item in saved:
        table, history = item.table, item.history
        title = (
            f"{item.ticker}: {days}-day forecast from the close of {history.index[-1].date()} "
            f"({history['close'].iloc[-1]:,.2f}); direct multi-horizon network{seeds}"
        )
        known = table["price_true"].notna().any()
        columns = [
            ("date", "right", IDENTITY),
            ("step", "right", 3),
            ("predicted close", "right", 9),
            ("80% band", "right", 8),
            ("log return", "right", 5),
        ] + ([("actual", "right", 7)] if known else [])
        rows = [
            [
                str(row.date.date()),
                str(row.step),
                f"{row.price_pred:,.2f}",
                f"{row.price_low:,.2f} - {row.price_high:,.2f}",
                f"{row.y_pred:+.2%}",
            ]
            + ([f"{row.price_true:,.2f}" if row.price_true == row.price_true else "—"] if known else [])
            for row in table.itertuples()
        ]
        show(fitted_table(title, columns, rows))
        console.print(
            "80% band: the held-out residuals in units of the volatility at their origin (EWMA), at today's "
            f"volatility; on held-out days it was not set on it held {table['band_coverage'].iloc[0]:.0%} of the "
            f"time at step 1 ({table['fixed_band_coverage'].iloc[0]:.0%} for a band of fixed width)"
        )
        console.print(f"saved {item.csv} and {item.png}", soft_wrap=True)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@data_app.command("fetch")
@user_errors
def data_fetch(
    tickers: Annotated[list[str], typer.Argument(help="tickers, e.g. AAPL MSFT")],
    source: Annotated[
        str,
        typer.Option(
            help="yahoo (yahoo:TICKER) or alpaca (alpaca:TICKER; keys in APCA_API_KEY_ID and APCA_API_SECRET_KEY)"
        ),
    ] = "yahoo",
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="the data.cache_dir folder (alpaca: its alpaca/ subfolder); default ~/.cache/lstm-trader/yahoo"
        ),
    ] = None,
    refresh: Annotated[bool, typer.Option(help="bring the cache up to date (yahoo: download again)")] = False,
) -> None:
    """Download daily bars from Yahoo Finance or Alpaca into the on-disk cache that yahoo:TICKER or
    alpaca:TICKER reads."""
    from forecasting.data import alpaca_cache, load_alpaca, load_yahoo

    if source not in ("yahoo", "alpaca"):
        raise BacktestError(f"unknown --source '{source}'", "use --source yahoo or --source alpaca")
    for ticker in tickers:
        if source == "alpaca":
            frame = load_alpaca(ticker.upper(), cache_dir=alpaca_cache(cache_dir), refresh=refresh, offline_ok=False)
        else:
            frame = load_yahoo(ticker.upper(), cache_dir=cache_dir, refresh=refresh, offline_ok=False)
        console.print(
            f"{source}:{ticker.upper()}: {len(frame)} bars, {frame.index[0].date()} to {frame.index[-1].date()}"
        )


def main(argv: list[str] | None = None) -> int:
    """The console entry point: the app, with usage errors (unknown option, bad value, missing
    argument) printed as one `error:` line plus a hint, like every other user error, exit 2."""
    from lstm_trader.console import errors, plain_metavars

    command = typer.main.get_command(app)
    plain_metavars(command)
    try:
        return command(args=argv, prog_name="lstm-trader", standalone_mode=False) or 0
    except _usage_errors() as exc:
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else "lstm-trader"
        message = " ".join(exc.format_message().split())
        errors.print(f"error: {message} (hint: {command} -h)", markup=False, highlight=False, soft_wrap=True)
        return int(getattr(exc, "exit_code", 2) or 2)
    except typer.Abort:
        errors.print("aborted", markup=False)
        return 130


def _usage_errors() -> tuple[type[Exception], ...]:
    """Typer's own exceptions (it vendors Click from 0.2x on), and Click's for older Typer."""
    found: list[type[Exception]] = []
    try:
        from typer.exceptions import TyperException

        found.append(TyperException)
    except ImportError:  # pragma: no cover - older Typer
        pass
    try:
        import click

        found.append(click.ClickException)
    except ImportError:
        pass
    return tuple(found)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
