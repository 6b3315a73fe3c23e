import tomllib

import pytest

from backtests.config import DEFAULT_CONFIG, dump_config, load_config, parse_value
from backtests.errors import ConfigError
from forecasting import FeatureError


def test_default_config_loads_and_round_trips(tmp_path):
    cfg = load_config()
    assert cfg.data.source == "builtin:sp500" and cfg.model.target == "log_return"
    path = tmp_path / "c.toml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


def test_set_overrides_parse_toml_values():
    cfg = load_config(
        None,
        [
            "model.units=64",
            "walk_forward.warm_start=false",
            "data.source=csv:/x.csv",
            'model.features=["rsi_14", "log_return"]',
            "walk_forward.train_window=500",
        ],
    )
    assert cfg.model.units == 64 and cfg.walk_forward.warm_start is False
    assert cfg.data.source == "csv:/x.csv" and cfg.model.features == ["rsi_14", "log_return"]
    assert cfg.walk_forward.train_window == 500
    assert parse_value("1e-3") == 0.001 and parse_value("hello") == "hello"


@pytest.mark.parametrize(
    "override, message, hint",
    [
        ("model.unit=3", "unknown config key 'model.unit'", "model.units"),
        ("modle.units=3", "unknown config key 'modle'", "model"),
        ("walk_forward.retrain=5", "unknown config key 'walk_forward.retrain'", "walk_forward.retrain_every"),
        ("model.units=0", "config key 'model.units'", "fix the value"),
        ("model.target=price", "config key 'model.target'", "fix the value"),
        ("model.units", "not of the form", "model.units=64"),
    ],
)
def test_bad_config_keys_fail_with_a_hint(override, message, hint):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert message in str(info.value)
    assert hint in info.value.hint


def test_unknown_feature_in_config():
    with pytest.raises(FeatureError, match="unknown feature 'rsx_14'"):
        load_config(None, ['model.features=["rsx_14"]'])


def test_missing_and_broken_config_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nunits = 3\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)


def test_dumped_config_is_plain_toml():
    parsed = tomllib.loads(dump_config(load_config()))
    assert parsed["walk_forward"]["retrain_every"] == 21


@pytest.mark.parametrize("path", sorted((DEFAULT_CONFIG.parent).glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path):
    cfg = load_config(path)
    assert cfg.data.source.startswith("builtin:")  # shipped examples run offline


def test_a_replaced_search_space_is_one_difference_not_one_per_range():
    from backtests.config import config_differences

    base = load_config(None)
    small = load_config(None, ["tune.space={units={low=2, high=6}, dropout={low=0.0, high=0.3}}"])
    differences = config_differences([base, small])
    assert [k for k in differences if k.startswith("tune.")] == ["tune.space"]
    assert differences["tune.space"][1] == "units 2..6; dropout 0.0..0.3"
