"""Forecast errors of the predictions table, always beside the naive baseline.

Return space uses `y_pred`/`y_true` (log returns over the horizon); price space uses
`price_pred`/`price_true`. The naive (persistence) forecast is price_pred = close_t, whose
return is 0; Theil's U and the Diebold-Mariano test compare each model with it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error

METRIC_COLUMNS = ["n", "mse", "mae", "rmse", "price_mse", "price_mae", "price_rmse", "mape",
                  "directional_accuracy", "theil_u", "dm_stat", "dm_pvalue"]


def diebold_mariano(errors_a: np.ndarray, errors_b: np.ndarray, horizon: int = 1) -> tuple[float, float]:
    """Diebold-Mariano test of equal squared-error accuracy, with the Harvey-Leybourne-Newbold correction.

    Returns (statistic, two-sided p-value from Student's t with n-1 df). A negative statistic means
    forecast A has the smaller errors. The long-run variance uses autocovariances up to lag h-1.
    """
    d = np.asarray(errors_a, dtype="float64") ** 2 - np.asarray(errors_b, dtype="float64") ** 2
    n = len(d)
    h = int(horizon)
    if n < 3 or n <= 2 * h:
        return float("nan"), float("nan")
    mean = d.mean()
    centred = d - mean
    gamma = [centred @ centred / n] + [centred[k:] @ centred[:-k] / n for k in range(1, h)]
    variance = (gamma[0] + 2.0 * sum(gamma[1:])) / n
    if not variance > 0:
        return float("nan"), float("nan")
    dm = mean / np.sqrt(variance)
    correction = np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    stat = float(dm * correction)
    return stat, float(2.0 * stats.t.sf(abs(stat), df=n - 1))


def directional_accuracy(y_pred: np.ndarray, y_true: np.ndarray) -> float:
    """Share of days whose predicted sign matches the realised sign; NaN for a forecast that never calls one."""
    y_pred, y_true = np.asarray(y_pred), np.asarray(y_true)
    if not np.any(y_pred != 0):
        return float("nan")
    return float(np.mean(np.sign(y_pred) == np.sign(y_true)))


def score(group: pd.DataFrame) -> dict[str, float]:
    """All metrics for one model's rows (one ticker, or one fold)."""
    y_pred, y_true = group["y_pred"].to_numpy(), group["y_true"].to_numpy()
    p_pred, p_true = group["price_pred"].to_numpy(), group["price_true"].to_numpy()
    close_now = p_true * np.exp(-y_true)  # the close at which each prediction was made
    naive_err = close_now - p_true
    err = p_pred - p_true
    horizon = int(group["horizon"].iloc[0]) if "horizon" in group else 1
    naive_rmse = float(np.sqrt(np.mean(naive_err ** 2)))
    is_naive = np.allclose(p_pred, close_now, rtol=1e-10, atol=0.0)  # close_now is rebuilt, so not bit-equal
    dm_stat, dm_p = (np.nan, np.nan) if is_naive else diebold_mariano(err, naive_err, horizon)
    return {
        "n": float(len(group)),
        "mse": mean_squared_error(y_true, y_pred),
        "mae": mean_absolute_error(y_true, y_pred),
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "price_mse": mean_squared_error(p_true, p_pred),
        "price_mae": mean_absolute_error(p_true, p_pred),
        "price_rmse": float(np.sqrt(mean_squared_error(p_true, p_pred))),
        "mape": mean_absolute_percentage_error(p_true, p_pred),
        "directional_accuracy": directional_accuracy(y_pred, y_true),
        "theil_u": 1.0 if is_naive else float(np.sqrt(np.mean(err ** 2)) / naive_rmse) if naive_rmse > 0 else float("nan"),
        "dm_stat": dm_stat,
        "dm_pvalue": dm_p,
    }


def forecast_metrics(predictions: pd.DataFrame, per_fold: bool = False) -> pd.DataFrame:
    """One row of metrics per (ticker, model), or per (ticker, model, fold) with `per_fold`."""
    keys = ["ticker", "model"] + (["fold"] if per_fold else [])
    rows = []
    for key, group in predictions.dropna(subset=["y_true"]).groupby(keys, sort=False):
        rows.append({**dict(zip(keys, key)), **score(group)})
    out = pd.DataFrame(rows, columns=keys + METRIC_COLUMNS)
    out["n"] = out["n"].astype(int)
    return out
