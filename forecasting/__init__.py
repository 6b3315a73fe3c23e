"""Data, features, stacked LSTM, walk-forward predictions and forecast metrics.

Never imports `strategies`, `reports` or `backtests`; TensorFlow is imported only when a network
is built, so loading data or computing metrics stays fast.
"""

from __future__ import annotations

import lazy_loader

# Names are imported on first use (SPEC 1's lazy loading), so importing one light submodule and the
# CLI's start-up never pay for pandas, TensorFlow, Backtrader or matplotlib.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "data": ["load_prices"],
        "errors": ["DataError", "FeatureError", "ForecastingError", "NotFittedError"],
        "features": ["build_features"],
        "metrics": ["diebold_mariano", "forecast_metrics"],
        "model": ["LSTMForecaster", "build_stacked_lstm", "set_seed"],
        "spec": ["DataSpec", "ModelSpec", "WalkForwardSpec"],
        "tasks": ["Task", "task_of", "walk_forward_predict"],
        "walkforward": ["PREDICTION_COLUMNS", "WalkForwardSplit", "make_samples"],
        "xs_metrics": ["cross_section_metrics"],
    },
)
