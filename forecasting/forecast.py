"""Forecast the next N business days with a model trained on every bar up to the last close."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.walkforward import make_forecaster, make_samples
from forecasting.spec import ModelSpec


def forecast(frame: pd.DataFrame, model: ModelSpec, days: int, seed: int = 0, ticker: str = "asset") -> pd.DataFrame:
    """Train on all known samples, then forecast `days` business days ahead, one day at a time.

    Each forecast day is appended as a synthetic bar (open = high = low = close = the predicted
    close, volume carried forward) and the features are recomputed, so multi-day forecasts feed on
    their own predictions. The model is trained with horizon 1 whatever `model.horizon` says.
    Returns columns date, ticker, step, y_pred (log return vs the previous day), price_pred.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    spec = model.model_copy(update={"horizon": 1})
    samples = make_samples(frame, spec, ticker)
    known = samples.n_known
    forecaster = make_forecaster(spec, seed).fit(samples.X[:known], samples.target[:known])
    bars = frame[["open", "high", "low", "close", "volume"]].copy()
    dates = pd.bdate_range(bars.index[-1] + pd.offsets.BDay(1), periods=days)
    rows = []
    for step, date in enumerate(dates, start=1):
        window = make_samples(bars, spec, ticker).X[-1:]
        raw = float(forecaster.predict(window)[0])
        last = float(bars["close"].iloc[-1])
        price = last * np.exp(raw) if spec.target == "log_return" else raw
        rows.append({"date": date, "ticker": ticker, "step": step, "y_pred": float(np.log(price / last)),
                     "price_pred": price})
        bars.loc[date] = [price, price, price, price, float(bars["volume"].iloc[-1])]
    return pd.DataFrame(rows)
