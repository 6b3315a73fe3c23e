"""Volatility: the realized-variance proxy, the `realized_vol` target, and the classic baselines.

The daily variance proxy of bar t (`daily_variance`):
- on OHLC bars, Garman-Klass: 0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2, the most efficient of the
  range estimators that use the open (about 7x the efficiency of a squared return); it measures the
  variance from the open to the close, so it leaves out the overnight gap;
- `parkinson` (ln(H/L)^2 / (4 ln 2)) when asked;
- on close-only data (or `close`), the squared close-to-close log return.
Every value is floored at VAR_FLOOR (a 1 bp daily move): a bar with high == low, or a run of
unchanged closes, would otherwise make a variance of 0 and a log of minus infinity.

The target of the prediction made at close t (`model.target = "realized_vol"`) is the log of the
realized variance over the next h sessions, the sum of the proxies of bars t+1..t+h.

Baselines (rows of the predictions table, fitted on each fold's training span only):
- `garch`, `gjr`: GARCH(1,1) and GJR-GARCH(1,1,1) (`arch`) on close-to-close returns, refitted at
  each fold on the returns up to the fold's training end; between refits the fitted parameters stay
  fixed and the conditional variance is updated with each new return (`arch`'s forecast from a
  fixed model), so a forecast at t uses returns up to t only;
- `ewma`: RiskMetrics, sigma2[t+1] = 0.94 sigma2[t] + 0.06 r[t]^2 (nothing to fit);
- `har`: OLS of the next h-day realized variance on the daily, weekly (5) and monthly (22) means
  of the proxy (Corsi 2009);
- `naive`: the last realized value (the proxies of the last h bars).
GARCH, GJR and EWMA forecast the variance of close-to-close returns, which includes the overnight
gap that a Garman-Klass proxy leaves out. So that every model is scored against the same proxy,
each of the three is rescaled at every fold by the ratio of the proxy's mean to the model's
in-sample variance over that fold's training span (a level calibration fitted on training data
only; with a squared-return proxy the ratio is close to 1).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from forecasting.errors import DataError

VAR_FLOOR = 1e-8  # the smallest daily variance: a 1 bp move (a zero-range bar is not a zero-risk day)
EWMA_LAMBDA = 0.94  # RiskMetrics' daily decay
HAR_WINDOWS = (1, 5, 22)  # daily, weekly, monthly means of the proxy
MIN_GARCH_RETURNS = 250  # returns a GARCH fit needs at the least (a year of sessions)
VOL_MODELS = ("lstm", "ridge", "garch", "gjr", "ewma", "har", "naive")
ESTIMATORS = ("auto", "garman_klass", "parkinson", "close")
BAR_RANGE = ("open", "high", "low")


def estimator_for(frame: pd.DataFrame, estimator: str = "auto", source: str = "the data") -> str:
    """The estimator that runs: `auto` picks Garman-Klass on OHLC bars and squared returns on closes."""
    ohlc = all(c in frame for c in BAR_RANGE)
    if estimator == "auto":
        return "garman_klass" if ohlc else "close"
    if estimator in ("garman_klass", "parkinson") and not ohlc:
        needs = "open, high and low" if estimator == "garman_klass" else "high and low"
        raise DataError(
            f"the {estimator.replace('_', '-')} estimator needs {needs} prices, but {source} is close-only",
            'use model.vol_estimator = "close" (squared close-to-close returns) or "auto"',
        )
    return estimator


def daily_variance(frame: pd.DataFrame, estimator: str = "auto") -> pd.Series:
    """Each bar's variance proxy (see the module docstring), floored at VAR_FLOOR; NaN where unknown
    (the first bar of a close-only history has no previous close)."""
    kind = estimator_for(frame, estimator)
    if kind == "garman_klass":
        hl = np.log(frame["high"] / frame["low"])
        co = np.log(frame["close"] / frame["open"])
        raw = 0.5 * hl**2 - (2.0 * math.log(2.0) - 1.0) * co**2
    elif kind == "parkinson":
        raw = np.log(frame["high"] / frame["low"]) ** 2 / (4.0 * math.log(2.0))
    else:
        raw = np.log(frame["close"]).diff() ** 2
    return raw.clip(lower=VAR_FLOOR).where(raw.notna()).rename("variance")


def realized_variance(variance: pd.Series, horizon: int) -> pd.Series:
    """At bar t, the sum of the proxies of bars t+1..t+horizon (NaN where not all are in the data)."""
    return variance.rolling(horizon).sum().shift(-horizon)


def past_variance(variance: pd.Series, window: int) -> pd.Series:
    """At bar t, the mean proxy of bars t-window+1..t (a HAR regressor; `log_rv_N` is its log)."""
    return variance.rolling(window).mean()


def close_to_close(frame: pd.DataFrame) -> pd.Series:
    return np.log(frame["close"]).diff()


def garch_forecasts(
    returns: np.ndarray, fit_end: int, origins: np.ndarray, horizon: int, asymmetric: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """GARCH(1,1) (GJR with `asymmetric`) fitted on returns[1 : fit_end + 1] (position 0 has none), then
    with those parameters fixed, the h-step variance forecasts summed over the horizon at each origin
    (positions, each using returns up to itself). Returns the forecasts and the in-sample conditional
    variances over the fitting span (for the level calibration), both in return units squared."""
    from arch import arch_model

    r = 100.0 * np.asarray(returns, dtype="float64")  # percent: arch's optimiser is tuned for that scale
    if fit_end < MIN_GARCH_RETURNS:
        raise DataError(
            f"GARCH needs at least {MIN_GARCH_RETURNS} training returns; this fold has {fit_end}",
            "raise walk_forward.min_train (or load a longer history)",
        )
    spec = {"mean": "Constant", "vol": "GARCH", "p": 1, "o": 1 if asymmetric else 0, "q": 1, "dist": "normal"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on quiet spans: the fit is still the best found
        fitted = arch_model(r[1 : fit_end + 1], rescale=False, **spec).fit(disp="off", show_warning=False)
        last = int(origins.max())
        fixed = arch_model(r[1 : last + 1], rescale=False, **spec).fix(fitted.params.to_numpy())
        forecast = fixed.forecast(horizon=horizon, start=int(origins.min()) - 1, reindex=False)
    table = forecast.variance.to_numpy()  # row j: the origin at position min(origins) + j
    rows = origins - int(origins.min())
    return table[rows].sum(axis=1) / 1e4, np.asarray(fitted.conditional_volatility) ** 2 / 1e4


def ewma_variance(returns: np.ndarray) -> np.ndarray:
    """RiskMetrics' one-step variance forecast at each position t (made at t for t+1), seeded with the
    first return's square; NaN returns (the first position) are skipped."""
    out = np.full(len(returns), np.nan)
    level = np.nan
    for t, r in enumerate(returns):
        if np.isnan(r):
            out[t] = level
            continue
        level = r * r if np.isnan(level) else EWMA_LAMBDA * level + (1.0 - EWMA_LAMBDA) * r * r
        out[t] = level
    return out


def har_forecasts(
    variance: pd.Series, target: np.ndarray, train: np.ndarray, test: np.ndarray, horizon: int
) -> np.ndarray:
    """OLS of the h-day realized variance on a constant and the daily, weekly and monthly mean proxies,
    fitted on the training positions; forecasts at the test positions, floored at h x VAR_FLOOR."""
    regressors = np.column_stack(
        [np.ones(len(variance))] + [past_variance(variance, w).to_numpy() for w in HAR_WINDOWS]
    )
    ok = train[np.isfinite(regressors[train]).all(axis=1) & np.isfinite(target[train])]
    coef, *_ = np.linalg.lstsq(regressors[ok], target[ok], rcond=None)
    return np.maximum(regressors[test] @ coef, horizon * VAR_FLOOR)


def baseline_forecasts(
    frame: pd.DataFrame, estimator: str, horizon: int, train: np.ndarray, test: np.ndarray
) -> dict[str, np.ndarray]:
    """Every baseline's h-day variance forecast at the test positions (bar positions in `frame`), fitted
    on the bars up to the last training position plus horizon (when its target is known) only."""
    variance = daily_variance(frame, estimator)
    proxy = variance.to_numpy()
    target = realized_variance(variance, horizon).to_numpy()
    returns = close_to_close(frame).to_numpy()
    fit_end = int(train[-1]) + horizon  # the last bar whose data the fold may use
    span = np.arange(1, fit_end + 1)  # the training span's bars (bar 0 has no return)
    proxy_mean = float(np.nanmean(proxy[span]))

    out = {}
    for name, asymmetric in (("garch", False), ("gjr", True)):
        forecast, in_sample = garch_forecasts(returns, fit_end, test, horizon, asymmetric)
        out[name] = forecast * proxy_mean / float(np.mean(in_sample))
    ewma = ewma_variance(returns)
    # ewma[t] forecasts bar t+1; its in-sample forecasts of the training span's bars are ewma[span - 1]
    calibration = proxy_mean / float(np.nanmean(ewma[span - 1]))
    out["ewma"] = horizon * ewma[test] * calibration
    out["har"] = har_forecasts(variance, target, np.arange(0, int(train[-1]) + 1), test, horizon)
    out["naive"] = variance.rolling(horizon).sum().to_numpy()[test]
    return {name: np.maximum(values, horizon * VAR_FLOOR) for name, values in out.items()}
