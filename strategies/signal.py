"""Trade a forecast: long above `enter_long`, short below `enter_short` (if allowed), flat between."""

from __future__ import annotations

from strategies.base import TargetStrategy
from strategies.decision import SignalParams, signal_target


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
        self._rule = SignalParams(enter_long=self.p.enter_long, enter_short=self.p.enter_short,
                                  allow_short=self.p.allow_short, target_vol=self.p.target_vol,
                                  vol_window=self.p.vol_window, stop_loss=self.p.stop_loss)

    def target(self, data) -> float:
        position = self.getposition(data)
        target, self._stopped[data._name] = signal_target(
            data.y_pred[0], self._rule, position=position.size, entry_price=position.price,
            closes=list(data.close.get(size=self.p.vol_window + 1)), stopped=self._stopped.get(data._name))
        return target


class NaiveSignal(LSTMSignal):
    """The honest control: the momentum forecast (the last h-bar return persists) through the same rule."""

    forecast = "momentum"


class RidgeSignal(LSTMSignal):
    """The linear control: the ridge regression's forecast through the same rule as the LSTM's."""

    forecast = "ridge"
