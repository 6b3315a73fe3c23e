"""Trade a forecast: long above `enter_long`, short below `enter_short` (if allowed), flat between."""

from __future__ import annotations

import math

import numpy as np

from strategies.base import TargetStrategy


class LSTMSignal(TargetStrategy):
    """Trades the LSTM's predicted return (the feed's `y_pred` line)."""

    forecast = "lstm"  # which model's rows of the predictions table fill `y_pred`
    params = (
        ("enter_long", 0.0),
        ("enter_short", 0.0),
        ("allow_short", False),
        ("target_vol", None),   # annualised volatility target, e.g. 0.15; None = fixed exposure
        ("vol_window", 20),
        ("stop_loss", None),    # e.g. 0.05: close a position 5% under its entry; re-enter on a new signal
    )

    def __init__(self) -> None:
        super().__init__()
        self._stopped: dict = {}

    def target(self, data) -> float:
        pred = data.y_pred[0]
        if math.isnan(pred):
            return float("nan")
        side = 1.0 if pred > self.p.enter_long else -1.0 if self.p.allow_short and pred < self.p.enter_short else 0.0
        if self._stopped.get(data._name) == side:
            return 0.0
        self._stopped.pop(data._name, None)
        if side and self.p.stop_loss and self._hit_stop(data):
            self._stopped[data._name] = side
            return 0.0
        return side * self._scale(data)

    def _hit_stop(self, data) -> bool:
        position = self.getposition(data)
        if not position.size:
            return False
        move = data.close[0] / position.price - 1.0
        return (move if position.size > 0 else -move) < -self.p.stop_loss

    def _scale(self, data) -> float:
        if not self.p.target_vol:
            return 1.0
        closes = np.asarray(data.close.get(size=self.p.vol_window + 1))
        if len(closes) <= 2:
            return 1.0
        realised = float(np.std(np.diff(np.log(closes)), ddof=1) * math.sqrt(252))
        return min(1.0, self.p.target_vol / realised) if realised > 0 else 1.0


class NaiveSignal(LSTMSignal):
    """The honest control: the momentum forecast (the last h-bar return persists) through the same rule."""

    forecast = "momentum"


class RidgeSignal(LSTMSignal):
    """The linear control: the ridge regression's forecast through the same rule as the LSTM's."""

    forecast = "ridge"
