"""Dividends: read from a source that has them, credited to holders on the ex-date (shorts pay them)."""

import numpy as np
import pandas as pd
import pytest

from backtests.engine import BrokerSpec, run_backtest
from forecasting.data import load_prices
from forecasting.errors import DataError
from tests.helpers import bars_from, predictions_for

BROKER = BrokerSpec(cash=1000.0, commission_pct=0.0, slippage_pct=0.0, cash_buffer=0.0, close_at_end=False)


def bars_with_dividend(amount: float = 1.0) -> pd.DataFrame:
    # a flat price of 10: the only change in equity is the dividend, paid on the 4th bar (its ex-date)
    frame = bars_from([10.0] * 8, [10.0] * 8)
    frame["dividends"] = 0.0
    frame.iloc[3, frame.columns.get_loc("dividends")] = amount
    return frame


def test_a_long_holder_of_record_is_credited_the_dividend_worked_by_hand():
    # buy-and-hold: 1,000 at 10 buys 100 shares at the 2nd bar's open; the 4th bar's dividend of 1.00 a
    # share is 100.00, booked at the next bar: equity 1,000 before, 1,100 from the 5th bar on
    prices = bars_with_dividend()
    table = predictions_for(prices.drop(columns="dividends"), np.zeros(len(prices)))
    result = run_backtest({"T": prices}, table, "buy_and_hold", BROKER)
    # the whole path: not a bar early (the ex-date's own close is 1,000), not a bar late
    np.testing.assert_allclose(result.equity.to_numpy(), [1000.0] * 4 + [1100.0] * 4)
    without = run_backtest({"T": prices.drop(columns="dividends")}, table, "buy_and_hold", BROKER)
    assert without.equity.iloc[-1] == pytest.approx(1000.0)


def test_a_short_position_pays_the_dividend_worked_by_hand():
    # always short: 100 shares sold at the 2nd bar's open; the dividend costs it 100.00
    prices = bars_with_dividend()
    table = predictions_for(prices.drop(columns="dividends"), np.full(len(prices), -0.01))
    result = run_backtest({"T": prices}, table, "lstm_signal", BROKER, {"allow_short": True})
    assert result.positions["T"].min() == -100
    assert result.equity.iloc[-1] == pytest.approx(900.0)


def test_dividends_are_read_from_a_csv_column_and_refused_from_the_embedded_data(tmp_path):
    frame = bars_with_dividend(0.5).rename(columns=str.title)
    frame.index.name = "Date"
    frame.to_csv(tmp_path / "T.csv")
    loaded = load_prices(f"csv:{tmp_path / 'T.csv'}", dividends=True)["T"]
    assert loaded["dividends"].sum() == pytest.approx(0.5)
    assert "dividends" not in load_prices(f"csv:{tmp_path / 'T.csv'}")["T"]  # asked for only when wanted
    with pytest.raises(DataError, match="has no dividends: the embedded data are price series"):
        load_prices("builtin:sp500", dividends=True)


def test_a_dividends_column_with_text_is_one_clear_error(tmp_path):
    frame = bars_with_dividend(0.5).rename(columns=str.title)
    frame["Dividends"] = frame["Dividends"].astype(object)
    frame.iloc[2, frame.columns.get_loc("Dividends")] = "soon"
    frame.index.name = "Date"
    frame.to_csv(tmp_path / "T.csv")
    with pytest.raises(DataError, match=r"row 4 \(.*\), column 'dividends': not a number \('soon'\)"):
        load_prices(f"csv:{tmp_path / 'T.csv'}", dividends=True)


def test_the_paper_accounts_local_broker_credits_the_same_dividend(tmp_path):
    from trading.account import Account, init_account, replay

    prices = bars_with_dividend()
    prices = pd.concat([bars_from(np.full(400, 10.0), np.full(400, 10.0), start="2018-06-01"), prices.iloc[:0]])
    prices["dividends"] = 0.0
    ex_date = prices.index[395]
    prices.loc[ex_date, "dividends"] = 1.0
    csv = prices.rename(columns=str.title)
    csv.index.name = "Date"
    csv.to_csv(tmp_path / "T.csv")
    sets = [
        f'data.source="csv:{tmp_path / "T.csv"}"',
        'data.start="2018-06-01"',
        "data.dividends=true",
        'model.features=["log_return"]',
        "model.lookback=5",
        "model.units=2",
        "model.n_layers=1",
        "model.epochs=1",
        "walk_forward.min_train=300",
        "walk_forward.retrain_every=100",
        'strategies=[{name="lstm_signal", params={enter_long=-1.0}}]',
        "broker.cash=1000.0",
        "broker.commission_pct=0.0",
        "broker.slippage_pct=0.0",
        "broker.cash_buffer=0.0",
    ]
    init_account(None, sets, "div", "local", tmp_path / "paper")
    with Account(tmp_path / "paper", "div") as account:
        replay(account, prices.index[390].date(), prices.index[398].date())
        equity = account.ledger.table("equity", "rowid").set_index("date")["equity"]
    # 100 shares held from the 2nd replayed session; the ex-date's 100.00 reaches the cash after the next open:
    # 1,000 through the ex-date (the 6th replayed session), 1,100 from the session after it, as the backtest books it
    assert list(equity.index) == [str(d.date()) for d in prices.index[390:399]]
    np.testing.assert_allclose(equity.to_numpy(), [1000.0] * 6 + [1100.0] * 3)
