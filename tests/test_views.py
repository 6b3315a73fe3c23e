"""What the terminal tables and the report's tables show, from a comparison or metrics table."""

import re

import pandas as pd
from rich.console import Console

from backtests.stats import COMPARISON_COLUMNS


def _comparison(**changes) -> pd.DataFrame:
    row = {
        "strategy": "lstm_signal",
        "ticker": "portfolio",
        "total_return": 0.21,
        "cagr": 0.04,
        "volatility": 0.12,
        "sharpe": 0.41,
        "sortino": 0.55,
        "max_drawdown": -0.18,
        "exposure": 0.7,
        "trades": 31,
        "rejected": 9,
        "turnover": 5.2,
        "win_rate": 0.52,
        "costs": 812.0,
        "final_equity": 121_000.0,
        "psr": 0.8,
        "dsr": 0.6,
    }
    row.update(changes)
    return pd.DataFrame([row], columns=COMPARISON_COLUMNS)


def _render(table, width: int = 200) -> str:
    console = Console(width=width, record=True)
    console.print(table)
    return console.export_text()


def test_the_terminal_comparison_shows_the_refused_orders():
    from lstm_trader.views import comparison_view

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


def test_the_forecast_table_shows_u2_to_four_decimals_and_price_rmse_to_three():
    from lstm_trader.views import metrics_table

    base = {
        "ticker": "ACME",
        "n": 1400,
        "rmse": 0.0082,
        "dm_pvalue": 0.41,
        "cw_pvalue": 0.3,
        "directional_accuracy": 0.51,
        "da_base_rate": 0.53,
        "da_pvalue": 0.6,
        "correlation": 0.01,
    }
    metrics = pd.DataFrame(
        [
            {**base, "model": "lstm", "theil_u": 1.0005, "price_rmse": 18.1},
            {**base, "model": "naive", "theil_u": 1.0, "price_rmse": 18.14},
        ]
    )
    text = _render(metrics_table(metrics, wide=True))
    lstm = next(line for line in text.splitlines() if "lstm" in line)
    naive = next(line for line in text.splitlines() if "│ naive" in line)
    assert "1.0005" in lstm and "18.100" in lstm
    assert "1.0000" in naive and "18.140" in naive


def test_a_narrow_table_leaves_out_measures_but_never_the_columns_that_say_what_a_row_is(monkeypatch):
    from lstm_trader.console import IDENTITY, console, fitted_table

    monkeypatch.setattr(console, "width", 80)
    columns = [
        ("run", "left", IDENTITY),
        ("ticker", "left", IDENTITY),
        ("strategy", "left", IDENTITY),
        ("CAGR", "right", 7),
        ("Sharpe", "right", 9),
        ("trades", "right", 4),
        ("Theil U", "right", 5),
    ]
    rows = [
        ["two-tickers-20261201-101010", ticker, "lstm_signal", "+1.00%", "0.40", "12", "1.0005"]
        for ticker in ("sp500", "nasdaq", "portfolio")
    ]
    text = _render(fitted_table("Runs compared", columns, rows), width=80)
    header = next(line for line in text.splitlines() if "strategy" in line)
    assert "ticker" in header and "run" in header
    assert all(t in text for t in ("sp500", "nasdaq", "portfolio")) and "…" not in text
    assert "not shown at 80 columns" in text  # the measures made room, and say so


def test_the_report_card_and_per_fold_table_show_u2_to_four_decimals():
    from reports.index import cards, per_fold_table

    forecast = [
        {"ticker": "ACME", "model": "lstm", "theil_u": 1.0005, "price_rmse": 18.1, "dm_pvalue": 0.4},
        {"ticker": "ACME", "model": "naive", "theil_u": 1.0, "price_rmse": 18.14},
    ]
    assert '<b class="bad">1.0005</b>' in cards(forecast, pd.DataFrame())
    fold = {
        "ticker": "ACME",
        "fold": 0,
        "first": pd.Timestamp("2020-01-02"),
        "last": pd.Timestamp("2020-03-02"),
        "n": 40,
        "rmse": 0.01,
        "theil_u": 0.98761,
        "dm_pvalue": 0.5,
        "directional_accuracy": 0.5,
        "da_base_rate": 0.5,
        "price_rmse": 1.0,
    }
    assert ">0.9876<" in per_fold_table([fold])
