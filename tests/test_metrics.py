import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from forecasting import diebold_mariano, forecast_metrics


def four_points() -> pd.DataFrame:
    close = np.array([100.0, 102.0, 101.0, 103.0])
    truth = np.array([102.0, 101.0, 103.0, 104.0])
    lstm = np.array([101.0, 103.0, 102.0, 103.0])
    rows = []
    for model, price in (("lstm", lstm), ("naive", close)):
        rows.append(
            pd.DataFrame(
                {
                    "date": pd.bdate_range("2020-01-01", periods=4),
                    "ticker": "T",
                    "model": model,
                    "y_pred": np.log(price / close),
                    "y_true": np.log(truth / close),
                    "price_pred": price,
                    "price_true": truth,
                    "horizon": 1,
                    "fold": [0, 0, 1, 1],
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_metrics_on_four_points_match_hand_computation():
    m = forecast_metrics(four_points()).set_index("model")
    lstm = m.loc["lstm"]
    # price errors -1, 2, -1, -1; naive errors -2, 1, -2, -1
    assert lstm["price_mse"] == pytest.approx(1.75)
    assert lstm["price_mae"] == pytest.approx(1.25)
    assert lstm["price_rmse"] == pytest.approx(math.sqrt(1.75))
    assert lstm["mape"] == pytest.approx((1 / 102 + 2 / 101 + 1 / 103 + 1 / 104) / 4)
    assert lstm["theil_u_price"] == pytest.approx(math.sqrt(1.75 / 2.5))
    # predicted signs +,+,+,0 against realised +,-,+,+: two of four match
    assert lstm["directional_accuracy"] == pytest.approx(0.5)
    ret_err = np.log(np.array([101, 103, 102, 103]) / np.array([102, 101, 103, 104]))
    y_true = np.log(np.array([102, 101, 103, 104]) / np.array([100, 102, 101, 103]))
    y_pred = np.log(np.array([101, 103, 102, 103]) / np.array([100, 102, 101, 103]))
    assert lstm["mse"] == pytest.approx(np.mean(ret_err**2))
    assert lstm["rmse"] == pytest.approx(math.sqrt(np.mean(ret_err**2)))
    # U2 in return space: the naive forecast predicts a zero return, so its errors are -y_true
    assert lstm["theil_u"] == pytest.approx(math.sqrt(np.sum(ret_err**2) / np.sum(y_true**2)))
    # DM on squared return errors, HLN-corrected (n = 4, h = 1: factor sqrt(3/4)), t with 3 df
    d = ret_err**2 - y_true**2
    dm = d.mean() / math.sqrt(np.mean((d - d.mean()) ** 2) / 4) * math.sqrt(3 / 4)
    assert lstm["dm_stat"] == pytest.approx(dm)
    assert lstm["dm_pvalue"] == pytest.approx(2 * stats.t.sf(abs(dm), df=3))
    # up days + - + +: "always up" would score 3 of 4
    assert lstm["da_base_rate"] == pytest.approx(0.75)
    # Pesaran-Timmermann with x = (pred > 0) = 1,1,1,0 and y = 1,0,1,1: hit 1/2, px = py = 3/4,
    # P* = 9/16 + 1/16 = 5/8, V(P) = (5/8)(3/8)/4 = 15/256, V(P*) = 2 (1/4)(3/16)/4 + 4 (9/16)(1/16)/16 = 33/1024
    z = (1 / 2 - 5 / 8) / math.sqrt(15 / 256 - 33 / 1024)
    assert lstm["da_pvalue"] == pytest.approx(stats.norm.sf(z))
    cx, cy = y_pred - y_pred.mean(), y_true - y_true.mean()
    assert lstm["correlation"] == pytest.approx((cx @ cy) / math.sqrt((cx @ cx) * (cy @ cy)))
    naive = m.loc["naive"]
    assert naive["theil_u"] == 1.0 and math.isnan(naive["dm_pvalue"]) and math.isnan(naive["cw_pvalue"])
    naive = m.loc["naive"]
    assert naive["price_mse"] == pytest.approx(2.5)
    assert naive["theil_u"] == 1.0
    assert math.isnan(naive["directional_accuracy"]) and math.isnan(naive["dm_pvalue"])


def test_per_fold_metrics():
    m = forecast_metrics(four_points(), per_fold=True)
    lstm = m[m["model"] == "lstm"].set_index("fold")
    assert lstm.loc[0, "price_mse"] == pytest.approx((1 + 4) / 2)
    assert lstm.loc[1, "price_mse"] == pytest.approx((1 + 1) / 2)
    assert list(lstm["n"]) == [2, 2]


def test_diebold_mariano_horizon_two_uses_lag_one_autocovariance():
    a = np.array([1.0, 1.2, 2.0, 2.1, 0.5, 0.4, 1.5, 1.6])  # positively autocorrelated losses
    b = np.zeros_like(a) + 0.5
    d = [x * x - y * y for x, y in zip(a, b)]
    n, h = len(d), 2
    mean = sum(d) / n
    g0 = sum((x - mean) ** 2 for x in d) / n
    g1 = sum((d[i] - mean) * (d[i - 1] - mean) for i in range(1, n)) / n
    expected = mean / math.sqrt((g0 + 2 * g1) / n) * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    stat, p = diebold_mariano(a, b, horizon=2)
    assert stat == pytest.approx(expected)
    assert p == pytest.approx(2 * stats.t.sf(abs(expected), df=n - 1))


def test_diebold_mariano_detects_a_better_forecast():
    rng = np.random.default_rng(0)
    good, bad = rng.normal(0, 1, 500), rng.normal(0, 2, 500)
    stat, p = diebold_mariano(good, bad)
    assert stat < 0 and p < 0.001
    stat, p = diebold_mariano(good, good.copy() * 1.0)
    assert math.isnan(stat)  # identical losses: no variance, no test


def test_clark_west_against_the_formula_written_out():
    from forecasting.metrics import clark_west

    y_true = np.array([0.01, -0.02, 0.015, 0.005, -0.01, 0.02])
    y_pred = np.array([0.004, -0.001, 0.002, 0.003, 0.001, 0.006])
    # f = rw error^2 - (model error^2 - (rw forecast - model forecast)^2), rw forecast = 0
    f = y_true**2 - ((y_true - y_pred) ** 2 - y_pred**2)
    stat = f.mean() / math.sqrt(np.mean((f - f.mean()) ** 2) / len(f))
    got_stat, got_p = clark_west(y_pred, y_true)
    assert got_stat == pytest.approx(stat) and got_p == pytest.approx(1 - stats.norm.cdf(stat))
    # f = 2 y yhat: a forecast that knows part of the move beats the random walk clearly, pure noise does not
    rng = np.random.default_rng(0)
    truth = rng.normal(0, 0.01, 500)
    assert clark_west(0.3 * truth + rng.normal(0, 0.01, 500), truth)[1] < 0.001
    assert clark_west(rng.normal(0, 0.01, 500), truth)[1] > 0.05


def test_predictions_without_a_finite_value_are_counted_and_left_out():
    # e.g. the `close` target predicting a close <= 0: y_pred is NaN; the errors use the other rows
    rng = np.random.default_rng(4)
    y_true = rng.normal(0, 0.01, 60)
    y_pred = rng.normal(0, 0.005, 60)
    close = 100 * np.exp(np.cumsum(y_true))
    table = pd.DataFrame(
        {
            "ticker": "T",
            "model": "lstm",
            "y_pred": y_pred,
            "y_true": y_true,
            "price_pred": close * np.exp(y_pred),
            "price_true": close * np.exp(y_true),
            "horizon": 1,
        }
    )
    broken = table.copy()
    broken.loc[[3, 17, 40], ["y_pred", "price_pred"]] = np.nan
    row = forecast_metrics(broken).iloc[0]
    clean = forecast_metrics(table.drop(index=[3, 17, 40])).iloc[0]
    assert row["n_invalid"] == 3 and row["n"] == 57
    assert row["rmse"] == pytest.approx(clean["rmse"], rel=1e-12)
    assert row["theil_u"] == pytest.approx(clean["theil_u"], rel=1e-12)


def test_a_day_without_a_move_is_left_out_of_every_directional_statistic_alike():
    from forecasting.metrics import directional_accuracy, pesaran_timmermann, score

    # six days; on two the close did not move. The four that moved: up, down, up, up; called up, up, up, down
    y_true = np.array([0.01, -0.02, 0.0, 0.015, 0.0, 0.005])
    y_pred = np.array([0.002, 0.001, -0.003, 0.004, 0.001, -0.001])
    rows = pd.DataFrame(
        {
            "y_pred": y_pred,
            "y_true": y_true,
            "price_true": 100 * np.exp(y_true),
            "price_pred": 100 * np.exp(y_pred),
            "horizon": 1,
        }
    )
    m = score(rows)
    assert m["directional_accuracy"] == pytest.approx(2 / 4)  # hits on days 1 and 4 of the four that moved
    assert m["da_base_rate"] == pytest.approx(3 / 4)  # three of the four moves were up
    moved = y_true != 0
    np.testing.assert_equal(pesaran_timmermann(y_pred, y_true), pesaran_timmermann(y_pred[moved], y_true[moved]))
    assert directional_accuracy(y_pred, y_true) == directional_accuracy(y_pred[moved], y_true[moved])


def test_a_constant_forecast_has_no_correlation_even_when_its_values_differ_in_the_last_bit():
    from forecasting.metrics import score

    rng = np.random.default_rng(2)
    y_true = rng.normal(0, 0.01, 40)
    drift = np.full(40, 0.1) + np.where(np.arange(40) % 2, 0.0, 1.4e-17)  # one mean, rounded two ways
    assert np.std(drift) > 0  # the old test, std == 0, called this a forecast with a spread
    rows = pd.DataFrame(
        {
            "y_pred": drift,
            "y_true": y_true,
            "price_true": 100 * np.exp(y_true),
            "price_pred": 100 * np.exp(drift),
            "horizon": 1,
        }
    )
    assert math.isnan(score(rows)["correlation"])


def test_a_forecast_that_calls_a_direction_only_on_days_without_a_move_has_no_directional_accuracy():
    from forecasting.metrics import directional_accuracy

    assert math.isnan(directional_accuracy(np.array([0.0, 0.01, 0.0]), np.array([0.02, 0.0, -0.01])))
