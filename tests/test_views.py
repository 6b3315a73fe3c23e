"""What the terminal tables and the report's tables show, from a comparison or metrics table."""

import re

import pandas as pd
from rich.console import Console

from backtests.stats import COMPARISON_COLUMNS


def _comparison(**changes) -> pd.DataFrame:
    row = {"strategy": "lstm_signal", "ticker": "portfolio", "total_return": 0.21, "cagr": 0.04, "volatility": 0.12,
           "sharpe": 0.41, "sortino": 0.55, "max_drawdown": -0.18, "exposure": 0.7, "trades": 31, "rejected": 9,
           "turnover": 5.2, "win_rate": 0.52, "costs": 812.0, "final_equity": 121_000.0, "psr": 0.8, "dsr": 0.6}
    row.update(changes)
    return pd.DataFrame([row], columns=COMPARISON_COLUMNS)


def _render(table, width: int = 200) -> str:
    console = Console(width=width, record=True)
    console.print(table)
    return console.export_text()


def test_the_terminal_comparison_shows_the_refused_orders():
    from backtests.cli import comparison_view

    text = _render(comparison_view(_comparison(), wide=True))
    header = next(line for line in text.splitlines() if "strategy" in line)
    row = next(line for line in text.splitlines() if "lstm_signal" in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    names = [c.strip() for c in header.split("┃") if c.strip()]
    assert cells[names.index("refused")] == "9"


def test_the_report_comparison_shows_the_refused_orders():
    from reports.index import comparison_table

    page = comparison_table(_comparison(), {})
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", page)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", page.split("<tbody>")[1])
    assert cells[heads.index("refused orders")] == "9"
