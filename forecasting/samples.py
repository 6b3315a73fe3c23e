"""One ticker's samples: the sliding windows of its features and their horizon-h targets
(`forecasting.walkforward.make_samples` makes them; `forecasting.targets` says what the target is)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Samples:
    """Windows and targets of one ticker. Row i of X is the window ending at bar `dates[i]`."""

    X: np.ndarray  # (n, lookback, features), every window, including those with unknown targets
    target: np.ndarray  # what the network learns (log return or future close); NaN where unknown
    log_return: np.ndarray  # log(close[t+h] / close[t]); NaN where unknown
    close: np.ndarray  # close at the window's last bar
    future_close: np.ndarray
    past_return: np.ndarray  # log(close[t] / close[t-h]), the momentum forecast
    dates: pd.DatetimeIndex
    frame: pd.DataFrame | None = None  # the bars the samples were made from (the volatility baselines fit on them)
    positions: np.ndarray | None = None  # each sample's bar position in `frame`

    @property
    def n_known(self) -> int:
        """Samples whose target is known by the last bar (they come first)."""
        return int(np.isfinite(self.log_return).sum())
