import numpy as np
import pandas as pd
import pytest

from forecasting import FeatureError, build_features
from forecasting.features import FEATURES, parse_feature
from tests.helpers import make_bars

ALL = [
    "log_return",
    "log_return_5",
    "sma_3",
    "ema_10",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_diff",
    "bb_pctb_20",
    "bb_width_20",
    "atr_14",
    "obv",
    "volume_change",
    "volatility_20",
    "close",
    "log_close",
]


def test_hand_computed_values():
    close = [10.0, 11.0, 12.0, 13.0, 14.0]
    frame = pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": [1.0, 2, 3, 4, 5]},
        index=pd.bdate_range("2020-01-01", periods=5),
    )
    feats = build_features(frame, ["sma_3", "log_return"])
    # warm-up: sma_3 is first known on the third bar, so two rows are dropped
    assert list(feats.index) == list(frame.index[2:])
    np.testing.assert_allclose(feats["sma_3"], [12 / 11 - 1, 13 / 12 - 1, 14 / 13 - 1])
    np.testing.assert_allclose(feats["log_return"], np.log([12 / 11, 13 / 12, 14 / 13]))


def test_every_feature_is_causal():
    """A feature at t must not change when bars after t change (no bfill, no centred windows)."""
    bars = make_bars(200, seed=1)
    full = build_features(bars, ALL)
    cut = bars.index[150]
    altered = bars.copy()
    later = altered.index > cut
    altered.loc[later, ["open", "high", "low", "close"]] *= 1.7
    altered.loc[later, "volume"] *= 3
    changed = build_features(altered, ALL)
    pd.testing.assert_frame_equal(full.loc[:cut], changed.loc[:cut])
    assert not full.loc[full.index > cut].equals(changed.loc[changed.index > cut])


def test_warm_up_rows_are_dropped_not_filled():
    bars = make_bars(120)
    feats = build_features(bars, ALL)
    assert not feats.isna().any().any()
    assert feats.index[0] > bars.index[25]  # MACD needs 26+ bars; nothing was back-filled
    assert feats.index[-1] == bars.index[-1]


def test_unknown_feature_suggests_a_name():
    with pytest.raises(FeatureError) as info:
        build_features(make_bars(50), ["rsii_14"])
    assert "rsii_14" in str(info.value) and "rsi" in info.value.hint
    with pytest.raises(FeatureError):
        parse_feature("macd_5")  # MACD takes no window suffix
    with pytest.raises(FeatureError, match="twice"):
        build_features(make_bars(50), ["rsi_14", "rsi_14"])


def test_parse_windows():
    assert parse_feature("sma_50") == ("sma", 50)
    assert parse_feature("rsi") == ("rsi", FEATURES["rsi"][1])
