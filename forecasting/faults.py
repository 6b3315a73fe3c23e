"""Crash injection for the tests: die at a named point, exactly as `kill -9` would.

`LSTM_TRADER_FAULT=POINT` (e.g. `fold:2`, `run:backtests`, `paper.after-send:2018-10-11`) makes
`inject(POINT)` kill its own process with SIGKILL there. With `LSTM_TRADER_FAULT_ONCE=PATH` it fires
only once: the first process to get there creates PATH and dies, later ones (a retry) go on.
With `LSTM_TRADER_FAULT_HOLD=PATH` it does not die but creates PATH and waits there until it is
killed: a test can then kill another process (the service) at that point. Nothing happens when the
variables are unset.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "LSTM_TRADER_FAULT"
FAULT_ONCE_ENV = "LSTM_TRADER_FAULT_ONCE"
FAULT_HOLD_ENV = "LSTM_TRADER_FAULT_HOLD"


def inject(point: str) -> None:
    if os.environ.get(FAULT_ENV) != point:
        return
    marker = os.environ.get(FAULT_ONCE_ENV)
    if marker:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return
    hold = os.environ.get(FAULT_HOLD_ENV)
    if hold:
        import time

        with open(hold, "a") as mark:
            mark.write(f"{os.getpid()}\n")
        while True:  # until killed
            time.sleep(1)
    os.kill(os.getpid(), signal.SIGKILL)
