"""Backtrader strategies that trade a predictions table; never imports TensorFlow or the other packages."""

from strategies.analyzers import BookRecorder
from strategies.base import TargetStrategy
from strategies.baselines import BuyAndHold, MacdCross, RsiReversion, SmaCross
from strategies.errors import StrategyError
from strategies.feeds import PredictionData, prediction_frame
from strategies.registry import STRATEGIES, forecast_model, resolve
from strategies.signal import LSTMSignal, NaiveSignal

__all__ = ["STRATEGIES", "BookRecorder", "BuyAndHold", "LSTMSignal", "MacdCross", "NaiveSignal", "PredictionData",
           "RsiReversion", "SmaCross", "StrategyError", "TargetStrategy", "forecast_model", "prediction_frame", "resolve"]
