"""Causal features by name, computed with `ta`. Row t uses bars up to and including t only.

Names take an optional window suffix: `sma_20`, `rsi_14`, `atr_14`, `bb_pctb_20`. Price-level
indicators are made scale-free (distance from the close, or divided by it) so that a scaler
fitted on an early training span still means something years later.

Each feature declares the columns it reads (`FEATURE_COLUMNS`), so a close-only frame (see
`forecasting.bars.is_close_only`) fails with one clear line instead of a KeyError deep in `ta`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import ta

from forecasting.errors import FeatureError, did_you_mean


def _log_return(f: pd.DataFrame, w: int) -> pd.Series:
    return np.log(f["close"]).diff(w)


def _sma(f: pd.DataFrame, w: int) -> pd.Series:
    return f["close"] / ta.trend.sma_indicator(f["close"], window=w, fillna=False) - 1.0


def _ema(f: pd.DataFrame, w: int) -> pd.Series:
    # ta's EMA sets min_periods=window, so the warm-up rows are NaN and get dropped.
    return f["close"] / ta.trend.ema_indicator(f["close"], window=w, fillna=False) - 1.0


def _rsi(f: pd.DataFrame, w: int) -> pd.Series:
    return ta.momentum.rsi(f["close"], window=w, fillna=False)


def _macd(kind: str) -> Callable[[pd.DataFrame, int], pd.Series]:
    def compute(f: pd.DataFrame, _w: int) -> pd.Series:
        macd = ta.trend.MACD(f["close"], window_slow=26, window_fast=12, window_sign=9, fillna=False)
        line = {"line": macd.macd, "signal": macd.macd_signal, "diff": macd.macd_diff}[kind]()
        return line / f["close"]

    return compute


def _bb_pctb(f: pd.DataFrame, w: int) -> pd.Series:
    return ta.volatility.bollinger_pband(f["close"], window=w, window_dev=2, fillna=False)


def _bb_width(f: pd.DataFrame, w: int) -> pd.Series:
    return ta.volatility.bollinger_wband(f["close"], window=w, window_dev=2, fillna=False)


def _atr(f: pd.DataFrame, w: int) -> pd.Series:
    atr = ta.volatility.average_true_range(f["high"], f["low"], f["close"], window=w, fillna=False)
    # ta returns 0.0 (not NaN) during its warm-up; treat those rows as not yet known.
    atr = atr.where(np.arange(len(f)) >= w)
    return atr / f["close"]


def _obv(f: pd.DataFrame, w: int) -> pd.Series:
    obv = ta.volume.on_balance_volume(f["close"], f["volume"], fillna=False)
    traded = f["volume"].rolling(w).sum()
    return (obv.diff(w) / traded.replace(0.0, np.nan)).fillna(0.0).where(traded.notna())


def _volume_change(f: pd.DataFrame, w: int) -> pd.Series:
    return np.log1p(f["volume"]).diff(w)


def _volatility(f: pd.DataFrame, w: int) -> pd.Series:
    return np.log(f["close"]).diff().rolling(w).std()


def _log_rv(f: pd.DataFrame, w: int) -> pd.Series:
    """The log of the mean daily variance proxy over the last w bars (Garman-Klass on OHLC bars, the
    squared return on closes: `forecasting.volatility.daily_variance`): HAR's regressors, in logs."""
    from forecasting.volatility import daily_variance, past_variance

    return np.log(past_variance(daily_variance(f), w))


def _close(f: pd.DataFrame, _w: int) -> pd.Series:
    return f["close"]


def _log_close(f: pd.DataFrame, _w: int) -> pd.Series:
    return np.log(f["close"])


# name -> (function, default window, whether a window suffix is allowed)
FEATURES: dict[str, tuple[Callable[[pd.DataFrame, int], pd.Series], int, bool]] = {
    "log_return": (_log_return, 1, True),
    "sma": (_sma, 20, True),
    "ema": (_ema, 20, True),
    "rsi": (_rsi, 14, True),
    "macd": (_macd("line"), 0, False),
    "macd_signal": (_macd("signal"), 0, False),
    "macd_diff": (_macd("diff"), 0, False),
    "bb_pctb": (_bb_pctb, 20, True),
    "bb_width": (_bb_width, 20, True),
    "atr": (_atr, 14, True),
    "obv": (_obv, 20, True),
    "volume_change": (_volume_change, 1, True),
    "volatility": (_volatility, 20, True),
    "log_rv": (_log_rv, 1, True),
    "close": (_close, 0, False),
    "log_close": (_log_close, 0, False),
}

# base name -> the columns it reads, for the features that read more than the close
FEATURE_COLUMNS: dict[str, tuple[str, ...]] = {
    "atr": ("high", "low", "close"),
    "obv": ("close", "volume"),
    "volume_change": ("close", "volume"),
}


def feature_columns(base: str) -> tuple[str, ...]:
    """The columns the feature `base` (a key of FEATURES) reads; every feature not in FEATURE_COLUMNS reads the close."""
    return FEATURE_COLUMNS.get(base, ("close",))


# the features a close-only frame supports (base names; the windowed ones take a suffix, e.g. sma_20)
CLOSE_ONLY_FEATURES: tuple[str, ...] = tuple(name for name in FEATURES if feature_columns(name) == ("close",))

_NAME = re.compile(r"^(?P<base>[a-z_]+?)(?:_(?P<window>\d+))?$")


def parse_feature(name: str) -> tuple[str, int]:
    """Split 'sma_20' into ('sma', 20); raise FeatureError with a suggestion for unknown names."""
    if name in FEATURES:
        return name, FEATURES[name][1]
    match = _NAME.match(name)
    if match and match["base"] in FEATURES and match["window"] and FEATURES[match["base"]][2]:
        window = int(match["window"])
        if window < 1:
            raise FeatureError(f"feature '{name}': the window must be at least 1", "write e.g. sma_20")
        return match["base"], window
    # each name once: windowed ones with their default window, which the close-match also finds
    examples = [n if not FEATURES[n][2] else f"{n}_{FEATURES[n][1]}" for n in FEATURES]
    raise FeatureError(f"unknown feature '{name}'", did_you_mean(name, examples))


def validate_features(names: Sequence[str]) -> None:
    if not names:
        raise FeatureError("no features chosen", 'list at least one, e.g. features = ["log_return"]')
    seen = set()
    for name in names:
        parse_feature(name)
        if name in seen:
            raise FeatureError(f"feature '{name}' is listed twice", "list each feature once")
        seen.add(name)


def warmup_rows(names: Sequence[str]) -> int:
    """Upper bound on leading rows lost to indicator warm-up (used for data-length checks)."""
    worst = 0
    for name in names:
        base, window = parse_feature(name)
        worst = max(worst, 34 if base.startswith("macd") else window + 1)
    return worst


def check_feature_columns(names: Sequence[str], frame_or_columns: pd.DataFrame | Iterable[str], source: str) -> None:
    """Raise FeatureError for the first feature that reads a column the data lacks (e.g. atr_14 on
    closes only); `source` names the data in the message, e.g. 'builtin:sp500_stocks (AAPL)'."""
    columns = set(frame_or_columns.columns if isinstance(frame_or_columns, pd.DataFrame) else frame_or_columns)
    for name in names:
        base, _ = parse_feature(name)
        missing = [c for c in feature_columns(base) if c not in columns]
        if not missing:
            continue
        prices = [c for c in missing if c != "volume"]
        needs = [" and ".join(prices) + (" prices" if len(prices) > 1 else " price")] if prices else []
        needs += ["volume"] if "volume" in missing else []
        close_only = "close" in columns and not columns & {"open", "high", "low"}
        lacks = "is close-only" if close_only and prices else f"has no {' or '.join(missing)} column"
        usable = [n for n in FEATURES if set(feature_columns(n)) <= columns]
        listed = ", ".join(f"{n}_N" if FEATURES[n][2] else n for n in usable)
        if not usable:
            hint = "load data with a close column"
        elif close_only and "volume" not in columns:
            hint = f"use features computed from closes: {listed}"
        else:
            hint = f"use features computed from the columns it has ({', '.join(sorted(columns))}): {listed}"
        raise FeatureError(f"feature '{name}' needs {' and '.join(needs)}, but {source} {lacks}", hint)


def build_features(frame: pd.DataFrame, names: Sequence[str], source: str | None = None) -> pd.DataFrame:
    """Feature matrix (one column per name) with the warm-up rows dropped, never back-filled.

    `source` names the data in errors; by default the frame's `attrs["source"]` (set by `load_prices`)."""
    validate_features(names)
    check_feature_columns(names, frame, source or frame.attrs.get("source") or "the data")
    columns = {}
    for name in names:
        base, window = parse_feature(name)
        columns[name] = FEATURES[base][0](frame, window).astype("float64")
    feats = pd.DataFrame(columns, index=frame.index).replace([np.inf, -np.inf], np.nan)
    known = feats.notna().all(axis=1).to_numpy()
    if not known.any():
        return feats.iloc[0:0]
    first = int(np.argmax(known))
    feats = feats.iloc[first:]
    holes = np.flatnonzero(feats.isna().any(axis=1).to_numpy())
    if holes.size:  # a gap after warm-up means broken input (e.g. a zero-volume run for volume features)
        row = feats.index[holes[0]]
        col = feats.columns[feats.iloc[holes[0]].isna()][0]
        raise FeatureError(
            f"feature '{col}' is undefined at {row.date()} (after its warm-up)",
            "check that bar's prices and volume, or drop that feature",
        )
    return feats
