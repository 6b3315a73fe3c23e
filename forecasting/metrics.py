"""Forecast errors of the predictions table, always beside the naive baseline.

Return space uses `y_pred`/`y_true` (log returns over the horizon); price space uses
`price_pred`/`price_true`. The naive (random-walk) forecast is price_pred = close_t, whose return
is 0. The tests against it are in return space, where every day weighs the same: Theil's U2
(`theil_u`), Diebold-Mariano on squared return errors, and Clark-West (the random walk is nested
in any model that can predict 0). `theil_u_price` is the price-space RMSE ratio, kept for
reference: later, higher-priced years dominate it. Directional accuracy comes with its base rate
(the share of up days, what "always up" scores) and a Pesaran-Timmermann test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error

METRIC_COLUMNS = [
    "n",
    "mse",
    "mae",
    "rmse",
    "price_mse",
    "price_mae",
    "price_rmse",
    "mape",
    "directional_accuracy",
    "da_base_rate",
    "da_pvalue",
    "correlation",
    "theil_u",
    "theil_u_price",
    "dm_stat",
    "dm_pvalue",
    "cw_stat",
    "cw_pvalue",
    "n_invalid",
]


def _long_run_variance(d: np.ndarray, horizon: int) -> float:
    """Variance of the mean of `d`, with autocovariances up to lag h-1 (overlapping h-step errors)."""
    n = len(d)
    centred = d - d.mean()
    gamma = [centred @ centred / n] + [centred[k:] @ centred[:-k] / n for k in range(1, horizon)]
    return (gamma[0] + 2.0 * sum(gamma[1:])) / n


def diebold_mariano(errors_a: np.ndarray, errors_b: np.ndarray, horizon: int = 1) -> tuple[float, float]:
    """Diebold-Mariano test of equal squared-error accuracy, with the Harvey-Leybourne-Newbold correction.

    Returns (statistic, two-sided p-value from Student's t with n-1 df). A negative statistic means
    forecast A has the smaller errors. The long-run variance uses autocovariances up to lag h-1.
    """
    return diebold_mariano_losses(
        np.asarray(errors_a, dtype="float64") ** 2, np.asarray(errors_b, dtype="float64") ** 2, horizon
    )


def diebold_mariano_losses(losses_a: np.ndarray, losses_b: np.ndarray, horizon: int = 1) -> tuple[float, float]:
    """Diebold-Mariano (HLN-corrected) on any two series of per-day losses, e.g. QLIKE: negative means A's
    losses are smaller. `diebold_mariano` is this with squared errors."""
    d = np.asarray(losses_a, dtype="float64") - np.asarray(losses_b, dtype="float64")
    n = len(d)
    h = int(horizon)
    if n < 3 or n <= 2 * h:
        return float("nan"), float("nan")
    mean = d.mean()
    variance = _long_run_variance(d, h)
    if not variance > 0:
        return float("nan"), float("nan")
    dm = mean / np.sqrt(variance)
    correction = np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    stat = float(dm * correction)
    return stat, float(2.0 * stats.t.sf(abs(stat), df=n - 1))


def clark_west(y_pred: np.ndarray, y_true: np.ndarray, horizon: int = 1) -> tuple[float, float]:
    """Clark-West (2007) test of a model against the nested random walk (forecast 0).

    f_t = y_t^2 - [(y_t - yhat_t)^2 - yhat_t^2]: the random walk's squared error minus the model's,
    adjusted for the noise of estimating a model whose population forecast could be 0. Returns
    (t statistic, one-sided p-value from the normal): a small p says the model beats the random walk.
    """
    y_pred, y_true = np.asarray(y_pred, dtype="float64"), np.asarray(y_true, dtype="float64")
    f = y_true**2 - ((y_true - y_pred) ** 2 - y_pred**2)
    n = len(f)
    if n < 3 or not np.any(y_pred != 0):
        return float("nan"), float("nan")
    variance = _long_run_variance(f, int(horizon))
    if not variance > 0:
        return float("nan"), float("nan")
    stat = float(f.mean() / np.sqrt(variance))
    return stat, float(stats.norm.sf(stat))


def pesaran_timmermann(y_pred: np.ndarray, y_true: np.ndarray) -> float:
    """One-sided p-value of the Pesaran-Timmermann (1992) test that predicted and realised up/down
    moves are independent; small means the forecast calls direction better than chance."""
    y_pred, y_true = moved(y_pred, y_true)
    x = y_pred > 0
    y = y_true > 0
    n = len(x)
    if n < 3:
        return float("nan")
    hit = np.mean(x == y)
    px, py = x.mean(), y.mean()
    expected = py * px + (1 - py) * (1 - px)
    var_hit = expected * (1 - expected) / n
    var_expected = (
        (2 * py - 1) ** 2 * px * (1 - px) / n
        + (2 * px - 1) ** 2 * py * (1 - py) / n
        + 4 * py * px * (1 - py) * (1 - px) / n**2
    )
    spread = var_hit - var_expected
    if not spread > 0:
        return float("nan")
    return float(stats.norm.sf((hit - expected) / np.sqrt(spread)))


def directional_accuracy(y_pred: np.ndarray, y_true: np.ndarray) -> float:
    """Share of days whose predicted sign matches the realised sign; NaN for a forecast that never calls one.

    A day whose close did not move (y_true == 0) has no direction to call: it is left out here, from
    the base rate and from the Pesaran-Timmermann test alike (`moved`)."""
    y_pred, y_true = moved(y_pred, y_true)
    if not np.any(y_pred != 0):
        return float("nan")
    return float(np.mean(np.sign(y_pred) == np.sign(y_true)))


def moved(y_pred: np.ndarray, y_true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The days with a realised direction: every directional statistic is computed on these."""
    keep = np.asarray(y_true) != 0
    return np.asarray(y_pred)[keep], np.asarray(y_true)[keep]


def theil_u2(y_pred: np.ndarray, y_true: np.ndarray) -> float:
    """Theil's U2 of return forecasts: RMSE against the zero forecast's. 1.0 for the zero forecast
    itself, whatever happened; NaN for another forecast when every realised return is zero."""
    y_pred, y_true = np.asarray(y_pred, dtype=float), np.asarray(y_true, dtype=float)
    if not np.any(y_pred != 0):
        return 1.0
    naive_sq = float(np.sum(y_true**2))
    return float(np.sqrt(np.sum((y_pred - y_true) ** 2) / naive_sq)) if naive_sq > 0 else float("nan")


def base_rate(y_pred: np.ndarray, y_true: np.ndarray) -> float:
    """The share of days with a direction that rose: what "always up" scores in directional accuracy."""
    up = moved(y_pred, y_true)[1]
    return float(np.mean(up > 0)) if len(up) else float("nan")


def is_constant(values: np.ndarray) -> bool:
    """No spread worth a correlation: identical values, up to rounding (a mean repeated over a fold
    can differ in its last bit, and then np.std is 1e-19, not 0)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return True
    return bool(np.ptp(values) <= 1e-12 * max(float(np.abs(values).max()), np.finfo(float).tiny))


def score(group: pd.DataFrame) -> dict[str, float]:
    """All metrics for one model's rows (one ticker, or one fold)."""
    y_pred, y_true = group["y_pred"].to_numpy(), group["y_true"].to_numpy()
    p_pred, p_true = group["price_pred"].to_numpy(), group["price_true"].to_numpy()
    close_now = p_true * np.exp(-y_true)  # the close at which each prediction was made
    err = p_pred - p_true
    horizon = int(group["horizon"].iloc[0]) if "horizon" in group else 1
    naive_rmse = float(np.sqrt(np.mean((close_now - p_true) ** 2)))
    is_naive = not np.any(y_pred != 0)
    return_err, naive_return_err = y_pred - y_true, -y_true
    dm_stat, dm_p = (np.nan, np.nan) if is_naive else diebold_mariano(return_err, naive_return_err, horizon)
    cw_stat, cw_p = clark_west(y_pred, y_true, horizon)
    constant = is_constant(y_pred) or is_constant(y_true)
    # a forecast of a cross-sectional target is no price: its price-space errors are left empty
    priced = bool(np.all(np.isfinite(p_pred)) and np.all(np.isfinite(p_true)))
    nan = float("nan")
    return {
        "n": float(len(group)),
        "mse": mean_squared_error(y_true, y_pred),
        "mae": mean_absolute_error(y_true, y_pred),
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "price_mse": mean_squared_error(p_true, p_pred) if priced else nan,
        "price_mae": mean_absolute_error(p_true, p_pred) if priced else nan,
        "price_rmse": float(np.sqrt(mean_squared_error(p_true, p_pred))) if priced else nan,
        "mape": mean_absolute_percentage_error(p_true, p_pred) if priced else nan,
        "directional_accuracy": directional_accuracy(y_pred, y_true),
        "da_base_rate": base_rate(y_pred, y_true),
        "da_pvalue": float("nan") if is_naive else pesaran_timmermann(y_pred, y_true),
        "correlation": float("nan") if constant else float(np.corrcoef(y_pred, y_true)[0, 1]),
        "theil_u": theil_u2(y_pred, y_true),
        "theil_u_price": nan
        if not priced
        else 1.0
        if is_naive
        else float(np.sqrt(np.mean(err**2)) / naive_rmse)
        if naive_rmse > 0
        else float("nan"),
        "dm_stat": dm_stat,
        "dm_pvalue": dm_p,
        "cw_stat": cw_stat,
        "cw_pvalue": cw_p,
    }


# scores to rank a universe by, not forecasts of the target: no forecast errors (forecasting.cross_section)
RANKING_SCORES = ("momentum_12_1", "reversal_5")


def forecast_metrics(predictions: pd.DataFrame, per_fold: bool = False) -> pd.DataFrame:
    """One row of metrics per (ticker, model), or per (ticker, model, fold) with `per_fold`; ranking
    scores (`RANKING_SCORES`) have none."""
    keys = ["ticker", "model"] + (["fold"] if per_fold else [])
    rows = []
    forecasts = predictions[~predictions["model"].isin(RANKING_SCORES)] if "model" in predictions else predictions
    for key, group in forecasts.dropna(subset=["y_true"]).groupby(keys, sort=False):
        # a prediction with no finite value (e.g. a predicted close <= 0 for the `close` target) is
        # counted, and left out of the errors; a strategy treats it as no signal that day
        valid = np.isfinite(group["y_pred"].to_numpy(dtype="float64"))
        scores = score(group[valid]) if valid.any() else {name: float("nan") for name in METRIC_COLUMNS}
        scores.update({"n": float(valid.sum()), "n_invalid": float((~valid).sum())})
        rows.append({**dict(zip(keys, key)), **scores})
    out = pd.DataFrame(rows, columns=keys + METRIC_COLUMNS)
    out["n"] = out["n"].astype(int)
    out["n_invalid"] = out["n_invalid"].astype(int)
    return out
