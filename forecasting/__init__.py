"""Data, features, stacked LSTM, walk-forward predictions and forecast metrics.

Never imports `strategies`, `reports` or `backtests`; TensorFlow is imported only when a network
is built, so loading data or computing metrics stays fast.
"""

from forecasting.data import load_prices
from forecasting.errors import DataError, FeatureError, ForecastingError, NotFittedError
from forecasting.features import build_features
from forecasting.forecast import forecast
from forecasting.metrics import diebold_mariano, forecast_metrics
from forecasting.model import LSTMForecaster, build_stacked_lstm, set_seed
from forecasting.spec import DataSpec, ModelSpec, WalkForwardSpec
from forecasting.walkforward import PREDICTION_COLUMNS, WalkForwardSplit, make_samples, walk_forward_predict

__all__ = [
    "DataError", "DataSpec", "FeatureError", "ForecastingError", "LSTMForecaster", "ModelSpec", "NotFittedError",
    "PREDICTION_COLUMNS", "WalkForwardSpec", "WalkForwardSplit", "build_features", "build_stacked_lstm",
    "diebold_mariano", "forecast", "forecast_metrics", "load_prices", "make_samples", "set_seed",
    "walk_forward_predict",
]
