"""What time it is, for the paper account and the service: the wall clock, or a simulated one.

`LSTM_TRADER_CLOCK` sets a simulated clock: `"2018-12-03T21:00:00Z"` starts "now" at that instant
and lets it run at the wall clock's pace; `"2018-12-03T21:00:00Z x600"` runs it 600 times as fast
(ten simulated minutes a second). Every "is the session closed yet?" check and every wait of the
scheduler reads this clock, so a test (or a rehearsal over history) can step a run of sessions in
order in seconds. A child process gets the clock as it stands (`Clock.environ`), so parent and
child agree on "now".
"""

from __future__ import annotations

import os
import re
import time

import pandas as pd

from backtests.errors import BacktestError

ENV = "LSTM_TRADER_CLOCK"
_FORM = re.compile(r"^\s*(?P<start>\S+)(?:\s+x(?P<speed>[0-9.eE+]+))?\s*$")


class Clock:
    """Simulated time = `start` + (wall time since this clock was made) x `speed`; the wall clock when
    `start` is None."""

    def __init__(self, start: pd.Timestamp | None = None, speed: float = 1.0) -> None:
        if speed <= 0:
            raise BacktestError(f"{ENV}: speed x{speed:g} must be positive", f'e.g. {ENV}="2018-12-03T21:00Z x600"')
        self.start = None if start is None else _utc(start)
        self.speed = float(speed)
        self._origin = time.monotonic()

    @classmethod
    def from_env(cls, value: str | None = None) -> Clock:
        text = os.environ.get(ENV, "") if value is None else value
        if not text.strip():
            return cls()
        found = _FORM.match(text)
        try:
            if not found:
                raise ValueError(text)
            start = pd.Timestamp(found["start"])
            speed = float(found["speed"] or 1.0)
        except ValueError:
            raise BacktestError(
                f"{ENV}='{text}' is not an ISO instant with an optional speed",
                f'e.g. {ENV}="2018-12-03T21:00Z" or "2018-12-03T21:00Z x600" (600 times as fast)',
            ) from None
        return cls(start, speed)

    @property
    def simulated(self) -> bool:
        return self.start is not None

    def now(self) -> pd.Timestamp:
        if self.start is None:
            return pd.Timestamp.now(tz="UTC")
        return self.start + pd.Timedelta(seconds=(time.monotonic() - self._origin) * self.speed)

    def wall_seconds(self, until: pd.Timestamp) -> float:
        """Wall-clock seconds until the clock reads `until` (0 when it is past)."""
        return max((_utc(until) - self.now()).total_seconds() / self.speed, 0.0)

    def environ(self) -> dict[str, str]:
        """The environment that gives a child process this clock as it reads now."""
        if self.start is None:
            return {}
        return {ENV: f"{self.now().isoformat()} x{self.speed:g}"}


def _utc(value) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


_clock: Clock | None = None


def clock() -> Clock:
    """This process's clock (read from the environment once)."""
    global _clock
    if _clock is None:
        _clock = Clock.from_env()
    return _clock


def now() -> pd.Timestamp:
    return clock().now()
