"""The global model: pooled windows, date-based folds, cross-sectional targets and the controls."""

import numpy as np
import pandas as pd
import pytest
from helpers import make_bars
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtests.audit import perturb_after
from forecasting.cross_section import (
    GLOBAL_MODELS,
    DateSplit,
    TickerScaler,
    build_panel,
    cross_sectional_target,
    fold_rows,
    global_walk_forward,
    make_date_split,
)
from forecasting.spec import ModelSpec, WalkForwardSpec

FEATURES = ["log_return", "log_return_5"]


def universe(n_tickers=4, n=260, seed=0, starts=None, drop=None) -> dict[str, pd.DataFrame]:
    """Random-walk closes; `starts[i]` shifts ticker i's first bar later, `drop[i]` removes bar positions."""
    prices = {}
    for i in range(n_tickers):
        frame = make_bars(n, seed=seed + i)[["close"]]
        frame = frame.iloc[(starts or {}).get(i, 0) :]
        if drop and i in drop:
            frame = frame.drop(frame.index[[p for p in drop[i] if p < len(frame)]])
        prices[f"T{i}"] = frame
    return prices


def tiny(target="xs_rank", **changes) -> ModelSpec:
    settings_ = dict(
        features=FEATURES, lookback=5, units=4, n_layers=1, epochs=2, batch_size=64, scope="global", target=target
    )
    return ModelSpec(**{**settings_, **changes})


def test_xs_rank_target_is_the_days_rank_scaled_to_half_either_side():
    # day 1: returns 0.03, -0.01, 0.02 -> ranks 3, 1, 2 of 3 -> (r-1)/2 - 0.5 = 0.5, -0.5, 0.0
    # day 2: returns 0.01, 0.01, NaN -> tied ranks 1.5, 1.5 of 2 -> 0.0, 0.0; the unknown stays NaN
    dates = np.array(["2020-01-01"] * 3 + ["2020-01-02"] * 3, dtype="datetime64[ns]")
    returns = np.array([0.03, -0.01, 0.02, 0.01, 0.01, np.nan])
    out = cross_sectional_target(returns, dates, "xs_rank")
    np.testing.assert_allclose(out[:5], [0.5, -0.5, 0.0, 0.0, 0.0])
    assert np.isnan(out[5])


def test_xs_demeaned_target_subtracts_the_days_mean_of_known_returns():
    dates = np.array(["2020-01-01"] * 3, dtype="datetime64[ns]")
    out = cross_sectional_target(np.array([0.03, -0.01, np.nan]), dates, "xs_demeaned")
    np.testing.assert_allclose(out[:2], [0.02, -0.02])  # mean of the two known: 0.01
    assert np.isnan(out[2])


def test_a_days_cross_section_is_fixed_at_the_close_h_sessions_later():
    # T1 misses bar 30, so its 1-day return from bar 29 is known only at bar 31: the day's ranking, fixed
    # at the universe's next close (bar 30's), holds T0 and T2 alone, and T1 has no target that day
    prices = universe(3, n=60, drop={1: [30]})
    dates = prices["T0"].index
    panel = build_panel(prices, tiny())
    rows = np.flatnonzero(panel.dates == dates[29].to_datetime64())
    assert len(rows) == 3
    known = {panel.tickers[panel.ticker[r]]: (panel.known_at[r], panel.target[r]) for r in rows}
    assert known["T0"][0] == known["T2"][0] == dates[30].to_datetime64()
    assert sorted([known["T0"][1], known["T2"][1]]) == [-0.5, 0.5]
    assert np.isnat(known["T1"][0]) and np.isnan(known["T1"][1])
    single = build_panel(prices, tiny("log_return"))  # a ticker's own return: known at its own next bar
    rows = (single.dates == dates[29].to_datetime64()) & (single.ticker == 1)
    assert set(single.known_at[rows]) == {dates[31].to_datetime64()}


def test_a_ticker_halted_past_the_cutoff_is_still_predicted_there_with_no_target():
    prices = universe(3, n=260, drop={1: [200]})
    table = global_walk_forward(prices, tiny(), WalkForwardSpec(min_train=120, retrain_every=60), seed=1)
    day = prices["T1"].index[199]
    row = table[(table["model"] == "lstm") & (table["ticker"] == "T1") & (table["date"] == day)]
    assert len(row) == 1 and np.isfinite(row["y_pred"]).all() and row["y_true"].isna().all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_tickers=st.integers(2, 5),
    starts=st.lists(st.integers(0, 80), min_size=5, max_size=5),
    gaps=st.lists(st.lists(st.integers(0, 199), max_size=6), min_size=5, max_size=5),
    horizon=st.integers(1, 3),
    gap=st.integers(0, 2),
    target=st.sampled_from(["log_return", "xs_demeaned", "xs_rank"]),
    window=st.sampled_from([None, 40]),
)
def test_no_global_fold_trains_on_a_target_unknown_at_the_close_of_its_first_test_date(
    n_tickers, starts, gaps, horizon, gap, target, window
):
    prices = universe(n_tickers, n=200, starts=dict(enumerate(starts)), drop=dict(enumerate(gaps)))
    model = tiny(target, horizon=horizon)
    panel = build_panel(prices, model)
    split = DateSplit(min_train=60, retrain_every=25, horizon=horizon, gap=gap, train_window=window)
    # each ticker's bar `horizon` bars after a sample's date, worked out from the raw bars
    known_by_ticker = {
        (ticker, date): frame.index[i + horizon] if i + horizon < len(frame) else None
        for ticker, frame in prices.items()
        for i, date in enumerate(frame.index)
    }
    for fold in range(split.n_splits(panel.known_days)):
        first_test = panel.calendar[split.test_days(fold, panel.known_days)[0]]
        train = split.train_rows(panel, fold)
        for row in train:
            day = pd.Timestamp(panel.dates[row])
            # every return the row's target needs: its own, or every ranked ticker's that day for xs targets
            same_day = (panel.dates == panel.dates[row]) & np.isfinite(panel.target)
            needed = (
                [panel.tickers[panel.ticker[row]]]
                if target == "log_return"
                else [panel.tickers[c] for c in panel.ticker[same_day]]
            )
            for ticker in needed:
                known = known_by_ticker[(ticker, day)]
                assert known is not None and known <= first_test, (fold, ticker, day, known, first_test)


def test_features_are_scaled_per_ticker_with_the_folds_training_rows_only():
    prices = universe(3, n=200)
    model = tiny("log_return")
    panel = build_panel(prices, model)
    split = DateSplit(min_train=80, retrain_every=30)
    train, test, scaler = fold_rows(panel, split, 0)
    for code in range(3):
        last_rows = panel.X[train[panel.ticker[train] == code], -1, :]
        np.testing.assert_allclose(scaler.mean[code], last_rows.mean(axis=0))
        np.testing.assert_allclose(scaler.scale[code], last_rows.std(axis=0))
    # changing bars after the fold's training end leaves the scaler as it was
    cut = pd.Timestamp(panel.known_at[train].max())
    changed = {t: perturb_after(f, cut, seed=3) for t, f in prices.items()}
    other = build_panel(changed, model)
    again = TickerScaler(other, split.train_rows(other, 0))
    np.testing.assert_array_equal(again.mean, scaler.mean)
    np.testing.assert_array_equal(again.scale, scaler.scale)


@pytest.fixture(scope="module")
def ragged_table():
    prices = universe(4, n=260, starts={3: 40}, drop={1: [120, 121]})
    wf = WalkForwardSpec(min_train=120, retrain_every=40, finetune_window=30)
    return prices, wf, global_walk_forward(prices, tiny(), wf, seed=1)


def test_a_global_walk_forward_predicts_every_ticker_with_every_model(ragged_table):
    prices, _, table = ragged_table
    assert list(dict.fromkeys(table["model"])) == list(GLOBAL_MODELS)
    assert set(table["ticker"]) == set(prices)
    per_model = table.groupby("model").size()
    assert per_model.nunique() == 1  # every model on the same rows
    assert (pd.to_datetime(table["train_end"]) <= pd.to_datetime(table["date"])).all()
    # each ticker's predictions cover its own bars between its first and last prediction
    for ticker, frame in prices.items():
        dates = pd.DatetimeIndex(table[(table["model"] == "lstm") & (table["ticker"] == ticker)]["date"])
        assert dates.equals(frame.loc[dates[0] : dates[-1]].index)


def test_the_ranking_scores_are_the_12_1_momentum_and_5_day_reversal_of_the_closes(ragged_table):
    prices, _, table = ragged_table
    rows = table[table["ticker"] == "T0"].set_index(["model", "date"])
    close = prices["T0"]["close"]
    day = table[table["ticker"] == "T0"]["date"].iloc[-1]
    at = close.index.get_loc(day)
    assert rows.loc[("reversal_5", day), "y_pred"] == pytest.approx(-np.log(close.iloc[at] / close.iloc[at - 5]))
    assert rows.loc[("momentum_12_1", day), "y_pred"] == pytest.approx(
        np.log(close.iloc[at - 21] / close.iloc[at - 252])
    )
    assert np.isnan(rows.loc[("reversal_5", day), "price_pred"])


def test_changing_one_tickers_bars_after_d_moves_no_prediction_of_any_ticker_on_or_before_d(ragged_table):
    prices, wf, table = ragged_table
    cut = pd.Timestamp(table["date"].sort_values().iloc[len(table) // 2])
    changed = dict(prices, T2=perturb_after(prices["T2"], cut, seed=5))
    again = global_walk_forward(changed, tiny(), wf, seed=1)
    # what was made at those closes (a realised y_true that lies after D may change: it is not known at D)
    made = ["date", "ticker", "model", "y_pred", "price_pred", "fold", "train_end", "y_pred_std"]
    before = table[table["date"] <= cut][made].reset_index(drop=True)
    after = again[again["date"] <= cut][made].reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after, check_exact=True)
    later = table[table["date"] > cut]["y_pred"].to_numpy()
    assert not np.array_equal(later, again[again["date"] > cut]["y_pred"].to_numpy(), equal_nan=True)


def test_the_last_fold_and_a_fold_split_agree_on_the_first_test_day():
    split = make_date_split(tiny(horizon=2), WalkForwardSpec(min_train=100, retrain_every=10, gap=1))
    assert split.first_test() == 100 - 1 + 2 + 1
    assert split.fold_of(split.first_test() - 1) is None
    assert split.fold_of(split.first_test() + 10) == 1


def test_a_ticker_too_short_for_the_lookback_is_left_out_of_a_universe_with_a_note_naming_it():
    from forecasting.cross_section import usable_universe

    prices = universe(4, n=200)
    prices["T3"] = prices["T3"].iloc[:8]  # the features' warm-up (6 bars) and a 5-bar lookback need 12
    keep, notes = usable_universe(prices, tiny(), needed=12)
    assert list(keep) == ["T0", "T1", "T2"]
    assert notes == ["T3 left out: 8 bars, fewer than the 12 the lookback needs"]


@pytest.mark.parametrize("target", ["xs_rank", "xs_demeaned", "log_return"])
def test_no_target_or_training_set_changes_as_later_bars_arrive_in_a_ragged_universe(target):
    # what a paper account sees at D (the bars up to D) trains each fold on exactly the rows, with exactly
    # the targets, that the backtest's full-history panel does
    prices = universe(4, n=300, starts={3: 30}, drop={1: [150, 151, 152], 2: [200]})
    model = tiny(target)
    split = DateSplit(min_train=100, retrain_every=25)
    full = build_panel(prices, model)
    for cut in (prices["T0"].index[151], prices["T0"].index[205], prices["T0"].index[260]):
        seen = build_panel({t: f.loc[:cut] for t, f in prices.items()}, model)
        known = np.flatnonzero(~np.isnat(full.known_at) & (full.known_at <= cut.to_datetime64()))
        keys = {(d, t): i for i, (d, t) in enumerate(zip(seen.dates, seen.ticker))}
        mine = np.array([keys[(full.dates[i], full.ticker[i])] for i in known])
        np.testing.assert_array_equal(seen.target[mine], full.target[known])
        np.testing.assert_array_equal(seen.known_at[mine], full.known_at[known])
        for fold in range(split.n_splits(full.known_days)):
            start = split.test_days(fold, full.known_days)[0]
            if start >= len(seen.calendar) or full.calendar[start] > cut:
                break
            a, b = split.train_rows(full, fold), split.train_rows(seen, fold)
            assert [(full.dates[i], full.ticker[i]) for i in a] == [(seen.dates[i], seen.ticker[i]) for i in b]
