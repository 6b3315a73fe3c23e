import math

import numpy as np
import pandas as pd
import pytest

from backtests.books import write_backtests
from backtests.engine import BrokerSpec, run_backtest
from backtests.stats import comparison_table
from strategies import StrategyError
from tests.helpers import bars_from, make_bars, predictions_for

FREE = BrokerSpec(commission_pct=0.0, slippage_pct=0.0, close_at_end=False)  # positions held to the last close


def test_order_decided_at_close_t_fills_at_open_t_plus_1():
    prices = bars_from(open_=[100, 101, 103, 104, 106, 107], close=[100.5, 102, 103.5, 105, 106.5, 108])
    signal = [0, 0, 1, 1, 0, 0]  # long from the close of bar 2, flat from the close of bar 4
    broker = BrokerSpec(commission_pct=0.0, slippage_pct=0.001)
    result = run_backtest({"T": prices}, predictions_for(prices, signal), "lstm_signal", broker, warmup=0)
    fills = result.fills
    assert list(fills["date"]) == [prices.index[3], prices.index[5]]
    assert fills["price"].iloc[0] == pytest.approx(104 * 1.001)  # bar 3's open, plus slippage
    assert fills["price"].iloc[1] == pytest.approx(107 * 0.999)  # bar 5's open, less slippage
    # the equity curve starts at the first prediction and the position shows from the fill bar on
    size = fills["size"].iloc[0]
    # sized at the deciding close (bar 2: 103.5) with the costs and the 1% cash buffer, whole shares
    assert size == math.trunc(100_000 * 0.99 / (103.5 * 1.001))
    assert result.positions["T"].tolist() == [0, 0, 0, size, size, 0]


def test_perfect_foresight_cannot_earn_the_close_to_close_return():
    # Each day's whole move happens overnight (open = close): knowing close t -> t+1 at close t is useless
    # when the order can only fill at the open of t+1, which already holds that move.
    close = 100 * np.cumprod([1.0] + [1.02 if i % 2 == 0 else 0.99 for i in range(40)])
    prices = bars_from(open_=close, close=close)
    y = np.append(np.log(close[1:] / close[:-1]), 0.0)
    roomy = FREE.model_copy(update={"cash_buffer": 0.05})  # the 2% gaps must not bounce the buys
    result = run_backtest({"T": prices}, predictions_for(prices, y), "lstm_signal", roomy, warmup=0)
    assert result.rejected_orders == 0 and len(result.fills) == 40
    cheat = np.prod([1.02] * 20)  # what trading at close t would have earned on the 20 up days
    assert cheat > 1.4
    assert result.equity.iloc[-1] < result.equity.iloc[0]  # held from open t+1 it earns the down days


def test_a_gap_up_beyond_the_cash_buffer_bounces_the_buy_and_the_rule_decides_again():
    # sized at close 0 (100) with 1% left in cash; the open of bar 1 gaps up 3%: cash can't pay, the
    # broker refuses it (as a live one would); at close 1 the rule sizes again from 103 and fills at open 2
    prices = bars_from(open_=[100, 103, 103.5, 104], close=[100, 103, 104, 104.5])
    result = run_backtest({"T": prices}, predictions_for(prices, [1, 1, 1, 1]), "lstm_signal", FREE, warmup=0)
    assert result.rejected_orders == 1
    assert result.fills["date"].tolist() == [prices.index[2]]
    assert result.fills["size"].iloc[0] == math.trunc(100_000 * 0.99 / 103)


def test_three_trades_hand_computed():
    opens = [100, 101, 102, 104, 103, 101, 100, 102, 105, 107, 106, 108]
    closes = [100.5, 101.5, 103, 103.5, 102, 100.5, 101, 104, 106, 106.5, 107, 109]
    prices = bars_from(opens, closes)
    signal = [1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0]  # decided at each close, filled at the next open
    broker = BrokerSpec(cash=10_000, commission_pct=0.001, slippage_pct=0.002)
    result = run_backtest({"T": prices}, predictions_for(prices, signal + [0]), "lstm_signal", broker, warmup=0)

    def buy(cash, close, open_):  # all-in but the 1% buffer: whole shares sized at the close, filled at the open
        size = math.floor(cash * 0.99 / (close * 1.002 * 1.001))
        return size, cash - size * open_ * 1.002 * 1.001

    def sell(cash, size, open_):
        return cash + size * open_ * 0.998 * 0.999

    size1, cash = buy(10_000.0, 100.5, 101)  # long at close 0 -> bought at open 1
    cash = sell(cash, size1, 102)  # flat at close 1 -> sold at open 2
    size2, cash = buy(cash, 103, 104)  # long at close 2 -> bought at open 3
    cash = sell(cash, size2, 101)  # flat at close 4 -> sold at open 5
    size3, cash = buy(cash, 101, 102)  # long at close 6 -> bought at open 7
    cash = sell(cash, size3, 106)  # flat at close 9 -> sold at open 10

    assert list(result.fills["size"]) == [size1, -size1, size2, -size2, size3, -size3]
    assert result.equity.iloc[-1] == pytest.approx(cash, abs=1e-9)
    trades = result.trades
    assert len(trades) == 3 and list(trades["size"]) == [size1, size2, size3]
    assert trades["entry_price"].tolist() == pytest.approx([101 * 1.002, 104 * 1.002, 102 * 1.002])
    assert trades["exit_price"].tolist() == pytest.approx([102 * 0.998, 101 * 0.998, 106 * 0.998])
    assert trades["pnl_net"].sum() == pytest.approx(cash - 10_000, abs=1e-9)


def test_buy_and_hold_is_the_price_move_less_costs():
    closes = [100, 101, 99, 103, 104, 102, 106, 108]
    opens = [100, 99.5, 100, 100, 103, 103, 103, 107]
    prices = bars_from(opens, closes)
    broker = BrokerSpec(cash=50_000, commission_pct=0.001, slippage_pct=0.0, fractional=True, close_at_end=False)
    result = run_backtest({"T": prices}, predictions_for(prices, np.zeros(8)), "buy_and_hold", broker, warmup=0)
    # fractional shares in millionths, sized at the first close (100) less the 1% cash buffer
    shares = math.floor(50_000 * 0.99 / (100 * 1.001) * 1e6) / 1e6
    leftover = 50_000 - shares * 99.5 * 1.001  # filled at the next open (99.5) with its commission
    assert 0.01 * 50_000 < leftover < 0.02 * 50_000
    assert result.equity.iloc[-1] == pytest.approx(leftover + shares * 108, abs=1e-9)
    # the open trade is marked to market at the last close: a win of shares * (108 - 99.5) less the entry cost
    (trade,) = result.trades.itertuples()
    assert trade.open and trade.exit_price == pytest.approx(108)
    assert trade.pnl_net == pytest.approx(shares * (108 - 99.5) - shares * 99.5 * 0.001)

    # close_at_end (the default): sold at the last open (107) with its commission, every trade closed
    closed = run_backtest(
        {"T": prices},
        predictions_for(prices, np.zeros(8)),
        "buy_and_hold",
        broker.model_copy(update={"close_at_end": True}),
        warmup=0,
    )
    assert closed.equity.iloc[-1] == pytest.approx(leftover + shares * 107 * (1 - 0.001), abs=1e-9)
    assert closed.positions["T"].iloc[-1] == 0 and closed.fills["date"].iloc[-1] == prices.index[-1]
    (trade,) = closed.trades.itertuples()
    assert not trade.open and trade.exit_price == pytest.approx(107)
    assert trade.pnl_net == pytest.approx(shares * (107 - 99.5) - shares * (99.5 + 107) * 0.001)


def test_a_losing_open_trade_counts_in_the_win_rate():
    from backtests.stats import summarise

    # long on day 1 and 2 (a winning round trip), flat, then long again into a fall that is still open
    closes = [100, 101, 103, 103, 102, 100, 96, 95]
    opens = [100, 100, 102, 103, 103, 101, 97, 95]
    prices = bars_from(opens, closes)
    signal = [1, 1, -1, 1, 1, 1, 1, 1]
    result = run_backtest({"T": prices}, predictions_for(prices, signal), "lstm_signal", FREE, warmup=0)
    trades = result.trades
    assert len(trades) == 2 and trades["open"].tolist() == [False, True]
    # trade 1: bought at the open of day 1 (100), sold at the open of day 3 (103); trade 2: bought at
    # the open of day 4 (103), marked at the last close (95)
    assert trades["entry_price"].tolist() == [100, 103] and trades["exit_price"].tolist() == [103, 95]
    row = summarise(result, "T")
    assert row["win_rate"] == pytest.approx(0.5)  # one win, one (open) loss: not 100%


def rebuild_from_trades(trades: pd.DataFrame, prices: pd.DataFrame, cash0: float) -> pd.Series:
    """Equity from round trips and closes, with pandas alone."""
    dates = prices.index
    position = pd.Series(0.0, index=dates)
    cash = pd.Series(0.0, index=dates)
    for t in trades.itertuples():
        sign = 1.0 if t.direction == "long" else -1.0
        entry, exit_ = (
            pd.Timestamp(t.entry_date),
            pd.Timestamp(t.exit_date) if isinstance(t.exit_date, str) and t.exit_date else None,
        )
        held = (dates >= entry) & ((dates < exit_) if exit_ is not None else True)
        position[held] += sign * t.size
        cash[dates >= entry] -= sign * t.size * t.entry_price + t.entry_commission
        if exit_ is not None:
            cash[dates >= exit_] += sign * t.size * t.exit_price - t.exit_commission
    return cash0 + cash + position * prices["close"]


def test_returns_rebuilt_from_trades_csv_match_the_engine(tmp_path):
    prices = make_bars(400, seed=12)
    rng = np.random.default_rng(1)
    preds = predictions_for(prices, rng.normal(0.0002, 0.01, 400), ticker="ACME")
    broker = BrokerSpec(
        cash=25_000, commission_pct=0.0007, commission_min=1.0, slippage_pct=0.001, cash_buffer=0.05
    )  # these random bars gap by up to 4% overnight
    result = run_backtest({"ACME": prices}, preds, "lstm_signal", broker, params={"allow_short": True}, warmup=0)
    assert (result.trades["direction"] == "short").any() and len(result.trades) > 20
    write_backtests(tmp_path, [("ACME", result)], comparison_table([("ACME", result)]))
    trades = pd.read_csv(tmp_path / "trades.csv", keep_default_na=False, na_values=[""])
    trades["exit_date"] = trades["exit_date"].fillna("")
    equity = rebuild_from_trades(trades, prices.loc[result.equity.index], 25_000)
    returns = equity.pct_change().iloc[1:]
    np.testing.assert_allclose(returns.to_numpy(), result.returns.to_numpy(), rtol=0, atol=1e-9)


def test_every_strategy_runs_on_the_same_dates():
    prices = make_bars(700, seed=4)
    preds = pd.concat(
        [predictions_for(prices, np.random.default_rng(2).normal(0, 0.01, 700), model=m) for m in ("lstm", "momentum")]
    ).query("date >= '2016-01-01'")
    spans = []
    for name in ("lstm_signal", "naive_signal", "buy_and_hold", "sma_cross", "rsi_reversion", "macd_cross"):
        result = run_backtest({"T": prices}, preds, name)
        spans.append((result.equity.index[0], result.equity.index[-1], len(result.equity)))
    assert len(set(spans)) == 1
    assert spans[0][0] == pd.Timestamp(preds["date"].min())


def test_equal_weight_portfolio_across_tickers():
    a, b = make_bars(300, seed=1), make_bars(300, seed=2)
    preds = pd.concat(
        [predictions_for(a, np.full(300, 0.01), ticker="A"), predictions_for(b, np.full(300, 0.01), ticker="B")]
    )
    result = run_backtest({"A": a, "B": b}, preds, "lstm_signal", FREE, warmup=0)
    first = result.fills.groupby("ticker")["size"].first()
    # half of the equity each (less the 1% cash buffer), sized at the first close
    assert first["A"] == math.trunc(0.5 * 100_000 * 0.99 / a["close"].iloc[0])
    assert first["B"] == math.trunc(0.5 * 100_000 * 0.99 / b["close"].iloc[0])


def test_bad_predictions_are_clear_errors():
    prices = make_bars(60)
    preds = predictions_for(prices, np.zeros(60))
    with pytest.raises(StrategyError, match="do not cover"):
        run_backtest({"T": prices}, preds.drop(index=30), "lstm_signal")
    with pytest.raises(StrategyError, match="duplicate prediction date"):
        run_backtest({"T": prices}, pd.concat([preds, preds.iloc[[5]]]), "lstm_signal")
    with pytest.raises(StrategyError, match="no price bar"):
        shifted = preds.copy()
        shifted.loc[shifted.index[10], "date"] = pd.Timestamp("2015-01-03")  # a Saturday
        run_backtest({"T": prices}, shifted.sort_values("date"), "lstm_signal")
    with pytest.raises(StrategyError, match="did you mean 'sma_cross'"):
        run_backtest({"T": prices}, preds, "sma_crosss")
    with pytest.raises(StrategyError, match="did you mean 'enter_long'"):
        run_backtest({"T": prices}, preds, "lstm_signal", params={"enter_lng": 0.1})


def test_psr_matches_quantstats_and_dsr_falls_with_more_trials():
    import quantstats as qs

    from backtests.stats import deflated_sharpe, expected_max_sharpe, probabilistic_sharpe

    returns = pd.Series(
        np.random.default_rng(7).normal(0.0006, 0.01, 750), index=pd.bdate_range("2016-01-01", periods=750)
    )
    assert probabilistic_sharpe(returns) == pytest.approx(qs.stats.probabilistic_sharpe_ratio(returns), rel=1e-12)
    # Expected best of N unskilled Sharpes: 0 for one trial; for N = 10 and variance 0.0004 by hand:
    assert expected_max_sharpe(1, 0.0004) == 0.0
    from scipy.stats import norm

    by_hand = 0.02 * ((1 - 0.5772156649015329) * norm.ppf(0.9) + 0.5772156649015329 * norm.ppf(1 - 1 / (10 * math.e)))
    assert expected_max_sharpe(10, 0.0004) == pytest.approx(by_hand)
    dsr = [deflated_sharpe(returns, n, 0.0004) for n in (1, 2, 5, 10, 50)]
    assert dsr[0] == pytest.approx(probabilistic_sharpe(returns))
    assert all(a > b for a, b in zip(dsr, dsr[1:])), dsr


def test_stop_loss_closes_and_waits_for_a_new_signal():
    closes = [100, 100, 99, 97, 96, 94, 93, 95, 97, 99, 101, 103]
    opens = [100, 100, 100, 98, 96, 95, 93, 94, 96, 98, 100, 102]
    prices = bars_from(opens, closes)
    signal = [1] * 8 + [0, 1, 1, 1]
    result = run_backtest(
        {"T": prices}, predictions_for(prices, signal), "lstm_signal", FREE, params={"stop_loss": 0.05}, warmup=0
    )
    fills = result.fills
    # bought at open 1 (100); close 5 (94) is 6% under entry: sold at open 6; flat through bar 8's
    # flat signal; the new long signal at close 9 buys again at open 10
    assert list(fills["date"]) == [prices.index[1], prices.index[6], prices.index[10]]
    assert list(np.sign(fills["size"])) == [1, -1, 1]


def test_volatility_targeting_scales_exposure():
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 60)))
    prices = bars_from(close, close)
    signal = [0] * 30 + [1] * 30
    result = run_backtest(
        {"T": prices},
        predictions_for(prices, signal),
        "lstm_signal",
        FREE,
        params={"target_vol": 0.10, "vol_window": 20},
        warmup=0,
    )
    window = np.log(close[10:31])  # the 21 closes up to the decision bar 30 give 20 returns
    realised = np.std(np.diff(window), ddof=1) * np.sqrt(252)
    first = result.fills.iloc[0]
    equity = 100_000.0
    assert first["date"] == prices.index[31]
    # sized at the deciding close (bar 30) on 99% of equity (the cash buffer), whole shares
    assert first["size"] == math.trunc(0.10 / realised * equity * 0.99 / close[30])


def test_short_borrow_cost_lowers_short_returns():
    prices = make_bars(120, seed=3)
    preds = predictions_for(prices, np.full(120, -0.01))
    free = run_backtest({"T": prices}, preds, "lstm_signal", FREE, params={"allow_short": True}, warmup=0)
    costly = run_backtest(
        {"T": prices},
        preds,
        "lstm_signal",
        FREE.model_copy(update={"short_borrow_rate": 0.2}),
        params={"allow_short": True},
        warmup=0,
    )
    assert free.fills["size"].iloc[0] < 0 and len(free.fills) == 1
    assert costly.fills["size"].tolist() == free.fills["size"].tolist()
    # Backtrader charges each bar the calendar days since the last charge x the entry value x rate / 365
    short_value = -free.fills["value"].iloc[0]
    days = (prices.index[-1] - free.fills["date"].iloc[0]).days
    gap = free.equity.iloc[-1] - costly.equity.iloc[-1]
    assert gap == pytest.approx(short_value * 0.2 * days / 365, rel=1e-9)


def test_idle_cash_earns_the_cash_rate_and_the_sharpe_subtracts_it():
    from backtests.stats import summarise

    prices = bars_from([100.0] * 12, [100.0 + i % 3 for i in range(12)])
    broker = BrokerSpec(cash=10_000, commission_pct=0.0, slippage_pct=0.0, cash_rate=0.05)
    flat = run_backtest({"T": prices}, predictions_for(prices, np.full(12, -0.01)), "lstm_signal", broker, warmup=0)
    daily = 1.05 ** (1 / 252) - 1
    # never invested: the interest on the cash at each close is booked at the next bar, so the close of
    # bar k holds k credits, compounded; the last of the 12 bars holds 11
    assert flat.fills.empty
    assert flat.equity.iloc[-1] == pytest.approx(10_000 * (1 + daily) ** 11, rel=1e-12)
    assert flat.equity.iloc[1] == pytest.approx(10_000 * (1 + daily), rel=1e-12)
    row = summarise(flat, "T")
    assert abs(row["sharpe"]) < 1e-6 or np.isnan(row["sharpe"])  # cash earns exactly the risk-free rate
    no_interest = run_backtest(
        {"T": prices},
        predictions_for(prices, np.full(12, -0.01)),
        "lstm_signal",
        broker.model_copy(update={"cash_rate": 0.0}),
        warmup=0,
    )
    assert no_interest.equity.iloc[-1] == 10_000


def test_a_reversal_cash_cant_pay_closes_the_position_and_refuses_the_rest():
    # short 99 at open 1 (100); at close 1 (150) the rule reverses to long 33; the open of bar 2 gaps to 200:
    # covering takes 19,800 of the 19,900 cash, so the long part can't be paid: closed, the rest refused
    prices = bars_from(open_=[100, 100, 200, 200], close=[100, 150, 200, 200])
    result = run_backtest(
        {"T": prices},
        predictions_for(prices, [-1, 1, 1, 1]),
        "lstm_signal",
        FREE.model_copy(update={"cash": 10_000}),
        params={"allow_short": True},
        warmup=0,
    )
    assert result.fills["size"].tolist() == [-99.0, 99.0]  # the cover is a fill, though the order was refused
    assert result.rejected_orders == 1
    assert result.positions["T"].tolist() == [0, -99, 0, 0]
    assert result.equity.iloc[-1] == pytest.approx(10_000 + 99 * 100 - 99 * 200)


def test_a_day_without_a_prediction_is_no_decision():
    # a NaN prediction (e.g. a predicted close <= 0) keeps the position: here the long bought at open 1 is held
    prices = bars_from(open_=[100, 101, 102, 103, 104], close=[100, 101, 102, 103, 104])
    result = run_backtest(
        {"T": prices}, predictions_for(prices, [1, np.nan, np.nan, -1, 0]), "lstm_signal", FREE, warmup=0
    )
    held = result.positions["T"].tolist()
    assert held[1] == held[2] == held[3] > 0 and held[4] == 0


def test_a_two_ticker_book_buys_only_what_cash_pays_for_when_one_leg_has_grown():
    # A rises 30% while both are held; B is sold and bought back: its buy must fit the cash left,
    # not half of equity, or the broker refuses it every session
    n = 30
    a = 100 * np.cumprod(np.r_[1.0, np.full(n - 1, 1.01)])
    b = np.full(n, 50.0)
    prices = {"A": bars_from(a, a), "B": bars_from(b, b)}
    signal_b = [1.0] * 20 + [0.0] + [1.0] * (n - 21)
    preds = pd.concat(
        [predictions_for(prices["A"], [1.0] * n, ticker="A"), predictions_for(prices["B"], signal_b, ticker="B")]
    )
    result = run_backtest(prices, preds, "lstm_signal", FREE, warmup=0)  # A's wanted exposure never moves
    assert result.rejected_orders == 0
    rebuy = result.fills[(result.fills["ticker"] == "B") & (result.fills["date"] == prices["B"].index[22])]
    assert len(rebuy) == 1
    # decided at close 21: cash after B's sale less 1% of equity, at B's close (no costs)
    held_a = result.positions["A"].iloc[21]
    equity = result.equity.iloc[21]
    cash = equity - held_a * a[21]
    assert rebuy["size"].iloc[0] == math.trunc((cash - 0.01 * equity) / 50.0)


@pytest.mark.parametrize("cash, expected_rule", [(10_000, "percent plus per share"), (1_500, "the minimum")])
def test_commission_is_percent_plus_per_share_with_a_minimum_per_fill(cash, expected_rule):
    # long from close 0 (sized with the costs), flat from close 2: two fills at the opens of bars 1 and 3
    prices = bars_from(open_=[100, 101, 102, 103, 104], close=[100, 101.5, 102.5, 103.5, 104])
    broker = BrokerSpec(
        cash=cash,
        commission_pct=0.001,
        commission_per_share=0.02,
        commission_min=5.0,
        slippage_pct=0.0,
        close_at_end=False,
    )
    result = run_backtest({"T": prices}, predictions_for(prices, [1, 1, 0, 0, 0]), "lstm_signal", broker, warmup=0)
    size = math.trunc(cash * 0.99 / (100 * 1.001 + 0.02))
    assert result.fills["size"].tolist() == [size, -size]
    worked = [max(5.0, size * 101 * 0.001 + size * 0.02), max(5.0, size * 103 * 0.001 + size * 0.02)]
    assert result.fills["commission"].tolist() == pytest.approx(worked, rel=1e-12)
    hit_minimum = [w == 5.0 for w in worked]
    assert hit_minimum == ([False, False] if expected_rule == "percent plus per share" else [True, True])
    # the cash ends as the hand-worked round trip: bought at 101, sold at 103, less both commissions
    assert result.equity.iloc[-1] == pytest.approx(cash + size * (103 - 101) - sum(worked), rel=1e-12)
