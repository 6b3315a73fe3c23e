"""Backtrader feeds with the prediction lines beside OHLCV."""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd

from strategies.errors import StrategyError


class PredictionData(bt.feeds.PandasData):
    """OHLCV plus `y_pred` (predicted log return to close t+h, or a volatility model's log h-session
    variance), `price_pred` and `vol_var` (a volatility forecast of the next session's return variance,
    when a strategy is sized by one), by date.

    Rows are read from NumPy arrays taken once at the start: Backtrader's `PandasData` reads every
    value with `DataFrame.iloc`, which made loading the feeds most of a 20-stock backtest's time.
    The values are the same floats either way."""

    lines = ("y_pred", "price_pred", "vol_var", "dividend")
    params = (
        ("y_pred", "y_pred"),
        ("price_pred", "price_pred"),
        ("vol_var", "vol_var"),
        ("dividend", "dividend"),
        ("openinterest", None),
    )

    def start(self) -> None:
        super().start()
        frame = self.p.dataname
        self._fields = [
            (getattr(self.lines, name), frame.iloc[:, column].to_numpy(dtype="float64"))
            for name in self.getlinealiases()
            if name != "datetime" and (column := self._colmapping[name]) is not None
        ]
        self._stamps = [bt.date2num(stamp.to_pydatetime()) for stamp in frame.index]

    def _load(self) -> bool:
        self._idx += 1
        if self._idx >= len(self._stamps):
            return False
        for line, values in self._fields:
            line[0] = values[self._idx]
        self.lines.datetime[0] = self._stamps[self._idx]
        return True


def close_only(prices: pd.DataFrame) -> bool:
    """Whether a prices frame has closes but no opens: its orders fill at the next close."""
    return "open" not in prices.columns


def _ohlcv(bars: pd.DataFrame) -> pd.DataFrame:
    """The bars' OHLCV; a close-only frame's bar is its close four times (volume 0 when absent), so an
    order decided at close t fills at the "open" of t+1, which is the close of t+1: one more day of delay,
    the honest fill when there is no open."""
    dividend = bars["dividends"] if "dividends" in bars.columns else 0.0  # cash per share, on its ex-date
    if not close_only(bars):
        return bars[["open", "high", "low", "close", "volume"]].assign(dividend=dividend)
    close = bars["close"]
    volume = bars["volume"] if "volume" in bars.columns else 0.0
    return pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": volume, "dividend": dividend},
        index=bars.index,
    )


def prediction_frame(
    prices: pd.DataFrame, predictions: pd.DataFrame, warmup: int = 0, name: str = "asset"
) -> tuple[pd.DataFrame, pd.Timestamp, pd.Timestamp]:
    """Align one model's predictions of one ticker with its prices.

    `prices` is OHLCV, or close-only (a `close` column, maybe `volume`: see `close_only`).
    Returns the frame for `PredictionData` (`warmup` bars of history before the first prediction,
    with NaN predictions, so indicators are ready when trading starts, and the bar after the last
    prediction, where its order fills) plus the first and last prediction dates. Every price bar
    between those dates must have exactly one prediction.
    """
    if predictions.empty:
        raise StrategyError(f"{name}: no predictions to trade", "check the predictions file's ticker and model")
    dates = pd.DatetimeIndex(predictions["date"])
    if dates.has_duplicates:
        dup = dates[dates.duplicated()][0]
        raise StrategyError(f"{name}: duplicate prediction date {dup.date()}", "keep one prediction per date and model")
    if not dates.is_monotonic_increasing:
        predictions = predictions.sort_values("date")
        dates = pd.DatetimeIndex(predictions["date"])
    first, last = dates[0], dates[-1]
    unknown = dates.difference(prices.index)
    if len(unknown):
        raise StrategyError(
            f"{name}: prediction dated {unknown[0].date()} has no price bar",
            "the predictions and the price data must come from the same source",
        )
    span = prices.loc[first:last]
    missing = span.index.difference(dates)
    if len(missing):
        raise StrategyError(
            f"{name}: predictions do not cover the prices: none for {missing[0].date()} "
            f"({len(missing)} bars missing between {first.date()} and {last.date()})",
            "backtest a contiguous predictions table, as walk_forward_predict writes it",
        )
    start = max(0, prices.index.get_loc(first) - warmup)
    stop = min(len(prices), prices.index.get_loc(last) + 2)
    frame = _ohlcv(prices.iloc[start:stop])
    aligned = predictions.set_index(pd.DatetimeIndex(predictions["date"]))
    frame["y_pred"] = aligned["y_pred"].reindex(frame.index).astype("float64")
    # optional: a table of date, ticker, model and y_pred alone can be backtested (no strategy reads it)
    frame["price_pred"] = (
        aligned["price_pred"].reindex(frame.index).astype("float64") if "price_pred" in aligned else np.nan
    )
    # a volatility model's forecast of the next session's return variance, when one sizes the trade
    frame["vol_var"] = aligned["vol_var"].reindex(frame.index).astype("float64") if "vol_var" in aligned else np.nan
    span = frame.loc[first:last, "y_pred"]
    if np.isinf(span).any():  # NaN is allowed: no forecast that day (e.g. a predicted close <= 0), no decision
        bad = span.index[np.isinf(span)][0]
        raise StrategyError(f"{name}: prediction for {bad.date()} is infinite", "repair the predictions file")
    return frame, first, last
