"""A paper account that trades a universe model's ranking (xs_rank) makes exactly the backtest's decisions."""

import numpy as np
import pandas as pd
import pytest

from backtests.config import load_config
from backtests.engine import run_backtest
from backtests.experiment import load_experiment_prices
from forecasting.data import load_prices
from forecasting.tasks import walk_forward_predict
from trading.account import Account, init_account, replay
from trading.readout import status

TICKERS = ["AAPL", "JNJ", "KO", "MSFT", "XOM"]
RULE = {"forecast": "lstm", "k": 2, "rebalance_every": 3}


@pytest.fixture(scope="module")
def universe_sets(tmp_path_factory):
    """Five close-only CSV files (from the embedded universe) and a tiny global network over them."""
    folder = tmp_path_factory.mktemp("universe")
    prices = load_prices("builtin:sp500_stocks", "2018-01-01", "2019-06-28")
    for ticker in TICKERS:
        prices[ticker].rename(columns=str.title).rename_axis("Date").to_csv(folder / f"{ticker}.csv")
    return [
        f'data.source="csv:{folder}/*.csv"',
        'data.start="2018-01-01"',
        'model.features=["log_return", "log_return_5"]',
        'model.scope="global"',
        'model.target="xs_rank"',
        "model.lookback=5",
        "model.units=4",
        "model.n_layers=1",
        "model.epochs=2",
        "walk_forward.min_train=200",
        "walk_forward.retrain_every=40",
        "walk_forward.finetune_window=30",
        'strategies=[{name="xs_rank", params={forecast="lstm", k=2, rebalance_every=3}}]',
        'paper.strategy="xs_rank"',
    ]


def test_a_universe_account_replays_the_backtests_predictions_decisions_and_equity(tmp_path, universe_sets):
    config = load_config(None, universe_sets)
    prices = load_experiment_prices(config)
    assert sorted(prices) == TICKERS
    predictions = walk_forward_predict(prices, config.model, config.walk_forward, config.seed)
    broker = config.broker.model_copy(update={"close_at_end": False})
    result = run_backtest(prices, predictions, "xs_rank", broker, RULE)
    lstm = predictions[predictions["model"] == "lstm"]
    first, last = lstm["date"].min(), lstm["date"].max()

    init_account(None, universe_sets, "xs", "local", tmp_path)
    with Account(tmp_path, "xs") as account:
        replay(account, first.date(), last.date())
        signals = account.ledger.table("signals", "rowid")
        equity = account.ledger.table("equity", "rowid")
        fills = account.ledger.table("fills", "rowid")
        state = status(account)
    signals["date"] = pd.to_datetime(signals["date"])
    # every ticker on every session, predicted by the same network, bit for bit
    mine = signals.set_index(["date", "ticker"])["y_pred"].sort_index()
    theirs = lstm.set_index(["date", "ticker"])["y_pred"].sort_index()
    assert list(mine.index) == list(theirs.index)
    np.testing.assert_array_equal(mine.to_numpy(), theirs.to_numpy())
    # the same weights on every rebalance session (every third), NaN on the others
    decided = result.decisions.assign(date=pd.to_datetime(result.decisions["date"]))
    decided = decided[decided["date"] <= last]  # (the feed's last bar, where the last orders fill, has no forecast)
    decided = decided.set_index(["date", "ticker"])["target"].sort_index()
    paper = signals.set_index(["date", "ticker"])["target"].sort_index()
    np.testing.assert_array_equal(paper.loc[decided.index].to_numpy(), decided.to_numpy())
    assert paper.drop(decided.index).isna().all()
    sessions = sorted(set(signals["date"]))
    # every third session decides; in between, only a buy refused since the last decision is retried
    decision_days = set(decided.index.get_level_values("date"))
    assert set(sessions[::3]) <= decision_days
    for day in decision_days - set(sessions[::3]):
        assert len(decided.loc[day]) < len(TICKERS)
    # the same fills, and the same equity at every close
    assert len(fills) >= 4
    bt_fills = result.fills[pd.to_datetime(result.fills["date"]) <= last]
    assert fills["qty"].tolist() == bt_fills["size"].tolist()
    np.testing.assert_allclose(fills["price"], bt_fills["price"], rtol=1e-12)
    paper_equity = equity.assign(date=pd.to_datetime(equity["date"])).set_index("date")["equity"]
    np.testing.assert_allclose(
        paper_equity.to_numpy(), result.equity.reindex(paper_equity.index).to_numpy(), rtol=1e-9, atol=0
    )
    assert state["drift"]["target_mismatches"] == 0 and state["drift"]["max_equity_drift"] < 1e-9
    assert "universe" in state["models"]


def test_a_volatility_targeting_account_on_a_return_model_is_refused_with_one_clear_error(tmp_path):
    from backtests.errors import BacktestError

    sets = ['strategies=[{name="vol_target", params={forecast="lstm"}}]', 'paper.strategy="vol_target"']
    with pytest.raises(BacktestError, match="trades a variance forecast, but the model forecasts return"):
        init_account(None, sets, "vol", "local", tmp_path)
    assert not (tmp_path / "vol").exists()
