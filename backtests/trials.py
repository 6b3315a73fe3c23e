"""The trial ledger: every configuration evaluated on a data set, so the deflated Sharpe counts them.

One SQLite file under the runs root (`runs/ledger.sqlite`), append-only: `lstm-trader run`,
`backtest` and every `tune` trial add a row. A row's key (the run dir, or study and trial number)
makes a resumed run or trial count once. SQLite serialises the writes of several tuning workers.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from backtests.errors import BacktestError
from forecasting.hashing import content_hash

LEDGER_NAME = "ledger.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    key TEXT PRIMARY KEY,        -- run:<run dir> | backtest:<run dir> | tune:<study>:<trial number>
    time TEXT NOT NULL,
    kind TEXT NOT NULL,          -- run | backtest | tune
    data TEXT NOT NULL,          -- data fingerprint
    config TEXT NOT NULL,        -- hash of what defines the LSTM strategy
    params TEXT NOT NULL,        -- JSON: the parameters that were varied (tune) or the network settings
    span TEXT NOT NULL,          -- test (out of sample) | validation (a tuning trial's inner walk-forward)
    sharpe REAL,                 -- per-day Sharpe of the LSTM strategy (not annualised)
    rmse REAL                    -- return-space RMSE of the LSTM forecast
)
"""


@dataclass(frozen=True)
class TrialCount:
    """What the deflated Sharpe is deflated by: `n` distinct configurations whose Sharpes vary by `variance`."""

    n: int
    variance: float

    def describe(self) -> str:
        return f"deflated for {self.n} configuration{'s' if self.n != 1 else ''} tried on this data"


def data_fingerprint(prices: dict, start=None) -> str:
    """The data's content: every bar of the configured span (from `start` on; the end is where the
    loaded bars end), dates and values, ticker by ticker in name order, whatever the source string.

    `builtin:sp500` and a CSV copy of the same bars share it, so the trials tried on either count
    together. A tuning study hashes the full loaded data as the run does, although its trials never
    load the out-of-sample span.
    """
    import pandas as pd

    frames = []
    for ticker in sorted(prices):
        frame = prices[ticker]
        if start is not None:  # a caller that loaded earlier bars (for warm-up) hashes the same bars
            frame = frame[frame.index >= pd.Timestamp(start)]
        columns = [c for c in ("open", "high", "low", "close", "volume") if c in frame]
        frames.append(frame[columns].astype("float64"))
    return content_hash(["bars"], frames)


def config_hash(settings: dict) -> str:
    return content_hash(settings)


class TrialLedger:
    def __init__(self, runs_root: str | Path) -> None:
        self.path = Path(runs_root) / LEDGER_NAME

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=60)
            connection.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise BacktestError(
                f"cannot open the trial ledger {self.path} ({exc})", "check that the runs dir is a writable folder"
            ) from None
        return connection

    def add(
        self,
        key: str,
        kind: str,
        data: str,
        config: str,
        params: dict,
        span: str,
        sharpe: float | None,
        rmse: float | None,
    ) -> None:
        """Record one evaluation; a key already present (a resumed run or trial) is kept as it was."""
        clean = [None if v is None or not math.isfinite(v) else float(v) for v in (sharpe, rmse)]
        with self._connect() as connection:
            connection.execute(
                "INSERT OR IGNORE INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    kind,
                    data,
                    config,
                    json.dumps(params, sort_keys=True, default=str),
                    span,
                    *clean,
                ),
            )
        connection.close()

    def count(self, data: str) -> TrialCount:
        """Distinct configurations tried on this data (pruned trials too: they were looked at), and the
        variance of the (mean) Sharpes of those that have one."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT AVG(sharpe) FROM trials WHERE data = ? GROUP BY config", (data,)
            ).fetchall()
        connection.close()
        n = len(rows)
        sharpes = [row[0] for row in rows if row[0] is not None]
        if len(sharpes) < 2:
            return TrialCount(max(n, 1), 0.0)
        mean = sum(sharpes) / len(sharpes)
        return TrialCount(n, sum((s - mean) ** 2 for s in sharpes) / (len(sharpes) - 1))

    def rows(self) -> list[dict]:
        with self._connect() as connection:
            connection.row_factory = sqlite3.Row
            rows = [dict(row) for row in connection.execute("SELECT * FROM trials ORDER BY rowid")]
        connection.close()
        return rows
