"""Cross-sectional forecast metrics: how well a model ranks the tickers against each other each day.

Each statistic is computed per (model, date) across tickers, then summarised over dates:
IC (Pearson), rank IC (Spearman), the top-k hit rate and the top-minus-bottom quintile spread. Rank IC
compares the forecast's ranks with the target's `y_true` (a cross-sectional target ranks the tickers as
their returns do, so it is the same against the return); IC, the hit rate and the spread are about
money, so they use the realised return `return_true` when the table has that column (a daily rank is
not a return: Qlib's IC, the field's, is against returns) and `y_true` otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from arch.covariance.kernel import Bartlett

from forecasting.errors import ForecastingError
from forecasting.metrics import is_constant

XS_METRIC_COLUMNS = [
    "n_dates",
    "ic",
    "rank_ic",
    "icir",
    "rank_icir",
    "rank_ic_t",
    "top_k_hit",
    "spread",
    "k",
]
DAILY_COLUMNS = ["model", "date", "fold", "n", "ic", "rank_ic", "top_k_hit", "spread"]
MIN_TICKERS = 3
QUINTILES = 5
UNIVERSE_HINT = "load a universe, e.g. builtin:sp500_stocks"
REQUIRED_COLUMNS = ["date", "ticker", "model", "y_pred", "y_true"]


def check_cross_section(predictions: pd.DataFrame) -> None:
    """Refuse a predictions table with no date on which at least 3 tickers can be compared."""
    missing = [name for name in REQUIRED_COLUMNS if name not in predictions]
    if missing:
        raise ForecastingError(
            f"the predictions lack the column(s) {', '.join(missing)}",
            "pass the table written by walk_forward_predict (predictions.parquet)",
        )
    realised = predictions[predictions["y_pred"].notna() & predictions["y_true"].notna()]
    tickers = list(pd.unique(realised["ticker"]))
    need = f"cross-sectional metrics need at least {MIN_TICKERS} tickers per date"
    if len(tickers) < MIN_TICKERS:
        raise ForecastingError(f"{need}; the predictions hold {len(tickers)} ({_names(tickers)})", UNIVERSE_HINT)
    most_per_date = int(realised.groupby("date")["ticker"].nunique().max())
    if most_per_date < MIN_TICKERS:
        spans = realised.groupby("ticker", sort=False)["date"].agg(["min", "max"])
        ranges = [f"{ticker} {_day(span['min'])}..{_day(span['max'])}" for ticker, span in spans.iterrows()]
        raise ForecastingError(
            f"{need}; no date has more than {most_per_date} of the {len(tickers)} tickers, "
            f"whose date ranges are {_names(ranges)}",
            "predict every ticker over one common span of dates",
        )


def daily_cross_section(predictions: pd.DataFrame, k: int = 5, min_tickers: int = MIN_TICKERS) -> pd.DataFrame:
    """One row per (model, date) of cross-sectional statistics across that day's tickers.

    Columns `DAILY_COLUMNS`: `n` names with finite y_pred, y_true and realised return; `ic`, `rank_ic`
    (NaN on days with fewer than `min_tickers` names or a constant prediction or target); `top_k_hit`
    and `spread` are NaN on a day whose prediction is constant (it ranks nobody, so it picks no top k);
    the share of the k highest predictions whose realised return beats the day's median (NaN when
    n <= k: the top k would be the whole day); `spread`, the mean realised return of the top
    prediction quintile minus the bottom one (NaN under 5 names). Every statistic is NaN on a day
    with fewer than `min_tickers` names. One ranking serves the top k, the quintiles and the trading
    rule (`strategies.decision.xs_weights`): highest prediction first, equal predictions in the tickers'
    alphabetical order, so a tie at a cut puts the alphabetically first ticker on the better side.
    """
    frame = _tidy(predictions)
    fold = frame.groupby(["model", "date"], observed=True, sort=True)["fold"].first()
    frame = frame.sort_values(["model", "date", "ticker"], kind="stable")
    valid = frame[np.isfinite(frame[["y_pred", "y_true", "realised"]]).all(axis=1)]

    groups = valid.groupby(["model", "date"], observed=True, sort=True)
    day = groups.ngroup().to_numpy()
    n_days = groups.ngroups
    n = np.bincount(day, minlength=n_days).astype(float)
    n_row = n[day]
    y_pred, y_true, realised = (valid[name].to_numpy() for name in ("y_pred", "y_true", "realised"))

    by_day = valid.groupby(day)
    no_ranking = _constant_per_day(by_day["y_pred"])  # a forecast that ranks nobody picks no top k either
    constant = no_ranking | _constant_per_day(by_day["y_true"])
    thin = n < min_tickers
    ic = _pearson(day, n, y_pred, realised)
    rank_ic = _pearson(
        day,
        n,
        by_day["y_pred"].rank(method="average").to_numpy(),
        by_day["y_true"].rank(method="average").to_numpy(),
    )
    ic[constant | thin | _constant_per_day(by_day["realised"])] = np.nan
    rank_ic[constant | thin] = np.nan

    above_median = realised > by_day["realised"].transform("median").to_numpy()
    place = by_day["y_pred"].rank(method="first", ascending=False).to_numpy()  # 1 = best; rows sorted by ticker
    top_k_hit = _day_mean(day, n_days, above_median.astype(float), place <= k)
    top_k_hit[thin | no_ranking | (n <= k)] = np.nan

    quintile = _quintile(n_row + 1 - place, n_row)
    spread = _day_mean(day, n_days, realised, quintile == QUINTILES - 1) - _day_mean(
        day, n_days, realised, quintile == 0
    )
    spread[thin | no_ranking | (n < QUINTILES)] = np.nan

    stats = pd.DataFrame(
        {"n": n, "ic": ic, "rank_ic": rank_ic, "top_k_hit": top_k_hit, "spread": spread},
        index=groups.size().index,
    )
    # days whose rows are all invalid stay in the table, with n = 0
    out = stats.reindex(fold.index).reset_index()
    out["fold"] = fold.to_numpy()
    out["n"] = out["n"].fillna(0).astype(int)
    out["model"] = out["model"].astype(object)
    return out[DAILY_COLUMNS]


def cross_section_metrics(
    predictions: pd.DataFrame, k: int = 5, per_fold: bool = False, horizon: int | None = None
) -> pd.DataFrame:
    """One row of cross-sectional metrics per model (per model and fold with `per_fold`).

    `horizon`: the forecast horizon in days; h-day returns made every day overlap, so the Newey-West
    t of the rank IC uses at least h-1 lags. None reads it from the table's `horizon` column.
    Raises ForecastingError when no date holds 3 tickers (`check_cross_section`).
    """
    check_cross_section(predictions)
    if horizon is None:
        horizon = int(predictions["horizon"].max()) if "horizon" in predictions else 1
    daily = daily_cross_section(predictions, k=k)
    keys = ["model"] + (["fold"] if per_fold else [])
    rows = []
    for key, days in daily.groupby(keys, sort=False):
        rank_ic = days["rank_ic"].dropna()
        lags = max(_default_lags(len(rank_ic)), horizon - 1)
        rows.append(
            {
                **dict(zip(keys, key)),
                "n_dates": len(rank_ic),
                "ic": days["ic"].mean(),
                "rank_ic": rank_ic.mean(),
                "icir": _information_ratio(days["ic"]),
                "rank_icir": _information_ratio(rank_ic),
                "rank_ic_t": newey_west_t(rank_ic.to_numpy(), lags=lags),
                "top_k_hit": days["top_k_hit"].mean(),
                "spread": days["spread"].mean(),
                "k": k,
            }
        )
    out = pd.DataFrame(rows, columns=keys + XS_METRIC_COLUMNS)
    if per_fold:  # models in table order, folds ascending within each
        order = {model: i for i, model in enumerate(pd.unique(daily["model"]))}
        out = out.sort_values(["model", "fold"], key=lambda c: c.map(order) if c.name == "model" else c)
    return out.reset_index(drop=True)


def newey_west_t(values, lags: int | None = None) -> float:
    """t statistic of the mean of `values` (NaN dropped) with a Newey-West (Bartlett) long-run variance.

    The long-run variance is gamma_0 + 2 * sum_{j=1..L} (1 - j/(L+1)) gamma_j, gamma_j the lag-j
    autocovariance divided by n (arch's Bartlett kernel, bandwidth L); t = mean / sqrt(lrv / n).
    Default L = floor(4 * (n/100) ** (2/9)). NaN for fewer than 3 values or zero variance.
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    if n < 3 or is_constant(values):
        return float("nan")
    lags = _default_lags(n) if lags is None else int(lags)
    long_run = float(Bartlett(values, bandwidth=lags, force_int=True).cov.long_run[0, 0])
    if not long_run > 0:
        return float("nan")
    return float(values.mean() / math.sqrt(long_run / n))


def _default_lags(n: int) -> int:
    """Newey-West (1994) rule of thumb for the Bartlett kernel's bandwidth."""
    return int(math.floor(4 * (n / 100) ** (2 / 9)))


def _information_ratio(daily: pd.Series) -> float:
    """Mean over sample standard deviation (ddof=1) of a daily series; NaN when it has no spread."""
    daily = daily.dropna()
    if len(daily) < 2 or is_constant(daily.to_numpy()):
        return float("nan")
    return float(daily.mean() / daily.std(ddof=1))


def _tidy(predictions: pd.DataFrame) -> pd.DataFrame:
    """The columns these metrics read, models as a categorical in the order they first appear."""
    realised = "return_true" if "return_true" in predictions else "y_true"
    return pd.DataFrame(
        {
            "model": pd.Categorical(predictions["model"], categories=pd.unique(predictions["model"])),
            "date": predictions["date"],
            "ticker": predictions["ticker"],
            "fold": predictions["fold"] if "fold" in predictions else np.nan,
            "y_pred": predictions["y_pred"].astype(float),
            "y_true": predictions["y_true"].astype(float),
            "realised": predictions[realised].astype(float),
        }
    )


def _pearson(day: np.ndarray, n: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of x and y within each day, from per-day sums of centred products."""
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = x - (np.bincount(day, weights=x, minlength=len(n)) / n)[day]
        dy = y - (np.bincount(day, weights=y, minlength=len(n)) / n)[day]
        xy = np.bincount(day, weights=dx * dy, minlength=len(n))
        xx = np.bincount(day, weights=dx * dx, minlength=len(n))
        yy = np.bincount(day, weights=dy * dy, minlength=len(n))
        return xy / np.sqrt(xx * yy)


def _constant_per_day(values) -> np.ndarray:
    """`is_constant` for each day; it depends only on the smallest and largest value, so it runs on
    those two per day instead of on every row."""
    low, high = values.min().to_numpy(), values.max().to_numpy()
    return np.fromiter((is_constant(pair) for pair in zip(low, high)), dtype=bool, count=len(low))


def _day_mean(day: np.ndarray, n_days: int, values: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """Mean of `values` over each day's selected rows."""
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.bincount(day, weights=np.where(selected, values, 0.0), minlength=n_days)
        return total / np.bincount(day, weights=selected.astype(float), minlength=n_days)


def _quintile(rank: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Quintile (0 = lowest prediction) of each row from its rank 1..n among the day's names:
    pd.qcut of the ranks 1..n, computed once per distinct n rather than once per day."""
    quintile = np.full(len(rank), -1)
    for size in np.unique(n[n >= QUINTILES]).astype(int):
        rows = n == size
        by_rank = pd.qcut(np.arange(1, size + 1), QUINTILES, labels=False)
        quintile[rows] = by_rank[rank[rows].astype(int) - 1]
    return quintile


def _names(items: list, shown: int = 5) -> str:
    """A short list for an error message: the first few, then how many more."""
    text = ", ".join(str(item) for item in items[:shown])
    return text + (f" and {len(items) - shown} more" if len(items) > shown else "")


def _day(value) -> str:
    return str(pd.Timestamp(value).date())
