"""Series the charts draw, derived from what a run wrote (predictions, equity, fills): no training,
no trading, and each one simple enough to recompute by hand in a test."""

from __future__ import annotations

import numpy as np
import pandas as pd

EXPOSURE_WINDOW = 21  # exposure is drawn as a one-month mean: a signal that flips daily would fill a panel
COLORS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]  # one colour per strategy in the PNGs and the interactive charts alike


def growth(equity: pd.Series) -> pd.Series:
    """Growth of 1: the equity over its first value (gaps dropped)."""
    equity = equity.dropna()
    return equity / equity.iloc[0]


def drawdown(equity: pd.Series) -> pd.Series:
    """The equity's fall from its running peak, as a fraction (0 at a new high)."""
    equity = equity.dropna()
    return equity / equity.cummax() - 1


def smoothed_exposure(exposure: pd.Series) -> pd.Series:
    return exposure.rolling(EXPOSURE_WINDOW, min_periods=1).mean()


def model_rows(predictions: pd.DataFrame, ticker: str, model: str) -> pd.DataFrame:
    rows = predictions[(predictions["ticker"] == ticker) & (predictions["model"] == model)]
    return rows.dropna(subset=["y_true", "y_pred"]).sort_values("date").reset_index(drop=True)


def closes(predictions: pd.DataFrame) -> dict[str, pd.Series]:
    """Each ticker's close at every prediction date: the naive forecast's price is today's close (in a
    volatility table, which prices nothing, the close h sessions on over the realised return)."""
    naive = predictions[predictions["model"] == "naive"]
    out = {}
    for ticker, rows in naive.groupby("ticker", sort=False):
        rows = rows.set_index("date").sort_index()
        if rows["price_pred"].isna().all() and "return_true" in rows:
            out[ticker] = rows["price_true"] * np.exp(-rows["return_true"])
        else:
            out[ticker] = rows["price_pred"]
    return out


def fold_starts(rows: pd.DataFrame) -> list[pd.Timestamp]:
    """The first prediction date of every fold after the first (where the network was retrained)."""
    return list(rows.groupby("fold")["date"].min().sort_values().iloc[1:])


def error_race(predictions: pd.DataFrame, ticker: str, model: str = "lstm", against: str = "naive") -> pd.Series:
    """Cumulative sum over dates of (against's squared error - model's squared error), in return
    space: it rises while `model` beats `against`; its last value is n * (MSE_against - MSE_model)."""
    mine = model_rows(predictions, ticker, model).set_index("date")
    other = model_rows(predictions, ticker, against).set_index("date")
    both = mine.index.intersection(other.index)
    gain = (other.loc[both, "y_pred"] - other.loc[both, "y_true"]) ** 2 - (
        mine.loc[both, "y_pred"] - mine.loc[both, "y_true"]
    ) ** 2
    return gain.sort_index().cumsum().rename(f"{against} - {model}")


def calibration_bins(rows: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Mean predicted and mean realised return within each quantile bin of the prediction."""
    if rows.empty:
        return pd.DataFrame(columns=["predicted", "realised", "n"])
    ranks = rows["y_pred"].rank(method="first")
    labels = pd.qcut(ranks, q=min(bins, len(rows)), labels=False)
    grouped = rows.groupby(labels)
    return pd.DataFrame(
        {"predicted": grouped["y_pred"].mean(), "realised": grouped["y_true"].mean(), "n": grouped.size()}
    ).reset_index(drop=True)


def autocorrelation(values: np.ndarray, lags: int = 20) -> np.ndarray:
    """Sample autocorrelation at lags 1..lags (the usual biased estimator, denominator n * var)."""
    x = np.asarray(values, dtype=float) - np.mean(values)
    denom = float(x @ x)
    if denom == 0:
        return np.zeros(lags)
    return np.array([float(x[k:] @ x[:-k]) / denom for k in range(1, lags + 1)])


def exposures(equity: pd.DataFrame, fills: pd.DataFrame | None, close: dict[str, pd.Series]) -> pd.DataFrame:
    """Value of the position held at each close over equity, per equity column ("book:strategy").

    Positions are the running sum of filled sizes (fills dated by the session they filled in);
    a column whose book has a ticker without prices is left out, and every column when the run
    has no fills table."""
    out = {}
    if fills is None:
        return pd.DataFrame(index=equity.index)
    for column in equity.columns:
        book, strategy = column.split(":", 1)
        mine = fills[(fills["book"] == book) & (fills["strategy"] == strategy)]
        held = pd.Series(0.0, index=equity.index)
        known = True
        for ticker, rows in mine.groupby("ticker") if len(mine) else []:
            if ticker not in close:
                known = False
                break
            size = rows.groupby(pd.to_datetime(rows["date"]))["size"].sum().cumsum()
            position = size.reindex(equity.index.union(size.index)).ffill().reindex(equity.index).fillna(0.0)
            held += position * close[ticker].reindex(equity.index).ffill()
        if known:
            out[column] = held / equity[column]
    return pd.DataFrame(out, index=equity.index)


def per_fold_rows(per_fold: list[dict], predictions: pd.DataFrame | None, model: str = "lstm") -> list[dict]:
    """The per-fold forecast metrics of `model`, each with the fold's first and last prediction date."""
    spans = {}
    if predictions is not None and "fold" in predictions:
        rows = predictions[predictions["model"] == model]
        for (ticker, fold), group in rows.groupby(["ticker", "fold"]):
            spans[(ticker, int(fold))] = (group["date"].min(), group["date"].max())
    out = []
    for m in per_fold:
        if m.get("model") != model:
            continue
        first, last = spans.get((m["ticker"], int(m["fold"])), (None, None))
        out.append({**m, "first": first, "last": last})
    return out


def cumulative_daily(daily: pd.DataFrame, column: str) -> pd.DataFrame:
    """Cumulative sum over dates of a daily cross-sectional statistic (rank IC, quintile spread), one
    column per model; a day without a value adds nothing. Its slope is the statistic's mean."""
    table = daily.pivot_table(index="date", columns="model", values=column, aggfunc="first", dropna=False)
    table = table[[m for m in dict.fromkeys(daily["model"]) if m in table.columns]]
    return table.sort_index().fillna(0.0).cumsum()


def holdings(fills: pd.DataFrame, close: dict[str, pd.Series], equity: pd.Series, book: str, strategy: str):
    """A portfolio's weights (position value over equity) per ticker at each close, and its daily turnover
    (traded value over equity). Positions are the running sum of filled sizes, as in `exposures`."""
    mine = fills[(fills["book"] == book) & (fills["strategy"] == strategy)]
    dates = equity.index
    weights = {}
    traded = pd.Series(0.0, index=dates)
    for ticker, rows in mine.groupby("ticker") if len(mine) else []:
        if ticker not in close:
            continue
        by_day = rows.groupby(pd.to_datetime(rows["date"]))
        size = by_day["size"].sum().cumsum()
        position = size.reindex(dates.union(size.index)).ffill().reindex(dates).fillna(0.0)
        weights[ticker] = position * close[ticker].reindex(dates).ffill() / equity
        value = (rows["size"].abs() * rows["price"]).groupby(pd.to_datetime(rows["date"])).sum()
        traded = traded.add(value.reindex(dates).fillna(0.0), fill_value=0.0)
    return pd.DataFrame(weights, index=dates).sort_index(axis=1), traded / equity


def annualised_vols(predictions: pd.DataFrame, ticker: str) -> pd.DataFrame:
    """A volatility table's forecasts and proxy as annualised volatilities by date: one column per model
    and `realized` (sqrt(252 / h x variance); y_pred and y_true are log h-session variances)."""
    rows = predictions[predictions["ticker"] == ticker]
    horizon = int(rows["horizon"].iloc[0]) if "horizon" in rows and len(rows) else 1
    wide = rows.pivot_table(index="date", columns="model", values="y_pred", aggfunc="first")
    wide = wide[[m for m in dict.fromkeys(rows["model"]) if m in wide.columns]]
    realized = rows.drop_duplicates("date").set_index("date")["y_true"]
    out = np.sqrt(252.0 / horizon * np.exp(wide))
    out["realized"] = np.sqrt(252.0 / horizon * np.exp(realized))
    return out.sort_index()


def qlike_race(predictions: pd.DataFrame, ticker: str, model: str, against: str = "garch") -> pd.Series:
    """Cumulative sum over dates of (against's QLIKE loss - model's): it rises while `model` forecasts the
    variance better than `against`."""

    def losses(name: str) -> pd.Series:
        rows = model_rows(predictions, ticker, name).set_index("date")
        ratio = np.exp(rows["y_true"] - rows["y_pred"])
        return ratio - np.log(ratio) - 1.0

    mine, other = losses(model), losses(against)
    both = mine.index.intersection(other.index)
    return (other.loc[both] - mine.loc[both]).sort_index().cumsum().rename(f"{against} - {model}")


def var_exceedances(predictions: pd.DataFrame, ticker: str, model: str = "lstm", z: float = 2.3263478740408408):
    """The model's 99% value-at-risk (as a negative return) and the realised return at each date, and
    whether the return fell below it (the forecast in close-to-close units, as the metrics score it)."""
    rows = model_rows(predictions, ticker, model).set_index("date")
    var = -z * np.sqrt(np.exp(rows["y_pred"]) * rows["return_var_ratio"])
    table = pd.DataFrame({"var": var, "return": rows["return_true"]})
    table["exceeded"] = table["return"] < table["var"]
    return table
