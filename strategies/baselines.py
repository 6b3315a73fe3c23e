"""Classic rule-based baselines, with Backtrader's own indicators."""

from __future__ import annotations

import backtrader as bt

from strategies.base import TargetStrategy


class BuyAndHold(TargetStrategy):
    """Fully invested from the first trading bar to the end."""

    def target(self, data) -> float:
        return 1.0


class SmaCross(TargetStrategy):
    """Long while the fast moving average is above the slow one."""

    params = (("fast", 50), ("slow", 200), ("allow_short", False))

    def __init__(self) -> None:
        super().__init__()
        self.trend = {
            d._name: bt.indicators.SMA(d.close, period=self.p.fast) - bt.indicators.SMA(d.close, period=self.p.slow)
            for d in self.datas
        }

    def target(self, data) -> float:
        return 1.0 if self.trend[data._name][0] > 0 else (-1.0 if self.p.allow_short else 0.0)


class MacdCross(TargetStrategy):
    """Long while the MACD line is above its signal line."""

    params = (("fast", 12), ("slow", 26), ("signal", 9), ("allow_short", False))

    def __init__(self) -> None:
        super().__init__()
        self.macd = {
            d._name: bt.indicators.MACD(
                d.close, period_me1=self.p.fast, period_me2=self.p.slow, period_signal=self.p.signal
            )
            for d in self.datas
        }

    def target(self, data) -> float:
        macd = self.macd[data._name]
        return 1.0 if macd.macd[0] > macd.signal[0] else (-1.0 if self.p.allow_short else 0.0)


class RsiReversion(TargetStrategy):
    """Buy when RSI is oversold (< lower), sell when it is overbought (> upper), hold in between."""

    params = (("period", 14), ("lower", 30.0), ("upper", 70.0))

    def __init__(self) -> None:
        super().__init__()
        self.rsi = {d._name: bt.indicators.RSI(d.close, period=self.p.period, safediv=True) for d in self.datas}
        self.holding = {d._name: 0.0 for d in self.datas}

    def target(self, data) -> float:
        rsi = self.rsi[data._name][0]
        if rsi < self.p.lower:
            self.holding[data._name] = 1.0
        elif rsi > self.p.upper:
            self.holding[data._name] = 0.0
        return self.holding[data._name]
