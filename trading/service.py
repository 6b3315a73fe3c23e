"""`lstm-trader serve`: one process that steps paper accounts after each close and answers over HTTP.

The scheduler (one asyncio task per account) waits for the next due session (`trading.schedule`),
then runs a worker process (`trading.worker`) that refreshes the data and runs the account's own
step. Failures are retried with doubling waits; a missing bar is retried until the next session is
due and raises `no_data` once the grace period has passed; any other failure raises `step_failed`
after `serve.retries` retries, and the account is tried again at the next session. The ledger is
the only state that matters: a restart reads the last stepped session from it.

The HTTP side (FastAPI) answers from the snapshots the worker writes after each step, kept in
memory as bytes, so a read never waits for a step. Acting endpoints need `Authorization: Bearer
$LSTM_TRADER_TOKEN`; without the variable they are off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from backtests.errors import BacktestError
from backtests.rundir import FolderLock, json_safe, write_json
from forecasting.data import source_tickers
from forecasting.errors import ForecastingError
from trading.alerts import AlertBook, post
from trading.clock import Clock
from trading.health import SNAPSHOTS
from trading.schedule import Plan, next_plan

TOKEN_ENV = "LSTM_TRADER_TOKEN"
MAX_WAIT = 1800.0  # the longest wait between retries of a missing bar (seconds of the clock)
FORECASTS_WAITING = 4  # forecast requests queued at most (one runs at a time); more are told to come back
FORECASTS_KEPT = 64  # forecast answers kept in memory (the newest); older ones are read from disk again
FORECASTS_PER_CLOSE = 16  # forecasts an account computes per close (cached answers are free): no client keeps
# a training job running all day by asking for every (ticker, days) pair
FORECAST_NICE = 5  # a forecast's worker yields the CPU to a step's as well (on top of serve.worker_nice)
LOGGED = "logged.json"  # serve/logged.json: the last session the service's log reported
log = logging.getLogger("lstm_trader.serve")


@dataclass
class Runner:
    """One account under the service."""

    name: str
    folder: Path
    config: object  # ExperimentConfig
    broker: str
    strategy: str
    book: AlertBook
    lock: FolderLock
    state: str = "starting"  # starting | waiting | stepping | retrying | failed | stopped
    last_step: str | None = None
    plan: Plan | None = None
    gave_up: str | None = None  # a session whose retries ran out: the next attempt is at the next session
    last_error: str | None = None
    last_step_at: pd.Timestamp | None = None
    steps_total: int = 0
    failures_total: int = 0
    raw: dict[str, bytes] = field(default_factory=dict)  # snapshot name -> JSON bytes
    snap: dict[str, dict] = field(default_factory=dict)
    trigger: asyncio.Event | None = None
    busy: asyncio.Lock | None = None  # held while a step's (or snapshot's) worker runs
    unlogged: list[dict] = field(default_factory=list)  # steps in the ledger that no log line reported
    universe: list[str] | None = None  # the tickers of its data source (read at open), or None: see universe_error
    universe_error: tuple[str, str | None] = ("the account's data source lists no ticker", None)
    forecasts_made: tuple[str | None, int] = (None, 0)  # (the close, forecasts computed for it)
    version: int = 0  # bumped when the snapshots change (the status page is re-rendered)

    @property
    def serve(self):
        return self.config.serve

    def load_snapshots(self) -> bool:
        """Read serve/*.json; True when they describe the ledger's last step."""
        folder = self.folder / "serve"
        try:
            raw = {name: (folder / f"{name}.json").read_bytes() for name in SNAPSHOTS}
            snap = {name: json.loads(value) for name, value in raw.items()}
        except (OSError, ValueError):
            return False
        if snap["status"].get("last") != self.last_step:
            return False
        self.raw, self.snap = raw, snap
        self.version += 1
        return True


class Service:
    def __init__(self, paper_dir: Path, names: list[str] | None, clock: Clock) -> None:
        self.root, self.clock = Path(paper_dir), clock
        self.names = names
        self.runners: dict[str, Runner] = {}
        self.stopping = False
        self.tasks: list[asyncio.Task] = []
        self.forecasts: OrderedDict[tuple, bytes] = OrderedDict()  # the newest FORECASTS_KEPT answers
        self.forecast_slot: asyncio.Semaphore | None = None  # one forecast worker at a time, service-wide
        self.forecasts_waiting = 0
        self.started = clock.now()

    # --- set-up (before the port is bound: every error is one line) ------------------------------
    def open(self) -> None:
        from trading.account import Account
        from trading.ledger import PaperLedger

        if not self.root.is_dir():
            raise BacktestError(
                f"--paper-dir {self.root} is not a folder", "create an account first: lstm-trader paper init CONFIG"
            )
        names = self.names or sorted(p.name for p in self.root.iterdir() if (p / "account.json").is_file())
        if not names:
            raise BacktestError(
                f"no paper accounts in {self.root}", "create one: lstm-trader paper init CONFIG --name NAME"
            )
        try:
            for name in names:
                account = Account(self.root, name)  # validates the name, config and strategy
                lock = FolderLock(
                    account.folder,
                    "paper account",
                    "one lstm-trader serve per account: stop the other one, or serve other --accounts",
                    filename=".serve.lock",
                    busy="is already served by another lstm-trader serve",
                )
                lock.__enter__()
                runner = Runner(
                    name=name,
                    folder=account.folder,
                    config=account.config,
                    broker=account.info["broker"],
                    strategy=account.spec.title,
                    book=AlertBook(name, account.folder, account.config.serve.webhook_url),
                    lock=lock,
                )
                self.runners[name] = runner
                try:  # read once: a request is checked against it without touching the disk
                    runner.universe = source_tickers(account.config.data.source) or None
                except (ForecastingError, OSError) as exc:
                    runner.universe_error = (getattr(exc, "message", str(exc)), getattr(exc, "hint", None))
                ledger = PaperLedger(account.folder / "ledger.sqlite")
                try:
                    runner.last_step = ledger.last_step()
                    runner.last_step_at = _finished_at(ledger, runner.last_step)
                    runner.unlogged = ledger.step_summaries(after=_last_logged(account.folder, runner.last_step))
                finally:
                    ledger.close()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for runner in self.runners.values():
            if not runner.lock.handle.closed:
                runner.lock.__exit__(None, None, None)

    # --- life cycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        self.forecast_slot = asyncio.Semaphore(1)
        for runner in self.runners.values():
            runner.trigger, runner.busy = asyncio.Event(), asyncio.Lock()
        for runner in self.runners.values():
            # steps that finished after the last log line of an earlier service (killed between a step's end
            # and its report) are reported now, so every stepped session is in some log
            for summary in runner.unlogged:
                self.log_step(runner, {**summary, "trained": [], "notes": []}, " (stepped before this start)")
            runner.unlogged = []
            self.mark_logged(runner)
            if runner.last_step and not runner.load_snapshots():
                result = await self.run_worker(runner, "snapshot")
                if result.get("ok"):
                    runner.load_snapshots()
                else:
                    log.error(
                        f"{runner.name}: could not read the account's state: {result.get('error')}",
                        extra={"event": "snapshot_failed", "account": runner.name},
                    )
            self.tasks.append(asyncio.create_task(self.loop(runner), name=f"serve:{runner.name}"))

    async def stop(self) -> None:
        """Let a running step finish, start none; then release the accounts."""
        self.stopping = True
        for runner in self.runners.values():
            if runner.trigger is not None:
                runner.trigger.set()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        for runner in self.runners.values():
            runner.state = "stopped"
        self.close()

    # --- the scheduler ---------------------------------------------------------------------------
    def plan_for(self, runner: Runner, after_close: float | None = None) -> Plan:
        serve, calendar = runner.serve, runner.config.paper.calendar
        last = max(filter(None, [runner.last_step, runner.gave_up]), default=None)
        return next_plan(last, self.clock.now(), calendar, serve.after_close if after_close is None else after_close)

    async def sleep(self, runner: Runner, until: pd.Timestamp) -> bool:
        """Wait until the clock reads `until`; False when woken early (stop, or step now)."""
        while not self.stopping:
            wait = self.clock.wall_seconds(until)
            if wait <= 0:
                return True
            try:
                await asyncio.wait_for(runner.trigger.wait(), timeout=min(wait, 60.0))
                return False
            except TimeoutError:
                continue
        return False

    async def loop(self, runner: Runner) -> None:
        try:
            while not self.stopping:
                runner.plan = self.plan_for(runner)
                runner.state = "failed" if runner.gave_up else "waiting"
                if not await self.sleep(runner, runner.plan.due):
                    if self.stopping:
                        break
                    runner.trigger.clear()  # step now: the latest closed session, without the delay
                    runner.plan = self.plan_for(runner, after_close=0.0)
                    if runner.plan.due > self.clock.now():
                        continue
                await self.attempt(runner, runner.plan)
        except Exception:  # a bug in the scheduler must not end the service silently
            log.exception(f"{runner.name}: the scheduler stopped", extra={"event": "crash", "account": runner.name})
            runner.state = "failed"

    async def attempt(self, runner: Runner, plan: Plan) -> None:
        session = str(plan.session.date())
        serve = runner.serve
        retries = 0
        while not self.stopping:
            runner.state = "stepping"
            result = await self.run_worker(runner, "step", "--session", session)
            if result.get("ok"):
                self.stepped(runner, result)
                return
            if result.get("reports"):  # the sessions before the missing bar, caught up
                self.record(runner, result)
            runner.failures_total += 1
            runner.last_error = result.get("error")
            kind = result.get("kind")
            hint = f" (hint: {result['hint']})" if result.get("hint") else ""
            log.error(
                f"{runner.name}: step {session} failed ({kind}): {result.get('error')}{hint}",
                extra={"event": "step_error", "account": runner.name, "kind": kind, "session": session},
            )
            now = self.clock.now()
            if kind == "no_bar":
                if now >= plan.due + pd.Timedelta(minutes=serve.data_grace):
                    self.alert(
                        runner,
                        "no_data",
                        f"no bar for {session} by {serve.data_grace:g} minutes past the due "
                        f"time: {result.get('error')}",
                    )
                following = next_plan(session, now, runner.config.paper.calendar, serve.after_close).due
                if now >= following:
                    return  # the next session is due: plan again (it steps both)
                wait = min(serve.retry_backoff * 2**retries, MAX_WAIT)
                retries += 1
                until = min(now + pd.Timedelta(seconds=wait), following)
            else:
                retries += 1
                if retries > serve.retries:
                    self.alert(runner, "step_failed", f"{session}: {result.get('error')}{hint}")
                    runner.gave_up = session
                    return
                until = now + pd.Timedelta(seconds=serve.retry_backoff * 2 ** (retries - 1))
            runner.state = "retrying"
            if not await self.sleep(runner, until) and not self.stopping:
                runner.trigger.clear()

    def stepped(self, runner: Runner, result: dict) -> None:
        previous = runner.last_step
        self.record(runner, result)
        runner.gave_up, runner.last_error = None, None
        for kind in ("step_failed", "no_data"):
            self.resolve(runner, kind)
        if runner.last_step == previous:
            log.info(f"{runner.name}: nothing new to step", extra={"event": "idle", "account": runner.name})

    def record(self, runner: Runner, result: dict) -> None:
        """Log the stepped sessions, take the new snapshots and act on the health checks."""
        for report in result.get("reports", []):
            if report["status"] == "done":
                self.log_step(runner, report)
                runner.steps_total += 1
            for note in report.get("notes", []):
                log.info(f"{runner.name}: {note}", extra={"event": "note", "account": runner.name})
        runner.last_step = result.get("health", {}).get("last") or runner.last_step
        runner.last_step_at = self.clock.now()
        self.mark_logged(runner)
        runner.load_snapshots()
        for check in result.get("health", {}).get("checks", []):
            if check["ok"]:
                self.resolve(runner, check["kind"])
            else:
                self.alert(runner, check["kind"], check["message"])

    @staticmethod
    def log_step(runner: Runner, report: dict, when: str = "") -> None:
        orders = ", ".join(
            f"{'buy' if o['qty'] > 0 else 'sell'} {abs(o['qty']):g} {o['symbol']}" for o in report["orders"]
        )
        equity = f"{report['equity']:,.2f}" if report.get("equity") is not None else "—"
        trained = f"; trained fold {', '.join(map(str, report['trained']))}" if report["trained"] else ""
        log.info(
            f"{runner.name}: stepped {report['date']}{when}: equity {equity}, fills {report['fills']}, "
            f"orders: {orders or 'none'}{trained}",
            extra={
                "event": "step",
                "account": runner.name,
                "session": report["date"],
                "equity": report.get("equity"),
                "orders": len(report["orders"]),
            },
        )

    @staticmethod
    def mark_logged(runner: Runner) -> None:
        """Note the last session the log has reported (serve/logged.json), for the next start."""
        if runner.last_step:
            (runner.folder / "serve").mkdir(exist_ok=True)
            write_json(runner.folder / "serve" / LOGGED, {"last": runner.last_step})

    def alert(self, runner: Runner, kind: str, message: str) -> None:
        self._announce(runner, runner.book.raise_(kind, message, self.clock.now().isoformat(timespec="seconds")))

    def resolve(self, runner: Runner, kind: str) -> None:
        self._announce(runner, runner.book.resolve(kind, self.clock.now().isoformat(timespec="seconds")))

    def _announce(self, runner: Runner, body: dict | None) -> None:
        """The page shows the change; a new opening or resolution also goes to the webhook."""
        runner.version += 1
        if body and runner.serve.webhook_url:
            asyncio.get_running_loop().run_in_executor(None, self._deliver, runner.serve.webhook_url, body)

    @staticmethod
    def _deliver(url: str, body: dict) -> None:
        failed = post(url, body)
        if failed:
            log.error(
                f"{body['account']}: the alert webhook failed ({failed}); the alert is in this log",
                extra={"event": "webhook_failed", "account": body["account"]},
            )

    async def run_worker(self, runner: Runner, command: str, *extra: str) -> dict:
        """Run a worker job; a step or snapshot holds the runner's `busy` lock, a forecast does not (it reads
        the account without its lock, so a step never waits for it) and runs at a lower priority."""
        inherited = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}  # a job has no use for the token
        env = {**inherited, **self.clock.environ(), "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
        nice = runner.serve.worker_nice + (FORECAST_NICE if command == "forecast" else 0)
        args = [sys.executable, "-m", "trading.worker", command, "--paper-dir", str(self.root), "--name", runner.name]
        args += ["--nice", str(nice), *extra]
        async with contextlib.nullcontext() if command == "forecast" else runner.busy:
            process = await asyncio.create_subprocess_exec(
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,  # Ctrl-C in the terminal reaches the service, which lets the step finish
            )
            try:
                out, err = await asyncio.shield(process.communicate())
            except asyncio.CancelledError:
                if command == "forecast":  # its asker is gone: the job goes too (a step always finishes)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                raise
        lines = [line for line in out.decode(errors="replace").splitlines() if line.strip()]
        try:
            return json.loads(lines[-1])
        except (IndexError, ValueError):
            tail = [line for line in err.decode(errors="replace").splitlines() if line.strip()][-1:]
            return {
                "ok": False,
                "kind": "crash",
                "error": f"the worker exited with {process.returncode}" + (f": {tail[0]}" if tail else ""),
                "hint": None,
            }

    # --- what the HTTP side reads -----------------------------------------------------------------
    def runner(self, name: str) -> Runner:
        if name not in self.runners:
            raise KeyError(name)
        return self.runners[name]

    def health(self) -> dict:
        now = self.clock.now()
        return {
            "status": "ok",
            "now": now.isoformat(timespec="seconds"),
            "simulated_clock": self.clock.simulated,
            "accounts": {
                name: {
                    "state": r.state,
                    "last_step": r.last_step,
                    "next_session": str(r.plan.session.date()) if r.plan else None,
                    "next_run": r.plan.due.isoformat() if r.plan else None,
                    "last_error": r.last_error,
                    "open_alerts": sorted(r.book.open),
                }
                for name, r in self.runners.items()
            },
        }

    def accounts(self) -> list[dict]:
        out = []
        for name, r in self.runners.items():
            status = r.snap.get("status", {})
            out.append(
                {
                    "name": name,
                    "broker": r.broker,
                    "strategy": r.strategy,
                    "last_step": r.last_step,
                    "equity": status.get("equity"),
                    "state": r.state,
                    "open_alerts": sorted(r.book.open),
                }
            )
        return out

    async def forecast(self, name: str, ticker: str | None, days: int) -> tuple[int, bytes]:
        """The direct forecast of `ticker` from the account's last close. The ticker is checked against the
        account's data before any work; answers are cached per (ticker, days, close); one forecast worker
        runs at a time, after any running step, and at most FORECASTS_WAITING wait for it."""
        runner = self.runner(name)
        universe = runner.universe
        if not universe:
            return 503, _error(*runner.universe_error)
        if ticker is None:
            if len(universe) != 1:
                return 422, _error("name the ticker to forecast", f'e.g. {{"ticker": "{universe[0]}", "days": 5}}')
            ticker = universe[0]
        if ticker not in universe:
            return 400, _error(
                f"'{_shown(ticker)}' is not in the account's data ({runner.config.data.source})",
                "forecast one of: " + ", ".join(universe[:20]) + (", ..." if len(universe) > 20 else ""),
            )
        key = (name, ticker, days, runner.last_step)
        found = self._cached_forecast(runner, key)
        if found is not None:
            return 200, found
        close, made = runner.forecasts_made
        if close == runner.last_step and made >= FORECASTS_PER_CLOSE:
            return 429, _error(
                f"{name} has computed its {FORECASTS_PER_CLOSE} forecasts for the close of {runner.last_step}",
                "ask for one already made (they are cached), or after the next close",
            )
        if self.forecasts_waiting >= FORECASTS_WAITING:
            return 503, _error("too many forecasts are waiting", "ask again in a minute")
        self.forecasts_waiting += 1
        try:
            async with self.forecast_slot:  # askers of the same forecast wait here, then find it cached
                async with runner.busy:  # a step that runs goes first (and one that comes due meanwhile starts)
                    pass
                found = self._cached_forecast(runner, key)
                if found is not None:
                    return 200, found
                close, made = runner.forecasts_made
                runner.forecasts_made = (runner.last_step, made + 1 if close == runner.last_step else 1)
                result = await self.run_worker(runner, "forecast", f"--ticker={ticker}", f"--days={days}")
        finally:
            self.forecasts_waiting -= 1
        if not result.pop("ok", False):
            code = 400 if result.get("kind") == "input" else 503
            return code, _error(result.get("error") or "the forecast failed", result.get("hint"))
        return 200, self._keep_forecast(key, json.dumps(result).encode())

    def _cached_forecast(self, runner: Runner, key: tuple) -> bytes | None:
        if key in self.forecasts:
            self.forecasts.move_to_end(key)
            return self.forecasts[key]
        _, ticker, days, last = key
        saved = runner.folder / "serve" / f"forecast_{ticker}_{days}_{last}.json"
        if last and saved.is_file():
            return self._keep_forecast(key, saved.read_bytes())
        return None

    def _keep_forecast(self, key: tuple, body: bytes) -> bytes:
        self.forecasts[key] = body
        while len(self.forecasts) > FORECASTS_KEPT:
            self.forecasts.popitem(last=False)
        return body

    def step_now(self, name: str) -> tuple[int, dict]:
        runner = self.runner(name)
        if runner.state == "stepping":
            return 409, {"error": f"{name} is stepping now", "hint": "wait for it: GET /health"}
        plan = self.plan_for(runner, after_close=0.0)
        if plan.due > self.clock.now():
            return 409, {
                "error": f"nothing to step: the next session ({plan.session.date()}) closes at "
                f"{plan.due.tz_convert('America/New_York'):%Y-%m-%d %H:%M} New York time",
                "hint": "the service steps it by itself after the close",
            }
        runner.gave_up = None
        runner.trigger.set()
        return 202, {"accepted": True, "account": name, "session": str(plan.session.date())}


def _error(message: str, hint: str | None) -> bytes:
    return json.dumps({"error": message, "hint": hint}).encode()


def _shown(text: str, limit: int = 40) -> str:
    """A value from a request, as an error message may quote it: cut to `limit` characters."""
    return text if len(text) <= limit else text[:limit] + "…"


def _finished_at(ledger, session: str | None) -> pd.Timestamp | None:
    """When the step of `session` finished, from the ledger (the service's last_step_timestamp at start)."""
    if session is None:
        return None
    row = ledger.db.execute("SELECT finished_at FROM steps WHERE date = ?", (session,)).fetchone()
    return pd.Timestamp(row[0]) if row else None


def _last_logged(folder: Path, last_step: str | None) -> str | None:
    """The last session an earlier service's log reported; a first start counts what is stepped as reported."""
    try:
        return json.loads((folder / "serve" / LOGGED).read_text())["last"]
    except (OSError, ValueError, KeyError, TypeError):
        return last_step


class LogFormat(logging.Formatter):
    """One line per event: `time level message`, or one JSON object with `--log-json`."""

    def __init__(self, as_json: bool, clock: Clock) -> None:
        super().__init__()
        self.as_json, self.clock = as_json, clock

    def format(self, record: logging.LogRecord) -> str:
        when = self.clock.now().isoformat(timespec="seconds")
        message = record.getMessage()
        if record.exc_info:
            message += " | " + self.formatException(record.exc_info).replace("\n", " | ")
        if not self.as_json:
            return f"{when} {record.levelname:<7} {message}"
        fields = {
            key: getattr(record, key)
            for key in ("event", "account", "session", "kind", "equity", "orders")
            if hasattr(record, key)
        }
        return json.dumps(json_safe({"time": when, "level": record.levelname.lower(), **fields, "message": message}))
