"""QuantStats HTML tear sheets, made to work offline from disk and to say what they show."""

from __future__ import annotations

import html as htmllib
import re
import warnings
from contextlib import contextmanager
from pathlib import Path

import pandas as pd  # noqa: E402

import reports.quiet  # noqa: F401

_FAVICON = re.compile(r'<link[^>]*rel="shortcut icon"[^>]*>\s*')
_TIME_IN_MARKET = re.compile(r"<tr><td>Time in Market</td>(<td>[^<]*</td>)+</tr>")
_HEADER_END = re.compile(r"(</h4>)")
CSS = (
    "<style>.lt-nav{font:14px -apple-system,'DejaVu Sans',Arial,sans-serif;margin:.4rem 0 .8rem;color:#5b6570}"
    ".lt-nav a{color:#1a5fb4}</style>"
)


@contextmanager
def _eoy_labels_fixed():
    """QuantStats' EOY bar chart labels its ticks with `set_xticklabels(years)` without setting the
    ticks. With pandas >= 3 a bar plot on a DatetimeIndex keeps pandas' period-ordinal tick locator,
    whose first tick sits one year left of the first bar, so every year label lands one bar late
    (2013's bar reads "2014", the last bar has none). While this is active, each chart's ticks are
    put at its bar groups' centres with the years of its data, before QuantStats saves it."""
    from quantstats._plotting import core

    original = core.plot_returns_bars

    def fixed(returns, benchmark=None, *args, savefig=None, show=True, **kwargs):
        fig = original(returns, benchmark, *args, savefig=None, show=False, **kwargs)
        if fig is not None and fig.axes:
            _label_bar_years(fig.axes[0], returns, benchmark)
            if savefig:
                fig.savefig(**savefig) if isinstance(savefig, dict) else fig.savefig(savefig)
        return None if show else fig

    core.plot_returns_bars = fixed
    try:
        yield
    finally:
        core.plot_returns_bars = original


@contextmanager
def _no_redraw_after_save():
    """pyplot.savefig draws the whole figure a second time after saving (draw_idle, to restore an
    interactive window); on the Agg canvas nothing is shown, so that second draw is skipped. It
    was an eighth of each tear sheet's time."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    original = FigureCanvasAgg.draw_idle
    FigureCanvasAgg.draw_idle = lambda self, *args, **kwargs: None
    try:
        yield
    finally:
        FigureCanvasAgg.draw_idle = original


def _label_bar_years(ax, returns, benchmark) -> None:
    frame = pd.DataFrame(returns)
    if isinstance(benchmark, pd.Series):
        frame = frame.join(benchmark.rename("__benchmark"), how="left")
    years = sorted(set(pd.DatetimeIndex(frame.dropna().index).year))
    bars = [p for p in ax.patches if p.get_width() > 0]
    if not years or not bars:
        return
    if len(bars) % len(years):
        return  # not one group of bars per year: leave QuantStats' labels alone
    groups = len(bars) // len(years)
    centres = sorted(p.get_x() + p.get_width() / 2 for p in bars)
    centres = [sum(centres[i * groups : (i + 1) * groups]) / groups for i in range(len(years))]
    step = max(1, len(years) // 10)  # as QuantStats: at most about ten labels on long histories
    ax.set_xticks(centres, [str(y) if i % step == 0 else "" for i, y in enumerate(years)], rotation=30, ha="right")


def tearsheet(
    returns: pd.Series,
    path: Path,
    title: str,
    benchmark: pd.Series | None = None,
    benchmark_title: str = "buy_and_hold",
    note: str = "",
    exposure: tuple[float, float] | None = None,
    index_link: str = "index.html",
) -> Path:
    """Write QuantStats' full HTML tear sheet of `returns` (daily), benchmarked when given.

    The strategy is named by `returns.name`; `note` (costs, what was traded) and a link back to the
    run's index go under the title; `exposure` (strategy, benchmark) replaces QuantStats' "Time in
    Market" (days with a non-zero return) with the run's definition: days a position was held."""
    import matplotlib
    import quantstats as qs

    name = str(returns.name or "strategy")
    returns = returns.rename(name).astype("float64")
    returns.index = pd.DatetimeIndex(returns.index).tz_localize(None)
    if benchmark is not None:
        benchmark = benchmark.rename(benchmark_title).astype("float64").reindex(returns.index).fillna(0.0)
    tmp = path.with_name(f".{path.name}.tmp")
    with (
        warnings.catch_warnings(),
        _eoy_labels_fixed(),
        _no_redraw_after_save(),
        matplotlib.rc_context({"svg.fonttype": "none"}),
    ):
        warnings.simplefilter("ignore")
        # svg.fonttype none: chart text stays text (selectable, searchable, a third of the size)
        qs.reports.html(
            returns,
            benchmark=benchmark,
            title=title,
            output=str(tmp),
            periods_per_year=252,
            figfmt="svg",
            match_dates=False,
            strategy_title=name,
        )  # every out-of-sample day
    page = tmp.read_text(encoding="utf-8")
    tmp.unlink()
    # The template's favicon is fetched from the web; a report must open offline without requests.
    page = _FAVICON.sub("", page)
    # The template calls save() on load, which QuantStats defines only for a browser download, not
    # for a saved file: every saved tear sheet would throw a ReferenceError when opened.
    page = page.replace('<body onload="save()">', "<body>", 1)
    page = page.replace("\ufe6a", "%")  # QuantStats writes "CAGR﹪" (small percent sign), a glyph few fonts have
    nav = (
        f'<div class="lt-nav"><a href="{htmllib.escape(index_link)}">&larr; back to the run\'s index</a>'
        + (f" &middot; {htmllib.escape(note)}" if note else "")
        + "</div>"
    )
    page = _HEADER_END.sub(lambda m: m.group(1) + CSS + nav, page, count=1)
    if exposure is not None:
        strat, bench = exposure

        def cell(value: float) -> str:
            return f"<td>{value:.1%}</td>" if value == value else "<td>-</td>"

        cells = (cell(bench) if benchmark is not None else "") + cell(strat)
        page = _TIME_IN_MARKET.sub(f"<tr><td>Time in Market (days holding a position)</td>{cells}</tr>", page, count=1)
    path.write_text(page, encoding="utf-8")
    return path
