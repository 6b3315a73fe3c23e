"""Backtrader strategies that trade a predictions table; never imports TensorFlow or the other packages."""

from __future__ import annotations

import importlib

# Names are imported on first use (PEP 562), so importing one light submodule and the CLI's
# start-up never pay for pandas, TensorFlow, Backtrader or matplotlib.
_EXPORTS = {
    "BookRecorder": "strategies.analyzers",
    "TargetStrategy": "strategies.base",
    "BuyAndHold": "strategies.baselines",
    "MacdCross": "strategies.baselines",
    "RsiReversion": "strategies.baselines",
    "SmaCross": "strategies.baselines",
    "StrategyError": "strategies.errors",
    "PredictionData": "strategies.feeds",
    "prediction_frame": "strategies.feeds",
    "STRATEGIES": "strategies.registry",
    "forecast_model": "strategies.registry",
    "resolve": "strategies.registry",
    "LSTMSignal": "strategies.signal",
    "NaiveSignal": "strategies.signal",
    "RidgeSignal": "strategies.signal",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
