"""The report pages and the numbers behind their charts: tear-sheet fixes, derived series,
provenance, backtest and compare pages, one chart style, and rendering in headless Chromium."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lstm_trader.cli import app
from reports import derive
from tests.helpers import CHROMIUM, TINY, make_bars, probe_page, run_dirs, write_yahoo_csv

runner = CliRunner()


# --- tear sheets --------------------------------------------------------------------------------


def _svg_of(page: str, div_id: str) -> str:
    start = page.index(f'<div id="{div_id}">')
    return page[start : page.index("</svg>", start)]


def _eoy_ticks(svg: str) -> list[tuple[float, str]]:
    ticks = []
    for block in re.findall(r'<g id="xtick_\d+">(.*?)</text>', svg, flags=re.S):
        x = float(re.search(r"M ([\d.]+) ", block).group(1))
        ticks.append((x, block.rsplit(">", 1)[-1]))
    return ticks


def _bar_spans(svg: str) -> list[tuple[float, float]]:
    spans = []
    svg = svg.split('<g id="legend_')[0]  # the legend's colour swatches are patches too
    for d in re.findall(r'<g id="patch_\d+">\s*<path d="([^"]+)"', svg):
        xs = [float(v) for v in re.findall(r"[ML] ([-\d.]+) ", d)]
        if xs:
            spans.append((min(xs), max(xs)))
    widest = max(b - a for a, b in spans)
    return sorted((a, b) for a, b in spans if 0 < b - a < widest / 2)  # leave out the axes' background


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    from reports.tearsheet import tearsheet

    dates = pd.bdate_range("2013-03-25", "2018-12-31")
    rng = np.random.default_rng(3)
    strategy = pd.Series(rng.normal(3e-4, 0.01, len(dates)), index=dates, name="lstm_signal")
    benchmark = pd.Series(rng.normal(4e-4, 0.011, len(dates)), index=dates)
    path = tmp_path_factory.mktemp("sheet") / "tearsheet.html"
    tearsheet(
        strategy,
        path,
        "lstm_signal on sp500 — run test",
        benchmark,
        note="after costs: commission 0.050%",
        exposure=(0.715, 1.0),
    )
    return path.read_text(encoding="utf-8"), strategy


def test_tearsheet_eoy_chart_labels_sit_under_their_years_bars(sheet):
    page, strategy = sheet
    table = page[page.index('<div id="eoy">') :]
    table = table[: table.index("</table>")]
    years = re.findall(r"<tr><td>(\d{4})</td>", table)
    assert years == [str(y) for y in sorted(set(strategy.index.year))]  # 2013 ... 2018
    ticks = _eoy_ticks(_svg_of(page, "eoy_returns"))
    assert [label for _, label in ticks] == years
    bars = _bar_spans(_svg_of(page, "eoy_returns"))
    assert len(bars) == 2 * len(years)  # strategy and benchmark per year
    for (x, label), pair in zip(ticks, zip(bars[0::2], bars[1::2])):
        assert pair[0][0] <= x <= pair[1][1], f"{label}'s label is not under its bars"


def test_tearsheet_names_the_strategy_links_back_states_costs_and_uses_our_exposure(sheet):
    page, _ = sheet
    assert "<th>lstm_signal</th>" in page and "<th>Strategy</th>" not in page
    assert '<a href="index.html">' in page and "after costs: commission 0.050%" in page
    row = re.search(r"<tr><td>Time in Market[^<]*</td>(.*?)</tr>", page).group(1)
    assert re.findall(r"<td>([^<]*)</td>", row) == ["100.0%", "71.5%"]  # benchmark column first, as QuantStats
    assert 'rel="shortcut icon"' not in page
    assert "\ufe6a" not in page and "CAGR%" in page  # QuantStats' small percent sign has no glyph in most fonts


# --- the numbers behind the charts --------------------------------------------------------------


def _predictions(n=60, seed=0):
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=n)
    y = rng.normal(0, 0.01, n)
    rows = []
    for model, pred in (
        ("lstm", y * 0.3 + rng.normal(0, 0.008, n)),
        ("naive", np.zeros(n)),
        ("ridge", rng.normal(0, 0.002, n)),
    ):
        rows.append(
            pd.DataFrame(
                {
                    "date": dates,
                    "ticker": "AAA",
                    "model": model,
                    "y_pred": pred,
                    "y_true": y,
                    "price_pred": 100.0 + np.arange(n),
                    "price_true": 101.0 + np.arange(n),
                    "horizon": 1,
                    "fold": np.arange(n) // 20,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_error_race_ends_at_n_times_the_mse_gap_and_rises_where_the_model_wins():
    p = _predictions()
    race = derive.error_race(p, "AAA", "lstm")
    lstm = p[p["model"] == "lstm"]
    mse_lstm = float(np.mean((lstm["y_pred"] - lstm["y_true"]) ** 2))
    mse_naive = float(np.mean(lstm["y_true"] ** 2))
    assert race.iloc[-1] == pytest.approx(len(lstm) * (mse_naive - mse_lstm), rel=1e-12)
    steps = race.diff().iloc[1:].to_numpy()
    won = (np.abs(lstm["y_pred"] - lstm["y_true"]) < np.abs(lstm["y_true"])).to_numpy()[1:]
    assert ((steps > 0) == won).all()
    assert derive.fold_starts(lstm) == [lstm["date"].iloc[20], lstm["date"].iloc[40]]


def test_autocorrelation_matches_statsmodels_and_calibration_bins_are_deciles():
    from statsmodels.tsa.stattools import acf

    x = np.random.default_rng(1).normal(size=300).cumsum() * 0.01 + np.random.default_rng(2).normal(size=300)
    assert np.allclose(derive.autocorrelation(x, 12), acf(x, nlags=12, fft=False)[1:], atol=1e-12)
    rows = _predictions(100)
    rows = rows[rows["model"] == "lstm"]
    bins = derive.calibration_bins(rows, 10)
    assert bins["n"].tolist() == [10] * 10
    ordered = rows.sort_values("y_pred")
    assert bins["realised"].iloc[0] == pytest.approx(ordered["y_true"].iloc[:10].mean())
    assert bins["predicted"].is_monotonic_increasing


def test_exposure_is_position_value_over_equity_from_the_fills():
    dates = pd.bdate_range("2021-01-04", periods=5)
    equity = pd.DataFrame({"AAA:lstm_signal": [1000.0, 1000, 1010, 990, 995]}, index=dates)
    close = {"AAA": pd.Series([10.0, 10, 11, 9, 10], index=dates)}
    fills = pd.DataFrame(
        {
            "date": [dates[1].date().isoformat(), dates[3].date().isoformat()],
            "ticker": "AAA",
            "size": [50.0, -50.0],
            "strategy": "lstm_signal",
            "book": "AAA",
        }
    )
    exposure = derive.exposures(equity, fills, close)["AAA:lstm_signal"]
    assert exposure.tolist() == pytest.approx([0.0, 50 * 10 / 1000, 50 * 11 / 1010, 0.0, 0.0])


# --- pages of real runs -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny run and a backtest of its predictions at four times the commission."""
    root = tmp_path_factory.mktemp("pages")
    data = root / "ACME.csv"
    write_yahoo_csv(make_bars(330, seed=4), data)
    result = runner.invoke(app, ["run", *TINY, "--set", f"data.source=csv:{data}", "--runs-dir", str(root / "runs")])
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(root / "runs")
    backtest = runner.invoke(
        app,
        [
            "backtest",
            str(run / "predictions.parquet"),
            "--set",
            "broker.commission_pct=0.002",
            "--runs-dir",
            str(root / "runs"),
        ],
    )
    assert backtest.exit_code == 0, backtest.output
    (tested,) = [r for r in run_dirs(root / "runs") if r != run]
    return run, tested, backtest.output


def test_run_records_provenance_and_the_index_shows_it_with_a_per_fold_table(runs):
    run, _, _ = runs
    metrics = json.loads((run / "metrics.json").read_text())
    prov = metrics["summary"]["provenance"]
    assert {"tensorflow-cpu", "keras", "backtrader", "quantstats"} <= set(prov["versions"])
    frame = pd.read_csv(run.parent.parent / "ACME.csv")
    assert prov["bars"]["ACME"][2] <= len(frame) and re.fullmatch(r"[0-9a-f]{16}", prov["data_sha256"])
    page = (run / "reports" / "index.html").read_text(encoding="utf-8")
    assert prov["data_sha256"] in page and f"keras {prov['versions']['keras']}" in page
    assert "commission_pct" in page  # the full config
    for name in ("config.toml", "comparison.csv", "trades.csv", "fills.csv"):
        assert f'href="../{name}"' in page
    predictions = pd.read_parquet(run / "predictions.parquet")
    lstm = predictions[predictions["model"] == "lstm"]
    rows = re.findall(r'<tr class="[^"]*" data-ticker="ACME" data-fold="(\d+)">(.*?)</tr>', page)
    assert [int(f) for f, _ in rows] == sorted(lstm["fold"].unique())
    for fold, cells in rows:
        first, last = re.findall(r'<td class="l">(\d{4}-\d\d-\d\d)</td>', cells)
        dates = lstm[lstm["fold"] == int(fold)]["date"]
        assert (first, last) == (dates.min().date().isoformat(), dates.max().date().isoformat())


def test_a_strategy_that_never_traded_gets_no_tearsheet_and_the_report_still_builds(runs):
    run, _, _ = runs
    comparison = pd.read_csv(run / "comparison.csv").set_index("strategy")
    assert comparison.loc["rsi_reversion", "trades"] == 0  # on these bars RSI never crosses its bands
    assert not (run / "reports" / "tearsheet_ACME_rsi_reversion.html").exists()
    page = (run / "reports" / "index.html").read_text(encoding="utf-8")
    row = re.search(r'data-strategy="rsi_reversion">(.*?)</tr>', page).group(1)
    assert "none: constant returns" in row
    assert (run / "reports" / "tearsheet_ACME_lstm_signal.html").is_file()


def test_interactive_charts_load_plotly_from_a_file_next_to_the_page(runs):
    run, _, _ = runs
    page = (run / "reports" / "index.html").read_text(encoding="utf-8")
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', page)
    assert scripts == ["plotly.min.js"] and (run / "reports" / "plotly.min.js").stat().st_size > 1_000_000
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing is fetched from the network
    assert 'id="trading-ACME"' in page and 'id="race-ACME"' in page


def test_backtest_uses_the_predictions_run_config_and_its_page_says_what_it_tested(runs):
    run, tested, output = runs
    assert f"config: {run / 'config.toml'} (the predictions' own run) with broker.commission_pct=0.002" in " ".join(
        output.split()
    )
    summary = json.loads((tested / "metrics.json").read_text())["summary"]
    assert summary["changed"] == {"broker.commission_pct": [0.0005, 0.002]}
    assert "csv:" in summary["source"]  # the run's own data source, not the default config's
    page = (tested / "reports" / "index.html").read_text(encoding="utf-8")
    assert "Backtest of the predictions in" in page and str(run / "predictions.parquet") in page
    assert "broker.commission_pct: 0.0005 &rarr; 0.002" in page and "Walk-forward stacked LSTM" not in page
    assert "commission 0.200% of traded value" in page


def test_backtest_of_predictions_whose_run_config_no_longer_loads_warns_and_uses_the_default(runs, tmp_path):
    run, _, _ = runs
    folder = tmp_path / "old-run"
    folder.mkdir()
    shutil.copy(run / "predictions.parquet", folder / "predictions.parquet")
    (folder / "config.toml").write_text("[model]\nretired_key = 1\n")
    data = run.parent.parent / "ACME.csv"
    result = runner.invoke(
        app,
        [
            "backtest",
            str(folder / "predictions.parquet"),
            "--data",
            f"csv:{data}",
            "--no-report",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"warning: {folder / 'config.toml'} cannot be used" in " ".join(result.stderr.split())
    assert "config: configs/default.toml (the default)" in result.stdout


def _trace_names(page: str) -> list[str]:
    traces = re.search(r'Plotly\.newPlot\(\s*"compare-equity",\s*(\[.*?\]),\s*\{', page, re.S).group(1)
    return [t["name"] for t in json.loads(traces)]


def test_compare_page_overlays_equity_and_lists_what_differs_and_warns_on_a_repeated_dir(runs, tmp_path):
    run, tested, _ = runs
    out = tmp_path / "compare.html"
    result = runner.invoke(app, ["compare", str(run), str(tested), str(run) + "/", "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert f"warning: {run} was given twice; it is compared once" in result.stderr
    page = out.read_text(encoding="utf-8")
    assert (tmp_path / "plotly.min.js").is_file() and '<script src="plotly.min.js">' in page
    diff = page[page.index('id="config-differences"') :]
    assert re.search(r"broker\.commission_pct</td><td class=\"l\">0\.0005</td><td class=\"l\">0\.002</td>", diff)
    assert sorted(_trace_names(page)) == sorted(
        f"{r.name} · {s}" for r in (run, tested) for s in ("lstm_signal", "buy_and_hold")
    )
    chosen = runner.invoke(app, ["compare", str(run), "--html", str(out), "--strategy", "sma_cross"])
    assert chosen.exit_code == 0 and _trace_names(out.read_text(encoding="utf-8")) == [f"{run.name} · sma_cross"]
    missing = runner.invoke(app, ["compare", str(run), "--html", str(out), "--strategy", "nope"])
    assert missing.exit_code == 2 and "no run has the strategies nope" in missing.stderr


def test_chart_style_does_not_depend_on_what_was_imported_first(tmp_path):
    script = """
import sys
if sys.argv[1] == "quantstats-first":
    import quantstats  # noqa: F401  (it restyles matplotlib globally when imported)
import numpy as np, pandas as pd
from reports.plots import plot_trading
dates = pd.bdate_range("2020-01-01", periods=200)
equity = pd.DataFrame({"X:a": 100 * np.exp(np.linspace(0, 0.3, 200)), "X:b": np.linspace(100, 90, 200)}, index=dates)
plot_trading(equity, pd.DataFrame({"X:a": np.linspace(0, 1, 200)}, index=dates), sys.argv[2], "X")
"""
    shots = []
    for order in ("plain", "quantstats-first"):
        shots.append(tmp_path / f"{order}.png")
        subprocess.run(
            [sys.executable, "-c", script, order, str(shots[-1])],
            check=True,
            timeout=120,
            env={**__import__("os").environ, "MPLBACKEND": "Agg"},
        )
    assert shots[0].read_bytes() == shots[1].read_bytes()


# --- in a browser -------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")
def test_index_and_a_tearsheet_render_offline_without_errors_and_fit_1024_px(runs, tmp_path):
    run, _, _ = runs
    control = tmp_path / "control.html"  # the detector sees a request a page makes, failed or not
    control.write_text('<html><head></head><body><img src="http://example.org/a.png"></body></html>')
    assert probe_page(control, tmp_path)[1] == ["http://example.org/a.png"]
    probe, remote = probe_page(run / "reports" / "index.html", tmp_path)
    assert probe["errors"] == [] and remote == []
    assert probe["scrollWidth"] <= probe["width"] <= 1024  # the page never scrolls sideways
    assert {t["id"] for t in probe["tables"]} >= {"forecast-table", "comparison-table", "per-fold-table"}
    assert all(t["right"] <= probe["width"] + 0.5 for t in probe["tables"]), probe["tables"]
    charts = {c["id"]: c for c in probe["charts"]}
    assert charts["trading-ACME"]["traces"] == 3 * 7 and charts["trading-ACME"]["points"] > 0
    assert charts["race-ACME"]["traces"] >= 1
    sheet = next((run / "reports").glob("tearsheet_*_lstm_signal.html"))
    probe, remote = probe_page(sheet, tmp_path)
    assert probe["errors"] == [] and remote == []


def test_trading_charts_follow_the_books_in_the_tables_order(tmp_path):
    from reports.build import _chart_jobs
    from reports.index import IndexPage

    dates = pd.bdate_range("2018-01-01", periods=60)
    rng = np.random.default_rng(1)
    equity = pd.DataFrame(
        {
            f"{book}:{s}": 1e5 * np.exp(np.cumsum(rng.normal(0, 0.01, 60)))
            for book in ("spx", "ndx", "portfolio")
            for s in ("lstm_signal", "buy_and_hold")
        },
        index=dates,
    )
    page = IndexPage("run", {}, [], pd.DataFrame())
    for job in _chart_jobs(page, tmp_path, None, equity, None, None, {}, tmp_path):
        job()
    books = [title.split(":")[0] for title, _ in page.pictures if "equity" in title]
    assert books == ["spx", "ndx", "portfolio"]
    assert [re.search(r'id="trading-(\w+)"', div).group(1) for div in page.interactive] == books


@pytest.fixture
def drawn(monkeypatch):
    """The figures the chart functions would save, kept open for inspection."""
    from reports import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path, dpi=100: figures.append(fig) or path)
    yield figures
    import matplotlib.pyplot as plt

    plt.close("all")


def test_a_growth_axis_within_a_decade_labels_values_above_one():
    import matplotlib.pyplot as plt

    from reports.plots import growth_axis

    fig, ax = plt.subplots()
    ax.plot(pd.bdate_range("2020-01-01", periods=50), np.linspace(0.9, 1.6, 50))
    growth_axis(ax)
    fig.canvas.draw()
    low, high = ax.get_ylim()
    shown = [float(t.get_text()) for t in ax.get_yticklabels() if t.get_text() and low <= t.get_position()[1] <= high]
    plt.close(fig)
    assert len([v for v in shown if v > 1]) >= 2, shown


def test_the_sensitivity_chart_is_scaled_by_the_strategies_not_a_control_far_below(tmp_path, drawn):
    from reports.plots import plot_sensitivity

    costs = [0, 5, 10, 20, 50]
    rows = [
        {"ticker": "spx", "strategy": s, "cost_bp": c, "sharpe": v}
        for s, line in (
            ("lstm_signal", [0.6, 0.5, 0.4, 0.2, -0.3]),
            ("buy_and_hold", [0.7] * 5),
            ("naive_signal", [0.1, -1.0, -2.5, -4.0, -7.0]),
        )
        for c, v in zip(costs, line)
    ]
    plot_sensitivity(pd.DataFrame(rows), tmp_path / "s.png", "spx")
    (fig,) = drawn
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert -1.0 < low < -0.3 and 0.7 < high < 1.2  # the LSTM and buy-and-hold fill the panel
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "naive_signal (off scale: to -7.0)" in labels
    legend = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
    title = ax.title.get_window_extent(fig.canvas.get_renderer())
    assert not legend.overlaps(title)


def test_a_short_forecast_is_drawn_beside_a_proportionate_history(tmp_path, drawn):
    from reports.plots import plot_forecast

    history = make_bars(300)
    future = pd.bdate_range(history.index[-1] + pd.offsets.BDay(1), periods=5)
    forecast = pd.DataFrame({"date": future, "price_pred": history["close"].iloc[-1] * np.linspace(1, 1.01, 5)})
    plot_forecast(history, forecast, tmp_path / "f.png", "ACME")
    (fig,) = drawn
    closes = fig.axes[0].get_lines()[0].get_xdata()
    assert len(closes) == 30  # six times the forecast's 5 sessions, at least 30
