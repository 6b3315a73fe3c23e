"""Strategies by config name, with parameter checks that suggest the name you meant."""

from __future__ import annotations

import difflib

from strategies.base import TargetStrategy
from strategies.baselines import BuyAndHold, MacdCross, RsiReversion, SmaCross
from strategies.cross_section import EqualWeight, XsRank
from strategies.decision import TRAILING, broker_params, declared_bounds, declared_choices
from strategies.errors import StrategyError
from strategies.signal import LSTMSignal, NaiveSignal, RidgeSignal
from strategies.volatility import VolTarget

STRATEGIES: dict[str, type[TargetStrategy]] = {
    "lstm_signal": LSTMSignal,
    "naive_signal": NaiveSignal,
    "ridge_signal": RidgeSignal,
    "buy_and_hold": BuyAndHold,
    "sma_cross": SmaCross,
    "rsi_reversion": RsiReversion,
    "macd_cross": MacdCross,
    "vol_target": VolTarget,
    "xs_rank": XsRank,
    "equal_weight": EqualWeight,
}
INTERNAL_PARAMS = set(TargetStrategy.ENGINE_PARAMS) | broker_params()  # set by the engine, never by a config


def _suggest(name: str, choices: list[str]) -> str:
    # forecasting.errors.did_you_mean is the helper; strategies may not import forecasting (the ground
    # floor's packages never import each other), so this is its one copy, with the same cutoff
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
            raise StrategyError(
                f"strategy '{name}': '{key}' must be true or false (got {value!r})", f"e.g. {key} = true"
            )
        if (
            isinstance(default, (int, float))
            and not isinstance(default, bool)
            and (isinstance(value, bool) or not isinstance(value, (int, float)))
        ):
            raise StrategyError(f"strategy '{name}': '{key}' must be a number (got {value!r})", f"default {default}")
        if isinstance(default, str):
            _check_text(name, key, value, default)
    _check_bounds(name, cls, dict(params or {}))
    return cls, dict(params or {})


CHOICES = declared_choices()  # the values of each text parameter with a fixed set (e.g. weighting)


def _check_text(name: str, key: str, value, default: str) -> None:
    if not isinstance(value, str) or not value:
        raise StrategyError(
            f"strategy '{name}': '{key}' must be a name in quotes (got {value!r})", f'e.g. {key} = "{default}"'
        )
    if key in CHOICES and value not in CHOICES[key]:
        raise StrategyError(
            f"strategy '{name}': '{key}' must be one of {', '.join(CHOICES[key])} (got '{value}')",
            _suggest(value, list(CHOICES[key])),
        )


# (low, high, integer) per parameter name; None = unbounded on that side. Optional params may be None.
# The decision rule's bounds come from strategies.decision, where those parameters are declared.
BOUNDS = {
    "fast": (1, None, True),
    "slow": (1, None, True),
    "signal": (1, None, True),
    "period": (1, None, True),
    "lower": (0, 100, False),
    "upper": (0, 100, False),
    **declared_bounds(),
}


def _check_bounds(name: str, cls: type[TargetStrategy], params: dict) -> None:
    known = strategy_params(cls)
    merged = {**known, **params}
    for key, value in params.items():
        if key not in BOUNDS or value is None:
            continue
        low, high, integer = BOUNDS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise StrategyError(f"strategy '{name}': '{key}' must be a number (got {value!r})", f"default {known[key]}")
        if integer and value != int(value):
            raise StrategyError(
                f"strategy '{name}': '{key}' must be a whole number (got {value!r})", f"default {known[key]}"
            )
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
            raise StrategyError(f"strategy '{name}': '{key}' must be {span} (got {value!r})", f"default {known[key]}")
    for small, large in (("fast", "slow"), ("lower", "upper")):
        if small in merged and large in merged and merged[small] >= merged[large]:
            raise StrategyError(
                f"strategy '{name}': '{small}' ({merged[small]}) must be below '{large}' ({merged[large]})", "swap them"
            )


def forecast_model(cls: type[TargetStrategy], params: dict | None = None) -> str | None:
    """Which model's predictions a strategy trades (None for rule-based ones): its `forecast` parameter
    when it has one and `params` set it (xs_rank), else the class's `forecast`."""
    if params and "forecast" in params and "forecast" in strategy_params(cls):
        chosen = params["forecast"]
    else:
        chosen = getattr(cls, "forecast", None)
    return None if chosen == TRAILING else chosen  # trailing volatility reads no forecast: a rule
