"""When the service steps an account: pure functions of the calendar, the last stepped session and
the clock, so that a restart resumes from the ledger alone.

A session is due `after_close` minutes after its close. The service steps the latest due session;
the account's own step catches up every session missed since its last one, in order. A new
account starts with the latest session that is due (it does not replay history: `paper replay`
does that).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from forecasting.calendar import trading_calendar


@dataclass(frozen=True)
class Plan:
    session: pd.Timestamp  # the session to step (tz-naive date)
    due: pd.Timestamp  # when (UTC)


def due_at(session: pd.Timestamp, calendar: str, after_close: float) -> pd.Timestamp:
    close = trading_calendar(calendar).session_close(pd.Timestamp(session).normalize())
    return close.tz_convert("UTC") + pd.Timedelta(minutes=after_close)


def next_plan(last_step: str | None, now: pd.Timestamp, calendar: str, after_close: float) -> Plan:
    """The session to step next and when: the latest session already due, when one is due that
    comes after `last_step`; otherwise the first session after `last_step` (or after now), at its
    due time."""
    cal = trading_calendar(calendar)
    now = pd.Timestamp(now).tz_convert("UTC")
    # the latest session whose due time has passed (the close is within a day of the session date)
    today = now.tz_convert(None).normalize()
    window = cal.sessions_in_range(today - pd.Timedelta(days=14), today + pd.Timedelta(days=1))
    passed = [s for s in window if due_at(s, calendar, after_close) <= now]
    latest = passed[-1] if passed else None
    last = pd.Timestamp(last_step) if last_step else None
    if latest is not None and (last is None or latest > last):
        return Plan(latest, due_at(latest, calendar, after_close))
    start = last if last is not None else today - pd.Timedelta(days=1)
    following = cal.sessions_in_range(start + pd.Timedelta(days=1), start + pd.Timedelta(days=14))
    session = following[0]
    return Plan(session, due_at(session, calendar, after_close))
