"""The forecasting tasks: what is predicted, by which walk-forward, beside which controls, scored how.

Three tasks share one walk-forward machinery and one predictions table:

- `ReturnsTask`: the next horizon's log return (or close) of each ticker, one network per ticker,
  beside ridge, naive, drift and momentum; scored by RMSE, Theil's U2, Diebold-Mariano, Clark-West.
- `CrossSectionTask`: one network over a universe's pooled windows, walked forward on dates, ranking
  the tickers every day (`xs_demeaned`, `xs_rank` or a return target with `scope = "global"`), beside
  ridge, LightGBM and ranking scores; scored by rank IC, ICIR and the Newey-West t as well.
- `VolatilityTask`: the log of the next horizon's realized variance (`target = "realized_vol"`),
  per ticker, beside ridge, GARCH, GJR, EWMA, HAR and naive; scored by QLIKE, Mincer-Zarnowitz and
  VaR hits.

`task_of(model)` is the one place that reads `model.scope` and `model.target` to choose; every room
above asks the task (what it writes, how it checks data, how it is scored, whether it ranks a
universe) instead of branching on the settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import pandas as pd

from forecasting.bars import require_rows
from forecasting.checkpoint import FoldCheckpoints
from forecasting.errors import ForecastingError
from forecasting.features import warmup_rows
from forecasting.progress import Progress
from forecasting.spec import ModelSpec, WalkForwardSpec

ROWS_HINT = "feature warm-up + lookback + min_train + horizon, and at least one test bar"


@dataclass
class Scores:
    """A task's forecast scores: the U2/DM table every task writes (empty where it does not apply),
    and the task's own tables (`cross_section`, `volatility`) overall and per fold."""

    forecast: pd.DataFrame
    forecast_per_fold: pd.DataFrame
    own: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=dict)
    daily: pd.DataFrame | None = None  # per-day cross-sectional scores (a universe's report draws them)

    def sections(self) -> dict[str, list[dict]]:
        """The scores as metrics.json holds them."""
        out = {
            "forecast": self.forecast.to_dict(orient="records"),
            "forecast_per_fold": self.forecast_per_fold.to_dict(orient="records"),
        }
        for name, (overall, per_fold) in self.own.items():
            out[name] = overall.to_dict(orient="records")
            out[f"{name}_per_fold"] = per_fold.to_dict(orient="records")
        return out

    def table(self, name: str) -> pd.DataFrame | None:
        return self.own[name][0] if name in self.own else None


@dataclass(frozen=True)
class ParallelPlan:
    """A walk-forward cut into independent tasks for an executor: `function(*args)` per task returns
    rows of the table; `assemble(tables)` puts them together in the order the serial run writes."""

    function: object
    tasks: list[tuple]
    names: list[str]
    assemble: object


class Task:
    """One forecasting task (see the module's docstring). Subclasses say what differs."""

    name: ClassVar[str]
    universe: ClassVar[bool] = False  # one network ranks a universe, walked forward on its dates
    forecasts: ClassVar[str] = "return"  # what `y_pred` is: a "return" or a "variance" forecast

    def __init__(self, model: ModelSpec) -> None:
        self.model = model

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.model.target!r})"

    # what it writes
    def models(self) -> tuple[str, ...]:
        """The models whose rows the walk-forward writes (the LSTM first)."""
        from forecasting.walkforward import BASELINES

        return ("lstm",) + BASELINES

    def columns(self) -> list[str]:
        from forecasting.walkforward import PREDICTION_COLUMNS

        return PREDICTION_COLUMNS

    def describe(self, n_tickers: int) -> str:
        """The run summary's account of the network's task."""
        m = self.model
        return f"{len(m.features)} features, target {m.target} h={m.horizon}"

    # data
    def needed_rows(self, walk_forward: WalkForwardSpec) -> int:
        m = self.model
        return warmup_rows(m.features) + m.lookback + walk_forward.min_train + 2 * m.horizon + walk_forward.gap + 1

    def check_prices(
        self, prices: dict[str, pd.DataFrame], walk_forward: WalkForwardSpec, source: str, notes: list[str] | None
    ) -> dict[str, pd.DataFrame]:
        """The tickers the walk-forward can use, each long enough for warm-up, lookback and a first fold;
        an error with a hint otherwise."""
        needed = self.needed_rows(walk_forward)
        for ticker, frame in prices.items():
            require_rows(frame, needed, f"{source} ({ticker})", ROWS_HINT)
        return prices

    def sessions(self, prices: dict[str, pd.DataFrame]) -> int:
        """The sessions the walk-forward counts folds in: the shortest ticker's bars."""
        return min(len(frame) for frame in prices.values())

    def test_span(self, prices: dict[str, pd.DataFrame], walk_forward: WalkForwardSpec) -> tuple:
        """First and last prediction dates of the walk-forward, without training anything (the span every
        ticker is tested in)."""
        from forecasting.walkforward import make_samples, make_split

        split = make_split(self.model, walk_forward)
        firsts, lasts = [], []
        for ticker, frame in prices.items():
            samples = make_samples(frame, self.model, ticker)
            firsts.append(samples.dates[min(split.first_test(), samples.n_known - 1)])
            lasts.append(samples.dates[samples.n_known - 1])
        return max(firsts), min(lasts)

    def first_test_date(self, prices: dict[str, pd.DataFrame], walk_forward: WalkForwardSpec) -> pd.Timestamp:
        """The earliest first out-of-sample date over every ticker."""
        from forecasting.walkforward import make_samples, make_split

        split = make_split(self.model, walk_forward)
        return min(
            make_samples(frame, self.model, ticker).dates[split.first_test()] for ticker, frame in prices.items()
        )

    def predicts_log_return(self) -> bool:
        """Whether `y_pred` is the horizon's log return itself (so a predicted close is close x exp(y_pred), and
        a validation loss over the zero forecast's is "below 1 beats naive")."""
        return self.model.target == "log_return"

    # the walk-forward
    def walk_forward(
        self,
        prices: dict[str, pd.DataFrame],
        walk_forward: WalkForwardSpec,
        seed: int = 0,
        progress: Progress | None = None,
        checkpoints: FoldCheckpoints | None = None,
    ) -> pd.DataFrame:
        """The predictions table: every ticker's walk-forward, one network per ticker."""
        from forecasting.walkforward import ticker_walk_forward

        tables = [
            ticker_walk_forward(ticker, frame, self.model, walk_forward, seed, progress, checkpoints)
            for ticker, frame in prices.items()
        ]
        return pd.concat(tables, ignore_index=True)[self.columns()]

    def runs_here(self, executor: str, n_tickers: int, walk_forward: WalkForwardSpec) -> bool:
        """Whether the walk-forward runs in this process: serial, or a single warm-started ticker on
        the local pool (from-scratch folds and several tickers are tasks of their own)."""
        return executor == "serial" or (n_tickers == 1 and executor == "local" and walk_forward.warm_start)

    def parallel_plan(
        self, prices: dict[str, pd.DataFrame], walk_forward: WalkForwardSpec, seed: int, checkpoints: str | None
    ) -> ParallelPlan:
        """Independent tasks for an executor: one per (ticker, fold) when folds start from scratch, else
        one per ticker (checkpointed in its own folder)."""
        from forecasting import walkforward as wfm

        model, columns = self.model, self.columns()
        if not walk_forward.warm_start:
            pairs = [
                (ticker, fold)
                for ticker, frame in prices.items()
                for fold in range(wfm.fold_count(frame, model, walk_forward, ticker))
            ]

            def assemble(tables: list[pd.DataFrame]) -> pd.DataFrame:
                per_ticker = [
                    wfm.assemble_folds([t for (ticker, _), t in zip(pairs, tables) if ticker == name])
                    for name in prices
                ]
                return pd.concat(per_ticker, ignore_index=True)[columns]

            return ParallelPlan(
                wfm.predict_fold,
                [(ticker, prices[ticker], model, walk_forward, seed, fold) for ticker, fold in pairs],
                [f"{ticker} fold {fold}" for ticker, fold in pairs],
                assemble,
            )
        return ParallelPlan(
            wfm.ticker_task,
            [(ticker, frame, model, walk_forward, seed, checkpoints) for ticker, frame in prices.items()],
            list(prices),
            lambda tables: pd.concat(tables, ignore_index=True)[columns],
        )

    # scores
    def score(self, predictions: pd.DataFrame, k: int = 5) -> Scores:
        """Forecast errors per (ticker, model), overall and per fold."""
        from forecasting.metrics import forecast_metrics

        return Scores(forecast_metrics(predictions), forecast_metrics(predictions, per_fold=True))

    def summary_notes(self, prices: dict[str, pd.DataFrame]) -> dict:
        """What a run's summary adds for this task."""
        return {}


class ReturnsTask(Task):
    name = "returns"


class CrossSectionTask(Task):
    name = "cross_section"
    universe = True

    def models(self) -> tuple[str, ...]:
        from forecasting.cross_section import GLOBAL_MODELS

        return GLOBAL_MODELS

    def columns(self) -> list[str]:
        from forecasting.cross_section import GLOBAL_COLUMNS

        return GLOBAL_COLUMNS

    def describe(self, n_tickers: int) -> str:
        return super().describe(n_tickers) + f", one global network for {n_tickers} tickers"

    def check_prices(self, prices, walk_forward, source, notes):
        """A universe needs that of its calendar, not of every ticker: a ticker too short for the
        features' warm-up and the lookback is left out, with a note."""
        from forecasting.cross_section import usable_universe

        m = self.model
        prices, left_out = usable_universe(prices, m, warmup_rows(m.features) + m.lookback + m.horizon + 1)
        if notes is not None:
            notes.extend(left_out)
        calendar = pd.DatetimeIndex(sorted(set().union(*(f.index for f in prices.values()))))
        require_rows(
            pd.DataFrame(index=calendar),
            self.needed_rows(walk_forward),
            f"{source} (the universe's sessions)",
            "feature warm-up + lookback + min_train + horizon, and at least one test session",
        )
        return prices

    def sessions(self, prices):
        """The universe's sessions, as its walk-forward counts them."""
        return len(set().union(*(frame.index for frame in prices.values())))

    def test_span(self, prices, walk_forward):
        from forecasting.cross_section import build_panel, make_date_split

        panel = build_panel(prices, self.model)
        first = make_date_split(self.model, walk_forward).first_test()
        last = panel.known_days - 1
        return panel.calendar[min(first, last)], panel.calendar[last]

    def first_test_date(self, prices, walk_forward):
        """The universe walks forward on the calendar of every ticker's dates."""
        from forecasting.cross_section import build_panel, make_date_split

        return build_panel(prices, self.model).calendar[make_date_split(self.model, walk_forward).first_test()]

    def walk_forward(self, prices, walk_forward, seed=0, progress=None, checkpoints=None):
        """One network for the universe, walked forward on dates."""
        from forecasting.cross_section import global_walk_forward

        return global_walk_forward(prices, self.model, walk_forward, seed, progress, checkpoints)

    def runs_here(self, executor, n_tickers, walk_forward):
        """One network: a warm-started walk-forward is one sequence of folds (from-scratch folds are
        tasks of their own)."""
        return executor == "serial" or walk_forward.warm_start

    def parallel_plan(self, prices, walk_forward, seed, checkpoints):
        from forecasting.cross_section import global_fold, global_fold_count, sort_global

        folds = list(range(global_fold_count(prices, self.model, walk_forward)))
        return ParallelPlan(
            global_fold,
            [(prices, self.model, walk_forward, seed, fold) for fold in folds],
            [f"fold {fold}" for fold in folds],
            lambda tables: sort_global(pd.concat(tables, ignore_index=True)),
        )

    def score(self, predictions, k=5):
        """Forecast errors per ticker, and rank IC, ICIR, Newey-West t, top-k hit rate and quintile
        spread per model (top-k counts the first ranked portfolio's k)."""
        from forecasting.xs_metrics import cross_section_metrics, daily_cross_section

        scores = super().score(predictions, k)
        h = self.model.horizon
        scores.own["cross_section"] = (
            cross_section_metrics(predictions, k=k, horizon=h),
            cross_section_metrics(predictions, k=k, per_fold=True, horizon=h),
        )
        scores.daily = daily_cross_section(predictions, k=k)
        return scores


class VolatilityTask(Task):
    name = "volatility"
    forecasts = "variance"

    def models(self) -> tuple[str, ...]:
        from forecasting.volatility import VOL_MODELS

        return VOL_MODELS

    def columns(self) -> list[str]:
        from forecasting.walkforward import VOLATILITY_COLUMNS

        return VOLATILITY_COLUMNS

    def check_prices(self, prices, walk_forward, source, notes):
        """Before anything trains: the variance estimator suits the data, and the first fold is long
        enough for a GARCH fit."""
        from forecasting.volatility import MIN_GARCH_RETURNS, estimator_for
        from forecasting.walkforward import make_samples, make_split

        m = self.model
        for ticker, frame in prices.items():
            estimator_for(frame, m.vol_estimator, f"{source} ({ticker})")
        prices = super().check_prices(prices, walk_forward, source, notes)  # a first fold at all, before its length
        for ticker, frame in prices.items():
            # the first fold's GARCH fit ends where its last training target is known, as the fold computes it
            samples = make_samples(frame, m, ticker)
            fit_end = int(samples.positions[make_split(m, walk_forward).train_rows(0)[-1]]) + m.horizon
            if fit_end < MIN_GARCH_RETURNS:
                raise ForecastingError(
                    f"GARCH needs at least {MIN_GARCH_RETURNS} training returns; the first fold of {ticker} has "
                    f"{fit_end}",
                    f"raise walk_forward.min_train to at least {walk_forward.min_train + MIN_GARCH_RETURNS - fit_end}",
                )
        return prices

    def score(self, predictions, k=5):
        """QLIKE, Mincer-Zarnowitz and VaR hits per (ticker, model): the errors of a variance forecast
        (its return-space U2 would mean nothing)."""
        from forecasting.vol_metrics import volatility_metrics

        empty = pd.DataFrame()
        return Scores(
            empty,
            empty,
            {"volatility": (volatility_metrics(predictions), volatility_metrics(predictions, per_fold=True))},
        )

    def summary_notes(self, prices):
        """Which daily variance proxy every model was scored against."""
        from forecasting.volatility import estimator_for

        kinds = sorted({estimator_for(frame, self.model.vol_estimator) for frame in prices.values()})
        names = {"garman_klass": "Garman-Klass (OHLC)", "parkinson": "Parkinson (high-low)", "close": "squared returns"}
        return {"variance_proxy": ", ".join(names[k] for k in kinds)}


def task_of(model: ModelSpec) -> Task:
    """The task a model's settings describe (`ModelSpec` has already refused the combinations that
    make none: a cross-sectional target per ticker, a pooled close or variance)."""
    if model.scope == "global":
        return CrossSectionTask(model)
    if model.target == "realized_vol":
        return VolatilityTask(model)
    return ReturnsTask(model)


def walk_forward_predict(
    prices: dict[str, pd.DataFrame] | pd.DataFrame,
    model: ModelSpec,
    walk_forward: WalkForwardSpec,
    seed: int = 0,
    progress: Progress | None = None,
    checkpoints: FoldCheckpoints | None = None,
) -> pd.DataFrame:
    """The predictions table (DESIGN.md) of `model`'s task: the LSTM's rows beside its controls'.

    `y_pred`/`y_true` are the task's target (log returns over the horizon for returns and the
    cross-section, the log of realized variance for volatility); `price_pred` is the predicted close at
    t + horizon. `progress` hears about every fold and epoch. With `checkpoints`, every completed fold
    is saved and a rerun resumes after the last one, with an identical result.
    """
    if isinstance(prices, pd.DataFrame):
        prices = {"asset": prices}
    return task_of(model).walk_forward(prices, walk_forward, seed, progress, checkpoints)
