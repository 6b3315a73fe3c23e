"""Trade a forecast: long above `enter_long`, short below `enter_short` (if allowed), flat between."""

from __future__ import annotations

from strategies.base import TargetStrategy
from strategies.decision import SignalParams, backtrader_params, signal_target


class LSTMSignal(TargetStrategy):
    """Trades the LSTM's predicted return (the feed's `y_pred` line)."""

    forecast = "lstm"  # which model's rows of the predictions table fill `y_pred`
    params = backtrader_params(SignalParams)  # declared once, in strategies.decision.SignalParams

    def __init__(self) -> None:
        super().__init__()
        self._stopped: dict = {}
        self._rule = SignalParams(**{name: getattr(self.p, name) for name, _ in backtrader_params(SignalParams)})

    def target(self, data) -> float:
        position = self.getposition(data)
        target, self._stopped[data._name] = signal_target(
            data.y_pred[0],
            self._rule,
            position=position.size,
            entry_price=position.price,
            closes=list(data.close.get(size=self.p.vol_window + 1)),
            stopped=self._stopped.get(data._name),
            forecast_variance=data.vol_var[0] if self.p.vol_forecast else None,
        )
        return target


class NaiveSignal(LSTMSignal):
    """The honest control: the momentum forecast (the last h-bar return persists) through the same rule."""

    forecast = "momentum"


class RidgeSignal(LSTMSignal):
    """The linear control: the ridge regression's forecast through the same rule as the LSTM's."""

    forecast = "ridge"
