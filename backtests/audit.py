"""The look-ahead audit: change every price after a date D and show that nothing decided on or before D moves.

For a universe model (`model.scope = "global"`) each cut changes one ticker's prices after D (another
ticker at each cut), so that a prediction of any other ticker that moves shows leakage across tickers.

For each cut date D the prices after D are replaced by a random walk, the walk-forward is run again
and every configured strategy is traded again. Nothing made at or before the close of D may change:
not a prediction, not a decision (the target exposure chosen at a close), not a fill, not an equity
value. Cut dates default to a fold start, the session before it (where an off-by-one in the split
shows) and a session inside the fold. A structural check runs beside it on every prediction: the
model that made a prediction dated t was trained on targets known by t (`train_end <= date`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backtests.books import strategies_with_benchmark
from backtests.config import ExperimentConfig
from backtests.engine import run_backtest
from backtests.errors import BacktestError
from backtests.experiment import predict_all
from forecasting.tasks import task_of
from forecasting.walkforward import Progress


@dataclass
class CutResult:
    date: pd.Timestamp
    predictions_checked: int = 0  # predictions dated on or before D (all models, all tickers)
    predictions_changed: int = 0  # of those, how many differ: must be 0
    later_changed: int = 0  # predictions after D that differ: shows the perturbation reached the model
    decisions_checked: int = 0  # target exposures chosen at closes on or before D (every strategy)
    decisions_changed: int = 0
    fills_checked: int = 0
    fills_changed: int = 0
    equity_days_checked: int = 0
    equity_days_changed: int = 0
    changed_strategies: list[str] = field(default_factory=list)
    perturbed: str = "every ticker"  # whose bars after D were changed

    @property
    def passed(self) -> bool:
        return not (
            self.predictions_changed or self.decisions_changed or self.fills_changed or self.equity_days_changed
        )


@dataclass
class AuditResult:
    cuts: list[CutResult]
    predictions: int  # every prediction of the unperturbed run
    trained_after: int  # predictions whose model was trained on a target after their date: must be 0

    @property
    def passed(self) -> bool:
        return self.trained_after == 0 and all(cut.passed for cut in self.cuts)


def perturb_after(frame: pd.DataFrame, date: pd.Timestamp, seed: int = 0) -> pd.DataFrame:
    """Every bar after `date` changed: OHLC scaled by the bar's own random factor, its high raised and its
    low lowered by a random amount (so range estimators such as Garman-Klass, which a common factor would
    leave alone, change too; bars stay valid), and volume x3."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    later = out.index > date
    n_later = int(later.sum())
    factor = np.exp(np.cumsum(rng.normal(0.0, 0.02, n_later)))
    prices = [c for c in ("open", "high", "low", "close") if c in out]  # close alone for close-only data
    out.loc[later, prices] = out.loc[later, prices].mul(factor, axis=0)
    if "high" in out and "low" in out:
        out.loc[later, "high"] *= np.exp(rng.uniform(0.002, 0.02, n_later))
        out.loc[later, "low"] *= np.exp(-rng.uniform(0.002, 0.02, n_later))
    if "volume" in out:
        out.loc[later, "volume"] *= 3.0
    return out


def test_span(config: ExperimentConfig, prices: dict[str, pd.DataFrame]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last prediction dates of the walk-forward, without training anything."""
    return task_of(config.model).test_span(prices, config.walk_forward)


def parse_dates(
    config: ExperimentConfig, prices: dict[str, pd.DataFrame], dates: list[str] | None
) -> list[pd.Timestamp]:
    """The cut dates asked for, checked against the test span before anything trains."""
    first, last = test_span(config, prices)
    cuts = []
    for text in dates or []:
        try:
            cut = pd.Timestamp(text)
        except (ValueError, TypeError):
            raise BacktestError(f"--date '{text}' is not a date", "use ISO dates such as 2016-06-30") from None
        if not first <= cut < last:
            raise BacktestError(
                f"audit date {cut.date()} is outside the out-of-sample span {first.date()} to {last.date()}",
                "pick a date between those two",
            )
        cuts.append(cut)
    return cuts


def default_cuts(predictions: pd.DataFrame) -> list[pd.Timestamp]:
    """A fold start in the middle of the test span, the session before it, and a session inside that fold."""
    lstm = predictions[predictions["model"] == "lstm"].sort_values("date")
    folds = sorted(lstm["fold"].unique())
    if len(folds) < 2:
        dates = lstm["date"].drop_duplicates().to_list()
        return [pd.Timestamp(dates[len(dates) // 2])]
    fold = folds[len(folds) // 2]
    days = lstm.loc[lstm["fold"] == fold, "date"].drop_duplicates().to_list()
    before = lstm.loc[lstm["date"] < days[0], "date"].max()
    return [pd.Timestamp(before), pd.Timestamp(days[0]), pd.Timestamp(days[len(days) // 2])]


def _differs(a: pd.DataFrame, b: pd.DataFrame, cols: list[str]) -> int:
    if len(a) != len(b):
        return max(len(a), len(b))
    left, right = a[cols].reset_index(drop=True), b[cols].reset_index(drop=True)
    same = (left == right) | (left.isna() & right.isna())
    return int((~same.all(axis=1)).sum())


def run_audit(
    config: ExperimentConfig,
    prices: dict[str, pd.DataFrame],
    dates: list[pd.Timestamp] | None = None,
    progress: Progress | None = None,
) -> AuditResult:
    """Walk forward and trade every strategy on the real prices and, per cut date, on perturbed ones."""
    first = predict_all(prices, config, progress)
    trained_after = int((pd.to_datetime(first["train_end"]) > pd.to_datetime(first["date"])).sum())
    cuts = list(dates) if dates else default_cuts(first)
    specs = strategies_with_benchmark(config)
    real = {spec.title: run_backtest(prices, first, spec.name, config.broker, spec.params) for spec in specs}
    results = []
    universe = task_of(config.model).universe
    for number, cut in enumerate(cuts):
        # A universe model is audited for leakage across tickers: one ticker's bars after D change (each
        # cut another one), and no prediction of any ticker made on or before D may move
        victims = [list(prices)[number % len(prices)]] if universe else list(prices)
        changed = {
            t: perturb_after(frame, cut, seed=config.seed + number) if t in victims else frame
            for t, frame in prices.items()
        }
        second = predict_all(changed, config, progress)
        cols = ["date", "ticker", "model", "y_pred", "price_pred", "fold", "train_end"]
        result = CutResult(cut, perturbed=victims[0] if universe else "every ticker")
        before_a, before_b = first[first["date"] <= cut], second[second["date"] <= cut]
        result.predictions_checked = len(before_a)
        result.predictions_changed = _differs(before_a, before_b, cols)
        result.later_changed = _differs(first[first["date"] > cut], second[second["date"] > cut], ["y_pred"])
        for spec in specs:
            a, b = real[spec.title], run_backtest(changed, second, spec.name, config.broker, spec.params)
            da, db = (r.decisions[pd.to_datetime(r.decisions["date"]) <= cut] for r in (a, b))
            fa, fb = a.fills[a.fills["date"] <= cut], b.fills[b.fills["date"] <= cut]
            ea, eb = a.equity[a.equity.index <= cut], b.equity[b.equity.index <= cut]
            moved = (
                _differs(da, db, ["date", "ticker", "target"]),
                _differs(fa, fb, ["date", "size", "price", "commission"]),
                int((ea.to_numpy() != eb.to_numpy()).sum()) if len(ea) == len(eb) else len(ea),
            )
            result.decisions_checked += len(da)
            result.fills_checked += len(fa)
            result.equity_days_checked += len(ea)
            result.decisions_changed += moved[0]
            result.fills_changed += moved[1]
            result.equity_days_changed += moved[2]
            if any(moved):
                result.changed_strategies.append(spec.title)
        results.append(result)
    return AuditResult(results, len(first), trained_after)
