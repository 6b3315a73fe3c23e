"""The service's input handling, without a server process: forecasts checked before any work and queued
behind steps, one error shape, HEAD, the restart's log, read-only status, and what a worker inherits."""

import asyncio
import json
import logging
import math
import os

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lstm_trader.cli import app
from tests.test_paper import SETS
from trading import service as service_module
from trading.account import Account, init_account
from trading.clock import Clock
from trading.http import create_app
from trading.ledger import PaperLedger
from trading.service import FORECASTS_WAITING, Service

# a clock long before the account's next close: the scheduler waits, and nothing steps by itself
CLOCK = Clock(pd.Timestamp("2018-12-13T15:00:00Z"), 1.0)


@pytest.fixture
def root(tmp_path):
    init_account(None, SETS, "acct", "local", tmp_path / "paper")
    return tmp_path / "paper"


def opened(root) -> Service:
    service = Service(root, None, CLOCK)
    service.open()
    return service


class Workers:
    """Stands in for Service.run_worker: records each job; a forecast takes `seconds` and then answers."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.calls: list[tuple] = []
        self.running = 0
        self.most_at_once = 0
        self.seconds = seconds

    async def __call__(self, runner, command, *extra) -> dict:
        self.calls.append((command, *extra))
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.running -= 1
        if command == "forecast":
            return {"ok": True, "forecast": [], "args": list(extra)}
        return {"ok": False, "kind": "crash", "error": "not in this test"}


def prepared(service: Service, workers: Workers) -> Service:
    """What `start` prepares for the forecasts, without starting the scheduler."""
    service.run_worker = workers
    service.forecast_slot = asyncio.Semaphore(1)
    for runner in service.runners.values():
        runner.trigger, runner.busy = asyncio.Event(), asyncio.Lock()
    return service


def test_a_forecast_of_a_ticker_outside_the_accounts_data_starts_no_worker(root):
    service = opened(root)
    workers = Workers()

    async def scenario():
        prepared(service, workers)
        answers = {}
        for ticker in ("NOPE", "-h", "--x", "x" * 300, "../../etc/passwd"):
            answers[ticker] = await service.forecast("acct", ticker, 5)
        return answers

    answers = asyncio.run(scenario())
    service.close()
    assert workers.calls == []
    for ticker, (code, body) in answers.items():
        error = json.loads(body)
        assert code == 400 and error["error"].startswith("'") and "is not in the account's data" in error["error"]
        assert error["hint"] == "forecast one of: sp500"
        assert len(error["error"]) < 120  # a huge ticker is not echoed whole
    assert "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…'" in json.loads(answers["x" * 300][1])["error"]


def test_forecasts_run_one_at_a_time_a_bounded_queue_waits_and_a_step_never_waits_for_them(root):
    service = opened(root)
    workers = Workers(seconds=0.3)

    async def scenario():
        prepared(service, workers)
        runner = service.runners["acct"]
        asks = [asyncio.create_task(service.forecast("acct", "sp500", days)) for days in range(1, 9)]
        await asyncio.sleep(0.05)  # the first runs, FORECASTS_WAITING - 1 more wait, the rest are turned away
        started = asyncio.get_running_loop().time()
        async with runner.busy:  # a step comes due while a forecast runs: it takes the account at once
            step_waited = asyncio.get_running_loop().time() - started
            await asyncio.sleep(0.5)  # ... and a forecast still waiting starts only after it
            during_step = len(workers.calls)
        answers = await asyncio.gather(*asks)
        again = await service.forecast("acct", "sp500", 1)  # the same (ticker, days, close): from the cache
        return answers, step_waited, during_step, again

    answers, step_waited, during_step, again = asyncio.run(scenario())
    service.close()
    codes = [code for code, _ in answers]
    assert codes.count(200) == FORECASTS_WAITING and codes.count(503) == 8 - FORECASTS_WAITING
    assert json.loads(answers[-1][1])["error"] == "too many forecasts are waiting"
    assert workers.most_at_once == 1
    assert step_waited < 0.05
    assert during_step == 1  # only the forecast that was already running when the step began
    assert again == answers[0] and len(workers.calls) == FORECASTS_WAITING
    assert workers.calls[0] == ("forecast", "--ticker=sp500", "--days=1")  # one argument each: '-h' stays a value


def test_the_forecast_cache_keeps_the_newest_answers_only(root, monkeypatch):
    monkeypatch.setattr(service_module, "FORECASTS_KEPT", 3)
    service = opened(root)
    workers = Workers()

    async def scenario():
        prepared(service, workers)
        for days in (1, 2, 3, 4, 1):
            await service.forecast("acct", "sp500", days)

    asyncio.run(scenario())
    service.close()
    assert [key[2] for key in service.forecasts] == [3, 4, 1]  # days 1 was dropped, then asked again
    assert len(workers.calls) == 5


def test_an_account_computes_a_bounded_number_of_forecasts_per_close_and_cached_ones_stay_free(root, monkeypatch):
    monkeypatch.setattr(service_module, "FORECASTS_PER_CLOSE", 2)
    service = opened(root)
    workers = Workers()

    async def scenario():
        prepared(service, workers)
        return [await service.forecast("acct", "sp500", days) for days in (1, 2, 3, 1)]

    answers = asyncio.run(scenario())
    service.close()
    assert [code for code, _ in answers] == [200, 200, 429, 200]
    assert "computed its 2 forecasts for the close of" in json.loads(answers[2][1])["error"]
    assert len(workers.calls) == 2


def test_a_forecast_whose_asker_is_gone_takes_its_worker_with_it(root, monkeypatch):
    import os

    service = opened(root)
    started = []
    real_exec = asyncio.create_subprocess_exec

    async def sleeper(*args, **kwargs):  # a worker that would run for a minute
        process = await real_exec(
            "sleep", "60", start_new_session=True, stdout=kwargs["stdout"], stderr=kwargs["stderr"]
        )
        started.append(process)
        return process

    monkeypatch.setattr(asyncio, "create_subprocess_exec", sleeper)

    async def scenario():
        runner = service.runners["acct"]
        runner.busy = asyncio.Lock()
        job = asyncio.create_task(service.run_worker(runner, "forecast", "--ticker=sp500", "--days=2"))
        await asyncio.sleep(0.3)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        return await asyncio.wait_for(started[0].wait(), 5)

    code = asyncio.run(scenario())
    service.close()
    assert code == -9  # killed, not left running beside the next forecast
    with pytest.raises(ProcessLookupError):  # and gone: no process of that id is left (its group neither)
        os.killpg(started[0].pid, 0)


def test_a_reader_sees_one_snapshot_of_the_ledger_while_a_step_commits(root):
    with Account(root, "acct").reading() as account:
        assert account.ledger.last_step() is None
        writer = PaperLedger(root / "acct" / "ledger.sqlite")
        with writer.transaction():  # a step commits while the reader reads
            writer.add("steps", {"date": "2018-12-13", "finished_at": "2018-12-13T21:20:00+00:00"})
        writer.close()
        assert account.ledger.last_step() is None  # still the snapshot it began with
    with Account(root, "acct").reading() as account:
        assert account.ledger.last_step() == "2018-12-13"


def test_every_error_has_one_shape_and_head_answers_get_routes(root):
    service = opened(root)
    application = create_app(service)
    service.start = _nothing  # no scheduler: only the HTTP side
    service.stop = _nothing
    with TestClient(application) as client:
        answers = {
            "unknown path": client.get("/nowhere"),
            "wrong method": client.delete("/health"),
            "days NaN": client.post(
                "/forecast", content=b'{"ticker": "sp500", "days": NaN}', headers={"content-type": "application/json"}
            ),
            "days text": client.post("/forecast", json={"ticker": "sp500", "days": "many"}),
            "huge ticker": client.post("/forecast", json={"ticker": "x" * 300, "days": 2}),
            "not JSON": client.post("/forecast", content=b"{", headers={"content-type": "application/json"}),
            "unknown account": client.get("/accounts/nope"),
            "no token": client.post("/accounts/acct/step"),
        }
        head = client.head("/health")
        got = client.get("/health")
        head_account = client.head("/accounts/nope")
    service.close()
    expected = {
        "unknown path": 404,
        "wrong method": 405,
        "days NaN": 422,
        "days text": 422,
        "huge ticker": 422,
        "not JSON": 422,
        "unknown account": 404,
        "no token": 403,
    }
    for what, answer in answers.items():
        assert answer.status_code == expected[what], (what, answer.text)
        body = answer.json()
        assert set(body) == {"error", "hint"} and body["error"], (what, body)
    assert answers["days NaN"].json()["error"].startswith("days: ")
    assert answers["huge ticker"].json()["error"] == "ticker: String should have at most 64 characters"
    assert answers["not JSON"].json()["error"] == "the body is not valid JSON"
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head_account.status_code == 404


async def _nothing() -> None:
    return None


def test_a_restart_logs_the_steps_no_earlier_log_reported_and_reads_the_last_steps_time(root, caplog):
    ledger = PaperLedger(root / "acct" / "ledger.sqlite")
    with ledger.transaction():
        for day, equity in (("2018-12-13", 100000.0), ("2018-12-14", 100250.5)):
            ledger.add("steps", {"date": day, "finished_at": f"{day}T21:20:00+00:00"})
            ledger.add("equity", {"date": day, "cash": 0.0, "equity": equity, "positions": "{}"})
        ledger.add(
            "orders",
            {
                "client_order_id": "a",
                "date": "2018-12-14",
                "ticker": "sp500",
                "symbol": "SPY",
                "qty": 3.0,
                "status": "sent",
            },
        )
    ledger.close()
    (root / "acct" / "serve").mkdir()
    (root / "acct" / "serve" / "logged.json").write_text(json.dumps({"last": "2018-12-13"}))  # 14th: unreported
    service = opened(root)
    runner = service.runners["acct"]
    assert runner.last_step == "2018-12-14"
    assert runner.last_step_at == pd.Timestamp("2018-12-14T21:20:00Z")  # the metrics' last_step_timestamp

    async def start_and_stop():
        service.run_worker = Workers()
        await service.start()
        await service.stop()

    with caplog.at_level(logging.INFO, logger="lstm_trader.serve"):
        asyncio.run(start_and_stop())
    lines = [r.getMessage() for r in caplog.records if "stepped" in r.getMessage()]
    assert lines == [
        "acct: stepped 2018-12-14 (stepped before this start): equity 100,250.50, fills 0, orders: buy 3 SPY"
    ]
    assert json.loads((root / "acct" / "serve" / "logged.json").read_text()) == {"last": "2018-12-14"}
    caplog.clear()
    again = opened(root)  # reported now: a second restart logs nothing again
    assert again.runners["acct"].unlogged == []
    again.close()


def test_paper_status_and_latest_answer_while_a_step_holds_the_account(root):
    with Account(root, "acct"):  # as the service's step does
        for command in ("status", "latest"):
            result = CliRunner().invoke(app, ["paper", command, "acct", "--paper-dir", str(root), "--json"])
            assert result.exit_code == 0, result.output
            assert json.loads(result.output)["name"] == "acct"
    assert sorted(p.name for p in (root / "acct").iterdir() if p.name.startswith(".")) == []


def test_a_worker_does_not_inherit_the_api_token(root, monkeypatch):
    monkeypatch.setenv("LSTM_TRADER_TOKEN", "secret-token")
    service = opened(root)
    seen = {}

    async def fake_exec(*args, env=None, **kwargs):
        seen.update(env)
        raise RuntimeError("stop here")

    monkeypatch.setattr(asyncio, "create_subprocess_exec", fake_exec)

    async def scenario():
        runner = service.runners["acct"]
        runner.busy = asyncio.Lock()
        with pytest.raises(RuntimeError, match="stop here"):
            await service.run_worker(runner, "snapshot")

    asyncio.run(scenario())
    service.close()
    assert "LSTM_TRADER_TOKEN" not in seen and seen["TF_CPP_MIN_LOG_LEVEL"] == "3"
    assert os.environ["LSTM_TRADER_TOKEN"] == "secret-token"  # the service keeps it


def test_the_forecast_worker_reads_the_account_while_a_step_holds_it(root, monkeypatch):
    import argparse

    import forecasting.forecast as forecast_module
    from trading.worker import forecast

    def made_up(frame, model, days, **kwargs):  # the worker's reading and writing, not a network's training
        dates = pd.bdate_range(frame.index[-1] + pd.Timedelta(days=1), periods=days)
        close = float(frame["close"].iloc[-1])
        return pd.DataFrame(
            {
                "as_of": frame.index[-1],
                "date": dates,
                "step": range(1, days + 1),
                "y_pred": 0.001,
                "price_pred": close * math.exp(0.001),
                "price_low": close * 0.99,
                "price_high": close * 1.01,
                "band_coverage": 0.8,
                "fixed_band_coverage": 0.8,
            }
        )

    monkeypatch.setattr(forecast_module, "forecast", made_up)
    args = argparse.Namespace(paper_dir=str(root), name="acct", ticker="sp500", days=2)
    (root / "acct" / "serve").mkdir()
    stale = root / "acct" / "serve" / "forecast_sp500_2_2018-12-01.json"
    stale.write_text("{}")
    with Account(root, "acct"):
        result = forecast(args)
    assert result["as_of"] == "2018-12-31" and len(result["forecast"]) == 2
    assert not stale.exists()  # the cache holds the last close's forecasts only
    assert (root / "acct" / "serve" / "forecast_sp500_2_2018-12-31.json").is_file()
