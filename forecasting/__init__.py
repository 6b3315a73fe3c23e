"""Data, features, stacked LSTM, walk-forward predictions and forecast metrics.

Never imports `strategies`, `reports` or `backtests`; TensorFlow is imported only when a network
is built, so loading data or computing metrics stays fast.
"""

from __future__ import annotations

import importlib

# Names are imported on first use (PEP 562), so importing one light submodule and the CLI's
# start-up never pay for pandas, TensorFlow, Backtrader or matplotlib.
_EXPORTS = {
    "load_prices": "forecasting.data",
    "DataError": "forecasting.errors",
    "FeatureError": "forecasting.errors",
    "ForecastingError": "forecasting.errors",
    "NotFittedError": "forecasting.errors",
    "build_features": "forecasting.features",
    "diebold_mariano": "forecasting.metrics",
    "forecast_metrics": "forecasting.metrics",
    "LSTMForecaster": "forecasting.model",
    "build_stacked_lstm": "forecasting.model",
    "set_seed": "forecasting.model",
    "DataSpec": "forecasting.spec",
    "ModelSpec": "forecasting.spec",
    "WalkForwardSpec": "forecasting.spec",
    "PREDICTION_COLUMNS": "forecasting.walkforward",
    "WalkForwardSplit": "forecasting.walkforward",
    "make_samples": "forecasting.walkforward",
    "walk_forward_predict": "forecasting.walkforward",
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
