"""The cross-sectional rule `xs_rank`, its equal-weight benchmark, and close-only fills."""

import math

import numpy as np
import pandas as pd
import pytest

from backtests.engine import BrokerSpec, run_backtest
from strategies import StrategyError
from strategies.decision import (
    Sizing,
    XsParams,
    check_universe,
    equal_weights,
    plan_orders,
    plan_weights,
    rebalance_due,
    slot_weight,
    trailing_vol,
    xs_weights,
)
from strategies.registry import forecast_model, resolve
from tests.helpers import make_bars, predictions_for

NAN = float("nan")
SCORES = {"A": 0.03, "B": -0.01, "C": 0.05, "D": 0.00, "E": -0.04, "F": 0.02}  # best first: C A F D B E
# zero costs, nothing kept in cash, whole shares, positions held to the last close
FREE = BrokerSpec(commission_pct=0.0, slippage_pct=0.0, cash_buffer=0.0, close_at_end=False)
NAMES = "ABCDE"


# --- the pure rule ---------------------------------------------------------------------------------
def test_long_only_top_k_share_the_exposure_equally():
    # k = 2 of 6: C and A, each half of max_exposure; every other ranked name is flat
    weights = xs_weights(SCORES, XsParams(k=2), max_exposure=1.0)
    assert weights == {"C": 0.5, "A": 0.5, "F": 0.0, "D": 0.0, "B": 0.0, "E": 0.0}


def test_long_short_puts_half_the_exposure_on_each_side():
    # gross 1.0, dollar neutral: C and A long 0.25 each, the bottom two (E, B) short 0.25 each
    weights = xs_weights(SCORES, XsParams(k=2, allow_short=True), max_exposure=1.0)
    assert weights == {"C": 0.25, "A": 0.25, "F": 0.0, "D": 0.0, "B": -0.25, "E": -0.25}


def test_a_tie_is_broken_by_ticker_name():
    # B and C tie at the top: B ranks first (the ranking is B C A), so k = 1 holds B
    assert xs_weights({"C": 0.02, "A": 0.01, "B": 0.02}, XsParams(k=1), 1.0) == {"B": 1.0, "C": 0.0, "A": 0.0}
    # a tie at the bottom: the ranking is C A B, so B (ranked after A) is the one shorted
    weights = xs_weights({"A": 0.0, "B": 0.0, "C": 0.1}, XsParams(k=1, allow_short=True), 1.0)
    assert weights == {"C": 0.5, "A": 0.0, "B": -0.5}


def test_names_without_a_finite_score_are_absent():
    weights = xs_weights({"A": NAN, "B": 0.1, "C": 0.2, "D": math.inf, "E": None}, XsParams(k=1), 1.0)
    assert weights == {"C": 1.0, "B": 0.0}  # A, D, E: no decision at all (their positions are kept)


def test_inverse_vol_weights_are_proportional_to_one_over_vol():
    # C and A selected with vols 0.1 and 0.2: 1/0.1 = 10, 1/0.2 = 5, so 10/15 = 2/3 and 5/15 = 1/3 of the leg
    params = XsParams(k=2, weighting="inverse_vol")
    weights = xs_weights(SCORES, params, 1.0, vols={"C": 0.1, "A": 0.2, "F": 0.05})
    assert weights["C"] == pytest.approx(2 / 3) and weights["A"] == pytest.approx(1 / 3)
    # with shorts the legs are 0.5 each: the short leg E (vol 0.3), B (vol 0.6) is 1/3 and 1/6 of equity
    short = xs_weights(SCORES, XsParams(k=2, allow_short=True, weighting="inverse_vol"), 1.0, vols={"E": 0.3, "B": 0.6})
    assert short["E"] == pytest.approx(-1 / 3) and short["B"] == pytest.approx(-1 / 6)


def test_inverse_vol_gives_a_name_without_a_vol_one_equal_slot():
    # k = 3 (C, A, F), F's vol unknown: F gets one slot (1/3); C and A share the other 2/3 as 10 : 5
    weights = xs_weights(SCORES, XsParams(k=3, weighting="inverse_vol"), 1.0, vols={"C": 0.1, "A": 0.2, "F": NAN})
    assert weights["F"] == pytest.approx(1 / 3)
    assert weights["C"] == pytest.approx(2 / 3 * 2 / 3) and weights["A"] == pytest.approx(2 / 3 * 1 / 3)


def test_rank_band_keeps_a_held_name_ranked_just_outside_the_top_k():
    # F is held long and ranks 3rd (k + 1): with rank_band 1 it keeps its place, and C (the best) the other
    weights = xs_weights(SCORES, XsParams(k=2, rank_band=1), 1.0, held={"A": 0.0, "F": 0.5})
    assert weights["C"] == 0.5 and weights["F"] == 0.5 and weights["A"] == 0.0
    # without the band F is replaced by A
    assert xs_weights(SCORES, XsParams(k=2), 1.0, held={"F": 0.5})["F"] == 0.0


def test_rank_band_drops_a_held_name_ranked_beyond_k_plus_the_band():
    # D is held and ranks 4th = k + rank_band + 1: it goes, the top two (C, A) come in
    weights = xs_weights(SCORES, XsParams(k=2, rank_band=1), 1.0, held={"D": 0.5})
    assert weights["D"] == 0.0 and weights["C"] == weights["A"] == 0.5


def test_rank_band_keeps_a_held_short_by_the_mirrored_rule():
    # D is held short and ranks 3rd from the bottom (E B D): kept with rank_band 1, beside E (the worst)
    weights = xs_weights(SCORES, XsParams(k=2, allow_short=True, rank_band=1), 1.0, held={"D": -0.25})
    assert weights["D"] == -0.25 and weights["E"] == -0.25 and weights["B"] == 0.0


def test_equal_weights_and_the_slot_weight():
    assert equal_weights(["A", "B", "C", "D"], 0.8) == {"A": 0.2, "B": 0.2, "C": 0.2, "D": 0.2}
    assert slot_weight(XsParams(k=4), 1.0) == 0.25  # a long-only leg of 1.0 in 4 slots
    assert slot_weight(XsParams(k=4, allow_short=True), 1.0) == 0.125  # a leg of 0.5 in 4 slots


def test_rebalance_due_every_n_sessions_from_session_zero():
    assert [s for s in range(12) if rebalance_due(s, 5)] == [0, 5, 10]
    assert all(rebalance_due(s, 1) for s in range(5))


def test_trailing_vol_is_the_annualised_std_of_log_returns():
    closes = [100.0, 102.0, 101.0, 104.0]
    returns = np.log([102 / 100, 101 / 102, 104 / 101])
    assert trailing_vol(closes) == pytest.approx(np.std(returns, ddof=1) * np.sqrt(252), rel=1e-12)
    assert math.isnan(trailing_vol([100.0, 101.0]))  # one return has no spread


def test_check_universe_refuses_a_k_the_universe_cannot_fill():
    with pytest.raises(StrategyError) as error:
        check_universe(XsParams(k=30), 20)
    assert (error.value.message, error.value.hint) == ("xs_rank: k = 30 but the universe has 20 tickers", "lower k")
    with pytest.raises(StrategyError, match="k = 12 long and 12 short need 24 tickers; the universe has 20"):
        check_universe(XsParams(k=12, allow_short=True), 20)
    check_universe(XsParams(k=10, allow_short=True), 20)  # 10 + 10 fit exactly


def test_a_weight_moving_less_than_the_band_of_a_slot_is_not_resized():
    # slot 0.2, band 0.1: re-size only beyond 0.02. A was intended at 0.2; 0.21 moves 0.01: no order
    sizing = Sizing(cash_buffer=0.0, rebalance_band=0.1)
    book = ({"A": 100.0}, {"A": 10.0}, 4_000.0, {"A": 0.2})  # positions, closes, cash, intended: equity 5,000
    plan = plan_weights({"A": 0.21}, *book, sizing, band_unit=0.2)
    assert plan.orders == [] and plan.intended == {"A": 0.2}


def test_a_weight_moving_more_than_the_band_of_a_slot_is_resized():
    # 0.23 moves 0.03 > 0.02: re-sized to trunc(0.23 * 5,000 / 10) = 115 shares, so 15 more
    sizing = Sizing(cash_buffer=0.0, rebalance_band=0.1)
    book = ({"A": 100.0}, {"A": 10.0}, 4_000.0, {"A": 0.2})
    plan = plan_weights({"A": 0.23}, *book, sizing, band_unit=0.2)
    assert plan.orders == [("A", 15.0)] and plan.intended == {"A": 0.23}
    # the same move inside a wider slot's band (0.1 x 0.5 = 0.05) is kept
    assert plan_weights({"A": 0.23}, *book, sizing, band_unit=0.5).orders == []


def test_plan_orders_is_plan_weights_with_one_tickers_share():
    rng = np.random.default_rng(11)
    sizing = Sizing(cash_buffer=0.01, commission_pct=0.001, commission_min=1.0)
    for _ in range(200):
        names = ["A", "B", "C"]
        targets = {t: float(rng.choice([NAN, -1.5, -1.0, 0.0, 0.4, 1.0, 2.0])) for t in names}
        positions = {t: float(rng.integers(-50, 50)) for t in names}
        closes = {t: float(rng.uniform(10, 100)) for t in names}
        intended = {t: float(rng.uniform(-0.4, 0.4)) for t in names if rng.random() < 0.7}
        cash = float(rng.uniform(0, 10_000))
        share = sizing.max_exposure / 3
        weights = {t: NAN if math.isnan(v) else max(-1.0, min(1.0, v)) * share for t, v in targets.items()}
        by_targets = plan_orders(targets, positions, closes, cash, intended, sizing, n_assets=3)
        by_weights = plan_weights(weights, positions, closes, cash, intended, sizing, band_unit=share)
        assert by_targets == by_weights


# --- the registry ------------------------------------------------------------------------------------
def test_weighting_typo_suggests_the_valid_name():
    with pytest.raises(StrategyError, match="'weighting' must be one of equal, inverse_vol") as error:
        resolve("xs_rank", {"weighting": "inverse_volatility"})
    assert "did you mean 'inverse_vol'" in str(error.value)


def test_forecast_must_be_a_model_name():
    with pytest.raises(StrategyError, match="'forecast' must be a name in quotes"):
        resolve("xs_rank", {"forecast": 3})


def test_k_is_bounded_by_its_declaration():
    with pytest.raises(StrategyError, match="'k' must be at least 1"):
        resolve("xs_rank", {"k": 0})
    with pytest.raises(StrategyError, match="'rebalance_every' must be a whole number"):
        resolve("equal_weight", {"rebalance_every": 2.5})


def test_forecast_model_reads_the_forecast_parameter():
    xs, _ = resolve("xs_rank")
    assert forecast_model(xs) == "lstm" and forecast_model(xs, {"forecast": "ridge"}) == "ridge"
    assert forecast_model(resolve("equal_weight")[0]) is None
    assert forecast_model(resolve("naive_signal")[0], {}) == "momentum"


# --- Backtrader runs -----------------------------------------------------------------------------------
def universe(n: int = 30) -> dict[str, pd.DataFrame]:
    return {t: make_bars(n, seed=i) for i, t in enumerate(NAMES)}


def daily_predictions(
    prices: dict[str, pd.DataFrame], first_day: dict[str, float], seed: int = 0, start: int = 0
) -> pd.DataFrame:
    """Scores that reshuffle every day, from bar `start` of each ticker on; on that first day they are `first_day`."""
    rng = np.random.default_rng(seed)
    frames = []
    for ticker, frame in prices.items():
        y = rng.normal(0, 0.01, len(frame))
        y[start] = first_day[ticker]
        frames.append(predictions_for(frame, y, ticker=ticker).iloc[start:])
    return pd.concat(frames, ignore_index=True)


FIRST = {"A": 0.01, "B": 0.05, "C": -0.02, "D": 0.03, "E": 0.0}  # best first: B D E A C


def test_xs_rank_holds_the_top_k_sized_at_the_first_close():
    prices = universe()
    params = {"k": 2, "max_exposure": 0.9}  # 10% room for the overnight gaps (no cash buffer)
    result = run_backtest(prices, daily_predictions(prices, FIRST), "xs_rank", FREE, params=params, warmup=0)
    # B and D, 0.45 of the 100,000 each, whole shares at the first close, filled at the next open
    held = result.positions.iloc[1]
    for ticker in NAMES:
        shares = math.floor(0.45 * 100_000 / prices[ticker]["close"].iloc[0]) if ticker in "BD" else 0
        assert held[ticker] == shares, ticker
    assert result.rejected_orders == 0


def test_xs_rank_trades_only_after_rebalance_days():
    prices = universe()
    params = {"k": 2, "max_exposure": 0.9, "rebalance_every": 5}
    result = run_backtest(prices, daily_predictions(prices, FIRST), "xs_rank", FREE, params=params, warmup=0)
    dates = prices["A"].index
    decided = [dates[s] for s in range(0, 29, 5)]  # sessions 0, 5, ..., 25 (the last prediction is bar 28)
    assert sorted(pd.to_datetime(result.decisions["date"]).unique()) == decided
    assert (result.decisions.groupby("date").size() == 5).all()  # every name's weight on a decision day
    filled = set(result.fills["date"])
    assert filled <= {dates[s + 1] for s in range(0, 29, 5)}  # the open after a decision, never between
    assert len(filled) > 2  # the daily reshuffle did rotate the book at later rebalances


def test_xs_rank_with_inverse_vol_sizes_from_the_trailing_closes():
    prices = universe(40)
    preds = daily_predictions(prices, FIRST, start=10)  # bars 0..9 are the feeds' warm-up
    params = {"k": 2, "max_exposure": 0.9, "weighting": "inverse_vol", "vol_window": 5}
    result = run_backtest(prices, preds, "xs_rank", FREE, params=params, warmup=10)
    # decided at the close of bar 10 from the 6 closes of bars 5..10: B and D in proportion to 1 / vol
    vol = {t: np.std(np.diff(np.log(prices[t]["close"].iloc[5:11])), ddof=1) * np.sqrt(252) for t in "BD"}
    inverse = 1 / vol["B"] + 1 / vol["D"]
    first = result.fills[result.fills["date"] == prices["A"].index[11]].set_index("ticker")["size"]
    assert sorted(first.index) == ["B", "D"]
    for ticker in "BD":
        weight = 0.9 * (1 / vol[ticker]) / inverse
        assert first[ticker] == math.floor(weight * 100_000 / prices[ticker]["close"].iloc[10]), ticker


def test_forecast_parameter_picks_the_ranked_model():
    prices = universe()
    lstm = daily_predictions(prices, FIRST)
    ridge = daily_predictions(prices, {"A": 0.05, "B": -0.01, "C": 0.04, "D": 0.0, "E": 0.0}).assign(model="ridge")
    both = pd.concat([lstm, ridge])
    result = run_backtest(prices, both, "xs_rank", FREE, params={"k": 2, "forecast": "ridge"}, warmup=0)
    first = result.decisions[result.decisions["date"] == prices["A"].index[0].date()].set_index("ticker")["target"]
    assert first[first > 0].index.tolist() == ["A", "C"]  # ridge's top two, not the LSTM's B and D


def test_equal_weight_holds_every_name_of_the_universe():
    prices = universe()
    params = {"max_exposure": 0.9}
    result = run_backtest(prices, daily_predictions(prices, FIRST), "equal_weight", FREE, params=params, warmup=0)
    held = result.positions.iloc[1]
    for ticker in NAMES:  # 0.9 / 5 = 0.18 of the 100,000 each
        assert held[ticker] == math.floor(0.18 * 100_000 / prices[ticker]["close"].iloc[0]), ticker
    assert set(result.fills["date"]) == {prices["A"].index[1]}  # then held: the band measures from 0.18


def test_a_k_the_universe_cannot_fill_fails_before_the_run():
    prices = universe()
    with pytest.raises(StrategyError, match="k = 3 long and 3 short need 6 tickers; the universe has 5"):
        run_backtest(prices, daily_predictions(prices, FIRST), "xs_rank", params={"k": 3, "allow_short": True})


def test_close_only_prices_fill_at_the_next_close():
    prices = {t: frame[["close"]] for t, frame in universe().items()}
    result = run_backtest(prices, daily_predictions(prices, FIRST), "equal_weight", FREE, params={"max_exposure": 0.9})
    fills = result.fills.set_index("ticker")
    assert (result.fills["date"] == prices["A"].index[1]).all()
    for ticker in NAMES:  # decided at close 0, filled at close 1
        assert fills.loc[ticker, "price"] == pytest.approx(prices[ticker]["close"].iloc[1], rel=1e-12)
    assert result.fill_rule == "next close (close-only data)"


def test_ohlcv_prices_keep_the_next_open_fill_rule():
    prices = universe()
    result = run_backtest(prices, daily_predictions(prices, FIRST), "equal_weight", FREE, params={"max_exposure": 0.9})
    assert result.fill_rule == "next open"
    fill = result.fills.set_index("ticker").loc["A"]
    assert fill["price"] == pytest.approx(prices["A"]["open"].iloc[1], rel=1e-12)


def ragged() -> dict[str, pd.DataFrame]:
    prices = universe()
    prices["E"] = prices["E"].iloc[10:]  # E's data (and its predictions) start at bar 10
    return prices


def test_a_ragged_universe_trades_from_the_first_tickers_start():
    prices = ragged()
    result = run_backtest(
        prices, daily_predictions(prices, FIRST), "xs_rank", FREE, params={"k": 2, "max_exposure": 0.9}, warmup=0
    )
    dates = prices["A"].index
    assert result.equity.index[0] == dates[0]
    first = result.fills[result.fills["date"] == dates[1]]
    assert sorted(first["ticker"]) == ["B", "D"]  # E has no bar yet: it takes no part
    decided_e = pd.to_datetime(result.decisions.loc[result.decisions["ticker"] == "E", "date"])
    assert decided_e.min() == dates[10]  # from its first bar, a rebalance day (session 10)


def test_a_late_ticker_joins_the_equal_weight_book_at_the_first_rebalance_after_its_start():
    prices = ragged()
    params = {"max_exposure": 0.9, "rebalance_every": 5}
    result = run_backtest(prices, daily_predictions(prices, FIRST), "equal_weight", FREE, params=params, warmup=0)
    dates = prices["A"].index
    # four names at 0.9 / 4 = 0.225 from close 0; at session 10 (E's first bar) five at 0.18 each
    assert result.positions.iloc[1]["A"] == math.floor(0.225 * 100_000 / prices["A"]["close"].iloc[0])
    late = result.fills[result.fills["date"] == dates[11]].set_index("ticker")["size"]
    assert sorted(late.index) == list(NAMES)  # E bought, the others trimmed (0.225 -> 0.18 is beyond the band)
    assert (late.drop("E") < 0).all() and late["E"] > 0


def test_a_name_without_a_bar_today_takes_no_part_in_the_decision():
    prices = universe()
    day = prices["C"].index[5]
    prices["C"] = prices["C"].drop(index=day)  # C misses the second rebalance day
    result = run_backtest(
        prices, daily_predictions(prices, FIRST), "xs_rank", FREE, params={"k": 2, "max_exposure": 0.9}, warmup=0
    )
    on_day = result.decisions[result.decisions["date"] == day.date()]
    assert sorted(on_day["ticker"]) == ["A", "B", "D", "E"]


def test_universe_orders_rebalance_a_drifted_name_at_a_decision_and_retry_a_refused_buy_at_the_next_close():
    from strategies.decision import Sizing, current_weights, universe_orders

    sizing = Sizing(max_exposure=1.0, rebalance_band=0.1, cash_buffer=0.0)
    closes = {"A": 10.0, "B": 10.0}
    # A grew to 6,000 of 10,000 equity (60%), B is 4,000 (40%); both were last intended at 50%
    positions, cash = {"A": 600.0, "B": 400.0}, 0.0
    assert current_weights(positions, closes, cash) == {"A": 0.6, "B": 0.4}
    plan, acting, last = universe_orders(
        {"A": 0.5, "B": 0.5}, {}, positions, closes, cash, {"A": 0.5, "B": 0.5}, sizing, band_unit=0.5
    )
    # measured from the weights held now, both moved by 0.1 > 0.1 x 0.5: sell 100 A, buy 100 B
    assert sorted(plan.orders) == [("A", -100.0), ("B", 100.0)]
    assert acting == last == {"A": 0.5, "B": 0.5}
    # between decisions: B's buy was refused (B dropped from intended), so B alone is decided again
    plan, acting, last = universe_orders(
        None, {"A": 0.5, "B": 0.5}, {"A": 500.0}, closes, 5000.0, {"A": 0.5}, sizing, band_unit=0.5
    )
    assert acting == {"B": 0.5} and plan.orders == [("B", 500.0)] and last == {"A": 0.5, "B": 0.5}
    # nothing refused and no decision: nothing to do
    plan, acting, _ = universe_orders(None, {"A": 0.5}, {"A": 500.0}, closes, 5000.0, {"A": 0.5}, sizing, 0.5)
    assert plan.orders == [] and acting == {}
