"""Volatility targeting from a forecast: hold target_vol / forecast volatility of equity."""

from __future__ import annotations

from strategies.base import TargetStrategy
from strategies.decision import TRAILING, VolParams, backtrader_params, vol_target


class VolTarget(TargetStrategy):
    """Long, sized by a volatility forecast: exposure = target_vol / forecast volatility, at most 1 (times
    `max_exposure`), re-sized when it moves by more than the rebalance band (Moreira & Muir 2017).

    The forecast is a volatility model's rows of the predictions table (`forecast`: lstm, garch, gjr,
    ewma, har, naive), as the feed's `vol_var` line: that day's forecast of the next session's return
    variance (the engine's `daily_return_variance`); or, with `forecast = "trailing"`, the trailing
    volatility of the last `vol_window` returns (no forecast: a rule)."""

    forecast = VolParams.forecast
    reads_variance = True  # the engine feeds the traded model's rows as a variance (`vol_var`)
    params = backtrader_params(VolParams)  # declared once, in strategies.decision.VolParams

    def __init__(self) -> None:
        super().__init__()
        self._rule = VolParams(**{name: getattr(self.p, name) for name, _ in backtrader_params(VolParams)})

    def target(self, data) -> float:
        trailing = self.p.forecast == TRAILING
        closes = data.close.get(size=min(len(data), self.p.vol_window + 1)) if trailing else ()
        return vol_target(self._rule, None if trailing else data.vol_var[0], closes)
