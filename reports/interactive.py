"""Interactive charts of index.html (Plotly: zoom, pan, hover). They render offline from disk:
plotly.min.js is written next to the page once and loaded by a relative <script src>, no CDN."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from reports import derive
from reports.derive import COLORS, EXPOSURE_WINDOW

ASSET = "plotly.min.js"
DASHES = [
    "solid",
    "dash",
    "dot",
    "dashdot",
]  # exposure is drawn as a one-month mean: daily flips of a signal would fill the panel
CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "toImageButtonOptions": {"format": "png"},
    "modeBarButtonsToRemove": ["select2d", "lasso2d"],
}
LAYOUT = {
    "template": "plotly_white",
    "hovermode": "x unified",
    "margin": {"l": 70, "r": 20, "t": 30, "b": 40},
    "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    "font": {"size": 12},
}


def write_asset(folder: Path) -> str:
    """Copy Plotly's JavaScript bundle into `folder` (once per Plotly version); returns its file name."""
    from plotly import __version__
    from plotly.offline import get_plotlyjs

    target = folder / ASSET
    stamp = folder / f".{ASSET}.version"
    if not target.is_file() or not stamp.is_file() or stamp.read_text() != __version__:
        tmp = folder / f".{ASSET}.tmp"
        tmp.write_text(get_plotlyjs(), encoding="utf-8")
        os.replace(tmp, target)
        stamp.write_text(__version__)
    return ASSET


def log_ticks(low: float, high: float) -> dict:
    """Tick values and labels for a log axis of growth-of-1 values: whole numbers as they are
    (0.2, 0.5, 1, 1.5, 2), never Plotly's bare mantissas ("2, 5, 9") across several decades."""
    steps = [1, 1.1, 1.2, 1.3, 1.5, 1.7, 2, 2.5, 3, 4, 5, 7]
    values = [round(m * 10.0**e, 6) for e in range(-3, 4) for m in steps]
    inside = [v for v in values if low / 1.05 <= v <= high * 1.05]
    while len(inside) > 9:  # every other tick, keeping the one nearest 1
        anchor = min(range(len(inside)), key=lambda i: abs(inside[i] - 1))
        inside = [v for i, v in enumerate(inside) if (i - anchor) % 2 == 0]
    return {"tickvals": inside, "ticktext": [f"{v:g}" for v in inside]}


def _growth_range(curves) -> tuple[float, float]:
    values = [float(v) for s in curves for v in (s.min(), s.max()) if v == v]
    return (min(values), max(values)) if values else (0.5, 2.0)


def _div(fig, div_id: str, title: str) -> str:
    """The chart's <div> under an HTML heading (a heading in the page never collides with the legend)."""
    import html

    return f"<h3>{html.escape(title)}</h3>" + fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        div_id=div_id,
        config=CONFIG,
        default_width="100%",
    )


def trading_chart(equity: pd.DataFrame, exposure: pd.DataFrame, book: str, div_id: str) -> str:
    """Equity (growth of 1, log axis), drawdown and exposure (21-session mean) of every strategy of a book,
    one shared, zoomable time axis; clicking a legend entry hides that strategy in all three."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, row_heights=[0.55, 0.225, 0.225], vertical_spacing=0.04)
    curves = []
    for i, column in enumerate(equity.columns):
        if equity[column].isna().all():
            continue
        curves.append(derive.growth(equity[column]))
        name = column.split(":", 1)[-1]
        width = 2.2 if "lstm" in name else 1.2
        common = {"name": name, "legendgroup": name, "line": {"width": width, "color": COLORS[i % len(COLORS)]}}
        fig.add_trace(
            go.Scatter(x=curves[-1].index, y=curves[-1].round(5), **common, hovertemplate="%{y:.3f}"), row=1, col=1
        )
        fall = derive.drawdown(equity[column])
        fig.add_trace(
            go.Scatter(x=fall.index, y=(100 * fall).round(3), **common, showlegend=False, hovertemplate="%{y:.2f}%"),
            row=2,
            col=1,
        )
        if column in exposure:
            smooth = derive.smoothed_exposure(exposure[column])
            fig.add_trace(
                go.Scatter(
                    x=exposure.index, y=(100 * smooth).round(2), **common, showlegend=False, hovertemplate="%{y:.1f}%"
                ),
                row=3,
                col=1,
            )
    fig.update_yaxes(type="log", title_text="growth of 1 (log)", row=1, col=1, **log_ticks(*_growth_range(curves)))
    fig.update_yaxes(title_text="drawdown %", ticksuffix="%", row=2, col=1)
    fig.update_yaxes(title_text=f"exposure ({EXPOSURE_WINDOW}d)", ticksuffix="%", row=3, col=1)
    fig.update_layout(**LAYOUT, height=720)
    return _div(fig, div_id, f"{book}: equity, drawdown and exposure after costs")


def race_chart(races: dict[str, pd.Series], folds: list[pd.Timestamp], ticker: str, div_id: str) -> str:
    """The cumulative squared-error gain over naive of each model, fold starts as faint lines."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, race in races.items():
        fig.add_trace(
            go.Scatter(
                x=race.index,
                y=race.to_numpy(),
                name=f"naive - {name}",
                line={"width": 2.2 if name == "lstm" else 1.2},
                hovertemplate="%{y:.3e}",
            )
        )
    # one layout update for every fold line: add_vline per line re-validates the layout each time
    fig.update_layout(
        shapes=[
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": start,
                "x1": start,
                "y0": 0,
                "y1": 1,
                "line": {"color": "rgba(120,120,120,0.25)", "width": 1},
            }
            for start in folds
        ]
        + [
            {
                "type": "line",
                "xref": "paper",
                "yref": "y",
                "x0": 0,
                "x1": 1,
                "y0": 0,
                "y1": 0,
                "line": {"color": "black", "width": 1},
            }
        ]
    )
    fig.update_yaxes(title_text="cumulative squared-error gain", exponentformat="e")
    fig.update_layout(**LAYOUT, height=420)
    return _div(fig, div_id, f"{ticker}: who wins, when — rising means the model beats naive (grey lines: retraining)")


def equity_overlay(curves: dict[str, pd.Series], title: str, div_id: str) -> str:
    """Several equity curves (growth of 1, log axis) on one chart, e.g. the same strategy in several runs."""
    import plotly.graph_objects as go

    fig = go.Figure()
    groups = list(dict.fromkeys(name.split(" · ", 1)[0] for name in curves))
    growth = []
    for name, series in curves.items():
        if series.isna().all():
            continue
        growth.append(derive.growth(series))
        dash = DASHES[groups.index(name.split(" · ", 1)[0]) % len(DASHES)]  # one dash style per run
        fig.add_trace(
            go.Scatter(
                x=growth[-1].index, y=growth[-1].round(5), name=name, hovertemplate="%{y:.3f}", line={"dash": dash}
            )
        )
    fig.update_yaxes(type="log", title_text="growth of 1 (log)", **log_ticks(*_growth_range(growth)))
    fig.update_layout(**LAYOUT, height=480)
    return _div(fig, div_id, title)
