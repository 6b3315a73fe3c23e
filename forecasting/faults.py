"""Crash injection for the tests: die at a named point, exactly as `kill -9` would.

`LSTM_TRADER_FAULT=POINT` (e.g. `fold:2`, `run:backtests`, `paper.after-send:2018-10-11`) makes
`inject(POINT)` kill its own process with SIGKILL there. Nothing happens when the variable is unset.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "LSTM_TRADER_FAULT"


def inject(point: str) -> None:
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
