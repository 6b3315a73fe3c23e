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
from forecasting.features import warmup_rows
from forecasting.progress import Progress
from forecasting.spec import ModelSpec
from forecasting.volatility import ewma_variance
from forecasting.walkforward import Samples, make_forecaster, make_samples

BAND = (0.10, 0.90)  # the prediction band's quantiles of the held-out residuals
HOLDOUT = 0.15  # share of the samples held out to measure the band (at least 30)
MIN_TRAIN = 50  # samples a network needs at the least


def direct_targets(samples: Samples, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows (sample indices) whose `days` targets are all known by the last bar, and their targets:
    Y[i, k-1] = log(close[row_i + k] / close[row_i]) for k = 1..days (consecutive samples are
    consecutive sessions)."""
    n = len(samples.close)
    rows = np.arange(max(n - days, 0))
    log_close = np.log(samples.close)
    Y = (
        np.stack([log_close[rows + k] - log_close[rows] for k in range(1, days + 1)], axis=1)
        if len(rows)
        else np.empty((0, days))
    )
    return rows, Y


def forecast(
    frame: pd.DataFrame,
    model: ModelSpec,
    days: int,
    seed: int = 0,
    ticker: str = "asset",
    calendar: str = DEFAULT_CALENDAR,
    as_of: str | pd.Timestamp | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Forecast the `days` trading sessions (exchange `calendar`) after the last bar (or `as_of`).

    The forecast: one network with `days` outputs (the model spec's layers, epochs and early
    stopping) per seed (`model.n_seeds`), trained on every sample whose targets are known by the
    last bar; the forecast is their mean and `spread` their standard deviation.

    The 80% band: the same networks trained again without the last HOLDOUT of those samples (and
    without the `days` samples before them, whose targets reach into it), predict the held-out
    samples; their residuals are measured in units of the volatility at each origin (EWMA, lambda
    0.94, times sqrt(step)), and each horizon's band adds the 10th and 90th percentile of those,
    taken around their median and scaled back by the volatility at the last bar (a recent bias is
    not added: the band assumes the forecast is unbiased). Nothing the band is measured on was seen
    by training or early stopping; it widens with the horizon and with the market's current
    volatility. Returns date, ticker, step, y_pred (log return from the last close to that day),
    price_pred, the band in returns and prices, spread, as_of, and the band's coverage on held-out
    days it was not set on (`band_coverage`; `fixed_band_coverage` for a band of fixed width).
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    if as_of is not None:
        frame = frame[frame.index <= pd.Timestamp(as_of)]
    spec = model.model_copy(update={"horizon": 1})
    needed = warmup_rows(spec.features) + spec.lookback + days + MIN_TRAIN
    if len(frame) < needed:
        raise ForecastingError(
            f"{ticker}: {len(frame)} bars are too few to train a {days}-day forecast (it needs "
            f"{needed} with lookback {spec.lookback})",
            "load a longer history (data.start), forecast fewer --days or pick a later --as-of",
        )
    samples = make_samples(frame, spec, ticker)
    rows, Y = direct_targets(samples, days)
    hold = max(int(len(rows) * HOLDOUT), 30)
    fit = len(rows) - hold - days  # purged: these rows' targets all end before the held-out rows begin
    if fit < MIN_TRAIN:
        raise ForecastingError(
            f"{ticker}: {len(rows)} samples with {days} known days ahead are too few to train a {days}-day forecast",
            "load a longer history (data.start) or forecast fewer --days",
        )
    steps = 2 * spec.n_seeds
    if progress is not None:
        progress.fold(ticker, 0, steps)
    on_epoch = progress.epoch if progress is not None else None
    held, final = [], []
    for k in range(spec.n_seeds):
        net = make_forecaster(spec, seed * 1000 + k)
        net.fit(samples.X[rows[:fit]], Y[:fit], on_epoch=on_epoch)
        held.append(net.predict_rows(samples.X[rows[-hold:]]).reshape(-1, days))
        net.fit(samples.X[rows], Y, on_epoch=on_epoch)
        final.append(net.predict_rows(samples.X[[len(samples.close) - 1]]).reshape(days))
        if progress is not None:
            progress.fold(ticker, 2 * (k + 1), steps)
    mean = np.mean(final, axis=0)
    residual = Y[-hold:] - np.mean(held, axis=0)
    # the band in units of the volatility at each forecast's origin (RiskMetrics' EWMA of the returns up
    # to it): residuals of calm days and of turbulent days measure one distribution, and the band at
    # the last bar is that distribution at today's volatility, not at the holdout's average
    sigma = np.sqrt(ewma_variance(np.log(frame["close"]).diff().to_numpy()))[samples.positions]
    steps_ahead = np.sqrt(np.arange(1, days + 1))
    scaled = residual / (sigma[rows[-hold:], None] * steps_ahead)
    low, high = np.quantile(scaled - np.median(scaled, axis=0), BAND, axis=0)
    low, high = low * sigma[-1] * steps_ahead, high * sigma[-1] * steps_ahead
    coverage, fixed_coverage = band_coverage(residual, scaled)
    close = float(samples.close[-1])
    dates = next_sessions(samples.dates[-1], days, calendar)
    return pd.DataFrame(
        {
            "date": dates,
            "ticker": ticker,
            "step": np.arange(1, days + 1),
            "y_pred": mean,
            "price_pred": close * np.exp(mean),
            "y_low": mean + low,
            "y_high": mean + high,
            "price_low": close * np.exp(mean + low),
            "price_high": close * np.exp(mean + high),
            "spread": np.std(final, axis=0),
            "as_of": samples.dates[-1],
            "band_coverage": coverage,
            "fixed_band_coverage": fixed_coverage,
        }
    )


def band_coverage(residual: np.ndarray, scaled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How often each step's 80% band held on held-out days it was not measured on: the band set on the
    first half of the held-out days (in volatility units), its coverage on the second half; and the same
    for a band of fixed width (raw residuals), for comparison."""
    half = len(residual) // 2

    def share_inside(values: np.ndarray) -> np.ndarray:
        early, late = values[:half], values[half:]
        centre = np.median(early, axis=0)
        low, high = np.quantile(early - centre, BAND, axis=0)
        return np.mean((late - centre >= low) & (late - centre <= high), axis=0)

    return share_inside(scaled), share_inside(residual)
