"""Paper accounts sized by a variance forecast: `vol_target` on the LSTM's own variance forecast, and
`lstm_signal` sized by a second network's (the account's volatility config). Each replays the backtest of
the walk-forward's predictions bit for bit: the same forecasts, targets, fills and equity."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from backtests.backtest_only import VOL_PREFIX
from backtests.config import load_config
from backtests.engine import daily_return_variance, run_backtest
from backtests.experiment import load_experiment_prices
from forecasting.tasks import walk_forward_predict
from lstm_trader.cli import app
from strategies.decision import annual_vol
from trading.account import VOL_FORECAST, Account, init_account, replay
from trading.health import health
from trading.ledger import PaperLedger
from trading.readout import latest, status

runner = CliRunner()
VOLATILITY = str(Path(__file__).resolve().parent.parent / "configs" / "volatility.toml")
# the tiny network of tests/test_paper.py on the last 2.5 years of the embedded S&P 500: 4 folds
SMALL = [
    'data.start="2016-06-01"',  # (first: a volatility network takes the account's data)
    "model.lookback=5",
    "model.units=4",
    "model.epochs=2",
    "walk_forward.min_train=500",
    "walk_forward.retrain_every=40",
    "walk_forward.finetune_window=50",
]
VOL_TARGET = SMALL + ['paper.strategy="vol_target_lstm"']  # on configs/volatility.toml: the LSTM's own forecast
SIZED_PARAMS = {"enter_long": -1.0, "target_vol": 0.08, "rebalance_band": 0.05, "vol_forecast": VOL_FORECAST}
SIZED = SMALL + [
    'model.features=["log_return", "rsi_14"]',
    'strategies=[{name="lstm_signal", params={enter_long=-1.0, target_vol=0.08, rebalance_band=0.05, '
    'vol_forecast="vol_lstm"}}]',
]


@pytest.fixture(scope="module")
def volatility_run():
    """configs/volatility.toml walked forward (tiny), and its prices."""
    config = load_config(VOLATILITY, VOL_TARGET)
    prices = load_experiment_prices(config)
    return config, prices, walk_forward_predict(prices, config.model, config.walk_forward, config.seed)


def replay_all(root, name, start, end):
    with Account(root, name) as account:
        replay(account, start.date(), end.date())
        tables = {t: account.ledger.table(t, "rowid") for t in ("signals", "fills", "equity")}
        return tables, status(account), latest(account)


def assert_parity(tables, state, result, traded, last):
    signals = tables["signals"].assign(date=pd.to_datetime(tables["signals"]["date"])).set_index("date")
    assert list(signals.index) == list(traded["date"])  # every session of the test span ...
    np.testing.assert_array_equal(signals["y_pred"].to_numpy(), traded["y_pred"].to_numpy())  # ... bit for bit
    decided = result.decisions.assign(date=pd.to_datetime(result.decisions["date"])).set_index("date")["target"]
    np.testing.assert_array_equal(signals["target"].to_numpy(), decided.reindex(signals.index).to_numpy())
    equity = tables["equity"].assign(date=pd.to_datetime(tables["equity"]["date"])).set_index("date")["equity"]
    np.testing.assert_allclose(equity.to_numpy(), result.equity.reindex(equity.index).to_numpy(), rtol=1e-12, atol=0)
    fills = tables["fills"]
    bt_fills = result.fills[result.fills["date"] <= last]
    assert len(fills) >= 10  # it re-sized, often: the comparison is not between two idle books
    assert fills["qty"].tolist() == bt_fills["size"].tolist()
    np.testing.assert_allclose(fills["price"], bt_fills["price"], rtol=1e-12)
    assert state["drift"]["target_mismatches"] == 0 and state["drift"]["max_equity_drift"] < 1e-12
    return signals


def test_a_vol_target_account_sizes_by_the_lstms_variance_forecast_as_the_backtest(tmp_path, volatility_run):
    config, prices, predictions = volatility_run
    spec = next(s for s in config.strategies if s.title == "vol_target_lstm")
    result = run_backtest(
        prices, predictions, "vol_target", config.broker.model_copy(update={"close_at_end": False}), spec.params
    )
    lstm = predictions[predictions["model"] == "lstm"]
    first, last = lstm["date"].min(), lstm["date"].max()
    init_account(VOLATILITY, VOL_TARGET, "vol", "local", tmp_path)
    tables, state, now = replay_all(tmp_path, "vol", first, last)
    signals = assert_parity(tables, state, result, lstm, last)
    # the target is target_vol / the annualised forecast, worked out here from the predictions table's row
    variance = daily_return_variance(lstm).to_numpy()
    np.testing.assert_allclose(signals["vol_pred"], lstm["y_pred"], rtol=0, atol=0)
    np.testing.assert_allclose(signals["vol_ratio"], lstm["return_var_ratio"], rtol=0, atol=0)
    expected = np.minimum(1.0, 0.10 / np.sqrt(252 * variance))
    np.testing.assert_allclose(signals["target"], expected, rtol=1e-15)
    # cut to under a half in the sell-off of December 2018, capped at fully invested in calm spells
    assert signals["target"].min() < 0.5 and signals["target"].max() == 1.0
    # `paper latest` says which volatility sized the last decision, and names no predicted close
    (row,) = now["predictions"]
    assert row["forecast_vol"] == pytest.approx(np.sqrt(252 * variance[-1]), rel=1e-12)
    assert row["predicted_close"] is None and now["target"] == "realized_vol"
    # the service's live quality is the volatility run's QLIKE on the sessions whose outcome is known
    with Account(tmp_path, "vol").reading() as account:
        live = health(account, state)["live"]
    known = lstm[lstm["date"] < last]
    expected = np.mean(
        np.exp(known["y_true"] - known["y_pred"]) - (known["y_true"] - known["y_pred"]) - 1
    )  # p/f - ln(p/f) - 1
    assert live["n"] == len(known) and live["qlike"] == pytest.approx(expected, rel=1e-9)


def test_an_lstm_signal_account_sized_by_a_second_network_replays_the_joined_backtest(tmp_path, volatility_run):
    vol_config, prices, vol_predictions = volatility_run
    config = load_config(None, SIZED)
    returns = walk_forward_predict(prices, config.model, config.walk_forward, config.seed)
    # traded from the volatility network's first forecast on (its features warm up longer)
    returns = returns[returns["date"] >= vol_predictions["date"].min()]
    joined = pd.concat(
        [returns, vol_predictions.assign(model=VOL_PREFIX + vol_predictions["model"])], ignore_index=True
    )  # `lstm-trader backtest --volatility`'s table
    broker = config.broker.model_copy(update={"close_at_end": False})
    result = run_backtest(prices, joined, "lstm_signal", broker, SIZED_PARAMS)
    lstm = returns[returns["model"] == "lstm"]
    first, last = lstm["date"].min(), lstm["date"].max()
    made = runner.invoke(
        app,
        ["paper", "init", *[a for s in SIZED for a in ("--set", s)], "--name", "sized", "--paper-dir", str(tmp_path)]
        + ["--volatility", VOLATILITY, *[a for s in SMALL[1:] for a in ("--volatility-set", s)]],
    )
    assert made.exit_code == 0, made.output
    # the first step trains each network's first fold
    stepped = runner.invoke(app, ["paper", "step", "sized", "--date", str(first.date()), "--paper-dir", str(tmp_path)])
    assert stepped.exit_code == 0 and "trained fold 0, 0\n" in stepped.output, stepped.output
    tables, state, now = replay_all(tmp_path, "sized", first, last)
    signals = assert_parity(tables, state, result, lstm, last)
    vol_lstm = vol_predictions[vol_predictions["model"] == "lstm"].set_index("date")
    np.testing.assert_array_equal(signals["vol_pred"].to_numpy(), vol_lstm["y_pred"].reindex(signals.index).to_numpy())
    # always long, so each target is 0.08 / the annualised variance forecast of the second network, at most 1
    variance = daily_return_variance(vol_lstm.reset_index()).reindex(signals.index).to_numpy()
    np.testing.assert_allclose(signals["target"], np.minimum(1.0, 0.08 / np.sqrt(252 * variance)), rtol=1e-15)
    # both networks are served, each with its own schedule and folder
    assert set(state["models"]) == {"sp500", "sp500 (volatility)"}
    assert (tmp_path / "sized" / "volatility.toml").is_file()
    assert (tmp_path / "sized" / "model-volatility" / "sp500" / "current.json").is_file()
    assert now["predictions"][0]["forecast_vol"] == pytest.approx(annual_vol(variance[-1]), rel=1e-12)
    shown = runner.invoke(app, ["paper", "status", "sized", "--paper-dir", str(tmp_path)])
    text = " ".join(shown.output.replace("│", " ").split())  # the table's cells, unwrapped
    assert f"volatility forecast {annual_vol(variance[-1]):.1%}" in text
    assert "model sp500 (volatility)" in text and "0 target mismatches" in text


def test_a_ledger_written_before_the_variance_columns_gains_them_empty(tmp_path):
    import sqlite3

    path = tmp_path / "ledger.sqlite"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE signals (date TEXT NOT NULL, ticker TEXT NOT NULL, y_pred REAL, y_pred_std REAL, "
        "fold INTEGER, close REAL, target REAL, PRIMARY KEY (date, ticker))"
    )
    old.execute("INSERT INTO signals VALUES ('2018-12-03', 'sp500', 0.001, 0.0, 3, 2790.4, 1.0)")
    old.commit()
    old.close()
    ledger = PaperLedger(path)
    table = ledger.table("signals")
    ledger.close()
    assert {"vol_pred", "vol_ratio", "vol_horizon"} <= set(table) and table["vol_pred"].isna().all()
    assert table["y_pred"].tolist() == [0.001]


def test_the_folds_a_step_trained_are_printed_as_spans():
    from lstm_trader.paper import _spans

    assert _spans([0, 1, 2, 5, 0, 1]) == "0-2, 5, 0-1" and _spans([7]) == "7" and _spans([3, 4]) == "3-4"


def test_each_network_of_an_account_is_held_to_its_own_retraining_schedule():
    from types import SimpleNamespace

    from trading.health import checks

    serve = SimpleNamespace(max_model_age=None, max_equity_gap=0.01, max_target_mismatches=0)
    account = SimpleNamespace(config=SimpleNamespace(serve=serve, walk_forward=SimpleNamespace(retrain_every=40)))
    models = {
        "sp500": {"sessions_served": 30, "retrain_every": 40},
        "sp500 (volatility)": {"sessions_served": 25, "retrain_every": 21},
    }
    (age,) = [c for c in checks(account, {"models": models}) if c["kind"] == "model_age"]
    assert not age["ok"] and "model sp500 (volatility) has served 25 sessions (threshold 21)" in age["message"]
    models["sp500 (volatility)"]["sessions_served"] = 21  # both within their own schedules
    (age,) = [c for c in checks(account, {"models": models}) if c["kind"] == "model_age"]
    assert age["ok"]


def test_a_nan_variance_forecast_stops_the_step_and_writes_nothing(tmp_path, monkeypatch):
    from backtests.errors import BacktestError
    from trading.models import Forecast

    init_account(VOLATILITY, VOL_TARGET, "nan", "local", tmp_path)
    monkeypatch.setattr(Forecast, "variance", lambda self: float("nan"))  # as a diverged network would give
    with Account(tmp_path, "nan") as account:
        with pytest.raises(BacktestError, match="the variance forecast of 2018-12-03 is NaN"):
            account.step(pd.Timestamp("2018-12-03").date())
        assert account.ledger.last_step() is None and account.ledger.table("signals").empty
