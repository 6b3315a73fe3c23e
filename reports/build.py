"""Everything in `<run>/reports/`, from what the run wrote: it never trains or trades."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd

from reports.errors import ReportError
from reports.index import render_index
from reports.plots import (plot_drawdowns, plot_equity, plot_predicted_vs_actual, plot_residuals, plot_rmse_by_fold,
                           plot_sensitivity)
from reports.tearsheet import tearsheet

BENCHMARK = "buy_and_hold"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def _read(run: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None, pd.DataFrame | None]:
    if not run.is_dir():
        raise ReportError(f"run dir not found: {run}", "pass a folder under runs/ written by `lstm-trader run`")
    if not (run / "metrics.json").is_file():
        raise ReportError(f"{run} has no metrics.json", "pass a run dir written by `lstm-trader run` or `backtest`")
    try:
        metrics = json.loads((run / "metrics.json").read_text())
    except json.JSONDecodeError:
        raise ReportError(f"{run}/metrics.json is not valid JSON", "rerun the experiment") from None
    comparison = _comparison(run)
    returns = pd.read_parquet(run / "returns.parquet") if (run / "returns.parquet").is_file() else None
    equity = pd.read_csv(run / "equity.csv", index_col="date", parse_dates=["date"]) \
        if (run / "equity.csv").is_file() else None
    predictions = pd.read_parquet(run / "predictions.parquet") if (run / "predictions.parquet").is_file() else None
    return metrics, comparison, returns, equity, predictions


def _comparison(run: Path) -> pd.DataFrame:
    """The run's comparison table; an empty or foreign file is an error, not a traceback or a blank page."""
    path = run / "comparison.csv"
    if not path.is_file():
        return pd.DataFrame()
    hint = f"backtest its predictions again: lstm-trader backtest {run / 'predictions.parquet'}"
    try:
        table = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        raise ReportError(f"{path} is empty or not a CSV table", hint) from None
    missing = {"strategy", "ticker", "sharpe"} - set(table.columns)
    if table.empty or missing:
        what = "has no rows" if not missing else f"lacks the column '{sorted(missing)[0]}'"
        raise ReportError(f"{path} {what}", hint)
    return table


def build_reports(run_dir: str | Path, jobs: int | None = None) -> Path:
    """Write tear sheets, plots and index.html into `<run>/reports/`; returns the index path.

    Tear sheets (a few seconds each) are rendered by `jobs` worker processes (default: one per
    core) while this process draws the plots; `jobs = 1` renders everything here.
    """
    run = Path(run_dir)
    metrics, comparison, returns, equity, predictions = _read(run)
    out = run / "reports"
    out.mkdir(exist_ok=True)
    pending = _start_tearsheets(run.name, returns, out, jobs) if returns is not None else {}
    pictures: list[tuple[str, str]] = []
    forecast = metrics.get("forecast", [])
    per_fold = pd.DataFrame(metrics.get("forecast_per_fold", []))
    if predictions is not None and {"y_true", "price_pred", "price_true"} <= set(predictions):
        for ticker in predictions["ticker"].unique():
            slug = _slug(str(ticker))
            plot_predicted_vs_actual(predictions, out / f"predicted_vs_actual_{slug}.png", ticker)
            plot_residuals(predictions, out / f"residuals_{slug}.png", ticker)
            pictures += [(f"{ticker}: predicted vs actual", f"predicted_vs_actual_{slug}.png"),
                         (f"{ticker}: residuals", f"residuals_{slug}.png")]
            if len(per_fold):
                plot_rmse_by_fold(per_fold, out / f"rmse_by_fold_{slug}.png", ticker)
                pictures.append((f"{ticker}: RMSE per fold", f"rmse_by_fold_{slug}.png"))
    if equity is not None:
        for book in dict.fromkeys(c.split(":", 1)[0] for c in equity.columns):
            cols = [c for c in equity.columns if c.split(":", 1)[0] == book]
            slug = _slug(book)
            plot_equity(equity[cols], out / f"equity_{slug}.png", f"{book}: equity of every strategy")
            plot_drawdowns(equity[cols], out / f"drawdowns_{slug}.png", f"{book}: drawdowns")
            pictures += [(f"{book}: equity", f"equity_{slug}.png"), (f"{book}: drawdowns", f"drawdowns_{slug}.png")]
    if (run / "sensitivity.csv").is_file():
        table = pd.read_csv(run / "sensitivity.csv")
        for book in dict.fromkeys(table["ticker"]):
            name = f"sensitivity_{_slug(str(book))}.png"
            plot_sensitivity(table, out / name, book)
            pictures.append((f"{book}: Sharpe by trading cost", name))
    sheets = {key: _collect(job, lambda key=key: tearsheet_tasks(run.name, returns, out)[key])
              for key, job in pending.items()}
    page = render_index(run.name, metrics.get("summary", {}), forecast, comparison, sheets, pictures)
    index = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, index)
    return index


def tearsheet_tasks(run_id: str, returns: pd.DataFrame, out: Path) -> dict[tuple[str, str], tuple]:
    """`tearsheet` arguments per (book, strategy) of a long returns table (ticker, strategy, date,
    return); each strategy is benchmarked against buy-and-hold on its book."""
    tasks = {}
    for (book, strategy), rows in returns.groupby(["ticker", "strategy"], sort=False):
        series = rows.set_index("date")["return"].rename(strategy)
        bench_rows = returns[(returns["ticker"] == book) & (returns["strategy"] == BENCHMARK)]
        benchmark = bench_rows.set_index("date")["return"] if strategy != BENCHMARK and len(bench_rows) else None
        name = f"tearsheet_{_slug(book)}_{_slug(strategy)}.html"
        tasks[(book, strategy)] = (series, out / name, f"{strategy} on {book} — run {run_id}", benchmark)
    return tasks


def _start_tearsheets(run_id: str, returns: pd.DataFrame, out: Path, jobs: int | None) -> dict:
    """Submit one tear sheet per (book, strategy); values are futures, or file names when rendered here."""
    tasks = tearsheet_tasks(run_id, returns, out)
    jobs = min(jobs or os.cpu_count() or 1, len(tasks))
    if jobs <= 1:
        return {key: render_tearsheet(args) for key, args in tasks.items()}
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=prepare_workers())
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

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["reports.tearsheet"])
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return context


def _collect(job, task) -> str:
    """A tear sheet's file name: `job` is one already, or a future; a dead worker's sheet is rendered here."""
    if isinstance(job, str):
        return job
    from concurrent.futures.process import BrokenProcessPool

    try:
        return job.result()
    except BrokenProcessPool:
        return render_tearsheet(task())


def render_tearsheet(args: tuple) -> str:
    """Render one task of `tearsheet_tasks`; returns the file name."""
    return tearsheet(*args).name
