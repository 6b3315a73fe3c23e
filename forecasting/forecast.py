"""Forecast the next N trading days with the network the walk-forward serves at the last close."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.calendar import DEFAULT_CALENDAR, next_sessions
from forecasting.errors import ForecastingError
from forecasting.progress import Progress
from forecasting.spec import ModelSpec, WalkForwardSpec
from forecasting.walkforward import WalkForwardModel, make_samples, make_split


def forecast(frame: pd.DataFrame, model: ModelSpec, days: int, seed: int = 0, ticker: str = "asset",
             walk_forward: WalkForwardSpec | None = None, calendar: str = DEFAULT_CALENDAR,
             progress: Progress | None = None) -> pd.DataFrame:
    """Forecast `days` trading days (exchange `calendar`) after the last bar, one day at a time.

    The network is the one the walk-forward (and a paper account) serves at the last bar: trained
    fold by fold through `WalkForwardModel` on the same schedule as `walk_forward_predict`, so the
    forecast comes from the model that was backtested. Each forecast day is appended as a synthetic
    bar (open = high = low = close = the predicted close, volume carried forward) and the features
    are recomputed, so multi-day forecasts feed on their own predictions. The network learns
    horizon 1 whatever `model.horizon` says. Returns date, ticker, step, y_pred (log return vs the
    previous day), price_pred, and the fold that made it.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    spec = model.model_copy(update={"horizon": 1})
    wf = walk_forward or WalkForwardSpec()
    samples = make_samples(frame, spec, ticker)
    split = make_split(spec, wf)
    last = len(samples.dates) - 1
    fold = split.fold_of(last)
    if fold is None:
        raise ForecastingError(f"{ticker}: {len(samples.dates)} samples are fewer than the walk-forward's first "
                               f"training span (walk_forward.min_train={wf.min_train})",
                               "load a longer history (data.start) or lower walk_forward.min_train")
    network = WalkForwardModel(spec, wf, seed)
    for k in range(fold + 1):
        network.train_fold(k, samples, split.train_rows(k), progress)
        if progress is not None:
            progress.fold(ticker, k + 1, fold + 1)
    bars = frame[["open", "high", "low", "close", "volume"]].copy()
    rows = []
    for step, date in enumerate(next_sessions(bars.index[-1], days, calendar), start=1):
        grown = make_samples(bars, spec, ticker)
        log_return = float(network.predict(grown, np.array([len(grown.dates) - 1]))[0][0])
        last_close = float(bars["close"].iloc[-1])
        price = last_close * np.exp(log_return)
        rows.append({"date": date, "ticker": ticker, "step": step, "y_pred": log_return, "price_pred": price,
                     "fold": fold})
        bars.loc[date] = [price, price, price, price, float(bars["volume"].iloc[-1])]
    return pd.DataFrame(rows)
