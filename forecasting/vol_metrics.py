"""How good a variance forecast is, scored against one realized-variance proxy for every model.

`y_pred` and `y_true` of a volatility table are logs of the h-session variance (forecast and
proxy). The headline is QLIKE (Patton 2011): mean(p/f - ln(p/f) - 1), 0 for a perfect forecast; among
the usual losses it is one that ranks forecasts the same way with a noisy proxy as with the true
variance, and it punishes under-forecasting risk more than over-forecasting it. Beside it: the MSE of
the variance, the Mincer-Zarnowitz regression of the proxy on the forecast (intercept 0 and slope 1
for an unbiased forecast; R^2), Diebold-Mariano tests on the QLIKE loss against GARCH and against
HAR, and the implied 99% value-at-risk: the share of days whose realised return fell below
-2.326 x the forecast's volatility (in close-to-close units, `return_var_ratio`), with Kupiec's
test that the share is 1%.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from forecasting.metrics import diebold_mariano_losses

VAR_LEVEL = 0.99
VOL_METRIC_COLUMNS = [
    "n",
    "qlike",
    "mse_var",
    "mz_intercept",
    "mz_slope",
    "mz_r2",
    "dm_garch_stat",
    "dm_garch_pvalue",
    "dm_har_stat",
    "dm_har_pvalue",
    "var_exceed",
    "kupiec_pvalue",
]


def qlike_losses(proxy: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """Each day's QLIKE loss p/f - ln(p/f) - 1 (variances, not logs)."""
    ratio = np.asarray(proxy, dtype="float64") / np.asarray(forecast, dtype="float64")
    return ratio - np.log(ratio) - 1.0


def qlike(proxy: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean(qlike_losses(proxy, forecast)))


def mincer_zarnowitz(proxy: np.ndarray, forecast: np.ndarray) -> tuple[float, float, float]:
    """OLS of the proxy on a constant and the forecast: (intercept, slope, R^2); NaN for a constant forecast."""
    f = np.asarray(forecast, dtype="float64")
    p = np.asarray(proxy, dtype="float64")
    if len(f) < 3 or np.ptp(f) == 0:
        return float("nan"), float("nan"), float("nan")
    slope, intercept, r, _, _ = stats.linregress(f, p)
    return float(intercept), float(slope), float(r * r)


def kupiec(exceedances: int, n: int, level: float = VAR_LEVEL) -> float:
    """Kupiec's (1995) proportion-of-failures test: the p-value of the likelihood ratio that the
    exceedance probability is 1 - level, chi-squared with one degree of freedom."""
    if n == 0:
        return float("nan")
    p = 1.0 - level
    x = int(exceedances)
    null = (n - x) * np.log(1.0 - p) + x * np.log(p)
    share = x / n
    fitted = (n - x) * np.log(1.0 - share) if x < n else 0.0
    fitted += x * np.log(share) if x > 0 else 0.0
    return float(stats.chi2.sf(-2.0 * (null - fitted), df=1))


def value_at_risk_exceedances(returns: np.ndarray, variance: np.ndarray, level: float = VAR_LEVEL) -> tuple[int, int]:
    """Days whose return fell below the forecast's VaR (-z * sqrt(variance), zero mean, normal), of all days."""
    returns, variance = np.asarray(returns, dtype="float64"), np.asarray(variance, dtype="float64")
    ok = np.isfinite(returns) & np.isfinite(variance)
    z = stats.norm.ppf(level)
    return int(np.sum(returns[ok] < -z * np.sqrt(variance[ok]))), int(ok.sum())


def volatility_metrics(predictions: pd.DataFrame, per_fold: bool = False) -> pd.DataFrame:
    """One row of `VOL_METRIC_COLUMNS` per (ticker, model), or per (ticker, model, fold) with `per_fold`."""
    keys = ["ticker", "model"] + (["fold"] if per_fold else [])
    table = predictions.dropna(subset=["y_true", "y_pred"])
    rows = []
    for key, group in table.groupby(keys, sort=False):
        group = group.sort_values("date")
        proxy, forecast = np.exp(group["y_true"].to_numpy()), np.exp(group["y_pred"].to_numpy())
        horizon = int(group["horizon"].iloc[0]) if "horizon" in group else 1
        losses = qlike_losses(proxy, forecast)
        row = {**dict(zip(keys, key if isinstance(key, tuple) else (key,))), "n": len(group)}
        row["qlike"] = float(np.mean(losses))
        row["mse_var"] = float(np.mean((proxy - forecast) ** 2))
        row["mz_intercept"], row["mz_slope"], row["mz_r2"] = mincer_zarnowitz(proxy, forecast)
        ticker_rows = table[table["ticker"] == group["ticker"].iloc[0]]
        for against in ("garch", "har"):
            stat = pvalue = float("nan")
            if group["model"].iloc[0] != against:
                other = ticker_rows[ticker_rows["model"] == against].set_index("date")
                if per_fold:
                    other = other[other["fold"] == group["fold"].iloc[0]]
                both = group.set_index("date").index.intersection(other.index)
                if len(both):
                    mine = pd.Series(losses, index=group["date"].to_numpy()).loc[both].to_numpy()
                    theirs = qlike_losses(np.exp(other.loc[both, "y_true"]), np.exp(other.loc[both, "y_pred"]))
                    stat, pvalue = diebold_mariano_losses(mine, np.asarray(theirs), horizon)
            row[f"dm_{against}_stat"], row[f"dm_{against}_pvalue"] = stat, pvalue
        if {"return_true", "return_var_ratio"} <= set(group):
            x, n = value_at_risk_exceedances(group["return_true"], forecast * group["return_var_ratio"].to_numpy())
            row["var_exceed"] = x / n if n else float("nan")
            row["kupiec_pvalue"] = kupiec(x, n)
        else:
            row["var_exceed"] = row["kupiec_pvalue"] = float("nan")
        rows.append(row)
    out = pd.DataFrame(rows, columns=keys + VOL_METRIC_COLUMNS)
    out["n"] = out["n"].astype(int)
    return out
