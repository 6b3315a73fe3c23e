"""`lstm-trader serve` against a real server: a subprocess on 127.0.0.1 with a simulated clock steps a
run of sessions in order, survives kill -9 mid-step, answers over HTTP exactly what the CLI prints,
raises alerts to a loopback webhook and stops cleanly on SIGTERM; plus the scheduler's pure parts."""

import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from backtests.config import load_config
from backtests.errors import BacktestError
from backtests.experiment import load_experiment_prices
from forecasting.calendar import sessions
from forecasting.faults import FAULT_ENV, FAULT_HOLD_ENV, FAULT_ONCE_ENV
from lstm_trader.cli import app
from tests.helpers import CHROMIUM, KEY, SECRET, AlpacaDataStub, AlpacaStub, probe_page
from tests.test_paper import ALWAYS_LONG, REBALANCING, replayed
from trading.account import Account, init_account

runner = CliRunner()
FIRST, LAST = "2018-12-13", "2018-12-31"  # the embedded S&P 500 ends on 2018-12-31
CLOCK = "2018-12-13T22:00:00Z x36000"  # ten simulated hours a second, from just after the close of FIRST
TOKEN = "test-token-0123456789"


class Receiver:
    """A webhook receiver on 127.0.0.1: keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                bodies.append(
                    {
                        "path": self.path,
                        "type": self.headers.get("Content-Type"),
                        "json": json.loads(self.rfile.read(length)),
                    }
                )
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


class Served:
    """`lstm-trader serve --port 0` in a subprocess; its log lines are collected as they come."""

    def __init__(self, root: Path, env: dict, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lstm_trader.cli", "serve", "--paper-dir", str(root), "--port", "0", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 60
        while not any("serving" in line for line in self.lines):
            assert self.proc.poll() is None, f"serve exited with {self.proc.returncode}: {self.lines}"
            assert time.monotonic() < deadline, self.lines
            time.sleep(0.05)
        line = next(line for line in self.lines if "serving" in line)
        self.url = line.split(" on ", 1)[1].split(" ", 1)[0]
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def get(self, path: str) -> httpx.Response:
        return self.client.get(path)

    def wait(self, predicate, what: str, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            health = self.get("/health").json()
            if predicate(health["accounts"]):
                return health
            assert self.proc.poll() is None, f"serve exited with {self.proc.returncode}: {self.lines[-20:]}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {health} {self.lines[-20:]}"
            time.sleep(0.2)

    def stop(self, sig=signal.SIGTERM, timeout: float = 120) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.client.close()
        return code


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in state


def _environ(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LSTM_TRADER_FAULT")}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "3", "LSTM_TRADER_CLOCK": CLOCK, **extra}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One account served from FIRST through the end of the data: killed with kill -9 in the middle of
    a step that had sent its orders, then restarted; left running past the data's last bar."""
    tmp = tmp_path_factory.mktemp("serve")
    receiver = Receiver()
    sets = REBALANCING + [f'serve.webhook_url="{receiver.url}"', "serve.retry_backoff=600"]
    reference, state = replayed(
        tmp / "unbroken", start=pd.Timestamp(FIRST).date(), end=pd.Timestamp(LAST).date(), sets=sets
    )
    order_days = sorted(set(reference["orders"]["date"]))
    crash_day = next(d for d in order_days if d > FIRST)  # orders sent after others were filled
    root = tmp / "paper"
    init_account(None, sets, "acct", "local", root)
    held, once = tmp / "held", tmp / "once"
    first = Served(
        root,
        _environ(
            **{
                FAULT_ENV: f"paper.after-send:{crash_day}",
                FAULT_HOLD_ENV: str(held),
                FAULT_ONCE_ENV: str(once),
                "LSTM_TRADER_TOKEN": TOKEN,
            }
        ),
    )
    deadline = time.monotonic() + 240
    while not held.is_file() or not held.read_text().strip():
        assert first.proc.poll() is None and time.monotonic() < deadline, first.lines
        time.sleep(0.1)
    worker = int(held.read_text().split()[0])
    first.proc.kill()  # kill -9 of the service while its worker is inside the step
    first.proc.wait(30)
    deadline = time.monotonic() + 30
    while not _gone(worker):
        assert time.monotonic() < deadline, "the step went on after the service died"
        time.sleep(0.05)
    deadline = time.monotonic() + 30
    while True:  # the operating system frees the dead worker's lock on the account
        try:
            account = Account(root, "acct").__enter__()
            break
        except BacktestError:
            assert time.monotonic() < deadline, "the account stayed locked after the service died"
            time.sleep(0.2)
    try:
        killed_at = account.ledger.last_step()
        sent_before_restart = account.ledger.db.execute("SELECT count(*) FROM broker_orders").fetchone()[0]
    finally:
        account.__exit__(None, None, None)
    # Restarted just after the crashed session's close, as a service brought back at once would be (a
    # clock from FIRST again would only idle through the sessions the ledger already holds). Twice as
    # fast as CLOCK: a restart has a last step to plan from, while a fresh account's first plan must come
    # within CLOCK's first simulated day (else FIRST is not the latest due session any more).
    server = Served(root, _environ(LSTM_TRADER_TOKEN=TOKEN, LSTM_TRADER_CLOCK=f"{crash_day}T22:00:00Z x72000"))
    server.wait(
        lambda a: a["acct"]["last_step"] == LAST and "no_data" in a["acct"]["open_alerts"],
        "the last session stepped and a no_data alert",
    )
    yield {
        "server": server,
        "root": root,
        "reference": reference,
        "state": state,
        "receiver": receiver,
        "crash_day": crash_day,
        "killed_at": killed_at,
        "sent_before": sent_before_restart,
        "tmp": tmp,
    }
    if server.proc.poll() is None:
        server.stop(signal.SIGKILL)
    receiver.close()


def test_serve_steps_every_session_in_order_and_a_kill_9_mid_step_changes_nothing(served):
    root, reference = served["root"], served["reference"]
    assert served["killed_at"] < served["crash_day"]  # the killed step was not marked done
    assert served["sent_before"] >= 1  # ... though it had sent its orders
    with Account(root, "acct") as account:
        steps = account.ledger.table("steps", "rowid")["date"].tolist()
        tables = {t: account.ledger.table(t, "rowid") for t in ("signals", "orders", "fills", "equity")}
        sent = account.ledger.db.execute("SELECT count(*) FROM broker_orders").fetchone()[0]
    expected = [d.date().isoformat() for d in sessions(pd.Timestamp(FIRST), pd.Timestamp(LAST))]
    assert steps == expected  # every session once, in order (the simulated clock ran past them all)
    assert sent == len(reference["orders"])  # no order sent twice
    for name, table in tables.items():  # the same ledger as an unbroken replay; ids differ by the nonce
        ref = reference[name]
        if "client_order_id" in table:
            assert table["client_order_id"].is_unique
            table, ref = table.drop(columns="client_order_id"), ref.drop(columns="client_order_id")
        pd.testing.assert_frame_equal(table, ref, check_exact=True, obj=name)


def test_http_answers_equal_the_cli_and_health_is_ok(served):
    server, root = served["server"], served["root"]
    health = server.get("/health").json()
    assert health["status"] == "ok" and health["simulated_clock"] is True
    account = health["accounts"]["acct"]
    assert account["last_step"] == LAST and account["next_session"] > LAST and account["next_run"]
    status = server.get("/accounts/acct").json()
    latest = server.get("/accounts/acct/latest").json()
    cli_status = runner.invoke(app, ["paper", "status", "acct", "--paper-dir", str(root), "--json"])
    cli_latest = runner.invoke(app, ["paper", "latest", "acct", "--paper-dir", str(root), "--json"])
    assert status == json.loads(cli_status.stdout)
    assert latest == json.loads(cli_latest.stdout)
    assert status["last"] == LAST and status["drift"]["max_equity_drift"] < 1e-9  # local broker: exact parity
    assert status["equity"] == pytest.approx(served["state"]["equity"], rel=1e-12)
    assert latest["date"] == LAST and latest["predictions"][0]["ticker"] == "sp500"
    assert latest["models"]["sp500"]["fold"] == latest["predictions"][0]["fold"]
    curve = server.get("/accounts/acct/equity").json()
    assert curve["dates"][-1] == LAST and curve["equity"][-1] == status["equity"]
    assert curve["backtest"][-1] == pytest.approx(status["drift"]["backtest_equity"], rel=1e-12)
    assert [a["name"] for a in server.get("/accounts").json()] == ["acct"]
    missing = server.get("/accounts/nope")
    assert missing.status_code == 404 and missing.json() == {
        "error": "unknown paper account 'nope'",
        "hint": "served: acct",
    }


def test_metrics_parse_as_prometheus_text_with_the_accounts_numbers(served):
    from prometheus_client.parser import text_string_to_metric_families

    server = served["server"]
    answer = server.get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, s.labels.get("account")): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }
    status = server.get("/accounts/acct").json()
    assert samples[("lstm_trader_equity", "acct")] == pytest.approx(status["equity"], rel=1e-12)
    assert samples[("lstm_trader_last_session_timestamp_seconds", "acct")] == pd.Timestamp(LAST, tz="UTC").timestamp()
    assert samples[("lstm_trader_equity_drift", "acct")] < 1e-9
    assert samples[("lstm_trader_open_alerts", "acct")] >= 1  # no_data
    assert samples[("lstm_trader_steps_total", "acct")] >= 1
    assert samples[("lstm_trader_step_failures_total", "acct")] >= 1  # the bars that never came
    assert 0 <= samples[("lstm_trader_live_directional_accuracy", "acct")] <= 1


def test_a_missing_bar_alert_reaches_the_webhook_as_documented_json(served):
    bodies = [b for b in served["receiver"].bodies if b["json"]["kind"] == "no_data"]
    assert bodies, served["receiver"].bodies
    body = bodies[0]
    assert body["path"] == "/hook" and body["type"] == "application/json"
    sent = body["json"]
    assert set(sent) == {"text", "content", "account", "kind", "status", "message", "at"}
    assert sent["account"] == "acct" and sent["status"] == "open" and sent["text"] == sent["content"]
    assert sent["text"].startswith("lstm-trader: acct: no_data — no bar for 2019-01-")
    assert pd.Timestamp(sent["at"]) > pd.Timestamp("2019-01-02T21:30Z")  # after the first missing bar's due time
    assert len(bodies) == 1  # announced once, however often the retry fails
    assert any("no_data" in line and "WARNING" in line for line in served["server"].lines)
    assert any("failed (no_bar)" in line for line in served["server"].lines)


def test_acting_needs_the_token_and_bad_requests_get_one_clear_answer(served):
    server = served["server"]
    missing = server.client.post("/accounts/acct/step")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"] == "missing bearer token"
    wrong = server.client.post("/accounts/acct/step", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json()["error"] == "wrong bearer token"
    unknown = server.client.post("/accounts/nope/step", headers={"Authorization": f"Bearer {TOKEN}"})
    assert unknown.status_code == 404
    right = server.client.post("/accounts/acct/step", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code in (202, 409), right.text  # accepted, or already stepping a retry
    assert server.client.post("/forecast", json={"ticker": "sp500", "days": 0}).status_code == 422
    assert server.client.post("/forecast", json={"ticker": "NOPE", "days": 2}).status_code == 400
    logged = len(server.lines)
    hostile = [
        server.client.post("/forecast", json={"ticker": "x" * 300, "days": 2}),
        server.client.post("/forecast", json={"ticker": "-h", "days": 2}),
        server.client.post("/forecast", content=b'{"days": NaN}', headers={"content-type": "application/json"}),
        server.client.put("/health"),
    ]
    assert [r.status_code for r in hostile] == [422, 400, 422, 405]
    assert all(set(r.json()) == {"error", "hint"} for r in hostile)
    head = server.client.head("/accounts/acct")
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
    time.sleep(0.2)
    assert not any("Traceback" in line or "ERROR" in line for line in server.lines[logged:]), server.lines[logged:]
    second = subprocess.run(
        [sys.executable, "-m", "lstm_trader.cli", "serve", "--paper-dir", str(served["root"]), "--port", "0"],
        capture_output=True,
        text=True,
        env=_environ(),
        timeout=60,
    )
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"error: paper account {served['root'] / 'acct'} is already served by another lstm-trader serve "
        f"(pid {server.proc.pid}) (hint: one lstm-trader serve per account: stop the other one, or serve other "
        "--accounts)"
    ]


def test_forecast_answers_the_direct_forecast_from_the_last_close_and_caches_it(served):
    server = served["server"]
    answer = server.client.post("/forecast", json={"ticker": "sp500", "days": 3})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["as_of"] == LAST and body["days"] == 3
    assert [row["date"] for row in body["forecast"]] == ["2019-01-02", "2019-01-03", "2019-01-04"]
    for row in body["forecast"]:
        assert row["price_low"] <= row["price_pred"] <= row["price_high"]
        assert row["price_pred"] == pytest.approx(body["close"] * math.exp(row["y_pred"]), rel=1e-9)
    started = time.monotonic()
    again = server.client.post("/forecast", json={"days": 3})  # the account's only ticker, from the cache
    assert again.json() == body and time.monotonic() - started < 1.0


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")
def test_the_status_page_renders_offline_with_charts_of_data(served, tmp_path):
    server = served["server"]
    page = server.get("/").text
    assert "lstm-trader: 1 paper account" in page and "no_data" in page
    copy = tmp_path / "status.html"  # the page as served, its paths resolved against the server
    copy.write_text(page.replace("<head>", f'<head><base href="{server.url}/">', 1), encoding="utf-8")
    probe, requests = probe_page(copy, tmp_path)
    assert probe["errors"] == []
    assert [u for u in requests if not u.startswith(server.url)] == []  # nothing leaves the machine
    charts = {c["id"]: c for c in probe["charts"]}
    steps = len(sessions(pd.Timestamp(FIRST), pd.Timestamp(LAST)))
    assert charts["equity-acct"]["traces"] == 2 and charts["equity-acct"]["points"] == 2 * steps
    assert probe["scrollWidth"] <= probe["width"]


def test_sigterm_lets_the_service_stop_with_exit_0(served):
    server = served["server"]
    assert server.stop(signal.SIGTERM) == 0
    assert any("Application shutdown complete" in line for line in server.lines)
    with Account(served["root"], "acct") as account:  # the account's locks are free again
        assert account.ledger.last_step() == LAST


# --- failures at step time, and bad input ----------------------------------------------------------


def test_a_data_source_that_fails_is_retried_then_alerted_and_the_account_is_untouched(tmp_path):
    from tests.helpers import make_bars, write_yahoo_csv

    receiver = Receiver()
    data = tmp_path / "ACME.csv"
    write_yahoo_csv(make_bars(700, seed=2, start="2016-01-04"), data)
    sets = [s for s in REBALANCING if not s.startswith("data.start")] + [
        f'data.source="csv:{data}"',
        f'serve.webhook_url="{receiver.url}"',
        "serve.retries=2",
        "serve.retry_backoff=60",
    ]
    root = tmp_path / "paper"
    init_account(None, sets, "acme", "local", root)
    ledger = (root / "acme" / "ledger.sqlite").read_bytes()
    data.write_text("Date,Open,High\n2018-01-02,1,2\n")  # the file goes bad after the account was made
    server = Served(root, _environ())
    try:
        server.wait(lambda a: "step_failed" in a["acme"]["open_alerts"], "a step_failed alert", timeout=120)
    finally:
        code = server.stop()
    assert code == 0
    failures = [line for line in server.lines if "step 2018-12-13 failed (data)" in line]
    assert len(failures) == 3  # the attempt and serve.retries = 2 retries
    assert "ACME.csv" in failures[0] and "(hint:" in failures[0]
    (alert,) = [b["json"] for b in receiver.bodies]
    assert alert["kind"] == "step_failed" and alert["account"] == "acme"
    assert (root / "acme" / "ledger.sqlite").read_bytes() == ledger  # untouched
    receiver.close()


def _one_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    return lines[0]


def test_bad_input_is_one_line_each(tmp_path):
    root = tmp_path / "paper"
    assert (
        runner.invoke(
            app,
            [
                "paper",
                "init",
                *[x for s in REBALANCING for x in ("--set", s)],
                "--name",
                "acct",
                "--paper-dir",
                str(root),
            ],
        ).exit_code
        == 0
    )

    def serve(*args):
        return subprocess.run(
            [sys.executable, "-m", "lstm_trader.cli", "serve", "--paper-dir", str(root), *args],
            capture_output=True,
            text=True,
            env=_environ(),
            timeout=60,
        )

    line = _one_error(serve("--accounts", "acct,nope", "--port", "0"))
    assert line.startswith("error: unknown paper account 'nope'") and "existing: acct" in line
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        line = _one_error(serve("--port", str(port)))
    assert line == f"error: port {port} on 127.0.0.1 is in use (hint: pick another --port, or stop what listens there)"
    assert sorted(p.name for p in (root / "acct").glob(".*lock")) == []  # the refused serve left no lock file
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "lstm_trader.cli", "serve", "--paper-dir", str(empty)],
        capture_output=True,
        text=True,
        env=_environ(),
        timeout=60,
    )
    assert _one_error(result).startswith(f"error: no paper accounts in {empty}")
    bad_clock = subprocess.run(
        [sys.executable, "-m", "lstm_trader.cli", "serve", "--paper-dir", str(root)],
        capture_output=True,
        text=True,
        env=_environ(LSTM_TRADER_CLOCK="soon"),
        timeout=60,
    )
    assert "LSTM_TRADER_CLOCK='soon'" in _one_error(bad_clock)
    assert not (root / "acct" / "serve").exists()  # nothing was started


# --- the pure parts --------------------------------------------------------------------------------


def test_the_schedule_steps_the_latest_due_session_and_knows_holidays_and_early_closes():
    from trading.schedule import next_plan

    def plan(last, now):
        p = next_plan(last, pd.Timestamp(now), "XNYS", 30)
        return str(p.session.date()), p.due.isoformat()

    # Friday 2018-12-21 closed 21:00 UTC (16:00 EST): due 21:30; before then, Thursday's is the latest due
    assert plan(None, "2018-12-21T21:29Z") == ("2018-12-20", "2018-12-20T21:30:00+00:00")
    assert plan(None, "2018-12-21T21:30Z") == ("2018-12-21", "2018-12-21T21:30:00+00:00")
    # stepped through Friday: Monday 2018-12-24 closes early (13:00 EST = 18:00 UTC), due 18:30
    assert plan("2018-12-21", "2018-12-22T12:00Z") == ("2018-12-24", "2018-12-24T18:30:00+00:00")
    # Christmas is no session: after Monday comes Wednesday the 26th
    assert plan("2018-12-24", "2018-12-25T12:00Z") == ("2018-12-26", "2018-12-26T21:30:00+00:00")
    # three sessions missed: the latest due one (the account's step catches up the others in order)
    assert plan("2018-12-19", "2018-12-24T19:00Z") == ("2018-12-24", "2018-12-24T18:30:00+00:00")
    # summer time: 2018-07-02 closed at 20:00 UTC
    assert plan("2018-06-29", "2018-07-01T00:00Z") == ("2018-07-02", "2018-07-02T20:30:00+00:00")


def test_the_simulated_clock_runs_at_its_speed_and_hands_itself_to_children():
    from backtests.errors import BacktestError
    from trading.clock import ENV, Clock

    clock = Clock.from_env("2018-12-03T21:00Z x3600")
    first = clock.now()
    assert first >= pd.Timestamp("2018-12-03T21:00Z") and clock.simulated
    time.sleep(0.1)
    elapsed = (clock.now() - first).total_seconds()
    assert 300 <= elapsed <= 3600  # 0.1 s of wall time is 6 simulated minutes (scheduling noise allowed)
    child = Clock.from_env(clock.environ()[ENV])
    assert abs((child.now() - clock.now()).total_seconds()) < 60 and child.speed == 3600
    assert clock.wall_seconds(clock.now() + pd.Timedelta(hours=1)) == pytest.approx(1.0, abs=0.05)
    assert Clock.from_env("").simulated is False and Clock().environ() == {}
    with pytest.raises(BacktestError, match="ISO instant"):
        Clock.from_env("tomorrow-ish x")


def test_alerts_open_once_resolve_and_persist(tmp_path):
    from trading.alerts import AlertBook

    (tmp_path / "serve").mkdir()
    book = AlertBook("acct", tmp_path, None)
    sent = book.raise_("no_data", "no bar for 2019-01-02", "2019-01-02T23:30:00+00:00")
    assert sent["status"] == "open" and sent["text"] == "lstm-trader: acct: no_data — no bar for 2019-01-02"
    assert book.raise_("no_data", "no bar for 2019-01-03", "2019-01-03T23:30:00+00:00") is None  # still open
    again = AlertBook("acct", tmp_path, None)  # a restart remembers it, and does not announce it again
    assert again.open["no_data"]["since"] == "2019-01-02T23:30:00+00:00"
    assert again.raise_("no_data", "no bar", "2019-01-04T00:00:00+00:00") is None
    resolved = again.resolve("no_data", "2019-01-04T23:30:00+00:00")
    assert resolved["status"] == "resolved" and "resolved: no_data" in resolved["text"]
    assert again.resolve("no_data", "later") is None and AlertBook("acct", tmp_path, None).open == {}


def test_the_token_check():
    from trading.http import check_token

    os.environ.pop("LSTM_TRADER_TOKEN", None)
    assert check_token("Bearer x")[0] == 403  # no token configured: acting is off
    os.environ["LSTM_TRADER_TOKEN"] = "s3cret"
    try:
        assert check_token(None)[0] == 401 and check_token("Basic s3cret")[0] == 401
        assert check_token("Bearer nope")[0] == 403
        assert check_token("Bearer s3cret") is None and check_token("bearer s3cret") is None
    finally:
        os.environ.pop("LSTM_TRADER_TOKEN")


def test_live_quality_is_u2_direction_and_base_rate_on_the_returns_that_followed():
    import numpy as np

    from trading.health import quality, realised_returns

    dates = pd.bdate_range("2020-01-06", periods=6)
    close = pd.Series([100.0, 101, 99, 99, 102, 103], index=dates)
    signals = pd.DataFrame(
        {"date": [d.date().isoformat() for d in dates], "ticker": "A", "y_pred": [0.01, 0.01, -0.01, 0.02, 0.0, 0.01]}
    )
    realised = realised_returns(signals, {"A": pd.DataFrame({"close": close})}, 1, str(dates[4].date()))
    # known through dates[4] only: the last two signals have no outcome yet
    by_hand = [np.log(101 / 100), np.log(99 / 101), np.log(99 / 99), np.log(102 / 99)]
    assert realised.iloc[:4].tolist() == pytest.approx(by_hand, rel=1e-15) and realised.iloc[4:].isna().all()
    q = quality(signals.assign(y_true=realised))
    y, p = np.array(by_hand), np.array([0.01, 0.01, -0.01, 0.02])
    assert q["n"] == 4 and q["u2"] == pytest.approx(np.sqrt(np.sum((p - y) ** 2) / np.sum(y**2)), rel=1e-12)
    # the flat day (99 -> 99) has no direction: 3 days left, signs right on days 0 and 3, wrong on day 1
    assert q["directional_accuracy"] == pytest.approx(2 / 3) and q["base_rate"] == pytest.approx(2 / 3)
    ranks = quality(
        pd.DataFrame(
            {
                "date": ["d1"] * 3 + ["d2"] * 3,
                "ticker": list("ABC") * 2,
                "y_pred": [1.0, 2, 3, 3, 2, 1],
                "y_true": [0.1, 0.2, 0.3, 0.1, 0.2, 0.3],
            }
        ),
        universe=True,
    )
    assert ranks["days"] == 2 and ranks["rank_ic"] == pytest.approx(0.0)  # +1 on d1, -1 on d2
    # a day of two names, a day whose forecast ranks nobody and a NaN outcome don't count
    more = pd.DataFrame(
        {
            "date": ["d1"] * 3 + ["d3"] * 2 + ["d4"] * 3 + ["d5"] * 4,
            "ticker": list("ABC") + list("AB") + list("ABC") + list("ABCD"),
            "y_pred": [1.0, 2, 3, 1, 2, 0.5, 0.5, 0.5, 1, 2, 3, 4],
            "y_true": [0.1, 0.2, 0.3, 0.2, 0.1, 0.1, 0.2, 0.3, 0.4, 0.3, 0.1, float("nan")],
        }
    )
    ranks = quality(more, universe=True)
    # d1: +1; d5 on its three known names: ranks (1, 2, 3) against (3, 2, 1), -1
    assert ranks["n"] == 11 and ranks["days"] == 2 and ranks["rank_ic"] == pytest.approx(0.0)


# --- an Alpaca account on Alpaca's data, served against loopback stubs of both APIs ----------------


def _alpaca_bar(day: pd.Timestamp, row) -> dict:
    """A daily bar as Alpaca's data API sends it: stamped at midnight New York time, in UTC."""
    t = day.tz_localize("America/New_York").tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "t": t,
        "o": row.open,
        "h": row.high,
        "l": row.low,
        "c": row.close,
        "v": row.volume,
        "n": 1,
        "vw": row.close,
    }


def test_an_alpaca_account_on_alpaca_data_is_stepped_by_serve_against_loopback_stubs(tmp_path, httpserver, monkeypatch):
    urls = {
        "APCA_API_BASE_URL": httpserver.url_for("").rstrip("/"),
        "APCA_API_DATA_URL": httpserver.url_for("").rstrip("/"),
    }
    keys = {"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET, **urls}
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("APCA_DATA_FEED", raising=False)
    broker, market = AlpacaStub(httpserver), AlpacaDataStub(httpserver, page_size=10_000, key=KEY, secret=SECRET)
    # SPY's bars on Alpaca: the embedded S&P 500's, so the decision can be worked out from them
    bars = load_experiment_prices(load_config(None, ALWAYS_LONG))["sp500"]
    market.bars["SPY"] = [_alpaca_bar(d, r) for d, r in bars.loc[:"2018-12-03"].iterrows()]
    root, cache = tmp_path / "paper", tmp_path / "cache"
    sets = [*ALWAYS_LONG, 'data.source="alpaca:SPY"', f'data.cache_dir="{cache}"']
    init_account(None, sets, "live", "alpaca", root)

    # the close of 2018-12-03 (16:00 New York = 21:00 UTC) plus serve.after_close (30 minutes) has passed
    server = Served(root, _environ(LSTM_TRADER_CLOCK="2018-12-03T21:31:00Z x60", **keys))
    server.wait(lambda a: a["live"]["last_step"] == "2018-12-03", "the first session stepped")
    first_download = list(market.requests)
    assert first_download and all(q["symbols"] == "SPY" and q["timeframe"] == "1Day" for q, _ in first_download)
    (order,) = broker.orders.values()
    close = bars.loc["2018-12-03", "close"]
    assert order["symbol"] == "SPY" and order["side"] == "buy" and order["time_in_force"] == "day"
    assert float(order["qty"]) == math.trunc(100_000 * 0.99 / (close * 1.0005 * 1.0005))
    status = server.get("/accounts/live").json()
    cli = runner.invoke(app, ["paper", "status", "live", "--paper-dir", str(root), "--json"])
    assert status == json.loads(cli.stdout)
    latest = server.get("/accounts/live/latest").json()
    assert latest["date"] == "2018-12-03" and latest["predictions"][0]["ticker"] == "SPY"
    assert server.stop() == 0

    # overnight Alpaca fills the order at the open; the next close brings one new bar
    opened = bars.loc["2018-12-04", "open"]
    broker.fill(opened)
    broker.now = "2018-12-04T21:30:00Z"
    market.bars["SPY"].append(_alpaca_bar(pd.Timestamp("2018-12-04"), bars.loc["2018-12-04"]))
    market.requests.clear()
    server = Served(root, _environ(LSTM_TRADER_CLOCK="2018-12-04T21:31:00Z x60", **keys))
    server.wait(lambda a: a["live"]["last_step"] == "2018-12-04", "the next session stepped after a restart")
    # the refresh asked only from the cached last bar on, not the whole history again
    starts = {pd.Timestamp(q["start"]) for q, _ in market.requests}
    assert starts == {pd.Timestamp("2018-12-03", tz="UTC")}
    assert broker.posts == 1  # held: nothing sent again
    with Account(root, "live") as account:
        (fill,) = account.ledger.table("fills", "rowid").itertuples()
    assert fill.date == "2018-12-04" and fill.price == pytest.approx(opened) and fill.qty == float(order["qty"])
    status = server.get("/accounts/live").json()
    assert status == json.loads(
        runner.invoke(app, ["paper", "status", "live", "--paper-dir", str(root), "--json"]).stdout
    )
    assert status["last"] == "2018-12-04"
    assert server.stop() == 0


def test_a_service_behind_schedule_steps_the_sessions_that_have_bars_then_waits_for_the_missing_one(tmp_path):
    from datetime import date

    from trading.account import replay

    root = tmp_path / "paper"
    init_account(None, REBALANCING, "acct", "local", root)
    with Account(root, "acct") as account:
        replay(account, date(2018, 12, 20), date(2018, 12, 26))
    # the service fell behind: 2019-01-03 is due, the embedded data end on 2018-12-31
    server = Served(root, _environ(LSTM_TRADER_CLOCK="2019-01-03T22:00:00Z x1"))
    health = server.wait(lambda a: a["acct"]["last_step"] == "2018-12-31", "the sessions with bars caught up")
    assert health["accounts"]["acct"]["next_session"] == "2019-01-03"
    assert server.get("/accounts/acct/latest").json()["date"] == "2018-12-31"
    cli = runner.invoke(app, ["paper", "status", "acct", "--paper-dir", str(root), "--json"])
    assert server.get("/accounts/acct").json() == json.loads(cli.stdout)
    server.wait(lambda a: a["acct"]["state"] == "retrying", "a retry for the missing bar")
    assert server.stop() == 0
    stepped = [line.split("stepped ", 1)[1][:10] for line in server.lines if ": stepped " in line]
    assert stepped == ["2018-12-27", "2018-12-28", "2018-12-31"]  # in order, each once
    assert any("step 2019-01-03 failed (no_bar): builtin:sp500 has no bar" in line for line in server.lines)
    with Account(root, "acct") as account:
        assert account.ledger.last_step() == "2018-12-31"
    worker = [sys.executable, "-m", "trading.worker", "step", "--paper-dir", str(root), "--name", "acct"]
    env = _environ(LSTM_TRADER_CLOCK="2019-01-03T22:00:00Z")
    # nothing left to catch up: the same request steps nothing and waits for the bar
    again = subprocess.run([*worker, "--session", "2019-01-02"], capture_output=True, text=True, env=env, timeout=300)
    result = json.loads(again.stdout.splitlines()[-1])
    assert result["kind"] == "no_bar" and "reports" not in result
