"""Volatility targeting from a forecast: hold target_vol / forecast volatility of equity."""

from __future__ import annotations

import math

from strategies.base import TargetStrategy
from strategies.decision import TRAILING, VolParams, annual_vol, backtrader_params, trailing_vol, vol_target_exposure


class VolTarget(TargetStrategy):
    """Long, sized by a volatility forecast: exposure = target_vol / forecast volatility, at most 1 (times
    `max_exposure`), re-sized when it moves by more than the rebalance band (Moreira & Muir 2017).

    The forecast is a volatility model's rows of the predictions table (`forecast`: lstm, garch, gjr,
    ewma, har, naive): its log h-session variance, made a daily return variance by the feed's
    `var_scale` (the table's return_var_ratio / horizon); or, with `forecast = "trailing"`, the
    trailing volatility of the last `vol_window` returns (no forecast: a rule)."""

    forecast = VolParams.forecast
    params = backtrader_params(VolParams)  # declared once, in strategies.decision.VolParams

    def target(self, data) -> float:
        if self.p.forecast == TRAILING:
            vol = trailing_vol(data.close.get(size=min(len(data), self.p.vol_window + 1)))
        else:
            log_variance, scale = data.y_pred[0], data.var_scale[0]
            vol = annual_vol(math.exp(log_variance) * scale) if math.isfinite(log_variance * scale) else math.nan
        return vol_target_exposure(vol, self.p.target_vol)
