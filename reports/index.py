"""The run's `index.html`: summary, forecast errors beside trading results, links to everything."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import pandas as pd

CSS = """
*{box-sizing:border-box}
body{font-family:-apple-system,'DejaVu Sans',Helvetica,Arial,sans-serif;margin:1.5rem auto;max-width:1200px;color:#1d232a;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
h3{font-size:1rem;margin:1.2rem 0 .3rem}
.sub{color:#5b6570;margin-top:0} .scroll{overflow-x:auto;max-width:100%;margin:.5rem 0}
table{border-collapse:collapse;font-size:.85rem}
th,td{padding:.25rem .6rem;border-bottom:1px solid #eee;text-align:right;white-space:nowrap} th{background:#f5f7f9;position:sticky;top:0}
td.l,th.l{text-align:left} tr.lstm td{font-weight:600} .good{color:#137333} .bad{color:#b3261e}
dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.2rem 1rem;font-size:.9rem} dt{color:#5b6570} dd{margin:0;overflow-wrap:anywhere}
.cards{display:flex;gap:1rem;flex-wrap:wrap} .card{border:1px solid #e3e6ea;border-radius:6px;padding:.6rem 1rem;min-width:16rem;max-width:100%}
.card b{font-size:1.1rem} img{max-width:100%;height:auto;border:1px solid #eee;margin:.4rem 0} .note{color:#5b6570;font-size:.85rem}
.chart{width:100%;margin:.5rem 0 1rem} pre{background:#f5f7f9;padding:.6rem;overflow-x:auto;font-size:.8rem;max-width:100%}
details summary{cursor:pointer;color:#1a5fb4;margin:.4rem 0} code{font-size:.85em;overflow-wrap:anywhere}
.warn{background:#fff4e5;border-left:4px solid #e8a33d;padding:.4rem .8rem;font-size:.9rem}
"""


def _num(value, fmt: str) -> str:
    """A table cell showing `value` formatted, with the exact value kept in data-value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return '<td data-value="">—</td>'
    shown = format(value, fmt)
    return f'<td data-value="{value!r}">{html.escape(shown)}</td>'


def _count(value) -> int | None:
    """A count read back from a CSV (float, or missing in older files) as an int cell."""
    return None if value is None or value != value else int(value)


def _scroll(table: str) -> str:
    """A table that scrolls inside its own box when wider than the page, never the page itself."""
    return f'<div class="scroll">{table}</div>'


def _text(value: str, cls: str = "l") -> str:
    return f'<td class="{cls}">{html.escape(str(value))}</td>'


def forecast_table(forecast: list[dict]) -> str:
    # the verdict first (as in the terminal), so it shows without scrolling at 1024 px
    cols = [
        ("n", "d"),
        ("theil_u", ".4f"),
        ("dm_pvalue", ".3g"),
        ("cw_pvalue", ".3g"),
        ("directional_accuracy", ".1%"),
        ("da_base_rate", ".1%"),
        ("da_pvalue", ".3g"),
        ("correlation", ".3f"),
        ("price_rmse", ",.3f"),
        ("theil_u_price", ".4f"),
        ("rmse", ".3e"),
        ("mse", ".3e"),
        ("mae", ".3e"),
        ("price_mae", ",.3f"),
        ("mape", ".3%"),
    ]
    heads = [
        "n",
        "U2",
        "DM p",
        "CW p",
        "dir. acc.",
        "up days",
        "PT p",
        "corr.",
        "RMSE (price)",
        "U (price)",
        "RMSE (ret)",
        "MSE (ret²)",
        "MAE (ret)",
        "MAE (price)",
        "MAPE",
    ]
    rows = []
    for m in forecast:
        cells = [_text(m["ticker"]), _text(m["model"])] + [_num(m.get(k), f) for k, f in cols]
        rows.append(
            f'<tr class="{html.escape(m["model"])}" data-ticker="{html.escape(m["ticker"])}" '
            f'data-model="{html.escape(m["model"])}">' + "".join(cells) + "</tr>"
        )
    head = '<th class="l">ticker</th><th class="l">model</th>' + "".join(f"<th>{h}</th>" for h in heads)
    return _scroll(f'<table id="forecast-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


COMPARISON = [
    ("total_return", "+.1%", "total"),
    ("cagr", "+.2%", "CAGR"),
    ("volatility", ".1%", "vol"),
    ("sharpe", ".2f", "Sharpe"),
    ("sharpe_low", ".2f", "Sharpe 5%"),
    ("sharpe_high", ".2f", "Sharpe 95%"),
    ("sortino", ".2f", "Sortino"),
    ("max_drawdown", ".1%", "max DD"),
    ("exposure", ".0%", "exposure"),
    ("trades", "d", "trades"),
    ("rejected", "d", "refused orders"),
    ("turnover", ".1f", "turnover (×/yr)"),
    ("win_rate", ".0%", "win rate"),
    ("costs", ",.0f", "costs (cash)"),
    ("psr", ".1%", "PSR"),
    ("dsr", ".1%", "DSR"),
]


def comparison_table(comparison: pd.DataFrame, sheets: dict[tuple[str, str], str]) -> str:
    rows = []
    for row in comparison.to_dict(orient="records"):
        link = sheets.get((row["ticker"], row["strategy"]))
        cells = [_text(row["ticker"]), _text(row["strategy"])]
        cells += [_num(_count(row.get(k)) if f == "d" else row.get(k), f) for k, f, _ in COMPARISON]
        cells.append(
            f'<td class="l"><a href="{html.escape(link)}">tear sheet</a></td>'
            if link
            else '<td class="l note" title="its daily returns never change">none: constant returns</td>'
        )
        cls = "lstm" if "lstm" in row["strategy"] else ""
        rows.append(
            f'<tr class="{cls}" data-ticker="{html.escape(row["ticker"])}" '
            f'data-strategy="{html.escape(row["strategy"])}">' + "".join(cells) + "</tr>"
        )
    head = '<th class="l">book</th><th class="l">strategy</th>' + "".join(f"<th>{h}</th>" for _, _, h in COMPARISON)
    head += '<th class="l">report</th>'
    return _scroll(f'<table id="comparison-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def cards(forecast: list[dict], comparison: pd.DataFrame) -> str:
    """Per ticker: the LSTM's error against naive beside the LSTM strategy against buy-and-hold."""
    out = []
    by = {(m["ticker"], m["model"]): m for m in forecast}
    for ticker in dict.fromkeys(m["ticker"] for m in forecast):
        lstm, naive = by.get((ticker, "lstm")), by.get((ticker, "naive"))
        if not lstm or not naive or lstm.get("price_rmse") is None or naive.get("price_rmse") is None:
            continue
        book = comparison[comparison["ticker"] == ticker].set_index("strategy") if len(comparison) else None
        u = lstm.get("theil_u") or float("nan")
        verdict = "beats" if u < 1 else "does not beat"
        trade = ""
        if book is not None and "lstm_signal" in book.index and "buy_and_hold" in book.index:
            s, b = book.loc["lstm_signal", "sharpe"], book.loc["buy_and_hold", "sharpe"]
            cls = "good" if s > b else "bad"
            trade = (
                f'<br>LSTM signal Sharpe <b class="{cls}">{s:.2f}</b> vs buy-and-hold {b:.2f}'
                f" (DSR {book.loc['lstm_signal', 'dsr']:.0%})"
            )
        cls = "good" if u < 1 else "bad"
        out.append(
            f'<div class="card"><div>{html.escape(ticker)}</div>LSTM price RMSE <b>{lstm["price_rmse"]:,.3f}</b>'
            f' vs naive {naive["price_rmse"]:,.3f}<br>Theil U2 <b class="{cls}">{u:.4f}</b>: it {verdict} '
            f'"tomorrow = today" (DM p = {lstm.get("dm_pvalue") or float("nan"):.3g}){trade}</div>'
        )
    return '<div class="cards">' + "".join(out) + "</div>"


def universe_card(cross_section: list[dict], comparison: pd.DataFrame) -> str:
    """A universe model's verdict: the LSTM's mean rank IC and its t beside the best control's, and its
    ranked portfolio's Sharpe beside the equal-weight universe's."""
    by = {m["model"]: m for m in cross_section}
    lstm = by.get("lstm")
    if not lstm:
        return ""
    controls = [m for name, m in by.items() if name not in ("lstm", "naive") and m.get("rank_ic") is not None]
    best = max(controls, key=lambda m: m["rank_ic"] if m["rank_ic"] == m["rank_ic"] else -1, default=None)
    ic, t = lstm.get("rank_ic") or float("nan"), lstm.get("rank_ic_t") or float("nan")
    cls = "good" if ic > 0 and t > 2 else "bad"
    text = f'LSTM mean daily rank IC <b class="{cls}">{ic:.4f}</b> (Newey-West t {t:.2f})'
    if best is not None:
        text += f"; best control {html.escape(best['model'])} {best['rank_ic']:.4f} (t {best.get('rank_ic_t'):.2f})"
    portfolio = comparison[comparison["ticker"] == "portfolio"] if len(comparison) else comparison
    book = portfolio.set_index("strategy") if len(portfolio) else None
    if book is not None and "equal_weight" in book.index:
        mine = [s for s in book.index if "lstm" in s and s != "equal_weight"]
        if mine:
            s, b = float(book.loc[mine[0], "sharpe"]), float(book.loc["equal_weight", "sharpe"])
            text += (
                f'<br>{html.escape(mine[0])} Sharpe <b class="{"good" if s > b else "bad"}">{s:.2f}</b> '
                f"vs the equal-weight universe {b:.2f}, after costs"
            )
    return f'<div class="cards"><div class="card">{text}</div></div>'


VOL_COLUMNS = [
    ("n", "d", "n"),
    ("qlike", ".4f", "QLIKE"),
    ("dm_garch_pvalue", ".3g", "DM p (GARCH)"),
    ("dm_har_pvalue", ".3g", "DM p (HAR)"),
    ("mse_var", ".3g", "MSE (var)"),
    ("mz_intercept", ".2g", "MZ a"),
    ("mz_slope", ".2f", "MZ b"),
    ("mz_r2", ".3f", "MZ R²"),
    ("var_exceed", ".2%", "VaR 99% hits"),
    ("kupiec_pvalue", ".3g", "Kupiec p"),
]


def volatility_table(rows: list[dict]) -> str:
    """A volatility run's scores per (ticker, model): QLIKE, the DM tests, Mincer-Zarnowitz, VaR."""
    body = []
    for m in rows:
        cells = [_text(m["ticker"]), _text(m["model"])]
        cells += [_num(_count(m.get(k)) if f == "d" else m.get(k), f) for k, f, _ in VOL_COLUMNS]
        cls = "lstm" if m["model"] == "lstm" else ""
        body.append(
            f'<tr class="{cls}" data-ticker="{html.escape(m["ticker"])}" data-model="{html.escape(m["model"])}">'
            + "".join(cells)
            + "</tr>"
        )
    head = '<th class="l">ticker</th><th class="l">model</th>' + "".join(f"<th>{h}</th>" for _, _, h in VOL_COLUMNS)
    return _scroll(f'<table id="volatility-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


def volatility_card(rows: list[dict]) -> str:
    """Per ticker: the LSTM's QLIKE beside GARCH's and HAR's."""
    out = []
    for ticker in dict.fromkeys(m["ticker"] for m in rows):
        by = {m["model"]: m for m in rows if m["ticker"] == ticker}
        lstm = by.get("lstm")
        if not lstm:
            continue
        others = " · ".join(f"{name} {by[name]['qlike']:.4f}" for name in ("garch", "har", "gjr") if name in by)
        best = lstm["qlike"] <= min((by[n]["qlike"] for n in ("garch", "har") if n in by), default=float("inf"))
        out.append(
            f'<div class="card"><div>{html.escape(ticker)}</div>LSTM QLIKE <b class="{"good" if best else "bad"}">'
            f"{lstm['qlike']:.4f}</b> vs {others} (lower is better)</div>"
        )
    return '<div class="cards">' + "".join(out) + "</div>"


XS_COLUMNS = [
    ("n_dates", "d", "days"),
    ("rank_ic", ".4f", "rank IC"),
    ("rank_ic_t", ".2f", "NW t"),
    ("rank_icir", ".3f", "rank ICIR"),
    ("ic", ".4f", "IC"),
    ("icir", ".3f", "ICIR"),
    ("top_k_hit", ".1%", "top-k hit"),
    ("spread", ".3%", "Q5-Q1 / day"),
]


def cross_section_table(rows: list[dict], per_fold: bool = False) -> str:
    """Rank IC, its Newey-West t, ICIR, IC, top-k hit rate and quintile spread per model (and fold)."""
    body = []
    for m in rows:
        cells = [_text(m["model"])] + ([_num(int(m["fold"]), "d")] if per_fold else [])
        cells += [_num(_count(m.get(k)) if f == "d" else m.get(k), f) for k, f, _ in XS_COLUMNS]
        cls = "lstm" if m["model"] == "lstm" else ""
        body.append(f'<tr class="{cls}" data-model="{html.escape(m["model"])}">' + "".join(cells) + "</tr>")
    head = '<th class="l">model</th>' + ("<th>fold</th>" if per_fold else "")
    head += "".join(f"<th>{h}</th>" for _, _, h in XS_COLUMNS)
    name = "cross-section-per-fold-table" if per_fold else "cross-section-table"
    return _scroll(f'<table id="{name}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


def notes_block(summary: dict) -> str:
    """What the user must know about the data before reading any number (e.g. survivorship bias)."""
    notes = summary.get("notes") or []
    return "".join(f'<p class="warn">{html.escape(n)}.</p>' for n in notes)


def summary_list(summary: dict) -> str:
    labels = [
        ("source", "data"),
        ("scope", "model scope"),
        ("fill_rule", "orders fill at the"),
        ("variance_proxy", "variance proxy"),
        ("tickers", "tickers"),
        ("data_start", "data from"),
        ("data_end", "data to"),
        ("test_start", "out of sample from"),
        ("test_end", "out of sample to"),
        ("folds", "folds"),
        ("retrain_every", "retrain every (bars)"),
        ("warm_start", "warm start"),
        ("network", "network"),
        ("ensemble", "ensemble"),
        ("seed", "seed"),
        ("elapsed_s", "elapsed (s)"),
    ]
    items = []
    for key, label in labels:
        if key in summary:
            value = ", ".join(summary[key]) if isinstance(summary[key], list) else summary[key]
            items.append(f"<dt>{label}</dt><dd>{html.escape(str(value))}</dd>")
    return "<dl>" + "".join(items) + "</dl>"


def variance_note(used: list[float], ledger_variance: float, n: int) -> str:
    """The V the DSRs used, and where it came from: the ledger's spread of Sharpes, or the floor under it
    (one Sharpe estimate's sampling variance), so that the number shown is the number used."""
    if n < 2:
        return "one configuration: the DSR is the PSR, and no Sharpe variance enters it"
    used = sorted({v for v in used if v == v})
    if not used:
        return f"Sharpe variance {ledger_variance:.2g}"
    shown = " / ".join(f"{v:.3g}" for v in used)
    if all(v > ledger_variance for v in used):
        return (
            f"Sharpe variance V = {shown}: one Sharpe estimate's sampling variance, the floor, above the "
            f"ledger's {ledger_variance:.2g}"
        )
    return f"Sharpe variance V = {shown}, the ledger's"


def overfit_note(summary: dict) -> str:
    """SPA and PBO over every configuration tried on these data and days (the trial ledger's returns)."""
    stats = summary.get("overfitting") or {}
    if not stats.get("configurations"):
        return ""

    def fmt(value) -> str:
        return "—" if value is None or value != value else f"{value:.2f}"

    n = stats["configurations"]
    return (
        f'<p class="note" id="overfitting">Over the {n} configuration{"s" if n != 1 else ""} tried on these '
        f"data whose daily returns the ledger keeps ({stats.get('days', 0)} common days): Hansen's SPA p-value that "
        f"the best of them beats the benchmark <b>{fmt(stats['spa_benchmark_pvalue'])}</b> (against cash "
        f"{fmt(stats['spa_cash_pvalue'])}; small: at least one does, after accounting for all of them); "
        f"probability of backtest overfitting <b>{fmt(stats['pbo'])}</b> (how often the configuration best on half "
        "the days lands below the median on the other half; about 0.5 for noise).</p>"
    )


def dsr_note(summary: dict, comparison: list[dict]) -> str:
    n = summary.get("dsr_trials")
    if n is None:
        return "the configurations tried"
    ledger = summary.get("ledger_variance", summary.get("dsr_variance", 0.0))  # the older runs' name
    used = [row["dsr_variance"] for row in comparison if row.get("dsr_variance") is not None]
    return f"the {n} configuration{'s' if n != 1 else ''} tried on this data ({variance_note(used, ledger, n)})"


def per_fold_table(rows: list[dict]) -> str:
    """One row per (ticker, fold) of the LSTM: its dates and its errors against naive."""
    cols = [
        ("n", "d"),
        ("rmse", ".3e"),
        ("theil_u", ".4f"),
        ("dm_pvalue", ".3g"),
        ("directional_accuracy", ".1%"),
        ("da_base_rate", ".1%"),
        ("price_rmse", ",.3f"),
    ]
    heads = ["n", "RMSE (ret)", "U2", "DM p", "dir. acc.", "up days", "RMSE (price)"]
    body = []
    for m in rows:
        first = m["first"].date().isoformat() if m.get("first") is not None else "?"
        last = m["last"].date().isoformat() if m.get("last") is not None else "?"
        u = m.get("theil_u")
        cls = "good" if u is not None and u < 1 else ""
        cells = [_text(m["ticker"]), _num(int(m["fold"]), "d"), _text(first), _text(last)]
        cells += [_num(int(m[k]) if k == "n" else m.get(k), f) for k, f in cols]
        body.append(
            f'<tr class="{cls}" data-ticker="{html.escape(str(m["ticker"]))}" data-fold="{int(m["fold"])}">'
            + "".join(cells)
            + "</tr>"
        )
    head = '<th class="l">ticker</th><th>fold</th><th class="l">first day</th><th class="l">last day</th>' + "".join(
        f"<th>{h}</th>" for h in heads
    )
    return _scroll(f'<table id="per-fold-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


@dataclass
class IndexPage:
    """Everything index.html shows; the report builder fills the charts and tear-sheet links in."""

    run_id: str
    summary: dict
    forecast: list[dict]
    comparison: pd.DataFrame
    costs: str = ""
    config_text: str = ""
    sheets: dict[tuple[str, str], str] = field(default_factory=dict)
    pictures: list[tuple[str, str]] = field(default_factory=list)
    interactive: list[str] = field(default_factory=list)
    per_fold: list[dict] = field(default_factory=list)
    asset: str | None = None
    files: list[str] = field(default_factory=list)  # the run dir's files to link to
    cross_section: list[dict] = field(default_factory=list)  # rank IC and friends per model (a universe model)
    cross_section_per_fold: list[dict] = field(default_factory=list)
    volatility: list[dict] = field(default_factory=list)  # QLIKE and friends per (ticker, model) (realized_vol)


def subtitle(summary: dict, costs: str) -> str:
    """What the page shows: a walk-forward run, or a backtest of an existing predictions file."""
    if "predictions" in summary:
        text = (
            f"Backtest of the predictions in <code>{html.escape(summary['predictions'])}</code>, "
            f"config: {html.escape(summary.get('config_source') or 'as given')}."
        )
        changed = summary.get("changed") or {}
        if changed:
            items = "; ".join(
                f"{html.escape(k)}: {html.escape(str(a))} &rarr; {html.escape(str(b))}" for k, (a, b) in changed.items()
            )
            text += f"<br>Changed from the predictions' own run: {items}."
        elif summary.get("config_source", "").endswith("(the predictions' own run)"):
            text += " Same costs and strategies as that run."
    elif summary.get("variance_proxy"):
        text = (
            "Walk-forward stacked LSTM forecasting the next session's variance beside GARCH, GJR-GARCH, EWMA, "
            "HAR and the last realized value; each forecast sizes a long position to a volatility target, "
            "after costs, beside trailing-volatility targeting and buy-and-hold."
        )
    elif summary.get("scope") == "global":
        text = (
            f"One stacked LSTM for {len(summary.get('tickers', []))} stocks, walked forward on dates; its daily "
            "ranking traded as top-k portfolios after costs, beside ridge, LightGBM, momentum and reversal "
            "rankings and the universe held in equal weights."
        )
    else:
        text = "Walk-forward stacked LSTM, traded at the next open after costs, beside the naive forecast and buy-and-hold."
    return f'<p class="sub">{text}' + (f"<br>{html.escape(costs.capitalize())}." if costs else "") + "</p>"


LINKED_FILES = [
    "config.toml",
    "metrics.json",
    "cross_section_daily.parquet",
    "comparison.csv",
    "predictions.parquet",
    "trades.csv",
    "fills.csv",
    "equity.csv",
    "returns.parquet",
]


def provenance_block(summary: dict, config_text: str, files: list[str]) -> str:
    """Where every number came from: data, code, packages and the full config."""
    prov = summary.get("provenance", {})
    items = [("data", summary.get("source", "?"))]
    for ticker, (first, last, n) in prov.get("bars", {}).items():
        items.append((f"bars of {ticker}", f"{first} to {last}, {n:,} bars"))
    if "test_start" in summary:
        items.append(("out of sample", f"{summary['test_start']} to {summary.get('test_end', '?')}"))
    if prov.get("data_sha256"):
        items.append(("data fingerprint", f"sha256 {prov['data_sha256']} (every bar read)"))
    items.append(("code", f"git commit {prov['commit']}" if prov.get("commit") else "not a git checkout"))
    versions = prov.get("versions", {})
    if versions:
        items.append(("packages", ", ".join(f"{k} {v}" for k, v in versions.items())))
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in items)
    links = " · ".join(f'<a href="../{name}">{name}</a>' for name in files) or "—"
    config = (
        (f"<details><summary>the full config (config.toml)</summary><pre>{html.escape(config_text)}</pre></details>")
        if config_text
        else ""
    )
    return f'<dl id="provenance">{rows}<dt>files</dt><dd>{links}</dd></dl>{config}'


def render_index(page: IndexPage) -> str:
    figures = "".join(
        f'<h3>{html.escape(title)}</h3><a href="{html.escape(p)}"><img src="{html.escape(p)}" '
        f'alt="{html.escape(title)}" loading="lazy"></a>'
        for title, p in page.pictures
    )
    summary, comparison = page.summary, page.comparison
    charts = ""
    script = ""
    if page.asset and page.interactive:
        script = f'<script src="{html.escape(page.asset)}"></script>'
        charts = (
            "<h2>Who wins, when (interactive: drag to zoom, double-click to reset, click a legend entry to hide it)</h2>"
            + "".join(f'<div class="chart">{div}</div>' for div in page.interactive)
        )
    folds = ""
    if page.per_fold:
        folds = (
            f"<details><summary>every fold ({len(page.per_fold)}): dates, RMSE, U2, DM p and direction</summary>"
            f"{per_fold_table(page.per_fold)}</details>"
        )
    xs = ""
    if page.cross_section:
        xs_folds = (
            f"<details><summary>every fold ({len(page.cross_section_per_fold) // max(len(page.cross_section), 1)} "
            f"per model)</summary>{cross_section_table(page.cross_section_per_fold, per_fold=True)}</details>"
            if page.cross_section_per_fold
            else ""
        )
        xs = f"""<h2>Ranking the universe (out of sample)</h2>
<p class="note">Each day, the models' predictions are compared with the realised target across the tickers.
rank IC: Spearman correlation (mean over days; above 0 ranks better than chance). NW t: its Newey-West
t-statistic. rank ICIR / ICIR: mean over standard deviation of the daily (rank) IC. IC: Pearson correlation.
top-k hit: share of the k best-ranked names whose return beat the day's median (0.5 is chance).
Q5-Q1: mean daily return of the top fifth of predictions minus the bottom fifth, before costs.
momentum_12_1 and reversal_5 are scores with no fitting (the return from 12 to 1 months ago; minus the last
5 days'); naive predicts no difference, so it ranks nothing.</p>
{cross_section_table(page.cross_section)}{xs_folds}"""
    vol = ""
    if page.volatility:
        vol = f"""<h2>Volatility forecasts (out of sample)</h2>
<p class="note">Every model forecasts the log of the next session's variance and is scored against the same
realized-variance proxy ({html.escape(summary.get("variance_proxy", "see the README"))}). QLIKE (Patton 2011):
mean of proxy/forecast - log(proxy/forecast) - 1, 0 for a perfect forecast, lower is better; it ranks forecasts
consistently with a noisy proxy and punishes under-forecasting risk most. DM p: Diebold-Mariano on the QLIKE
losses against GARCH and against HAR. MZ: the proxy regressed on the forecast (a = 0, b = 1 for an unbiased one).
VaR 99% hits: share of days whose return fell below the forecast's 99% value-at-risk (normal, in close-to-close
units), 1% expected; Kupiec p: the test that the hit rate is 1%. GARCH, GJR and EWMA forecast close-to-close variance and are rescaled at
each fold to the proxy's level over the training span; the LSTM and ridge learn its log and are raised at each fold
by Duan's smearing term over the training span (the exponential of a forecast of a log under-forecasts the level).</p>
{volatility_table(page.volatility)}"""
    forecast = ""
    if page.forecast:
        forecast = f"""<h2>Forecast errors (out of sample)</h2>
<p class="note">Return-space errors are in log returns over the horizon; price-space errors in price units.
Naive: tomorrow's close is today's (a zero return).<br>
U2: Theil's U in return space, RMSE over the naive forecast's RMSE (below 1 beats naive; every day weighs the same).
U (price): the same ratio on prices, where later, higher-priced years weigh more.<br>
DM p: Diebold-Mariano test of equal squared return errors against naive (two-sided, HLN-corrected).
CW p: Clark-West test that the model beats the random walk it nests (one-sided; small = it does).<br>
dir. acc.: share of days with the right predicted sign; up days: the share of up days, which "always up" scores;
PT p: Pesaran-Timmermann test that direction is called better than chance. corr.: correlation of predicted and
realised returns.</p>
{forecast_table(page.forecast)}{folds}"""
        if page.cross_section:  # a universe's per-ticker errors: one row per ticker and model, folded away
            forecast = (
                f"<details><summary>forecast errors per ticker and model ({len(page.forecast)} rows)</summary>"
                f"{forecast}</details>"
            )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>lstm-trader: {html.escape(page.run_id)}</title>
<style>{CSS}</style>{script}</head><body>
<h1>lstm-trader {"backtest" if "predictions" in summary else "run"} {html.escape(page.run_id)}</h1>
{subtitle(summary, page.costs)}
{notes_block(summary)}
{volatility_card(page.volatility) if page.volatility else universe_card(page.cross_section, comparison) if page.cross_section else cards(page.forecast, comparison)}
<h2>Run</h2>{summary_list(summary)}
{charts}
{vol}
{xs}
{forecast}
<h2>Strategies (same out-of-sample dates, after costs)</h2>
<p class="note">PSR: probability that the true Sharpe is above 0. DSR (strategies that trade the LSTM only):
the same against the best Sharpe that luck would show among {dsr_note(summary, comparison.to_dict(orient="records"))}, as counted by the trial
ledger (every run, backtest and tuning trial on this data). Benchmarks and controls were not searched over: PSR only.
Exposure: share of days a position was held (the tear sheets' "Time in Market" shows the same).
Turnover: traded value over mean equity, per year. Costs: commission and slippage paid, in the account's cash.
Sharpe 5% / 95%: a stationary-bootstrap 90% interval (comparison.csv has CAGR's and max drawdown's too).</p>
{comparison_table(comparison, page.sheets) if len(comparison) else "<p>No backtests in this run.</p>"}
{overfit_note(summary)}
<h2>Pictures</h2>{figures}
<h2>Provenance</h2>{provenance_block(summary, page.config_text, page.files)}
</body></html>
"""
