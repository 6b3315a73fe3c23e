"""The service's hands: one child process per job, so the server never runs TensorFlow or Backtrader
itself (its answers stay fast while a step trains a fold) and a crash in a job is a crash of the job.

    python -m trading.worker step     --paper-dir DIR --name NAME --session YYYY-MM-DD
    python -m trading.worker snapshot --paper-dir DIR --name NAME
    python -m trading.worker forecast --paper-dir DIR --name NAME --ticker T --days N

`step` refreshes the account's data source, checks that the session's bar is there, runs the
account's own `step` (catching up missed sessions in order; a stepped session sends nothing again)
and rewrites the snapshots the service answers from. It holds the account's lock throughout, as
`paper step` does. Its last line on stdout is one JSON object: `{"ok": true, ...}`, or
`{"ok": false, "kind": ..., "error": ..., "hint": ...}` with kind `busy` (another process holds the
account), `data` (the refresh or the load failed), `no_bar` (the session's bar is not there yet),
`step` (the step failed: broker, model, data revision) or `crash` (a bug: the traceback is on stderr).
Nothing is written to the ledger before the bar is known to be there.

On Linux the worker dies with the service (`PR_SET_PDEATHSIG`): a service killed with kill -9 takes
its running step with it, and the step's own crash safety finishes it on the next run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
from dataclasses import asdict
from pathlib import Path

from backtests.errors import BacktestError
from backtests.rundir import json_safe, write_json
from forecasting.errors import DataError, ForecastingError


class JobError(Exception):
    def __init__(self, kind: str, error: ForecastingError, done: dict | None = None) -> None:
        super().__init__(error.message)
        self.kind, self.error, self.done = kind, error, done or {}  # done: what the job did before it failed


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (elsewhere: nothing)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the call
        os.kill(os.getpid(), signal.SIGKILL)


def _open(args):
    from trading.account import Account

    try:
        return Account(args.paper_dir, args.name).__enter__()
    except BacktestError as exc:
        raise JobError("busy" if "already in use" in exc.message else "step", exc) from None


def step(args) -> dict:
    import pandas as pd

    from forecasting.data import refresh_source
    from trading.brokers import LocalBroker

    account = _open(args)
    try:
        data = account.config.data
        try:
            notes = refresh_source(data.source, data.cache_dir, data.missing)
            prices = account.prices()
        except DataError as exc:
            raise JobError("data", exc) from None
        session = pd.Timestamp(args.session)
        last_bar = min(frame.index[-1] for frame in prices.values())
        if last_bar < session:
            missing = DataError(
                f"{data.source} has no bar for {session.date()} yet (last: {last_bar.date()})",
                "the service retries; check the data source if this lasts",
            )
            done = account.ledger.last_step()
            # the sessions whose bars are there don't wait behind the missing one: a service that fell
            # behind steps them in order now (a broker account knows only today: it waits for the bar)
            if isinstance(account.broker, LocalBroker) and done is not None and last_bar > pd.Timestamp(done):
                ready = account.sessions(pd.Timestamp(done), last_bar)  # a stray non-session bar is no target
                if len(ready) and ready[-1] > pd.Timestamp(done):
                    raise JobError("no_bar", missing, _stepped(account, ready[-1], notes))
            raise JobError("no_bar", missing)
        return {"session": str(session.date()), **_stepped(account, session, notes)}
    finally:
        account.__exit__(None, None, None)


def _stepped(account, session, notes: dict) -> dict:
    from trading.health import write_snapshots

    try:
        reports = account.step(session.date())
    except ForecastingError as exc:
        raise JobError("step", exc) from None
    snapshots = write_snapshots(account)
    return {"refreshed": notes, "reports": [asdict(r) for r in reports], "health": snapshots["health"]}


def snapshot(args) -> dict:
    from trading.health import write_snapshots

    account = _open(args)
    try:
        return {"health": write_snapshots(account)["health"]}
    finally:
        account.__exit__(None, None, None)


def forecast(args) -> dict:
    """The direct multi-horizon forecast of `ticker` from the account's last stepped close, with its
    band; saved as serve/forecast_<ticker>_<days>_<date>.json (the service's cache per close)."""
    from forecasting.forecast import forecast as forecast_from
    from trading.account import Account

    with Account(args.paper_dir, args.name).reading() as account:  # a forecast never waits for a step
        prices, last = account.prices(), account.ledger.last_step()
    if args.ticker not in prices:
        raise JobError(
            "input",
            BacktestError(
                f"'{args.ticker}' is not in the account's data ({account.config.data.source})",
                "forecast one of: " + ", ".join(sorted(prices)),
            ),
        )
    frame = prices[args.ticker]
    as_of = last or frame.index[-1]  # a stepped account forecasts from the close it last traded
    c = account.config
    try:
        table = forecast_from(
            frame.loc[:as_of], c.model, args.days, seed=c.seed, ticker=args.ticker, calendar=c.paper.calendar
        )
    except ForecastingError as exc:
        raise JobError("input", exc) from None
    result = {
        "account": account.name,
        "ticker": args.ticker,
        "days": args.days,
        "as_of": str(table["as_of"].iloc[0].date()),
        "close": float(frame.loc[:as_of, "close"].iloc[-1]),
        "band": "80%",
        "band_coverage": float(table["band_coverage"].iloc[0]),
        "fixed_band_coverage": float(table["fixed_band_coverage"].iloc[0]),
        "forecast": [
            {
                "date": str(row.date.date()),
                "step": int(row.step),
                "y_pred": float(row.y_pred),
                "price_pred": float(row.price_pred),
                "price_low": float(row.price_low),
                "price_high": float(row.price_high),
            }
            for row in table.itertuples()
        ],
    }
    folder = Path(account.folder) / "serve"
    folder.mkdir(exist_ok=True)
    for older in folder.glob("forecast_*.json"):  # the cache holds the last close's forecasts only
        if not older.name.endswith(f"_{result['as_of']}.json"):
            older.unlink(missing_ok=True)
    write_json(folder / f"forecast_{args.ticker}_{args.days}_{result['as_of']}.json", result)
    return result


COMMANDS = {"step": step, "snapshot": snapshot, "forecast": forecast}


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    parser = argparse.ArgumentParser(prog="python -m trading.worker")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--paper-dir", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--session")
    parser.add_argument("--ticker")
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--nice", type=int, default=0, help="lower this job's CPU priority by this much")
    args = parser.parse_args(argv)
    if args.nice and hasattr(os, "nice"):  # not on Windows
        try:
            os.nice(args.nice)  # a job yields the CPU to the service's HTTP answers
        except OSError:
            pass
    try:
        out, code = {"ok": True, **COMMANDS[args.command](args)}, 0
    except JobError as exc:
        out = {"ok": False, "kind": exc.kind, "error": exc.error.message, "hint": exc.error.hint, **exc.done}
        code = 2
    except ForecastingError as exc:
        out, code = {"ok": False, "kind": "step", "error": exc.message, "hint": exc.hint}, 2
    except Exception as exc:  # a bug: the service logs the line and alerts; the traceback goes to stderr
        traceback.print_exc()
        out, code = {"ok": False, "kind": "crash", "error": f"{type(exc).__name__}: {exc}", "hint": None}, 3
    sys.stdout.write("\n" + json.dumps(json_safe(out), default=str) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
