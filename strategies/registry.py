"""Strategies by config name, with parameter checks that suggest the name you meant."""

from __future__ import annotations

import difflib

from strategies.base import TargetStrategy
from strategies.baselines import BuyAndHold, MacdCross, RsiReversion, SmaCross
from strategies.errors import StrategyError
from strategies.signal import LSTMSignal, NaiveSignal, RidgeSignal

STRATEGIES: dict[str, type[TargetStrategy]] = {
    "lstm_signal": LSTMSignal,
    "naive_signal": NaiveSignal,
    "ridge_signal": RidgeSignal,
    "buy_and_hold": BuyAndHold,
    "sma_cross": SmaCross,
    "rsi_reversion": RsiReversion,
    "macd_cross": MacdCross,
}
INTERNAL_PARAMS = {"trade_start", "liquidate_on", "cash_rate", "fractional", "cash_buffer", "slippage_pct", "commission_pct", "commission_per_share"}


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'?" if close else "valid: " + ", ".join(sorted(choices))


def strategy_params(cls: type[TargetStrategy]) -> dict:
    return {k: v for k, v in cls.params._getitems() if k not in INTERNAL_PARAMS}


def resolve(name: str, params: dict | None = None) -> tuple[type[TargetStrategy], dict]:
    """The class for `name` and its checked parameters; unknown names fail with a suggestion."""
    if name not in STRATEGIES:
        raise StrategyError(f"unknown strategy '{name}'", _suggest(name, list(STRATEGIES)))
    cls = STRATEGIES[name]
    known = strategy_params(cls)
    for key, value in (params or {}).items():
        if key not in known:
            raise StrategyError(f"strategy '{name}' has no parameter '{key}'", _suggest(key, list(known)))
        default = known[key]
        if isinstance(default, bool) and not isinstance(value, bool):
            raise StrategyError(f"strategy '{name}': '{key}' must be true or false (got {value!r})", f"e.g. {key} = true")
        if isinstance(default, (int, float)) and not isinstance(default, bool) and (
                isinstance(value, bool) or not isinstance(value, (int, float))):
            raise StrategyError(f"strategy '{name}': '{key}' must be a number (got {value!r})", f"default {default}")
    return cls, dict(params or {})


def forecast_model(cls: type[TargetStrategy]) -> str | None:
    """Which model's predictions a strategy trades (None for rule-based ones)."""
    return getattr(cls, "forecast", None)
