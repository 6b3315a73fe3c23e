"""The look-ahead audit: change every price after a date D and show that nothing decided on or before D moves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtests.config import ExperimentConfig
from backtests.engine import run_backtest
from backtests.errors import BacktestError
from forecasting import walk_forward_predict
from forecasting.walkforward import Progress


@dataclass
class AuditResult:
    date: pd.Timestamp
    predictions_checked: int      # predictions dated on or before D (all models, all tickers)
    predictions_changed: int      # of those, how many differ: must be 0
    later_changed: int            # predictions after D that differ: shows the perturbation reached the model
    fills_checked: int
    fills_changed: int
    equity_days_checked: int
    equity_days_changed: int

    @property
    def passed(self) -> bool:
        return self.predictions_changed == 0 and self.fills_changed == 0 and self.equity_days_changed == 0


def perturb_after(frame: pd.DataFrame, date: pd.Timestamp, seed: int = 0) -> pd.DataFrame:
    """Every bar after `date` scaled by its own random factor (OHLC together, so bars stay valid) and volume x3."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    later = out.index > date
    factor = np.exp(np.cumsum(rng.normal(0.0, 0.02, int(later.sum()))))
    out.loc[later, ["open", "high", "low", "close"]] = out.loc[later, ["open", "high", "low", "close"]].mul(factor, axis=0)
    out.loc[later, "volume"] *= 3.0
    return out


def _differs(a: pd.DataFrame, b: pd.DataFrame, cols: list[str]) -> int:
    if len(a) != len(b):
        return max(len(a), len(b))
    left, right = a[cols].reset_index(drop=True), b[cols].reset_index(drop=True)
    same = (left == right) | (left.isna() & right.isna())
    return int((~same.all(axis=1)).sum())


def run_audit(config: ExperimentConfig, prices: dict[str, pd.DataFrame], date: str | None = None,
              progress: Progress | None = None) -> AuditResult:
    """Walk forward and trade `lstm_signal` on the real and on the perturbed prices; compare up to D."""
    first = walk_forward_predict(prices, config.model, config.walk_forward, seed=config.seed, progress=progress)
    lstm_dates = first.loc[first["model"] == "lstm", "date"]
    if date is None:  # the middle of the out-of-sample span
        cut = pd.Timestamp(lstm_dates.iloc[len(lstm_dates) // 2])
    else:
        cut = pd.Timestamp(date)
        if not lstm_dates.min() <= cut < lstm_dates.max():
            raise BacktestError(f"audit date {cut.date()} is outside the out-of-sample span "
                                f"{lstm_dates.min().date()} to {lstm_dates.max().date()}",
                                "pick a date between those two")
    changed = {ticker: perturb_after(frame, cut, seed=config.seed) for ticker, frame in prices.items()}
    second = walk_forward_predict(changed, config.model, config.walk_forward, seed=config.seed, progress=progress)
    cols = ["date", "ticker", "model", "y_pred", "price_pred", "fold", "train_end"]
    before_a, before_b = first[first["date"] <= cut], second[second["date"] <= cut]
    after_a, after_b = first[first["date"] > cut], second[second["date"] > cut]
    spec = next((s for s in config.strategies if s.name == "lstm_signal"), None)
    params = spec.params if spec else {}
    fills_checked = fills_changed = days_checked = days_changed = 0
    for ticker in prices:
        a = run_backtest({ticker: prices[ticker]}, first, "lstm_signal", config.broker, params)
        b = run_backtest({ticker: changed[ticker]}, second, "lstm_signal", config.broker, params)
        fa, fb = a.fills[a.fills["date"] <= cut], b.fills[b.fills["date"] <= cut]
        fills_checked += len(fa)
        fills_changed += _differs(fa, fb, ["date", "size", "price", "commission"])
        ea, eb = a.equity[a.equity.index <= cut], b.equity[b.equity.index <= cut]
        days_checked += len(ea)
        days_changed += int((ea.to_numpy() != eb.to_numpy()).sum()) if len(ea) == len(eb) else len(ea)
    return AuditResult(cut, len(before_a), _differs(before_a, before_b, cols), _differs(after_a, after_b, ["y_pred"]),
                       fills_checked, fills_changed, days_checked, days_changed)
