import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lstm_trader.cli import app
from reports import ReportError, build_reports
from tests.helpers import TINY, make_bars, run_dirs, write_yahoo_csv

runner = CliRunner()


class Page(HTMLParser):
    """Links, images and the data-value cells of each table, by table id and row attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.tables: dict[str, list[dict]] = {}
        self._table = None
        self._row = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag in ("img", "script") and "src" in a:
            self.links.append(a["src"])
        if tag == "link" and "href" in a:
            self.links.append(a["href"])
        if tag == "table":
            self._table = a.get("id")
            self.tables.setdefault(self._table, [])
        if tag == "tr" and self._table:
            self._row = {"attrs": a, "values": []}
            self.tables[self._table].append(self._row)
        if tag == "td" and self._row is not None and "data-value" in a:
            self._row["values"].append(a["data-value"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    data = root / "ACME.csv"
    write_yahoo_csv(make_bars(320, seed=9), data)
    result = runner.invoke(app, ["run", *TINY, "--set", f"data.source=csv:{data}", "--runs-dir", str(root / "runs")])
    assert result.exit_code == 0, result.output
    (run,) = run_dirs((root / "runs"))
    return run, result.output


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_run_writes_index_and_one_tearsheet_per_strategy(run_dir):
    run, output = run_dir
    index = run / "reports" / "index.html"
    assert index.is_file()
    assert output.strip().splitlines()[-1] == f"open: {index}"
    strategies = pd.read_csv(run / "comparison.csv")["strategy"]
    for strategy in strategies:
        assert (run / "reports" / f"tearsheet_ACME_{strategy}.html").is_file()
    assert "findfont" not in output and "Traceback" not in output


def test_every_link_resolves_inside_the_run_dir(run_dir):
    run, _ = run_dir
    page = parse(run / "reports" / "index.html")
    assert len(page.links) > 10
    for link in page.links:
        assert not re.match(r"^[a-z]+://", link), link  # nothing reaches for the network
        target = (run / "reports" / link).resolve()
        assert target.is_file(), link
        assert run.resolve() in target.parents


def test_index_numbers_equal_metrics_and_comparison(run_dir):
    run, _ = run_dir
    page = parse(run / "reports" / "index.html")
    metrics = json.loads((run / "metrics.json").read_text())
    forecast_rows = [r for r in page.tables["forecast-table"] if r["values"]]
    assert len(forecast_rows) == len(metrics["forecast"]) == 5  # lstm, ridge, naive, drift, momentum
    keys = [
        "n",
        "theil_u",
        "dm_pvalue",
        "cw_pvalue",
        "directional_accuracy",
        "da_base_rate",
        "da_pvalue",
        "correlation",
        "price_rmse",
        "theil_u_price",
        "rmse",
        "mse",
        "mae",
        "price_mae",
        "mape",
    ]
    for row, m in zip(forecast_rows, metrics["forecast"]):
        assert row["attrs"]["data-model"] == m["model"]
        for key, value in zip(keys, row["values"]):
            assert (value == "" and m[key] is None) or float(value) == m[key], (key, value, m[key])
    comparison = pd.read_csv(run / "comparison.csv")
    rows = [r for r in page.tables["comparison-table"] if r["values"]]
    assert [r["attrs"]["data-strategy"] for r in rows] == list(comparison["strategy"])
    cols = [
        "total_return",
        "cagr",
        "volatility",
        "sharpe",
        "sharpe_low",
        "sharpe_high",
        "sortino",
        "max_drawdown",
        "exposure",
        "trades",
        "rejected",
        "turnover",
        "win_rate",
        "costs",
        "psr",
        "dsr",
    ]
    for row, (_, expected) in zip(rows, comparison.iterrows()):
        for key, value in zip(cols, row["values"]):
            if value == "":
                assert pd.isna(expected[key]), key
            else:
                assert float(value) == pytest.approx(float(expected[key]), rel=1e-12, abs=1e-15), key


def test_tearsheet_sharpe_is_quantstats_sharpe_of_saved_returns(run_dir):
    import quantstats as qs

    run, _ = run_dir
    returns = pd.read_parquet(run / "returns.parquet")
    for strategy in ("lstm_signal", "buy_and_hold"):
        series = returns[returns["strategy"] == strategy].set_index("date")["return"]
        html = (run / "reports" / f"tearsheet_ACME_{strategy}.html").read_text()
        cells = re.search(r"<tr><td>Sharpe</td>((?:<td>[^<]*</td>)+)</tr>", html).group(1)
        shown = re.findall(r"<td>([^<]*)</td>", cells)[-1]  # the strategy's column comes last
        assert float(shown) == pytest.approx(round(qs.stats.sharpe(series), 2), abs=0.0051)
        assert f"{strategy} on ACME — run {run.name}" in html
        assert "qtpylib.io" not in html


def test_report_command_regenerates_and_missing_run_is_an_error(run_dir, tmp_path):
    run, _ = run_dir
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "reports")
    result = runner.invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    assert (copy / "reports" / "index.html").is_file()
    bad = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert bad.exit_code == 2 and "run dir not found" in bad.stderr
    with pytest.raises(ReportError):
        build_reports(tmp_path / "nope")
