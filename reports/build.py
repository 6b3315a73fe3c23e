"""Everything in `<run>/reports/`, from what the run wrote: it never trains or trades."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from reports import derive, interactive
from reports.index import LINKED_FILES, IndexPage, render_index
from reports.plots import (
    plot_calibration,
    plot_cumulative_daily,
    plot_error_race,
    plot_holdings,
    plot_qlike_race,
    plot_recent_predictions,
    plot_residual_diagnostics,
    plot_sensitivity,
    plot_trades,
    plot_trading,
    plot_var,
    plot_volatility,
)
from reports.rundata import _read_csv, read_run
from reports.tearsheet import tearsheet

BENCHMARK = "buy_and_hold"
UNIVERSE_BENCHMARK = "equal_weight"  # a ranked portfolio's benchmark: the universe in equal weights


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def _config(run: Path) -> tuple[dict, str]:
    """The run's config.toml as a dict and as text (empty when missing or unreadable)."""
    import tomllib

    path = run / "config.toml"
    if not path.is_file():
        return {}, ""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError:
        return {}, text


def costs_note(config: dict, fill_rule: str = "next open") -> str:
    """The trading costs a run's results are after, and how orders filled, in one line."""
    broker = config.get("broker", {})
    if not broker:
        return ""
    parts = [f"commission {broker.get('commission_pct', 0):.3%} of traded value"]
    if broker.get("commission_per_share"):
        parts.append(f"{broker['commission_per_share']:g} per share")
    if broker.get("commission_min"):
        parts.append(f"at least {broker['commission_min']:g} per order")
    parts.append(f"slippage {broker.get('slippage_pct', 0):.3%} of price")
    if broker.get("short_borrow_rate"):
        parts.append(f"borrow {broker['short_borrow_rate']:.2%}/yr")
    cash = broker.get("cash")
    return (
        "after costs: "
        + ", ".join(parts)
        + f"; filled at the {fill_rule}"
        + (f"; starting cash {cash:,.0f}" if cash else "")
    )


def build_reports(run_dir: str | Path, jobs: int | None = None, progress=None) -> Path:
    """Write tear sheets, plots and index.html into `<run>/reports/`; returns the index path.

    Tear sheets (a few seconds each) are rendered by `jobs` worker processes (default: one per
    core) while this process draws the plots; `jobs = 1` renders everything here. `progress`, when
    given, is called as progress(done, total) after each chart and tear sheet.
    """
    run = Path(run_dir)
    metrics, comparison, returns, equity, predictions = read_run(run)
    fills, trades = _read_csv(run / "fills.csv"), _read_csv(run / "trades.csv")
    config, config_text = _config(run)
    note = costs_note(config, metrics.get("summary", {}).get("fill_rule", "next open"))
    out = run / "reports"
    out.mkdir(exist_ok=True)
    # a caveat of the data (a survivorship-biased universe) goes on every page, the tear sheets too
    sheet_note = "; ".join([note, *metrics.get("summary", {}).get("notes", [])]).strip("; ")
    tasks = tearsheet_tasks(run.name, returns, out, comparison, sheet_note) if returns is not None else {}
    workers = min(jobs or os.cpu_count() or 1, len(tasks))
    started = None
    if workers > 1:
        # Starting the workers waits for the fork server to import QuantStats (seconds): a thread
        # does it while this one draws the charts. (One worker: the sheets are drawn here, after
        # the charts, since pyplot is not thread-safe.)
        from concurrent.futures import ThreadPoolExecutor

        starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tearsheets")
        started = starter.submit(_start_tearsheets, tasks, workers)
        starter.shutdown(wait=False)
    page = IndexPage(
        run.name,
        metrics.get("summary", {}),
        metrics.get("forecast", []),
        comparison,
        costs=note,
        config_text=config_text,
        files=[name for name in LINKED_FILES if (run / name).is_file()],
        cross_section=metrics.get("cross_section", []),
        volatility=metrics.get("volatility", []),
        cross_section_per_fold=metrics.get("cross_section_per_fold", []),
    )
    charts = _chart_jobs(page, out, predictions, equity, fills, trades, metrics, run)
    total, done = len(charts) + len(tasks), 0
    if progress:
        progress(0, total)

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    for job in charts:
        job()
        tick()
    futures = started.result() if started is not None else {}
    for key, args in tasks.items():
        page.sheets[key] = _collect(futures[key], lambda args=args: args) if key in futures else render_tearsheet(args)
        tick()
    index = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(render_index(page), encoding="utf-8")
    os.replace(tmp, index)
    return index


def _chart_jobs(page: IndexPage, out: Path, predictions, equity, fills, trades, metrics: dict, run: Path) -> list:
    """One callable per chart group; each draws its PNGs (and interactive chart) and registers them."""
    jobs = []
    forecastable = predictions is not None and {"y_true", "y_pred", "price_pred", "price_true"} <= set(predictions)
    close = derive.closes(predictions) if forecastable else {}
    universe = bool(metrics.get("cross_section"))
    if universe:  # a universe model: its charts are across tickers, not one set per ticker
        jobs += _cross_section_jobs(page, out, run, equity, fills, close)
    elif metrics.get("volatility") and predictions is not None:  # variance forecasts: their own charts
        for ticker in dict.fromkeys(predictions["ticker"]):
            jobs.append(lambda ticker=ticker: _volatility_charts(page, out, predictions, ticker))
    elif forecastable:
        page.per_fold = derive.per_fold_rows(metrics.get("forecast_per_fold", []), predictions)
        lstm_tickers = [
            t
            for t in dict.fromkeys(predictions["ticker"])
            if ((predictions["ticker"] == t) & (predictions["model"] == "lstm")).any()
        ]
        for ticker in lstm_tickers:
            jobs.append(lambda ticker=ticker: _forecast_charts(page, out, predictions, ticker))
    if equity is not None:
        front = {"pictures": 0, "interactive": 0}  # trading charts lead the page, books in the tables' order
        for book in dict.fromkeys(c.split(":", 1)[0] for c in equity.columns):
            jobs.append(lambda book=book: _trading_charts(page, out, equity, fills, trades, close, book, front))
    if (run / "sensitivity.csv").is_file():
        table = pd.read_csv(run / "sensitivity.csv")
        for book in dict.fromkeys(table["ticker"]):
            name = f"sensitivity_{_slug(str(book))}.png"
            jobs.append(
                lambda book=book, name=name: (
                    plot_sensitivity(table, out / name, book),
                    page.pictures.append((f"{book}: Sharpe by trading cost", name)),
                )
            )
    if jobs and (equity is not None or forecastable):
        jobs.insert(0, lambda: setattr(page, "asset", interactive.write_asset(out)))
    return jobs


def _cross_section_jobs(page: IndexPage, out: Path, run: Path, equity, fills, close) -> list:
    """A universe model's charts: cumulative rank IC and quintile spread per model, and the holdings and
    turnover of the portfolios that trade the LSTM's ranking (and of the equal-weight benchmark)."""
    jobs = []
    daily_path = run / "cross_section_daily.parquet"
    if daily_path.is_file():
        daily = pd.read_parquet(daily_path)
        for column, name, title, label in (
            (
                "rank_ic",
                "rank_ic.png",
                "Cumulative daily rank IC (rising = the model ranks the stocks better than chance)",
                "cumulative rank IC",
            ),
            (
                "spread",
                "quintile_spread.png",
                "Cumulative top-minus-bottom quintile return (rising = the top-ranked fifth beats the bottom one)",
                "cumulative log return",
            ),
        ):
            jobs.append(
                lambda column=column, name=name, title=title, label=label: (
                    plot_cumulative_daily(derive.cumulative_daily(daily, column), out / name, title, label),
                    page.pictures.append((title, name)),
                )
            )
    if equity is not None and fills is not None and len(fills):
        columns = [c for c in equity.columns if "lstm" in c or c.endswith(":" + UNIVERSE_BENCHMARK)]
        for column in columns[:4]:
            book, strategy = column.split(":", 1)
            if fills[(fills["book"] == book) & (fills["strategy"] == strategy)]["ticker"].nunique() < 2:
                continue
            name = f"holdings_{_slug(book)}_{_slug(strategy)}.png"
            title = f"{strategy}: holdings and turnover"
            jobs.append(
                lambda column=column, book=book, strategy=strategy, name=name, title=title: (
                    plot_holdings(*derive.holdings(fills, close, equity[column], book, strategy), out / name, title),
                    page.pictures.append((title, name)),
                )
            )
    return jobs


def _volatility_charts(page: IndexPage, out: Path, predictions: pd.DataFrame, ticker: str) -> None:
    """A volatility run's charts of one ticker: forecasts against the realized proxy, the QLIKE race
    against GARCH, and the returns below the LSTM's 99% VaR."""
    slug = _slug(str(ticker))
    models = [m for m in ("lstm", "har", "gjr", "ewma") if (predictions["model"] == m).any()]
    races = {m: derive.qlike_race(predictions, ticker, m) for m in models}
    for title, name, draw in (
        (
            f"{ticker}: volatility forecasts",
            f"volatility_{slug}.png",
            lambda p: plot_volatility(derive.annualised_vols(predictions, ticker), p, ticker),
        ),
        (
            f"{ticker}: who wins, when (QLIKE against GARCH)",
            f"qlike_race_{slug}.png",
            lambda p: plot_qlike_race(races, p, ticker),
        ),
        (
            f"{ticker}: 99% value-at-risk",
            f"var_{slug}.png",
            lambda p: plot_var(derive.var_exceedances(predictions, ticker), p, ticker),
        ),
    ):
        draw(out / name)
        page.pictures.append((title, name))


def _forecast_charts(page: IndexPage, out: Path, predictions: pd.DataFrame, ticker: str) -> None:
    slug = _slug(str(ticker))
    lstm = derive.model_rows(predictions, ticker, "lstm")
    races = {
        m: derive.error_race(predictions, ticker, m)
        for m in ("lstm", "ridge")
        if ((predictions["ticker"] == ticker) & (predictions["model"] == m)).any()
    }
    page.interactive.append(interactive.race_chart(races, derive.fold_starts(lstm), ticker, f"race-{slug}"))
    for title, name, draw in (
        (f"{ticker}: who wins, when", f"error_race_{slug}.png", plot_error_race),
        (f"{ticker}: the last predictions", f"recent_predictions_{slug}.png", plot_recent_predictions),
        (f"{ticker}: calibration", f"calibration_{slug}.png", plot_calibration),
        (f"{ticker}: residuals", f"residuals_{slug}.png", plot_residual_diagnostics),
    ):
        draw(predictions, out / name, ticker)
        page.pictures.append((title, name))


def _trading_charts(
    page: IndexPage, out: Path, equity: pd.DataFrame, fills, trades, close, book: str, front: dict[str, int]
) -> None:
    """A book's trading charts, placed after the books drawn before it and ahead of the forecast charts."""
    slug = _slug(book)
    cols = [c for c in equity.columns if c.split(":", 1)[0] == book]
    exposure = derive.exposures(equity[cols], fills, close)
    page.interactive.insert(
        front["interactive"], interactive.trading_chart(equity[cols], exposure, book, f"trading-{slug}")
    )
    front["interactive"] += 1
    plot_trading(equity[cols], exposure, out / f"trading_{slug}.png", book)
    page.pictures.insert(front["pictures"], (f"{book}: equity, drawdown, exposure", f"trading_{slug}.png"))
    front["pictures"] += 1
    if trades is not None and book in close:
        mine = trades[(trades["book"] == book) & (trades["strategy"] == "lstm_signal")]
        if len(mine):
            span = close[book].loc[equity.index.min() : equity.index.max()]
            plot_trades(span, mine, out / f"trades_{slug}.png", f"{book}: lstm_signal's trades on the close")
            page.pictures.insert(front["pictures"], (f"{book}: lstm_signal's trades", f"trades_{slug}.png"))
            front["pictures"] += 1


def tearsheet_tasks(
    run_id: str, returns: pd.DataFrame, out: Path, comparison: pd.DataFrame | None = None, note: str = ""
) -> dict[tuple[str, str], tuple]:
    """`tearsheet` arguments per (book, strategy) of a long returns table (ticker, strategy, date,
    return); each strategy is benchmarked against its book's `benchmark_of`. A strategy whose returns
    never change (it never traded) gets none: there is nothing to show and QuantStats cannot regress it."""
    held, intervals = {}, {}
    if comparison is not None and len(comparison) and "exposure" in comparison:
        held = {(r["ticker"], r["strategy"]): float(r["exposure"]) for r in comparison.to_dict(orient="records")}
    if comparison is not None and len(comparison) and "sharpe_low" in comparison:
        intervals = {(r["ticker"], r["strategy"]): interval_note(r) for r in comparison.to_dict(orient="records")}
    tasks = {}
    for (book, strategy), rows in returns.groupby(["ticker", "strategy"], sort=False):
        series = rows.set_index("date")["return"].rename(strategy)
        if series.nunique() <= 1:  # never traded: QuantStats cannot regress a constant on the benchmark
            continue
        bench_name = benchmark_of(returns, book)
        bench_rows = returns[(returns["ticker"] == book) & (returns["strategy"] == bench_name)]
        benchmark = bench_rows.set_index("date")["return"] if strategy != bench_name and len(bench_rows) else None
        name = f"tearsheet_{_slug(book)}_{_slug(strategy)}.html"
        exposure = None
        if (book, strategy) in held:
            exposure = (held[(book, strategy)], held.get((book, bench_name), float("nan")))
        tasks[(book, strategy)] = (
            series,
            out / name,
            f"{strategy} on {book} — run {run_id}",
            benchmark,
            bench_name,
            "; ".join(part for part in (intervals.get((book, strategy), ""), note) if part),
            exposure,
        )
    return tasks


def interval_note(row: dict) -> str:
    """The strategy's stationary-bootstrap 90% intervals, for its tear sheet's header."""
    parts = []
    for key, label, spec in (("sharpe", "Sharpe", ".2f"), ("cagr", "CAGR", ".1%"), ("max_drawdown", "max DD", ".1%")):
        low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
        if low is not None and high is not None and low == low and high == high:
            parts.append(f"{label} {format(low, spec)} to {format(high, spec)}")
    return ("90% bootstrap intervals: " + ", ".join(parts)) if parts else ""


def benchmark_of(returns: pd.DataFrame, book: str) -> str:
    """A book's benchmark: the equal-weight universe where the book has one (a ranked portfolio's),
    else buy-and-hold."""
    strategies = set(returns.loc[returns["ticker"] == book, "strategy"])
    return UNIVERSE_BENCHMARK if UNIVERSE_BENCHMARK in strategies else BENCHMARK


def _start_tearsheets(tasks: dict, jobs: int) -> dict:
    """Submit one tear sheet per (book, strategy) to `jobs` worker processes; values are futures."""
    from concurrent.futures import ProcessPoolExecutor

    try:
        context = prepare_workers()
    except ValueError:  # no fork server on this platform (Windows): the sheets are drawn in this process
        return {}
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context)
    futures = {key: pool.submit(render_tearsheet, args) for key, args in tasks.items()}
    pool.shutdown(wait=False)
    return futures


def prepare_workers():
    """Start the fork server that tear-sheet workers come from, if it is not running yet.

    It imports QuantStats once, so workers start without paying the import, and they start
    clean: never forked from a process running TensorFlow's threads. Returns the multiprocessing
    context to make pools with.
    """
    import multiprocessing

    context = multiprocessing.get_context("forkserver")  # POSIX only; see _start_tearsheets
    context.set_forkserver_preload(["reports.tearsheet", "quantstats"])
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return context


def _collect(job, task) -> str:
    """A tear sheet's file name from its future; a dead worker's sheet is rendered here."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        return job.result()
    except BrokenProcessPool:
        return render_tearsheet(task())


def render_tearsheet(args: tuple) -> str:
    """Render one task of `tearsheet_tasks`; returns the file name."""
    return tearsheet(*args).name
