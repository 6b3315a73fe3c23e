"""Exchange trading days (exchange-calendars): which days a market trades, and the next N of them."""

from __future__ import annotations

import functools

import pandas as pd

from forecasting.errors import ForecastingError

DEFAULT_CALENDAR = "XNYS"


@functools.cache
def trading_calendar(code: str = DEFAULT_CALENDAR):
    import exchange_calendars as xcals

    try:
        return xcals.get_calendar(code, start="1990-01-01")
    except Exception:  # InvalidCalendarName and friends
        raise ForecastingError(
            f"unknown exchange calendar '{code}'",
            "use an exchange-calendars code, e.g. XNYS (New York) or XLON (London)",
        ) from None


def is_session(day: pd.Timestamp, code: str = DEFAULT_CALENDAR) -> bool:
    calendar = trading_calendar(code)
    day = pd.Timestamp(day).normalize()
    return calendar.first_session <= day <= calendar.last_session and calendar.is_session(day)


def sessions(first: pd.Timestamp, last: pd.Timestamp, code: str = DEFAULT_CALENDAR) -> pd.DatetimeIndex:
    return trading_calendar(code).sessions_in_range(first, last)


def next_sessions(after: pd.Timestamp, count: int, code: str = DEFAULT_CALENDAR) -> pd.DatetimeIndex:
    """The `count` trading days after `after` (holidays and weekends skipped)."""
    calendar = trading_calendar(code)
    after = pd.Timestamp(after).normalize()
    if after >= calendar.last_session:
        raise ForecastingError(
            f"the {code} calendar ends on {calendar.last_session.date()}", "upgrade exchange-calendars for later years"
        )
    first = calendar.date_to_session(after, direction="next")
    if first == after:
        first = calendar.next_session(after)
    out = calendar.sessions_window(first, count)
    return pd.DatetimeIndex(out.tz_localize(None) if out.tz is not None else out, name="date")
