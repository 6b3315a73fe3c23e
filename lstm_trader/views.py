"""The terminal tables of the command line: forecast errors, volatility and cross-section scores, the
strategy comparison and the trial-count lines, each fitted to the terminal (`--wide` shows every column)."""

from __future__ import annotations

from lstm_trader.console import (
    IDENTITY,
    FittedTable,
    errors,
    fitted_table,
)


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


def _bp(value: float, grid: list[float]) -> str:
    if value != value:
        return f"more than {grid[-1]:g} bp (the largest cost tried)"
    if value == grid[0]:
        return f"or below {grid[0]:g} bp (already there at the lowest cost tried)"
    return f"{value:.1f} bp"
