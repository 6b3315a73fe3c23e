"""Backtrader strategies that trade a predictions table; never imports TensorFlow or the other packages."""

from __future__ import annotations

import lazy_loader

# Names are imported on first use (SPEC 1's lazy loading), so importing one light submodule and the
# CLI's start-up never pay for pandas, TensorFlow, Backtrader or matplotlib.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "analyzers": ["BookRecorder"],
        "base": ["TargetStrategy"],
        "baselines": ["BuyAndHold", "MacdCross", "RsiReversion", "SmaCross"],
        "cross_section": ["EqualWeight", "XsRank"],
        "decision": [
            "Plan",
            "Sizing",
            "SignalParams",
            "XsParams",
            "check_universe",
            "equal_weights",
            "plan_orders",
            "plan_weights",
            "rebalance_due",
            "slot_weight",
            "trailing_vol",
            "xs_weights",
        ],
        "errors": ["StrategyError"],
        "feeds": ["PredictionData", "close_only", "prediction_frame"],
        "registry": ["STRATEGIES", "forecast_model", "resolve"],
        "signal": ["LSTMSignal", "NaiveSignal", "RidgeSignal"],
    },
)
