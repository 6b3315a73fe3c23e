"""The direct multi-day forecast: its targets, its use of time, its dates and its band."""

import numpy as np
import pandas as pd
import pytest

from forecasting.forecast import direct_targets, forecast
from forecasting.spec import ModelSpec
from forecasting.walkforward import make_samples
from tests.helpers import make_bars

TINY = ModelSpec(
    features=["log_return", "rsi_14"],
    lookback=5,
    n_layers=1,
    units=4,
    epochs=2,
    batch_size=64,
    patience=1,
    val_fraction=0.2,
)


def test_direct_targets_are_the_k_day_log_returns_known_by_the_last_bar():
    frame = make_bars(200, seed=5)
    samples = make_samples(frame, TINY.model_copy(update={"horizon": 1}))
    rows, Y = direct_targets(samples, 7)
    last = len(samples.close) - 1
    assert rows[-1] + 7 == last  # the last row trained on has its day-7 target at the last bar, no later
    close = frame["close"].loc[samples.dates]
    for k in (1, 4, 7):
        expected = np.log(close.shift(-k) / close).to_numpy()[rows]
        assert np.allclose(Y[:, k - 1], expected, rtol=0, atol=1e-12)


def test_the_forecast_as_of_a_date_uses_no_later_bar():
    """Perturbation: every bar after D multiplied by a random walk changes nothing forecast as of D."""
    frame = make_bars(400, seed=6)
    as_of = frame.index[300]
    moved = frame.copy()
    walk = np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.05, len(frame) - 301)))
    moved.iloc[301:, :4] = moved.iloc[301:, :4].to_numpy() * walk[:, None]
    moved.iloc[301:, 4] *= 3.0
    first = forecast(frame, TINY, 5, seed=3, ticker="X", as_of=as_of)
    second = forecast(moved, TINY, 5, seed=3, ticker="X", as_of=as_of)
    cut = forecast(frame.iloc[:301], TINY, 5, seed=3, ticker="X")
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(first, cut)
    assert first["as_of"].iloc[0] == as_of and first["date"].iloc[0] > as_of


def test_forecast_dates_are_exchange_sessions_skipping_holidays():
    frame = make_bars(300, seed=2, start="2017-01-02")
    frame = frame[frame.index <= "2017-12-22"]  # a Friday; Christmas Monday and New Year's Day are closed
    table = forecast(frame, TINY, 4, ticker="X")
    assert [d.date().isoformat() for d in table["date"]] == ["2017-12-26", "2017-12-27", "2017-12-28", "2017-12-29"]
    assert table["step"].tolist() == [1, 2, 3, 4]
    assert np.allclose(table["price_pred"], frame["close"].iloc[-1] * np.exp(table["y_pred"]))


def test_the_band_widens_like_the_square_root_of_the_horizon_on_a_random_walk():
    """Known answer: on a random walk with constant volatility the k-day spread grows as sqrt(k)."""
    frame = make_bars(1500, seed=11)
    table = forecast(frame, TINY, 10, seed=1, ticker="X")
    width = (table["y_high"] - table["y_low"]).to_numpy()
    assert (table["y_low"] < table["y_pred"]).all() and (table["y_pred"] < table["y_high"]).all()
    assert 2.0 < width[-1] / width[0] < 4.5  # sqrt(10) = 3.16
    assert np.corrcoef(width, np.sqrt(np.arange(1, 11)))[0, 1] > 0.95
    assert (table["price_low"] < table["price_pred"]).all() and (table["price_pred"] < table["price_high"]).all()


def test_a_history_too_short_for_the_horizon_is_a_clear_error():
    from forecasting.errors import ForecastingError

    with pytest.raises(ForecastingError, match="too few to train"):
        forecast(make_bars(80, seed=1), TINY, 30, ticker="X")


def test_the_forecast_quality_protocol_chooses_from_tuning_scores_alone():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "forecast_quality.py"
    spec = importlib.util.spec_from_file_location("forecast_quality", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    series = ("a", "b")
    score = lambda u2, ridge: {"u2": u2, "ridge_u2": ridge}  # noqa: E731
    tuning = {
        ("steady", "a"): score(0.999, 1.000),
        ("steady", "b"): score(0.998, 1.000),
        ("one-sided", "a"): score(0.950, 1.000),
        ("one-sided", "b"): score(1.010, 1.000),
        ("better", "a"): score(0.997, 1.000),
        ("better", "b"): score(0.997, 1.000),
    }
    assert module.choose(tuning, ["steady", "one-sided", "better"], series) == "better"
    assert module.choose(tuning, ["steady", "one-sided"], series) == "steady"  # must beat ridge on both
    assert module.choose(tuning, ["one-sided"], series) is None
    tuning["tie", "a"] = score(1.000, 1.000)  # a residual head that kept its ridge: at ridge is allowed
    assert module.choose(tuning, ["tie", "one-sided"], ("a",)) == "one-sided"
    assert module.choose(tuning, ["tie"], ("a",)) == "tie"
    assert module.CHOSEN_ON == ("builtin:sp500",)  # nasdaq is left for the check the choice never saw


def test_the_band_widens_with_the_volatility_at_the_last_bar():
    # the same history, but the last 20 sessions four times as volatile: the same networks' band (its
    # residuals are measured in volatility units) is wider there, by about the ratio of the EWMA vols
    calm = make_bars(400, seed=8)
    wild = calm.copy()
    last = wild.index[-20:]
    moves = np.log(wild["close"]).diff().loc[last] * 4
    wild.loc[last, "close"] = np.exp(np.log(calm["close"].iloc[-21]) + moves.cumsum()).to_numpy()
    wild.loc[last, "open"] = wild.loc[last, "close"]
    wild.loc[last, "high"] = wild.loc[last, "close"] * 1.001
    wild.loc[last, "low"] = wild.loc[last, "close"] * 0.999
    features = TINY.model_copy(update={"features": ["log_return"]})
    widths = [
        (lambda t: (t["y_high"] - t["y_low"]).iloc[0])(forecast(frame, features, 2, seed=1)) for frame in (calm, wild)
    ]
    assert widths[1] > 2 * widths[0]


def test_the_band_reports_its_coverage_on_held_out_days_it_was_not_set_on():
    table = forecast(make_bars(400, seed=9), TINY, 3, seed=1)
    assert table["band_coverage"].between(0, 1).all() and table["fixed_band_coverage"].between(0, 1).all()
