"""The Python API: run an experiment from a notebook or a script and get its tables and charts back.

    from lstm_trader import Experiment

    result = Experiment("configs/default.toml", overrides={"model.epochs": 5}).run()
    result.comparison          # every strategy after costs, one row each
    result.plot()              # equity and drawdown (matplotlib)
    result.report()            # the HTML reports; returns reports/index.html

`lstm-trader run` calls the same `Experiment.run`; a finished run dir is opened with `Result.load`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Callable

    from backtests.config import ExperimentConfig
    from forecasting.progress import Progress


class Experiment:
    """An experiment to run: a config plus overrides, checked when the object is made.

    Args:
        config: a TOML path, a dict of the config's sections (as the TOML file holds them), an
            `ExperimentConfig`, or None for `configs/default.toml`.
        overrides: settings that replace the config's, as `{"model.epochs": 2}` or in the
            command line's `--set` form, `["model.epochs=2"]`.
        runs_dir: where the run dir `<name>-<time>/` is made.

    An unknown key or a bad value raises `backtests.errors.ConfigError`, whose message names the key and
    whose `hint` says what to do.
    """

    def __init__(
        self,
        config: str | Path | dict | ExperimentConfig | None = None,
        overrides: dict[str, Any] | list[str] | None = None,
        runs_dir: str | Path = "runs",
    ) -> None:
        from backtests.config import config_from

        self.config: ExperimentConfig = config_from(config, overrides)
        self.runs_dir = Path(runs_dir)

    def __repr__(self) -> str:
        return f"Experiment({self.config.name!r}, source={self.config.data.source!r}, runs_dir={str(self.runs_dir)!r})"

    def run(
        self,
        progress: Progress | None = None,
        resume: str | Path | None = None,
        announce: Callable[[Path], None] | None = None,
    ) -> Result:
        """Walk forward, score the forecasts, backtest every strategy and save it all in a new run dir
        (or, with `resume`, finish an interrupted one). Reports are not drawn: call `.report()`."""
        from backtests.experiment import run_experiment

        done = run_experiment(
            self.config,
            self.runs_dir,
            progress,
            resume=None if resume is None else Path(resume),
            announce=announce,
        )
        result = Result.load(done.path)
        result.phases = dict(done.phases)
        result.silent = list(done.silent)
        result.trials = done.trials
        return result


@dataclass
class Result:
    """A finished run: its tables as DataFrames, read from its run dir (`path`).

    Attributes:
        path: the run dir.
        config: the experiment's settings as run.
        predictions: the predictions table (one row per date, ticker and model; see the contract).
        forecast: forecast errors per ticker and model (MSE, MAE, RMSE, U2, DM, ...).
        comparison: every strategy after costs, one row per (book, strategy).
        equity: each strategy's account value per day; columns `book:strategy`.
        returns: each strategy's daily returns; columns as `equity`'s.
        cross_section: rank IC and friends per model (a universe model's run), else None.
        volatility: QLIKE, Mincer-Zarnowitz and VaR hits per (ticker, model) (a volatility run), else None.
        summary: what was run (data span, folds, network, notes, trial count).
    """

    path: Path
    config: ExperimentConfig
    predictions: pd.DataFrame
    forecast: pd.DataFrame
    comparison: pd.DataFrame
    equity: pd.DataFrame
    returns: pd.DataFrame
    cross_section: pd.DataFrame | None = None
    volatility: pd.DataFrame | None = None
    summary: dict = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    silent: list[str] = field(default_factory=list)
    trials: Any = None

    @classmethod
    def load(cls, run_dir: str | Path) -> Result:
        """Open a run dir written by `lstm-trader run` or `Experiment.run` (a missing or foreign
        folder raises `ReportError` with a hint)."""
        from backtests.config import config_from
        from reports.rundata import read_run

        run = Path(run_dir)
        metrics, comparison, returns, equity, predictions = read_run(run)
        if predictions is None or equity is None or returns is None:
            from reports.errors import ReportError

            raise ReportError(f"{run} is not a finished run", "finish it: lstm-trader run --resume " + str(run))
        config = config_from(run / "config.toml")
        wide = returns.assign(column=returns["ticker"] + ":" + returns["strategy"]).pivot(
            index="date", columns="column", values="return"
        )
        wide = wide[[c for c in equity.columns if c in wide.columns]].rename_axis(columns=None)

        def table(key: str) -> pd.DataFrame | None:
            return pd.DataFrame(metrics[key]) if key in metrics else None

        return cls(
            path=run,
            config=config,
            predictions=predictions,
            forecast=pd.DataFrame(metrics.get("forecast", [])),
            comparison=comparison,
            equity=equity,
            returns=wide,
            cross_section=table("cross_section"),
            volatility=table("volatility"),
            summary=metrics.get("summary", {}),
        )

    def drawdown(self) -> pd.DataFrame:
        """Each strategy's drawdown per day: equity over its running peak, minus one (0 at a new high)."""
        return self.equity / self.equity.cummax() - 1.0

    def plot(self, strategies: list[str] | None = None, book: str | None = None):
        """Equity (growth of 1) and drawdown of the strategies on one book (default: the first),
        as a matplotlib Figure; `strategies` picks some by name."""
        import matplotlib.pyplot as plt

        columns = self._columns(strategies, book)
        growth = self.equity[columns] / self.equity[columns].iloc[0]
        fig, (top, bottom) = plt.subplots(
            2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]}, layout="constrained"
        )
        for column in columns:
            label = column.split(":", 1)[1]
            top.plot(growth.index, growth[column], label=label, linewidth=1.2)
            bottom.plot(growth.index, self.drawdown()[column], label=label, linewidth=1.0)
        top.set_ylabel("growth of 1")
        top.set_title(f"{self.config.name}: {columns[0].split(':', 1)[0]}, out of sample, after costs")
        top.legend(loc="upper left", fontsize="small", ncol=min(4, len(columns)))
        top.grid(alpha=0.3)
        bottom.set_ylabel("drawdown")
        bottom.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
        bottom.grid(alpha=0.3)
        return fig

    def report(self, open_browser: bool = False) -> Path:
        """Write the run's HTML reports (tear sheets, forecast charts, index.html); returns index.html."""
        from reports import build_reports

        index = build_reports(self.path)
        if open_browser:
            import webbrowser

            webbrowser.open(index.resolve().as_uri())
        return index

    def tearsheet(self, strategy: str, book: str | None = None) -> Path:
        """Write one strategy's QuantStats tear sheet (against its benchmark) and return its path."""
        from reports.build import tearsheet_tasks
        from reports.errors import ReportError
        from reports.rundata import read_run
        from reports.tearsheet import tearsheet

        (column,) = self._columns([strategy], book)
        book, strategy = column.split(":", 1)
        out = self.path / "reports"
        out.mkdir(exist_ok=True)
        returns = read_run(self.path)[2]
        tasks = tearsheet_tasks(self.path.name, returns, out, self.comparison)
        if (book, strategy) not in tasks:
            raise ReportError(f"{strategy} on {book} never traded", "there is no tear sheet of a flat record")
        return tearsheet(*tasks[(book, strategy)])

    def _columns(self, strategies: list[str] | None, book: str | None) -> list[str]:
        from reports.errors import ReportError

        books = list(dict.fromkeys(c.split(":", 1)[0] for c in self.equity.columns))
        book = book or books[0]
        if book not in books:
            raise ReportError(f"no book '{book}' in this run", "books here: " + ", ".join(books))
        here = [c for c in self.equity.columns if c.split(":", 1)[0] == book]
        if strategies is None:
            return here
        names = {c.split(":", 1)[1]: c for c in here}
        unknown = [s for s in strategies if s not in names]
        if unknown:
            raise ReportError(f"no strategy '{unknown[0]}' on {book}", "strategies here: " + ", ".join(names))
        return [names[s] for s in strategies]

    def __repr__(self) -> str:
        return f"Result({str(self.path)!r}: {len(self.predictions)} predictions, {len(self.comparison)} backtests)"

    def _repr_html_(self) -> str:
        """What a notebook shows: what was run, the forecast errors and the strategy comparison."""
        s = self.summary
        head = (
            f"<p><b>{html.escape(self.config.name)}</b>: {html.escape(str(s.get('source', '')))}, "
            f"test {s.get('test_start', '?')} to {s.get('test_end', '?')}, {s.get('folds', '?')} folds; "
            f"{html.escape(str(s.get('network', '')))}<br><code>{html.escape(str(self.path))}</code></p>"
        )
        notes = "".join(f"<p><i>note: {html.escape(note)}</i></p>" for note in s.get("notes", []))
        forecast = self.volatility if self.volatility is not None else self.forecast
        if self.cross_section is not None:
            forecast = self.cross_section
        forecast_html = forecast.to_html(
            index=False, float_format=lambda v: f"{v:.4g}", columns=list(forecast.columns[:12]), na_rep=""
        )
        keep = [
            c
            for c in ("ticker", "strategy", "total_return", "cagr", "sharpe", "max_drawdown", "trades", "dsr")
            if c in self.comparison
        ]
        comparison_html = self.comparison[keep].to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="")
        return (
            head
            + notes
            + "<h4>Forecast errors</h4>"
            + forecast_html
            + "<h4>Strategies after costs</h4>"
            + comparison_html
        )
