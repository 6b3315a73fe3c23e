"""Volatility forecasts: the variance proxy, the baselines, the metrics and volatility targeting."""

import math

import numpy as np
import pandas as pd
import pytest
from helpers import bars_from, make_bars

from backtests.audit import perturb_after
from forecasting.errors import DataError
from forecasting.spec import ModelSpec, WalkForwardSpec
from forecasting.tasks import walk_forward_predict
from forecasting.vol_metrics import kupiec, mincer_zarnowitz, qlike, value_at_risk_exceedances, volatility_metrics
from forecasting.volatility import (
    VAR_FLOOR,
    baseline_forecasts,
    daily_variance,
    ewma_variance,
    garch_forecasts,
    realized_variance,
)
from strategies.decision import SignalParams, annual_vol, signal_target, vol_target_exposure


def five_bars() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "open": [100.0, 102.0, 101.0, 103.0, 104.0],
            "high": [103.0, 104.0, 103.0, 106.0, 104.0],
            "low": [99.0, 100.0, 100.0, 102.0, 104.0],
            "close": [102.0, 101.0, 103.0, 105.0, 104.0],
            "volume": 1e6,
        },
        index=pd.bdate_range("2020-01-06", periods=5, name="date"),
    )


def test_the_garman_klass_proxy_of_five_bars_worked_by_hand():
    # bar 0: 0.5 ln(103/99)^2 - (2 ln 2 - 1) ln(102/100)^2 = 0.5 * 0.0396091^2 - 0.3862944 * 0.0198026^2
    #        = 0.000784442 - 0.000151483 = 0.000632959
    # bar 4: high == low == open == close: a zero range, floored at VAR_FLOOR (1e-8)
    variance = daily_variance(five_bars())
    hand = [
        0.5 * math.log(103 / 99) ** 2 - (2 * math.log(2) - 1) * math.log(102 / 100) ** 2,
        0.5 * math.log(104 / 100) ** 2 - (2 * math.log(2) - 1) * math.log(101 / 102) ** 2,
        0.5 * math.log(103 / 100) ** 2 - (2 * math.log(2) - 1) * math.log(103 / 101) ** 2,
        0.5 * math.log(106 / 102) ** 2 - (2 * math.log(2) - 1) * math.log(105 / 103) ** 2,
        VAR_FLOOR,
    ]
    assert variance.iloc[0] == pytest.approx(0.000632959, rel=1e-6)
    np.testing.assert_allclose(variance.to_numpy(), hand, rtol=1e-12)
    # the 2-session realized variance at bar 1 is the proxies of bars 2 and 3; unknown for the last two
    rv = realized_variance(variance, 2)
    assert rv.iloc[1] == pytest.approx(hand[2] + hand[3], rel=1e-12)
    assert rv.iloc[3:].isna().all()


def test_close_only_data_uses_squared_returns_and_a_range_estimator_on_it_is_refused():
    closes = five_bars()[["close"]]
    variance = daily_variance(closes)
    assert np.isnan(variance.iloc[0])
    assert variance.iloc[1] == pytest.approx(math.log(101 / 102) ** 2, rel=1e-12)
    with pytest.raises(DataError, match="garman-klass estimator needs open, high and low prices"):
        daily_variance(closes, "garman_klass")


def test_qlike_mse_and_mincer_zarnowitz_on_numbers_worked_by_hand():
    proxy = np.array([1.0, 2.0, 4.0])
    forecast = np.array([2.0, 2.0, 2.0])
    # p/f - ln(p/f) - 1: 0.5 + ln 2 - 1 = 0.193147; 0; 2 - ln 2 - 1 = 0.306853; mean 0.166667
    assert qlike(proxy, forecast) == pytest.approx((0.5 + math.log(2) - 1 + 0 + 2 - math.log(2) - 1) / 3, rel=1e-12)
    assert qlike(forecast, forecast) == 0.0
    # proxy = 1 + 1.5 f exactly over f = 0, 2, 4: intercept 1, slope 1.5, R^2 1
    intercept, slope, r2 = mincer_zarnowitz(np.array([1.0, 4.0, 7.0]), np.array([0.0, 2.0, 4.0]))
    assert (intercept, slope, r2) == pytest.approx((1.0, 1.5, 1.0))
    # proxy 1, 3, 2 on forecast 1, 2, 3: slope 0.5, intercept 1, R^2 = 0.25
    intercept, slope, r2 = mincer_zarnowitz(np.array([1.0, 3.0, 2.0]), np.array([1.0, 2.0, 3.0]))
    assert (intercept, slope, r2) == pytest.approx((1.0, 0.5, 0.25))


def test_qlike_charges_under_forecasting_more_than_over_forecasting_by_the_same_ratio():
    # proxy 1: a forecast of 0.5 (half) costs 1/0.5 - ln 2 - 1 = 0.306853; of 2 (double) 0.5 + ln 2 - 1 = 0.193147
    proxy = np.array([1.0])
    under, over = qlike(proxy, np.array([0.5])), qlike(proxy, np.array([2.0]))
    assert under == pytest.approx(1 - math.log(2), rel=1e-12)
    assert over == pytest.approx(math.log(2) - 0.5, rel=1e-12)
    assert under > over


def test_kupiec_on_numbers_worked_by_hand():
    # 5 exceedances in 250 days at 1%: LR = -2 [245 ln .99 + 5 ln .01 - 245 ln .98 - 5 ln .02]
    #   = -2 [-2.462332 - 23.025851 + 4.949663 + 19.560115] = 1.956810; chi2(1) p = 0.16185
    lr = -2 * (245 * math.log(0.99) + 5 * math.log(0.01) - 245 * math.log(0.98) - 5 * math.log(0.02))
    assert lr == pytest.approx(1.956810, rel=1e-6)
    assert kupiec(5, 250) == pytest.approx(0.16185, abs=1e-5)
    # none in 250 days: LR = -2 * 250 ln .99 = 5.025168, p = 0.02498
    assert kupiec(0, 250) == pytest.approx(0.02498, abs=1e-4)
    assert kupiec(int(0.01 * 1000), 1000) == pytest.approx(1.0)


def test_value_at_risk_exceedances_count_returns_below_minus_z_sigma():
    # sigma 0.01: the 99% VaR is -0.023263; -0.03 is below it, -0.02 is not
    returns = np.array([-0.03, -0.02, 0.05, np.nan])
    assert value_at_risk_exceedances(returns, np.full(4, 1e-4)) == (1, 3)


def test_the_vol_target_exposure_worked_by_hand_for_three_days():
    # target 10%; daily variances 1e-4, 4e-4, 2.5e-5 are annual vols 15.87%, 31.75%, 7.94%
    # exposures 0.63, 0.315, and 1.26 capped at 1
    days = [1e-4, 4e-4, 2.5e-5]
    exposures = [vol_target_exposure(annual_vol(v), 0.10) for v in days]
    np.testing.assert_allclose(exposures, [0.1 / math.sqrt(252e-4), 0.1 / math.sqrt(252 * 4e-4), 1.0])
    assert exposures[0] == pytest.approx(0.6299, abs=1e-4) and exposures[1] == pytest.approx(0.3150, abs=1e-4)
    assert math.isnan(vol_target_exposure(float("nan"), 0.10))


def test_the_signal_rule_takes_a_volatility_forecast_beside_the_return_forecast():
    rule = SignalParams(enter_long=0.0, target_vol=0.10)
    long_scaled, _ = signal_target(0.001, rule, closes=[100, 101, 100, 102], forecast_variance=4e-4)
    assert long_scaled == pytest.approx(0.1 / math.sqrt(252 * 4e-4))
    flat, _ = signal_target(-0.001, rule, forecast_variance=4e-4)
    assert flat == 0.0


def test_ewma_is_riskmetrics_recursion():
    returns = np.array([np.nan, 0.01, -0.02, 0.0])
    # seeded with the first square, then 0.94 * level + 0.06 * r^2
    assert ewma_variance(returns)[1:].tolist() == pytest.approx([1e-4, 0.94e-4 + 0.06 * 4e-4, 0.94 * 1.18e-4])


def test_garch_forecasts_up_to_d_are_bit_identical_when_every_bar_after_d_changes():
    from forecasting.data import load_prices

    frame = load_prices("builtin:sp500", "2010-01-01")["sp500"].iloc[:700]  # real returns: volatility clusters
    cut = frame.index[600]
    changed = perturb_after(frame, cut, seed=1)
    origins = np.arange(500, 700)
    returns = [np.log(f["close"]).diff().to_numpy() for f in (frame, changed)]
    for asymmetric in (False, True):
        a, _ = garch_forecasts(returns[0], 400, origins, 1, asymmetric)
        b, _ = garch_forecasts(returns[1], 400, origins, 1, asymmetric)
        np.testing.assert_array_equal(a[origins <= 600], b[origins <= 600])
        assert not np.array_equal(a[origins > 600], b[origins > 600])


def test_every_baseline_forecast_up_to_d_is_unchanged_by_bars_after_d():
    frame = make_bars(700, seed=4)
    changed = perturb_after(frame, frame.index[600], seed=2)
    train, test = np.arange(0, 400), np.arange(401, 700)
    a = baseline_forecasts(frame, "auto", 1, train, test)
    b = baseline_forecasts(changed, "auto", 1, train, test)
    for name in a:
        np.testing.assert_array_equal(a[name][test <= 600], b[name][test <= 600], err_msg=name)


def test_no_baseline_fit_reads_a_bar_after_its_training_end():
    # the fold's training targets end at bar 400 (the last training sample, 399, plus h = 1): change every
    # bar from 401 on, and the forecasts made at bars 399 and 400 (fit, calibration and all) stay the same
    from forecasting.data import load_prices

    frame = load_prices("builtin:sp500", "2010-01-01")["sp500"].iloc[:700]
    changed = perturb_after(frame, frame.index[400], seed=3)
    train, origins = np.arange(0, 400), np.array([399, 400])
    a = baseline_forecasts(frame, "auto", 1, train, origins)
    b = baseline_forecasts(changed, "auto", 1, train, origins)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_missing_or_zero_variance_forecast_makes_no_decision_rather_than_another_sizing():
    rule = SignalParams(enter_long=0.0, target_vol=0.10)
    for variance in (float("nan"), 0.0, -1e-4):
        target, _ = signal_target(0.001, rule, closes=[100, 101, 100, 102], forecast_variance=variance)
        assert math.isnan(target), variance


def test_a_history_too_short_for_garch_is_one_clear_error():
    with pytest.raises(DataError, match="GARCH needs at least 250 training returns; this fold has 100"):
        garch_forecasts(
            make_bars(300).pipe(lambda f: np.log(f["close"]).diff().to_numpy()), 100, np.arange(200, 300), 1
        )


def test_a_zero_variance_span_is_floored_not_a_nan_that_reaches_a_strategy():
    # a month of unchanged bars (open = high = low = close): every proxy of it is VAR_FLOOR, every log finite
    frame = make_bars(400, seed=5)
    flat = frame.index[300:330]
    level = frame.loc[flat[0], "close"]
    frame.loc[flat, ["open", "high", "low", "close"]] = level
    variance = daily_variance(frame)
    assert (variance.loc[flat[1:]] == VAR_FLOOR).all()
    assert np.isfinite(np.log(realized_variance(variance, 1).dropna())).all()


VOL_MODEL = ModelSpec(
    target="realized_vol", features=["log_return", "log_rv_1", "log_rv_5"], lookback=5, units=4, n_layers=1, epochs=2
)
VOL_WALK_FORWARD = WalkForwardSpec(min_train=260, retrain_every=100, finetune_window=50)


@pytest.fixture(scope="module")
def vol_table():
    return walk_forward_predict({"T": make_bars(520, seed=6)}, VOL_MODEL, VOL_WALK_FORWARD, seed=1)


def test_a_volatility_walk_forward_has_every_baseline_on_the_same_rows_and_finite_forecasts(vol_table):
    assert list(dict.fromkeys(vol_table["model"])) == ["lstm", "ridge", "naive", "garch", "gjr", "ewma", "har"]
    assert vol_table.groupby("model").size().nunique() == 1
    assert np.isfinite(vol_table["y_pred"]).all() and np.isfinite(vol_table["y_true"]).all()
    assert (pd.to_datetime(vol_table["train_end"]) <= pd.to_datetime(vol_table["date"])).all()
    metrics = volatility_metrics(vol_table).set_index("model")
    assert metrics.loc["lstm", "qlike"] > 0 and np.isnan(metrics.loc["garch", "dm_garch_pvalue"])
    assert metrics["var_exceed"].between(0, 1).all()


def test_no_volatility_prediction_on_or_before_d_changes_when_every_bar_after_d_changes(vol_table):
    # the LSTM (its scaler, its smearing term) and every baseline: D lies inside the second fold's test block,
    # so a fit or a correction that read the block's later rows would move the predictions made before D
    frame = make_bars(520, seed=6)
    cut = frame.index[420]
    changed = walk_forward_predict({"T": perturb_after(frame, cut, seed=8)}, VOL_MODEL, VOL_WALK_FORWARD, seed=1)
    before = pd.to_datetime(vol_table["date"]) <= cut
    assert before.sum() > 7 * 100 and (~before).sum() > 0
    made = [c for c in vol_table.columns if not c.endswith("_true")]  # the outcomes are known only after D
    pd.testing.assert_frame_equal(vol_table.loc[before, made], changed.loc[before.to_numpy(), made])
    assert not np.allclose(vol_table.loc[~before, "y_pred"], changed.loc[~before.to_numpy(), "y_pred"])


def test_the_naive_volatility_forecast_is_yesterdays_proxy(vol_table):
    naive = vol_table[vol_table["model"] == "naive"].set_index("date")["y_pred"]
    truth = vol_table[vol_table["model"] == "naive"].set_index("date")["y_true"]
    # with h = 1, the last realized value at t is the proxy of bar t: the target made one session earlier
    np.testing.assert_allclose(naive.iloc[1:].to_numpy(), truth.iloc[:-1].to_numpy(), rtol=1e-12)


def test_ohlc_bars_with_a_zero_range_keep_the_proxy_finite():
    frame = bars_from([100, 101, 102], [100, 101, 102])
    frame["high"] = frame["low"] = frame["open"] = frame["close"]
    assert (daily_variance(frame) == VAR_FLOOR).all()


def test_lstm_signal_sizes_its_trades_by_a_volatility_models_forecast_beside_the_return_forecast():
    from backtests.engine import BrokerSpec, run_backtest
    from tests.helpers import predictions_for

    prices = make_bars(120, seed=7)
    returns = predictions_for(prices, np.full(len(prices), 0.001))  # always long
    vol = returns.assign(model="vol_lstm", y_pred=math.log(4e-4), return_var_ratio=1.0)
    table = pd.concat([returns, vol], ignore_index=True)
    held = BrokerSpec(close_at_end=False)  # (no liquidation on the last day)
    params = {"target_vol": 0.10, "vol_forecast": "vol_lstm"}
    result = run_backtest({"T": prices}, table, "lstm_signal", held, params)
    # a daily variance of 4e-4 is 31.75% a year: 0.10 / 0.3175 = 0.315 of equity, every day
    targets = result.decisions.dropna()["target"].to_numpy()
    assert len(targets) == len(prices) - 1
    np.testing.assert_allclose(targets, 0.1 / math.sqrt(252 * 4e-4))
    with pytest.raises(Exception, match="sizes by the 'vol_garch' volatility forecast, which the predictions lack"):
        run_backtest({"T": prices}, table, "lstm_signal", params={"target_vol": 0.10, "vol_forecast": "vol_garch"})
    short = pd.concat([returns, vol.iloc[:-10]], ignore_index=True)  # the variance forecasts end 10 days early
    with pytest.raises(Exception, match="the 'vol_lstm' forecasts cover .* not .* \\(10 days"):
        run_backtest({"T": prices}, short, "lstm_signal", held, params)
    blank = vol.copy()
    blank.loc[blank.index[50], "y_pred"] = np.nan  # a row there, with no number
    with pytest.raises(Exception, match=r"the 'vol_lstm' forecast is NaN on \d{4}-\d\d-\d\d \(1 day of the"):
        run_backtest({"T": prices}, pd.concat([returns, blank], ignore_index=True), "lstm_signal", held, params)


def test_a_return_table_passed_as_the_volatility_table_is_one_clear_error(tmp_path):
    from backtests.backtest_only import with_volatility
    from backtests.errors import BacktestError
    from tests.helpers import predictions_for

    table = predictions_for(make_bars(30, seed=1), np.zeros(30))
    table.to_parquet(tmp_path / "returns.parquet")
    with pytest.raises(BacktestError, match="not a volatility run's predictions"):
        with_volatility(table, tmp_path / "returns.parquet")


def test_duans_smearing_raises_a_log_forecast_to_the_mean_level_worked_by_hand():
    from forecasting.targets import smearing

    # residuals 0 and ln 2 of a log model: exp of them are 1 and 2, their mean 1.5, so the term is ln 1.5
    assert smearing(np.array([1.0, 1.0 + math.log(2)]), np.array([1.0, 1.0])) == pytest.approx(math.log(1.5))


def test_the_lstms_variance_forecast_carries_the_level_correction(vol_table, monkeypatch):
    from forecasting.walkforward import WalkForwardModel

    monkeypatch.setattr(WalkForwardModel, "log_level_correction", lambda self, samples, train: 0.0)
    raw = walk_forward_predict({"T": make_bars(520, seed=6)}, VOL_MODEL, VOL_WALK_FORWARD, seed=1)
    lstm = vol_table["model"] == "lstm"
    shift = vol_table.loc[lstm, "y_pred"].to_numpy() - raw.loc[raw["model"] == "lstm", "y_pred"].to_numpy()
    assert (shift > 0).all()  # exp(E[log]) < E[level]: the correction only ever raises the forecast
