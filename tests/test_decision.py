"""The pure decision rule that the backtest and paper trading share."""

import math

import numpy as np
import pytest

from strategies.decision import SignalParams, Sizing, cash_interest, plan_orders, signal_target

RULE = SignalParams()


def test_signal_sides_and_missing_prediction():
    assert signal_target(0.002, RULE) == (1.0, None)
    assert signal_target(-0.002, RULE) == (0.0, None)  # no shorts unless allowed
    assert signal_target(-0.002, SignalParams(allow_short=True)) == (-1.0, None)
    assert signal_target(0.0005, SignalParams(enter_long=0.001)) == (0.0, None)
    target, _ = signal_target(float("nan"), RULE)
    assert math.isnan(target)


def test_stop_loss_closes_and_waits_for_a_new_signal():
    rule = SignalParams(stop_loss=0.05)
    # long from 100, close at 94: 6% under the entry -> flat, and the stopped side is remembered
    assert signal_target(0.01, rule, position=10, entry_price=100.0, closes=[94.0]) == (0.0, 1.0)
    # still long-signalled next day: stays flat; a flat signal clears the stop; long again re-enters
    assert signal_target(0.01, rule, position=0, closes=[95.0], stopped=1.0) == (0.0, 1.0)
    assert signal_target(-0.01, rule, position=0, closes=[95.0], stopped=1.0) == (0.0, None)
    assert signal_target(0.01, rule, position=0, closes=[95.0]) == (1.0, None)


def test_volatility_target_scales_by_realised_volatility():
    closes = list(100 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.02, 21))))
    realised = np.std(np.diff(np.log(closes)), ddof=1) * np.sqrt(252)
    target, _ = signal_target(0.01, SignalParams(target_vol=0.1), closes=closes)
    assert target == pytest.approx(min(1.0, 0.1 / realised), rel=1e-12)


def test_orders_sized_at_the_close_with_costs_and_buffer():
    sizing = Sizing(cash_buffer=0.01, slippage_pct=0.001, commission_pct=0.0005)
    plan = plan_orders({"A": 1.0}, {}, {"A": 50.0}, 10_000.0, {}, sizing, n_assets=1)
    cost = 1.001 * 1.0005
    assert plan.orders == [("A", float(math.trunc(10_000 * 0.99 / (50 * cost))))]
    assert plan.intended == {"A": 1.0}


def test_band_keeps_small_changes_and_sells_come_first():
    sizing = Sizing(cash_buffer=0.0, rebalance_band=0.1)
    # A's exposure moves 1.0 -> 0.95 (inside the band: no order); B is sold, C bought
    plan = plan_orders(
        {"A": 0.95, "B": 0.0, "C": 1.0},
        {"A": 30.0, "B": 20.0},
        {"A": 10.0, "B": 10.0, "C": 20.0},
        100.0,
        {"A": 1 / 3, "B": 1 / 3},
        sizing,
        n_assets=3,
    )
    assert [t for t, _ in plan.orders] == ["B", "C"]
    assert plan.orders[0] == ("B", -20.0)
    value = 100.0 + 30 * 10 + 20 * 10  # cash plus both positions at the close
    assert plan.orders[1] == ("C", float(math.trunc(value / 3 / 20)))
    assert plan.intended["A"] == pytest.approx(1 / 3)  # unchanged: the band held it


def test_reversal_pays_its_closing_costs_before_sizing():
    sizing = Sizing(cash_buffer=0.0, commission_pct=0.01)
    plan = plan_orders({"A": -1.0}, {"A": 10.0}, {"A": 100.0}, 0.0, {"A": 1.0}, sizing, n_assets=1)
    value = 10 * 100.0 - 10 * 100.0 * 0.01  # the long's value less the commission of closing it
    short = -math.trunc(value / (100.0 * 1.01))
    assert plan.orders == [("A", short - 10.0)]


def test_cash_interest_is_daily_and_only_on_positive_cash():
    assert cash_interest(1_000.0, 0.05) == pytest.approx(1_000.0 * (1.05 ** (1 / 252) - 1))
    assert cash_interest(-5.0, 0.05) == 0.0 and cash_interest(1_000.0, 0.0) == 0.0


def test_buys_shrink_to_the_cash_left_when_a_grown_leg_sits_inside_the_band():
    # A grew to 51.4% of equity (inside the band of its 50% share: no order); B wants its 50% share,
    # 0.5 * 9,900 / 20 = 247 shares (4,940), but cash less the 1% buffer is 4,870 - 100 = 4,770
    sizing = Sizing(cash_buffer=0.01)
    plan = plan_orders(
        {"A": 1.0, "B": 1.0}, {"A": 514.0}, {"A": 10.0, "B": 20.0}, 4_870.0, {"A": 0.5}, sizing, n_assets=2
    )
    assert plan.orders == [("B", 238.0)]  # trunc(4,770 / 20): what the cash pays for
    assert plan.intended["A"] == 0.5
    assert plan.intended["B"] == pytest.approx(0.5 * 238 / 247)  # the exposure bought, for the band


def test_a_switch_counts_the_cash_of_the_days_sells_less_their_costs():
    # A is sold (300 shares at 10, 0.2% costs, 1 per share) for B: 300 * (10 * 0.998 - 1) = 2,694 comes in,
    # so B's full share fits the cash (5,637.06 after the 1% buffer) and is not shrunk
    sizing = Sizing(cash_buffer=0.01, slippage_pct=0.002, commission_per_share=1.0)
    plan = plan_orders(
        {"A": 0.0, "B": 1.0}, {"A": 300.0}, {"A": 10.0, "B": 50.0}, 3_000.0, {"A": 1.0}, sizing, n_assets=1
    )
    value = (3_000.0 + 3_000.0 - 300 * (10 * 0.002 + 1.0)) * 0.99
    assert plan.orders == [("A", -300.0), ("B", float(math.trunc(value / (50 * 1.002 + 1.0))))]
    assert plan.orders[1][1] == 110 and plan.intended == {"A": 0.0, "B": 1.0}


def test_a_buy_with_no_cash_left_is_not_recorded_so_the_next_close_decides_again():
    plan = plan_orders(
        {"A": 1.0, "B": 1.0}, {"A": 99.0}, {"A": 10.0, "B": 20.0}, 10.0, {"A": 0.5}, Sizing(), n_assets=2
    )
    assert plan.orders == [] and "B" not in plan.intended


def test_every_trading_parameter_is_declared_once_and_the_executors_read_that_declaration():
    from dataclasses import fields

    from backtests.config import StrategySpec
    from backtests.engine import BrokerSpec
    from strategies.registry import BOUNDS, strategy_params
    from strategies.signal import LSTMSignal
    from trading.rules import signal_params, sizing_for

    # Backtrader's params carry the dataclasses' defaults, and the registry their bounds
    known = strategy_params(LSTMSignal)
    for cls in (Sizing, SignalParams):
        for f in fields(cls):
            if not f.metadata["broker"]:
                assert known[f.name] == f.default, f.name
            if f.metadata["bounds"] is not None:
                assert BOUNDS[f.name] == f.metadata["bounds"], f.name
    # the paper account builds the same rule and sizing from a strategy's params and the broker
    spec = StrategySpec(name="lstm_signal", params={"rebalance_band": 0.05, "target_vol": 0.1})
    broker = BrokerSpec(cash_buffer=0.02, commission_pct=0.001, fractional=True)
    assert sizing_for(spec, broker) == Sizing(
        rebalance_band=0.05, cash_buffer=0.02, commission_pct=0.001, fractional=True, slippage_pct=broker.slippage_pct
    )
    assert signal_params(spec) == SignalParams(target_vol=0.1)


def test_a_day_with_no_buy_and_cash_under_the_buffer_plans_without_failing():
    # a fully invested book that rose: cash 20 is under the 1% buffer; A is trimmed, B unchanged in size
    plan = plan_orders(
        {"A": 0.8, "B": 1.0},
        {"A": 38.0, "B": 58.0},
        {"A": 100.0, "B": 100.0},
        20.0,
        {"A": 0.5, "B": 0.5},
        Sizing(),
        n_assets=2,
    )
    value = (20 + 96 * 100) * 0.99
    assert math.trunc(0.4 * value / 100) == 38  # A's new size is what it holds: no order at all
    assert plan.orders == [] and plan.intended["A"] == pytest.approx(0.4)


def test_covering_a_short_is_never_shrunk_only_the_opening_part_is():
    # B is short 50 and turns long; cash pays the cover (50 x 100) but only 20 of the 50 opening shares
    sizing = Sizing(cash_buffer=0.0)
    plan = plan_orders({"B": 1.0}, {"B": -50.0}, {"B": 100.0}, 7_000.0, {"B": -1.0}, sizing, n_assets=1)
    # equity 7,000 - 5,000 = 2,000: the target is +20 shares; cash after covering is 2,000, enough for 20
    assert plan.orders == [("B", 70.0)]
    # the same book with a grown other leg: cash covers B's 50 and only part of its opening buy
    plan = plan_orders(
        {"A": 1.0, "B": 1.0},
        {"A": 60.0, "B": -50.0},
        {"A": 100.0, "B": 100.0},
        6_000.0,
        {"A": 0.5, "B": -0.5},
        sizing,
        n_assets=2,
    )
    # equity 6,000 + 6,000 - 5,000 = 7,000; B wants +35; cash after the cover: 1,000, so 10 shares open
    assert plan.orders == [("B", 60.0)]
    assert plan.intended["B"] == pytest.approx(0.5 * 10 / 35)
    # flat as the target: the whole cover is sent whatever the cash, and the band then measures from 0
    plan = plan_orders({"B": 0.0}, {"B": -50.0}, {"B": 100.0}, 1_000.0, {"B": -1.0}, sizing, n_assets=1)
    assert plan.orders == [("B", 50.0)] and plan.intended["B"] == 0.0


def test_a_minimum_commission_counts_in_the_cash_a_small_buy_needs():
    # 2 shares at 100 with 0.1% commission would cost 200.2 + 0.2; the 5.0 minimum makes it 205.2
    sizing = Sizing(cash_buffer=0.0, commission_pct=0.001, commission_min=5.0)
    plan = plan_orders(
        {"A": 1.0, "B": 1.0}, {"A": 100.0}, {"A": 100.0, "B": 100.0}, 203.0, {"A": 0.5}, sizing, n_assets=2
    )
    assert plan.orders == [("B", 1.0)]  # 2 would leave the broker short of 2.2; 1 share costs 105.1
