import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from forecasting.errors import ForecastingError
from forecasting.xs_metrics import (
    XS_METRIC_COLUMNS,
    check_cross_section,
    cross_section_metrics,
    daily_cross_section,
    newey_west_t,
)

TICKERS = ["A", "B", "C", "D"]
DAYS = pd.bdate_range("2021-03-01", periods=3)

# Worked by hand. Day 1: pred 1 2 3 4, true 1 3 2 4; both centred -1.5 -0.5 0.5 1.5 and
#   -1.5 0.5 -0.5 1.5, cross sum 4, squares 5 and 5: IC 4/5 = 0.8; the values are their own ranks,
#   rank IC 0.8. Top 2 predictions C, D realise 2, 4 against a median 2.5: hit 1/2.
# Day 2: pred 2 1 1 4 (B and C tie), true 3 0 1 4; centred 0 -1 -1 2 (squares 6) and 1 -2 -1 2
#   (squares 10), cross 0 + 2 + 1 + 4 = 7: IC 7/sqrt(60). Ranks 3 1.5 1.5 4 (centred .5 -1 -1 1.5,
#   squares 4.5) and 3 1 2 4 (centred .5 -1.5 -.5 1.5, squares 5), cross .25 + 1.5 + .5 + 2.25 = 4.5:
#   rank IC 4.5/sqrt(22.5) = 3/sqrt(10). Top 2 D, A realise 4, 3 against a median 2: hit 1.
# Day 3: pred 4 3 2 1, true 2 1 4 3; centred 1.5 .5 -.5 -1.5 and -.5 -1.5 1.5 .5, cross
#   -.75 * 4 = -3, squares 5 and 5: IC -0.6 = rank IC. Top 2 A, B realise 2, 1 < median 2.5: hit 0.
PREDICTED = [[1, 2, 3, 4], [2, 1, 1, 4], [4, 3, 2, 1]]
REALISED = [[1, 3, 2, 4], [3, 0, 1, 4], [2, 1, 4, 3]]
DAY_IC = [0.8, 7 / math.sqrt(60), -0.6]
DAY_RANK_IC = [0.8, 3 / math.sqrt(10), -0.6]
DAY_HIT = [0.5, 1.0, 0.0]


def table(predicted, realised, dates, tickers=TICKERS, folds=None, model="lstm", **extra) -> pd.DataFrame:
    """A predictions table with one row per (date, ticker)."""
    folds = folds if folds is not None else [0] * len(dates)
    rows = [
        {"date": date, "ticker": ticker, "model": model, "y_pred": float(p), "y_true": float(t), "fold": fold}
        for date, fold, preds, trues in zip(dates, folds, predicted, realised)
        for ticker, p, t in zip(tickers, preds, trues)
    ]
    out = pd.DataFrame(rows)
    out["horizon"] = 1
    for name, values in extra.items():
        out[name] = np.ravel(values).astype(float)
    return out


def three_days(**kwargs) -> pd.DataFrame:
    return table(PREDICTED, REALISED, DAYS, **kwargs)


def sample_std(values) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def lstm_row(metrics: pd.DataFrame) -> pd.Series:
    return metrics.set_index("model").loc["lstm"]


def test_daily_ic_matches_hand_computed_pearson():
    daily = daily_cross_section(three_days(), k=2)
    assert daily["ic"].to_numpy() == pytest.approx(DAY_IC)


def test_daily_rank_ic_averages_tied_ranks():
    daily = daily_cross_section(three_days(), k=2)
    assert daily["rank_ic"].to_numpy() == pytest.approx(DAY_RANK_IC)


def test_daily_top_k_hit_counts_top_predictions_above_the_median():
    daily = daily_cross_section(three_days(), k=2)
    assert daily["top_k_hit"].to_numpy() == pytest.approx(DAY_HIT)


def test_daily_counts_names_per_date():
    daily = daily_cross_section(three_days(), k=2)
    assert list(daily["n"]) == [4, 4, 4]
    assert list(daily["date"]) == list(DAYS)


def test_summary_means_match_hand_computation():
    row = lstm_row(cross_section_metrics(three_days(), k=2))
    assert row["n_dates"] == 3
    assert row["ic"] == pytest.approx((0.8 + 7 / math.sqrt(60) - 0.6) / 3)  # 0.36790
    assert row["rank_ic"] == pytest.approx((0.8 + 3 / math.sqrt(10) - 0.6) / 3)  # 0.38289
    assert row["top_k_hit"] == pytest.approx(0.5)
    assert row["k"] == 2


def test_icir_is_mean_over_sample_std():
    row = lstm_row(cross_section_metrics(three_days(), k=2))
    assert row["icir"] == pytest.approx((sum(DAY_IC) / 3) / sample_std(DAY_IC))
    assert row["rank_icir"] == pytest.approx((sum(DAY_RANK_IC) / 3) / sample_std(DAY_RANK_IC))


def test_summary_columns_are_fixed():
    assert list(cross_section_metrics(three_days()).columns) == ["model"] + XS_METRIC_COLUMNS
    assert list(cross_section_metrics(three_days(), per_fold=True).columns) == ["model", "fold"] + XS_METRIC_COLUMNS


def test_constant_prediction_day_has_nan_ic_and_is_left_out_of_means():
    # equal up to rounding (0.1 + 0.2 is 0.30000000000000004), as a fold's mean repeated over names
    flat = table([[0.1 + 0.2, 0.3, 0.3, 0.3]], [[1, 2, 3, 4]], pd.bdate_range("2021-03-04", periods=1))
    predictions = pd.concat([three_days(), flat], ignore_index=True)
    daily = daily_cross_section(predictions, k=2)
    assert math.isnan(daily["ic"].iloc[3]) and math.isnan(daily["rank_ic"].iloc[3])
    row = lstm_row(cross_section_metrics(predictions, k=2))
    assert row["n_dates"] == 3
    assert row["rank_ic"] == pytest.approx(sum(DAY_RANK_IC) / 3)


def test_day_with_two_tickers_is_left_out_under_min_tickers_three():
    thin = table([[1, 2]], [[2, 1]], pd.bdate_range("2021-03-04", periods=1), tickers=["A", "B"])
    predictions = pd.concat([three_days(), thin], ignore_index=True)
    daily = daily_cross_section(predictions, k=2, min_tickers=3)
    assert daily["n"].iloc[3] == 2 and math.isnan(daily["rank_ic"].iloc[3])
    row = lstm_row(cross_section_metrics(predictions, k=2))
    assert row["n_dates"] == 3
    assert row["ic"] == pytest.approx(sum(DAY_IC) / 3)


def test_rows_without_a_finite_target_are_not_counted():
    predictions = three_days()
    predictions.loc[0, "y_true"] = np.nan  # A on day 1: the day keeps B C D, pred 2 3 4 and true 3 2 4
    daily = daily_cross_section(predictions, k=2)
    assert daily["n"].iloc[0] == 3
    # centred -1 0 1 and 0 -1 1: cross 1, squares 2 and 2, IC 1/2
    assert daily["ic"].iloc[0] == pytest.approx(0.5)


def test_per_fold_rows_average_each_folds_days():
    per_fold = cross_section_metrics(three_days(folds=[0, 0, 1]), k=2, per_fold=True)
    assert list(per_fold["fold"]) == [0, 1]
    assert per_fold["rank_ic"].to_numpy() == pytest.approx([(0.8 + 3 / math.sqrt(10)) / 2, -0.6])
    assert list(per_fold["n_dates"]) == [2, 1]


def test_models_keep_the_order_they_first_appear_in():
    predictions = pd.concat([three_days(model="ridge"), three_days(model="lstm")], ignore_index=True)
    assert list(cross_section_metrics(predictions)["model"]) == ["ridge", "lstm"]


# Ten names on one day, predictions 1..10: qcut of the ranks into 5 gives two names per quintile.
# y_true is a rank transform and deliberately disagrees with the realised returns.
TEN = [f"T{i}" for i in range(10)]
TEN_PREDICTED = [list(range(1, 11))]
TEN_Y_TRUE = [[10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]
TEN_RETURNS = [[-0.03, -0.01, 0.0, 0.01, 0.02, -0.02, 0.01, 0.0, 0.04, 0.02]]


def ten_names(**extra) -> pd.DataFrame:
    return table(TEN_PREDICTED, TEN_Y_TRUE, pd.bdate_range("2021-03-01", periods=1), tickers=TEN, **extra)


def test_spread_is_top_quintile_minus_bottom_quintile_of_return_true():
    daily = daily_cross_section(ten_names(return_true=TEN_RETURNS))
    # top quintile (pred 9, 10): (0.04 + 0.02)/2 = 0.03; bottom (pred 1, 2): (-0.03 - 0.01)/2 = -0.02
    assert daily["spread"].iloc[0] == pytest.approx(0.05)


def test_top_k_hit_uses_return_true_when_present():
    daily = daily_cross_section(ten_names(return_true=TEN_RETURNS), k=2)
    # returns sorted: -.03 -.02 -.01 0 0 .01 .01 .02 .02 .04, median 0.005; top 2 (pred 10, 9) realise .02, .04
    assert daily["top_k_hit"].iloc[0] == pytest.approx(1.0)


def test_spread_falls_back_to_y_true_without_return_true():
    daily = daily_cross_section(ten_names())
    # top quintile y_true (2 + 1)/2 = 1.5, bottom (10 + 9)/2 = 9.5
    assert daily["spread"].iloc[0] == pytest.approx(-8.0)


def test_a_tie_at_the_cut_goes_to_the_alphabetically_first_ticker_in_metrics_and_trading_alike():
    from strategies.decision import XsParams, xs_weights

    # ten names; B and C tie on 0.8 for the second place of the top quintile (two names) and of the top 2;
    # A leads. D and E tie on -0.9 for the last place of the bottom quintile: E (alphabetically later) ranks lower
    tickers = list("ABCDEFGHIJ")
    predicted = [0.9, 0.8, 0.8, -0.9, -0.9, 0.1, 0.0, -0.1, -0.2, -1.0]
    realised = [0.01, 0.02, -0.05, 0.03, -0.04, 0.0, 0.0, 0.0, 0.0, -0.01]
    day = pd.bdate_range("2021-03-01", periods=1)
    daily = daily_cross_section(table([predicted], [realised], day, tickers=tickers, return_true=realised), k=2)
    # top quintile A, B: (0.01 + 0.02) / 2 = 0.015; bottom J, E: (-0.01 - 0.04) / 2 = -0.025; spread 0.04
    assert daily["spread"].iloc[0] == pytest.approx(0.04)
    # top 2 A, B realise 0.01, 0.02 against a median of 0: hit 1 (with C instead of B it would be 0.5)
    assert daily["top_k_hit"].iloc[0] == pytest.approx(1.0)
    weights = xs_weights(dict(zip(tickers, predicted)), XsParams(k=2, allow_short=True), 1.0)
    assert {t for t, w in weights.items() if w > 0} == {"A", "B"}
    assert {t for t, w in weights.items() if w < 0} == {"E", "J"}


def test_spread_is_nan_with_fewer_than_five_names():
    assert daily_cross_section(three_days())["spread"].isna().all()


def test_daily_ic_matches_scipy_on_random_days_with_ties():
    rng = np.random.default_rng(7)
    dates = pd.bdate_range("2021-01-01", periods=40)
    names = [f"T{i}" for i in range(12)]
    predicted = rng.integers(0, 5, size=(40, 12))  # many ties
    realised = rng.normal(size=(40, 12))
    daily = daily_cross_section(table(predicted, realised, dates, tickers=names))
    expected_ic = [stats.pearsonr(p, t)[0] for p, t in zip(predicted, realised)]
    expected_rank_ic = [stats.spearmanr(p, t)[0] for p, t in zip(predicted, realised)]
    assert daily["ic"].to_numpy() == pytest.approx(expected_ic)
    assert daily["rank_ic"].to_numpy() == pytest.approx(expected_rank_ic)


# x = 1 3 2 0 4: mean 2, centred -1 1 0 -2 2 (n = 5). Autocovariances (sum / n):
#   gamma_0 = (1 + 1 + 0 + 4 + 4)/5 = 2
#   gamma_1 = (-1*1 + 1*0 + 0*-2 + -2*2)/5 = -5/5 = -1
#   gamma_2 = (-1*0 + 1*-2 + 0*2)/5 = -2/5 = -0.4
# default lags floor(4 * 0.05 ** (2/9)) = floor(2.056) = 2, Bartlett weights 2/3 and 1/3:
#   long-run variance 2 + 2 * (2/3 * -1 + 1/3 * -0.4) = 2 - 1.6 = 0.4; t = 2 / sqrt(0.4/5) = sqrt(50)
SERIES = [1.0, 3.0, 2.0, 0.0, 4.0]


def test_newey_west_t_matches_hand_computation_with_default_lags():
    assert newey_west_t(SERIES) == pytest.approx(math.sqrt(50))


def test_newey_west_t_with_zero_lags_is_the_plain_t():
    # gamma_0 alone: t = 2 / sqrt(2/5) = sqrt(10)
    assert newey_west_t(SERIES, lags=0) == pytest.approx(math.sqrt(10))


def test_newey_west_t_drops_nan():
    assert newey_west_t([1.0, np.nan, 3.0, 2.0, 0.0, 4.0]) == pytest.approx(math.sqrt(50))


def test_newey_west_t_is_nan_for_short_or_constant_series():
    assert math.isnan(newey_west_t([1.0, 2.0]))
    assert math.isnan(newey_west_t([0.3, 0.3, 0.3, 0.3]))


def test_rank_ic_t_uses_at_least_horizon_minus_one_lags():
    rng = np.random.default_rng(3)
    dates = pd.bdate_range("2021-01-01", periods=30)
    predictions = table(rng.normal(size=(30, 6)), rng.normal(size=(30, 6)), dates, tickers=list("ABCDEF"))
    rank_ic = daily_cross_section(predictions)["rank_ic"]
    # 30 days: default lags floor(4 * 0.3 ** (2/9)) = 3; a 10-day horizon needs 9
    assert lstm_row(cross_section_metrics(predictions, horizon=10))["rank_ic_t"] == pytest.approx(
        newey_west_t(rank_ic, lags=9)
    )


def test_rank_ic_t_reads_the_horizon_from_the_table():
    rng = np.random.default_rng(3)
    dates = pd.bdate_range("2021-01-01", periods=30)
    predictions = table(rng.normal(size=(30, 6)), rng.normal(size=(30, 6)), dates, tickers=list("ABCDEF"))
    predictions["horizon"] = 10
    rank_ic = daily_cross_section(predictions)["rank_ic"]
    assert lstm_row(cross_section_metrics(predictions))["rank_ic_t"] == pytest.approx(newey_west_t(rank_ic, lags=9))


def test_single_ticker_is_refused_with_a_universe_hint():
    single = table([[1], [2], [3]], [[2], [1], [3]], DAYS, tickers=["sp500"])
    with pytest.raises(ForecastingError) as error:
        check_cross_section(single)
    assert error.value.message == (
        "cross-sectional metrics need at least 3 tickers per date; the predictions hold 1 (sp500)"
    )
    assert error.value.hint == "load a universe, e.g. builtin:sp500_stocks"


def test_disjoint_date_ranges_are_refused_naming_the_ranges():
    parts = [
        table([[1.0]], [[1.0]], [pd.Timestamp(day)], tickers=[ticker])
        for ticker, day in (("A", "2020-01-02"), ("B", "2020-02-03"), ("C", "2020-03-02"))
    ]
    with pytest.raises(ForecastingError, match=r"A 2020-01-02\.\.2020-01-02, B 2020-02-03\.\.2020-02-03"):
        check_cross_section(pd.concat(parts, ignore_index=True))


def test_cross_section_metrics_refuses_a_single_ticker():
    single = table([[1], [2], [3]], [[2], [1], [3]], DAYS, tickers=["sp500"])
    with pytest.raises(ForecastingError, match="at least 3 tickers per date"):
        cross_section_metrics(single)


def test_a_constant_prediction_picks_no_top_k_and_no_quintile_spread():
    # ten names, one prediction for all: any "top 5" would be the alphabet's, not the forecast's
    day = pd.DataFrame(
        {
            "date": pd.Timestamp("2020-01-01"),
            "ticker": [f"T{i}" for i in range(10)],
            "model": "naive",
            "y_pred": 0.0,
            "y_true": np.linspace(-0.05, 0.04, 10),
            "fold": 0,
        }
    )
    stats = daily_cross_section(day, k=2).iloc[0]
    assert np.isnan(stats["top_k_hit"]) and np.isnan(stats["spread"]) and np.isnan(stats["rank_ic"])


def test_ic_is_against_the_realised_return_and_rank_ic_against_the_target():
    # a rank target (y_true) and the returns behind it: Pearson IC uses the returns
    day = pd.DataFrame(
        {
            "date": pd.Timestamp("2020-01-01"),
            "ticker": ["A", "B", "C", "D"],
            "model": "lstm",
            "y_pred": [1.0, 2.0, 3.0, 4.0],
            "y_true": [-0.5, -1 / 6, 1 / 6, 0.5],
            "return_true": [-0.01, 0.0, 0.01, 0.05],
            "fold": 0,
        }
    )
    stats_ = daily_cross_section(day, k=2).iloc[0]
    assert stats_["ic"] == pytest.approx(stats.pearsonr([1, 2, 3, 4], [-0.01, 0.0, 0.01, 0.05])[0])
    assert stats_["rank_ic"] == pytest.approx(1.0)
