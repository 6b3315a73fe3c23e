"""Paper trading: replay parity with the backtest, idempotent and crash-safe steps, the Alpaca path
against a loopback stub of its REST API, and bad input."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from backtests.config import load_config
from backtests.engine import run_backtest
from backtests.experiment import load_experiment_prices
from forecasting.faults import FAULT_ENV
from forecasting.tasks import walk_forward_predict
from forecasting.walkforward import make_samples
from lstm_trader.cli import app
from tests.helpers import KEY, SECRET, AlpacaStub, without_alpaca
from trading.account import Account, init_account, replay
from trading.readout import status

runner = CliRunner()
# a tiny network on the last 2.5 years of the embedded S&P 500: 4 folds, about 130 test sessions
SETS = [
    'data.start="2016-06-01"',
    'model.features=["log_return", "rsi_14"]',
    "model.lookback=5",
    "model.units=4",
    "model.n_layers=1",
    "model.epochs=2",
    "walk_forward.min_train=500",
    "walk_forward.retrain_every=40",
    "walk_forward.finetune_window=50",
]
ALWAYS_LONG = SETS + ['strategies=[{name="lstm_signal", params={enter_long=-1.0}}]']
# long throughout with volatility targeting: a rebalancing order every week or two
VOL_TARGET = {"enter_long": -1.0, "target_vol": 0.08, "rebalance_band": 0.05}
REBALANCING = SETS + [
    'strategies=[{name="lstm_signal", params={enter_long=-1.0, target_vol=0.08, rebalance_band=0.05}}]'
]
CLI_SETS = [item for s in SETS for item in ("--set", s)]


@pytest.fixture(scope="module")
def predicted():
    config = load_config(None, SETS)
    prices = load_experiment_prices(config)
    return config, prices, walk_forward_predict(prices, config.model, config.walk_forward, config.seed)


def replayed(root, name="acct", start=None, end=None, sets=SETS):
    init_account(None, sets, name, "local", root)
    with Account(root, name) as account:
        replay(account, start, end)
        tables = {t: account.ledger.table(t, "rowid") for t in ("signals", "orders", "fills", "equity", "steps")}
        state = status(account)
    return tables, state


# long and short, with interest on cash, a borrow fee, a minimum commission per fill and per-share fees
SHORTS = {"allow_short": True}
COSTLY = {"cash_rate": 0.04, "short_borrow_rate": 0.03, "commission_min": 2.0, "commission_per_share": 0.005}
SHORTING = (
    SETS
    + ['strategies=[{name="lstm_signal", params={allow_short=true}}]']
    + [f"broker.{key}={value}" for key, value in COSTLY.items()]
)


@pytest.mark.parametrize(
    "sets, params, broker",
    [(SETS, {}, {}), (REBALANCING, VOL_TARGET, {}), (SHORTING, SHORTS, COSTLY)],
    ids=["default", "vol-target", "shorts-and-fees"],
)
def test_replay_makes_the_backtests_decisions_and_equity(tmp_path, predicted, sets, params, broker):
    # the run's way: the walk-forward's predictions table, traded by the backtest (positions kept at the end)
    config, prices, predictions = predicted
    costs = config.broker.model_copy(update={"close_at_end": False, **broker})
    result = run_backtest(prices, predictions, "lstm_signal", costs, params)
    lstm = predictions[predictions["model"] == "lstm"]
    first, last = lstm["date"].min(), lstm["date"].max()
    tables, state = replayed(tmp_path, start=first.date(), end=last.date(), sets=sets)
    signals = tables["signals"].assign(date=pd.to_datetime(tables["signals"]["date"])).set_index("date")
    # every session of the test span, predicted by the same network (bit for bit) ...
    assert list(signals.index) == list(lstm["date"])
    np.testing.assert_array_equal(signals["y_pred"].to_numpy(), lstm["y_pred"].to_numpy())
    # ... decided the same way ...
    decisions = result.decisions.assign(date=pd.to_datetime(result.decisions["date"])).set_index("date")["target"]
    np.testing.assert_array_equal(signals["target"].to_numpy(), decisions.reindex(signals.index).to_numpy())
    # ... and filled the same way: the same equity at every close
    equity = tables["equity"].assign(date=pd.to_datetime(tables["equity"]["date"])).set_index("date")["equity"]
    np.testing.assert_allclose(equity.to_numpy(), result.equity.reindex(equity.index).to_numpy(), rtol=1e-9, atol=0)
    fills = tables["fills"]
    assert len(fills) >= 2  # it traded: the comparison is not between two idle books
    bt_fills = result.fills[result.fills["date"] <= last]
    assert fills["qty"].tolist() == bt_fills["size"].tolist()
    np.testing.assert_allclose(fills["price"], bt_fills["price"], rtol=1e-12)
    assert state["drift"]["target_mismatches"] == 0 and state["drift"]["max_equity_drift"] < 1e-9


def test_a_step_twice_sends_nothing_new_and_holidays_do_nothing(tmp_path):
    init_account(None, ALWAYS_LONG, "twice", "local", tmp_path)
    with Account(tmp_path, "twice") as account:
        (first,) = account.step(pd.Timestamp("2018-12-03").date())
        assert first.status == "done" and len(first.orders) == 1
        order = first.orders[0]
        close = account.prices()["sp500"].loc["2018-12-03", "close"]
        cost = 1.0005 * 1.0005
        assert order["qty"] == math.trunc(100_000 * 0.99 / (close * cost))
        nonce = account.info["nonce"]
        assert order["client_order_id"] == f"lt-twice-{nonce}-sp500-20181203-buy" and order["symbol"] == "SPY"
        (again,) = account.step(pd.Timestamp("2018-12-03").date())
        assert again.status == "already"
        (holiday,) = account.step(pd.Timestamp("2018-12-05").date())  # markets closed for a national day of mourning
        assert holiday.status == "holiday"
        # the next session fills the order at its open (2018-12-04), slippage and commission included
        (nxt,) = account.step(pd.Timestamp("2018-12-04").date())
        fills = account.ledger.table("fills")
        open_ = account.prices()["sp500"].loc["2018-12-04", "open"]
        assert fills["price"].tolist() == pytest.approx([open_ * 1.0005])
        assert fills["commission"].tolist() == pytest.approx([order["qty"] * open_ * 1.0005 * 0.0005])
        assert len(account.ledger.table("orders")) == 1 and nxt.fills == 1


@pytest.mark.parametrize("phase", ["after-send", pytest.param("before-done", marks=pytest.mark.slow)])
def test_kill_9_during_a_step_then_rerun_ends_as_an_unbroken_run(tmp_path, phase):
    start, end = "2018-10-01", "2018-11-02"
    reference, _ = replayed(
        tmp_path / "unbroken", start=pd.Timestamp(start).date(), end=pd.Timestamp(end).date(), sets=REBALANCING
    )
    crash_day = reference["orders"]["date"].iloc[2]  # a day that sends an order, after others were filled
    root = tmp_path / "crashed"
    init_account(None, REBALANCING, "acct", "local", root)
    command = [
        sys.executable,
        "-m",
        "lstm_trader.cli",
        "paper",
        "replay",
        "acct",
        "--from",
        start,
        "--to",
        end,
        "--paper-dir",
        str(root),
    ]
    crashed = subprocess.run(command, env={**os.environ, FAULT_ENV: f"paper.{phase}:{crash_day}"}, capture_output=True)
    assert crashed.returncode == -9  # killed, as by kill -9
    with Account(root, "acct") as account:
        assert account.ledger.last_step() < crash_day  # the crashed day is not marked done
        replay(account, pd.Timestamp(start).date(), pd.Timestamp(end).date())
        tables = {t: account.ledger.table(t, "rowid") for t in ("signals", "orders", "fills", "equity")}
        sent_to_broker = account.ledger.db.execute("SELECT count(*) FROM broker_orders").fetchone()[0]
    assert sent_to_broker == len(reference["orders"])  # no order sent twice
    for name, table in tables.items():  # order ids differ only by each account's nonce
        if "client_order_id" in table:
            assert table["client_order_id"].is_unique
            table, reference[name] = (t.drop(columns="client_order_id") for t in (table, reference[name]))
        pd.testing.assert_frame_equal(table, reference[name], check_exact=True, obj=name)


def test_paper_cli_init_step_status(tmp_path):
    root = str(tmp_path / "paper")
    made = runner.invoke(app, ["paper", "init", *CLI_SETS, "--name", "cli", "--paper-dir", root])
    assert made.exit_code == 0, made.output
    stepped = runner.invoke(app, ["paper", "step", "cli", "--date", "2018-12-07", "--paper-dir", root])
    assert stepped.exit_code == 0, stepped.output
    # the walk-forward's fold of 2018-12-07: sessions since the first test sample, in blocks of 40
    config = load_config(None, SETS)
    samples = make_samples(load_experiment_prices(config)["sp500"].loc[:"2018-12-07"], config.model)
    fold = (len(samples.dates) - 1 - (500 - 1 + 1)) // 40
    assert "2018-12-07  equity 100,000.00" in stepped.output
    assert fold >= 2 and f"trained fold 0-{fold}\n" in stepped.output  # every fold up to it, as a span
    shown = runner.invoke(app, ["paper", "status", "cli", "--json", "--paper-dir", root])
    state = json.loads(shown.output)
    assert state["steps"] == 1 and state["equity"] == 100_000.0 and state["models"]["sp500"]["fold"] == fold


def test_paper_init_names_the_paper_dir_in_its_next_line_and_replay_counts_sessions_already_stepped(tmp_path):
    import shlex

    root = str(tmp_path / "elsewhere")
    made = runner.invoke(app, ["paper", "init", *CLI_SETS, "--name", "cli", "--paper-dir", root])
    assert made.exit_code == 0, made.output
    step_line = made.output.split("next: ")[1].split(" (after each close)")[0]
    assert step_line == f"lstm-trader paper step cli --paper-dir {shlex.quote(root)}"
    stepped = runner.invoke(app, shlex.split(step_line)[1:] + ["--date", "2018-12-07"])  # the line, followed
    assert stepped.exit_code == 0, stepped.output
    replayed_ = runner.invoke(
        app, ["paper", "replay", "cli", "--from", "2018-12-06", "--to", "2018-12-11", "--paper-dir", root]
    )
    assert replayed_.exit_code == 0, replayed_.output
    # 12-06 is before the account's first step (not counted), 12-07 was stepped, 12-10 and 12-11 are new
    assert "replayed 2 sessions of 'cli' (1 already done)" in replayed_.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["step", "ghost"], "unknown paper account 'ghost'"),
        (["step", "acct", "--date", "2019-01-04"], "the data ends on 2018-12-31, before 2019-01-04"),
        (["step", "acct", "--date", "2017-01-03"], "comes before the walk-forward's first prediction"),
        (["replay", "acct", "--from", "2018-12-10", "--to", "2018-12-03"], "is before --from"),
    ],
)
def test_bad_input_is_one_error_line_and_leaves_the_ledger_alone(tmp_path, args, message):
    root = tmp_path / "paper"
    init_account(None, SETS, "acct", "local", root)
    before = (root / "acct" / "ledger.sqlite").read_bytes()
    result = runner.invoke(app, ["paper", *args, "--paper-dir", str(root)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert (root / "acct" / "ledger.sqlite").read_bytes() == before


def test_init_refuses_an_existing_account_and_a_non_lstm_strategy(tmp_path):
    init_account(None, SETS, "acct", "local", tmp_path)
    again = runner.invoke(app, ["paper", "init", "--name", "acct", "--paper-dir", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output
    rule = runner.invoke(
        app, ["paper", "init", "--name", "b", "--set", 'paper.strategy="sma_cross"', "--paper-dir", str(tmp_path)]
    )
    assert rule.exit_code == 2 and "does not trade the LSTM's forecast" in rule.output
    # a history too short for the walk-forward's first fold is refused now, not at every step after
    short = runner.invoke(
        app, ["paper", "init", "--name", "c", "--set", 'data.start="2018-01-02"', "--paper-dir", str(tmp_path)]
    )
    lines = [line for line in short.output.splitlines() if line.strip()]
    assert short.exit_code == 2 and len(lines) == 1 and "usable rows, but" in lines[0] and "data.start" in lines[0]
    assert not (tmp_path / "c").exists()


# --- the Alpaca path, against a stub of its paper REST API on 127.0.0.1 -------------------------------


@pytest.fixture
def alpaca(httpserver, monkeypatch):
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    monkeypatch.setenv("APCA_API_BASE_URL", httpserver.url_for("").rstrip("/"))
    return AlpacaStub(httpserver)


def alpaca_account(root, name="live"):
    sets = [item for s in ALWAYS_LONG for item in ("--set", s)]
    made = runner.invoke(app, ["paper", "init", *sets, "--name", name, "--broker", "alpaca", "--paper-dir", str(root)])
    assert made.exit_code == 0, made.output
    return made.output


def test_alpaca_step_sends_the_order_once_and_never_writes_the_keys(tmp_path, alpaca):
    root = tmp_path / "paper"
    output = alpaca_account(root)
    step = ["paper", "step", "live", "--date", "2018-12-03", "--paper-dir", str(root)]
    first = runner.invoke(app, step)
    assert first.exit_code == 0, first.output
    (order,) = alpaca.orders.values()
    close = load_experiment_prices(load_config(None, SETS))["sp500"].loc["2018-12-03", "close"]
    assert order["symbol"] == "SPY" and order["side"] == "buy" and order["time_in_force"] == "day"
    assert float(order["qty"]) == math.trunc(100_000 * 0.99 / (close * 1.0005 * 1.0005))
    nonce = json.loads((root / "live" / "account.json").read_text())["nonce"]
    assert order["client_order_id"] == f"lt-live-{nonce}-sp500-20181203-buy"
    second = runner.invoke(app, step)
    assert second.exit_code == 0 and "already stepped" in second.output
    assert alpaca.posts == 1
    # the keys are nowhere: not in the account dir, not in anything printed
    for path in (root / "live").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert KEY.encode() not in data and SECRET.encode() not in data, path
    for text in (output, first.output, second.output):
        assert KEY not in text and SECRET not in text


def test_alpaca_dropped_connection_is_reconciled_not_duplicated(tmp_path, alpaca):
    root = tmp_path / "paper"
    alpaca_account(root)
    step = ["paper", "step", "live", "--date", "2018-12-03", "--paper-dir", str(root)]
    alpaca.drop_after_accept = True
    broken = runner.invoke(app, step)
    assert broken.exit_code == 2 and "cannot reach the API" in broken.output
    assert alpaca.posts == 1
    alpaca.drop_after_accept = False
    again = runner.invoke(app, step)
    assert again.exit_code == 0, again.output
    assert "found at the broker, not resent" in again.output
    assert alpaca.posts == 1  # reconciled by its client order id, not sent twice
    with Account(root, "live") as account:
        (row,) = account.ledger.orders()
        assert row["status"] == "sent" and row["broker_id"] == "order-1"


def test_alpaca_errors_are_one_line_and_leave_the_ledger_alone(tmp_path, alpaca, monkeypatch):
    root = tmp_path / "paper"
    alpaca_account(root)
    ledger = root / "live" / "ledger.sqlite"
    before = ledger.read_bytes()
    step = ["paper", "step", "live", "--date", "2018-12-03", "--paper-dir", str(root)]

    alpaca.is_open = True  # a market order sent now would fill during the session, not at the next open
    alpaca.now = "2018-12-04T15:00:00Z"
    result = runner.invoke(app, step)
    assert result.exit_code == 2 and result.output.startswith("error: the market is open (2018-12-04)")
    alpaca.is_open = False

    monkeypatch.setenv("APCA_API_SECRET_KEY", "wrong")
    result = runner.invoke(app, step)
    assert result.exit_code == 2 and "Alpaca refused the keys" in result.output and "wrong" not in result.output
    monkeypatch.delenv("APCA_API_SECRET_KEY")
    result = runner.invoke(app, step)
    assert result.exit_code == 2 and "needs APCA_API_KEY_ID and APCA_API_SECRET_KEY" in result.output
    assert ledger.read_bytes() == before
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)

    alpaca.refuse = (403, "insufficient buying power")
    result = runner.invoke(app, step)
    assert result.exit_code == 2 and "rejected" in result.output and "insufficient buying power" in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1
    with Account(root, "live") as account:
        (row,) = account.ledger.orders()
        assert row["status"] == "rejected" and "buying power" in row["reason"]
    assert alpaca.posts == 0


def test_alpaca_without_the_extra_names_it(tmp_path, monkeypatch):
    without_alpaca(monkeypatch)
    result = runner.invoke(app, ["paper", "init", "--name", "x", "--broker", "alpaca", "--paper-dir", str(tmp_path)])
    assert result.exit_code == 2 and "pip install 'lstm-trader[alpaca]'" in result.output
    assert not (tmp_path / "x").exists()


def test_local_broker_closes_then_refuses_what_cash_cant_pay_as_backtrader_does():
    # the numbers of test_backtest's reversal case: short 99 at 100, then buy 132 at an open of 200
    import sqlite3

    from backtests.engine import BrokerSpec
    from trading.brokers import LocalBroker

    db = sqlite3.connect(":memory:", isolation_level=None)
    costs = BrokerSpec(cash=10_000, commission_pct=0.0, slippage_pct=0.0)
    LocalBroker.create(db, costs)
    broker = LocalBroker(db, costs)
    broker.submit("short", "T", "T", -99.0, "2020-01-01")
    fills, refused = broker.settle("2020-01-02", {"T": 100.0})
    assert [f.qty for f in fills] == [-99.0] and broker.book().cash == 19_900
    broker.submit("reverse", "T", "T", 132.0, "2020-01-02")
    fills, refused = broker.settle("2020-01-03", {"T": 200.0})
    assert [(f.qty, f.price) for f in fills] == [(99.0, 200.0)]
    assert [order for order, _ in refused] == ["reverse"]
    book = broker.book()
    assert book.positions == {} and book.cash == pytest.approx(10_000 + 99 * 100 - 99 * 200)
