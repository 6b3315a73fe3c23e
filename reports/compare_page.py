"""The HTML page of `lstm-trader compare --html`: equity curves of several runs on one chart, their
results side by side, and the settings in which the runs differ."""

from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd

from reports import interactive
from reports.index import CSS, _num, _scroll, _text

RESULTS = [
    ("cagr", "+.2%", "CAGR"),
    ("sharpe", ".2f", "Sharpe"),
    ("max_drawdown", ".1%", "max DD"),
    ("exposure", ".0%", "exposure"),
    ("trades", "d", "trades"),
    ("costs", ",.0f", "costs (cash)"),
    ("lstm_theil_u", ".4f", "LSTM U2"),
    ("dsr", ".1%", "DSR"),
]


def _results_table(rows: list[dict]) -> str:
    body = []
    for row in rows:
        cells = [_text(row["run"]), _text(row.get("ticker", "")), _text(row.get("strategy", ""))]
        cells += [
            _num(int(row[k]) if k == "trades" and row.get(k) is not None else row.get(k), f) for k, f, _ in RESULTS
        ]
        body.append(f'<tr data-run="{html.escape(row["run"])}">' + "".join(cells) + "</tr>")
    head = '<th class="l">run</th><th class="l">book</th><th class="l">strategy</th>' + "".join(
        f"<th>{h}</th>" for _, _, h in RESULTS
    )
    return _scroll(f'<table id="runs-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


def _differences_table(names: list[str], differences: dict[str, list] | None) -> str:
    if differences is None:
        return "<p>Not compared: a config could not be read (see above).</p>"
    if not differences:
        return "<p>The runs' configs are identical.</p>"
    body = "".join(
        f'<tr><td class="l">{html.escape(key)}</td>'
        + "".join(_text("—" if v is None else str(v)) for v in values)
        + "</tr>"
        for key, values in differences.items()
    )
    head = '<th class="l">setting</th>' + "".join(f'<th class="l">{html.escape(n)}</th>' for n in names)
    return _scroll(f'<table id="config-differences"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def write_compare_page(
    path: Path,
    names: list[str],
    rows: list[dict],
    curves: dict[str, pd.Series],
    differences: dict[str, list] | None,
    notes: list[str],
) -> Path:
    """Write the page (and plotly.min.js beside it); returns its path."""
    path = Path(path)
    asset = interactive.write_asset(path.parent)
    chart = (
        interactive.equity_overlay(curves, "equity after costs, growth of 1 (log axis)", "compare-equity")
        if curves
        else "<p>No equity curves to draw.</p>"
    )
    links = "".join(f"<li><code>{html.escape(n)}</code></li>" for n in names)
    remarks = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>lstm-trader: {len(names)} runs compared</title><style>{CSS}</style>
<script src="{html.escape(asset)}"></script></head><body>
<h1>lstm-trader: {len(names)} runs compared</h1>
<p class="sub">Each run's own out-of-sample span, after its own costs. Runs:</p><ul>{links}</ul>{remarks}
<h2>Equity (interactive: drag to zoom, double-click to reset, click a legend entry to hide it)</h2>
<div class="chart">{chart}</div>
<h2>Results</h2>{_results_table(rows)}
<h2>What differs between the runs' configs</h2>{_differences_table(names, differences)}
</body></html>
"""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path
