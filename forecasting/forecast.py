"""Forecast the next N trading days with a direct multi-horizon network: one output per day ahead.

Output k of sample t is trained on log(close[t+k] / close[t]), and only samples whose every
target is known by the last bar are trained on. Nothing is fed back: the recursive alternative
(appending each predicted close as a bar with open = high = low = close) puts range, volatility and
volume features out of distribution after the first day.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.calendar import DEFAULT_CALENDAR, next_sessions
from forecasting.errors import ForecastingError
from forecasting.progress import Progress
from forecasting.spec import ModelSpec
from forecasting.walkforward import Samples, make_forecaster, make_samples

BAND = (0.10, 0.90)  # the prediction band's quantiles of the validation residuals


def direct_targets(samples: Samples, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows (sample indices) whose `days` targets are all known by the last bar, and their targets:
    Y[i, k-1] = log(close[row_i + k] / close[row_i]) for k = 1..days (consecutive samples are
    consecutive sessions)."""
    n = len(samples.close)
    rows = np.arange(max(n - days, 0))
    log_close = np.log(samples.close)
    Y = np.stack([log_close[rows + k] - log_close[rows] for k in range(1, days + 1)], axis=1) if len(rows) \
        else np.empty((0, days))
    return rows, Y


def forecast(frame: pd.DataFrame, model: ModelSpec, days: int, seed: int = 0, ticker: str = "asset",
             calendar: str = DEFAULT_CALENDAR, as_of: str | pd.Timestamp | None = None,
             progress: Progress | None = None) -> pd.DataFrame:
    """Forecast the `days` trading sessions (exchange `calendar`) after the last bar (or `as_of`).

    One network with `days` outputs (the model spec's layers, epochs and early stopping) is trained
    per seed (`model.n_seeds`) on every sample whose targets are known by the last bar; the
    forecast is their mean. The 80% band adds each horizon's 10th and 90th percentile of the
    residuals (less their median) on the training span's validation tail (held out from the
    weights, used for early stopping), so it widens as the horizon's uncertainty does. Returns date, ticker, step, y_pred
    (log return from the last close to that day), price_pred, band and price band, and `spread`
    (the seeds' standard deviation; 0 with one seed).
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    if as_of is not None:
        frame = frame[frame.index <= pd.Timestamp(as_of)]
    spec = model.model_copy(update={"horizon": 1})
    samples = make_samples(frame, spec, ticker)
    rows, Y = direct_targets(samples, days)
    val_rows = int(len(rows) * spec.val_fraction)
    if len(rows) - val_rows < 50 or val_rows < 10:
        raise ForecastingError(f"{ticker}: {len(rows)} samples with {days} known days ahead are too few to train "
                               f"a {days}-day forecast", "load a longer history (data.start) or forecast fewer --days")
    last = np.array([len(samples.close) - 1])
    predictions, residuals = [], []
    for k in range(spec.n_seeds):
        net = make_forecaster(spec, seed * 1000 + k)
        net.fit(samples.X[rows], Y, on_epoch=progress.epoch if progress is not None else None)
        predictions.append(net.predict_rows(samples.X[last]).reshape(days))
        tail = rows[-val_rows:]
        residuals.append(Y[-val_rows:] - net.predict_rows(samples.X[tail]).reshape(-1, days))
        if progress is not None:
            progress.fold(ticker, k + 1, spec.n_seeds)
    mean = np.mean(predictions, axis=0)
    # The band's width is the spread of the validation residuals around their median; their bias
    # (a recent run of over- or under-prediction) is not added, so the band is centred on the forecast.
    residual = np.concatenate(residuals)
    low, high = np.quantile(residual - np.median(residual, axis=0), BAND, axis=0)
    close = float(samples.close[-1])
    dates = next_sessions(samples.dates[-1], days, calendar)
    return pd.DataFrame({"date": dates, "ticker": ticker, "step": np.arange(1, days + 1), "y_pred": mean,
                         "price_pred": close * np.exp(mean), "y_low": mean + low, "y_high": mean + high,
                         "price_low": close * np.exp(mean + low), "price_high": close * np.exp(mean + high),
                         "spread": np.std(predictions, axis=0), "as_of": samples.dates[-1]})
