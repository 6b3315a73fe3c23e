"""The trial ledger: every configuration evaluated on a data set, so the deflated Sharpe counts them.

One SQLite file that follows the user, not a runs folder: `$LSTM_TRADER_HOME/ledger.sqlite`, else
`ledger.sqlite` in the user's data directory (platformdirs: ~/.local/share/lstm-trader on Linux), or
the path given by `--ledger` / the config's `ledger`. Append-only: `lstm-trader run`, `backtest`
and every `tune` trial add a row. A row's key (the run dir, or study and trial number) makes a
resumed run or trial count once. SQLite serialises the writes of several tuning workers. The
ledger a runs folder held before (`runs/ledger.sqlite`) is merged in once, the first time a
command uses that runs folder.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from backtests.errors import BacktestError
from forecasting.hashing import content_hash

if TYPE_CHECKING:
    import pandas as pd

LEDGER_NAME = "ledger.sqlite"
HOME_ENV = "LSTM_TRADER_HOME"  # where the user's ledger lives, when set

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
    rmse REAL,                   -- return-space RMSE of the LSTM forecast
    returns BLOB,                -- zlib: (day number, daily excess return) of the LSTM strategy
    benchmark BLOB,              -- zlib: the same for buy-and-hold (or equal weight) on its book
    source TEXT                  -- the data source as the config named it (the fingerprint is its content)
)
"""
COLUMNS = (
    "key",
    "time",
    "kind",
    "data",
    "config",
    "params",
    "span",
    "sharpe",
    "rmse",
    "returns",
    "benchmark",
    "source",
)
LATER_COLUMNS = {"returns": "BLOB", "benchmark": "BLOB", "source": "TEXT"}  # added after ledgers were written


def pack_returns(returns) -> bytes | None:
    """A daily return series as compact bytes (zlib of day numbers and values); None for none."""
    if returns is None or len(returns) == 0:
        return None
    import numpy as np

    days = returns.index.to_numpy().astype("datetime64[D]").astype("float64")
    return zlib.compress(np.column_stack([days, returns.to_numpy(dtype="float64")]).tobytes())


def unpack_returns(blob: bytes | None):
    """The series `pack_returns` stored (indexed by date), or None."""
    if blob is None:
        return None
    import numpy as np
    import pandas as pd

    table = np.frombuffer(zlib.decompress(blob), dtype="float64").reshape(-1, 2)
    return pd.Series(table[:, 1], index=pd.DatetimeIndex(table[:, 0].astype("datetime64[D]")))


@dataclass(frozen=True)
class TrialCount:
    """What the deflated Sharpe is deflated by: `n` distinct configurations whose Sharpes vary by `variance`;
    with `overfitting`, SPA and PBO over those configurations' daily returns (`TrialLedger.overfitting`)."""

    n: int
    variance: float
    overfitting: dict = field(default_factory=dict, compare=False)

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


def legacy_fingerprint(source: str, start, end, prices: dict) -> str:
    """The fingerprint ledgers recorded before it was the content (source, span, tickers and each
    ticker's first 250 bars): rows merged from an older ledger carry it until `adopt` renames them."""
    import pandas as pd

    heads = []
    for ticker in sorted(prices):
        frame = prices[ticker]
        if start is not None:
            frame = frame[frame.index >= pd.Timestamp(start)]
        heads.append(frame.iloc[:250][[c for c in ("open", "high", "low", "close", "volume") if c in frame]])
    return content_hash([source, str(start), str(end), sorted(prices)], heads)


def config_hash(settings: dict) -> str:
    return content_hash(settings)


def default_ledger_path() -> Path:
    """`$LSTM_TRADER_HOME/ledger.sqlite`, else `ledger.sqlite` in the user's data directory."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home) / LEDGER_NAME
    import platformdirs

    return platformdirs.user_data_path("lstm-trader") / LEDGER_NAME


def open_trial_ledger(ledger: str | Path | None = None, runs_root: str | Path | None = None) -> TrialLedger:
    """The user's trial ledger (`ledger`, else `default_ledger_path()`), checked now, before any work; the
    ledger a runs folder held before (`<runs_root>/ledger.sqlite`) is merged into it once."""
    book = TrialLedger(Path(ledger) if ledger else default_ledger_path())
    book.check()
    if runs_root is not None:
        book.merge_once(Path(runs_root) / LEDGER_NAME)
    return book


class TrialLedger:
    """The ledger at `location`: a `.sqlite` file, or a folder holding `ledger.sqlite`."""

    def __init__(self, location: str | Path) -> None:
        location = Path(location)
        # a folder (existing, or a runs root named without a suffix) holds ledger.sqlite; else it is the file
        folder = location.is_dir() or (not location.suffix and not location.is_file())
        self.path = location / LEDGER_NAME if folder else location

    def check(self) -> None:
        """Open it once (creating it) and try a write: an unreadable or unwritable ledger is one error
        before any work, not a traceback after it."""
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise BacktestError(
                f"cannot write to the trial ledger {self.path} ({exc})",
                f"give a writable SQLite file with --ledger PATH (or set ${HOME_ENV})",
            ) from None
        finally:
            connection.close()

    def adopt(self, old: str, new: str) -> int:
        """Rows recorded under an older fingerprint of the same data (`legacy_fingerprint`) take the new one."""
        if old == new:
            return 0
        with self._connect() as connection:
            changed = connection.execute("UPDATE trials SET data = ? WHERE data = ?", (new, old)).rowcount
        connection.close()
        return changed

    def merge_once(self, legacy: Path) -> int:
        """Copy the rows of an older ledger (a runs folder's) in, once; returns the rows added."""
        if not legacy.is_file() or legacy.resolve() == self.path.resolve():
            return 0
        source, added = str(legacy.resolve()), 0
        with self._connect() as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS merged (source TEXT PRIMARY KEY, rows INTEGER)")
            if not connection.execute("SELECT 1 FROM merged WHERE source = ?", (source,)).fetchone():
                before = connection.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
                try:
                    connection.execute("ATTACH DATABASE ? AS old", (str(legacy),))
                    first = ", ".join(COLUMNS[:9])  # the columns every ledger has
                    connection.execute(f"INSERT OR IGNORE INTO trials ({first}) SELECT {first} FROM old.trials")
                except sqlite3.Error:  # not a ledger of ours: left alone, and not tried again
                    pass
                added = connection.execute("SELECT COUNT(*) FROM trials").fetchone()[0] - before
                connection.execute("INSERT INTO merged VALUES (?, ?)", (source, added))
        connection.close()
        return added

    def _connect(self) -> sqlite3.Connection:
        above = next((p for p in self.path.parents if p.exists()), None)
        if above is not None and not above.is_dir():  # (mkdir would say "[Errno 17] File exists")
            raise BacktestError(
                f"cannot open the trial ledger {self.path}: {above} is a file, not a folder",
                f"give --ledger a file in a folder (or set ${HOME_ENV} to a folder)",
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=60)
            connection.execute(_SCHEMA)
            present = {row[1] for row in connection.execute("PRAGMA table_info(trials)")}
            for column, kind in LATER_COLUMNS.items():
                if column not in present:
                    connection.execute(f"ALTER TABLE trials ADD COLUMN {column} {kind}")
        except (OSError, sqlite3.Error) as exc:
            raise BacktestError(
                f"cannot open the trial ledger {self.path} ({exc})",
                f"give a writable SQLite file with --ledger PATH (or set ${HOME_ENV})",
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
        returns=None,
        benchmark=None,
        source: str | None = None,
    ) -> None:
        """Record one evaluation; a key already present (a resumed run or trial) is kept as it was.
        `returns` and `benchmark` are the daily excess returns of the LSTM strategy and of its book's
        benchmark (for SPA and PBO across the configurations)."""
        clean = [None if v is None or not math.isfinite(v) else float(v) for v in (sharpe, rmse)]
        connection = self._connect()
        try:
            with connection:
                connection.execute(
                    f"INSERT OR IGNORE INTO trials ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                    (
                        key,
                        datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        kind,
                        data,
                        config,
                        json.dumps(params, sort_keys=True, default=str),
                        span,
                        *clean,
                        pack_returns(returns),
                        pack_returns(benchmark),
                        source,
                    ),
                )
        except sqlite3.Error as exc:  # (a ledger gone read-only since it was checked, a full disk)
            raise BacktestError(f"cannot record in the trial ledger {self.path} ({exc})", "check its file") from None
        finally:
            connection.close()

    def count(self, data: str, span: str = "test") -> TrialCount:
        """Distinct configurations tried on this data, whatever their span (pruned trials too: they were
        looked at), and the variance of the (mean) Sharpes measured on `span` only: a tuning trial's
        validation-span Sharpe and a run's out-of-sample Sharpe are measured on different days, and their
        spread says nothing about either's luck."""
        with self._connect() as connection:
            n = connection.execute("SELECT COUNT(DISTINCT config) FROM trials WHERE data = ?", (data,)).fetchone()[0]
            rows = connection.execute(
                "SELECT AVG(sharpe) FROM trials WHERE data = ? AND span = ? GROUP BY config", (data, span)
            ).fetchall()
        connection.close()
        sharpes = [row[0] for row in rows if row[0] is not None]
        if len(sharpes) < 2:
            return TrialCount(max(n, 1), 0.0)
        mean = sum(sharpes) / len(sharpes)
        return TrialCount(n, sum((s - mean) ** 2 for s in sharpes) / (len(sharpes) - 1))

    def rows(self) -> list[dict]:
        """Every row but the stored returns (see `overfitting`)."""
        shown = ", ".join(c for c in COLUMNS if c not in ("returns", "benchmark"))
        with self._connect() as connection:
            connection.row_factory = sqlite3.Row
            rows = [dict(row) for row in connection.execute(f"SELECT {shown} FROM trials ORDER BY rowid")]
        connection.close()
        return rows

    def best_dsr(self, data: str, count: TrialCount) -> tuple[float, float]:
        """The best out-of-sample configuration (with stored returns): its deflated Sharpe by `count` (N and
        V of the data: what `run` reports, recomputed now that more were tried) and its annualised Sharpe."""
        from backtests.stats import deflated_sharpe, trial_variance

        with self._connect() as connection:
            row = connection.execute(
                "SELECT returns, sharpe FROM trials WHERE data = ? AND span = 'test' AND returns IS NOT NULL "
                "AND sharpe IS NOT NULL ORDER BY sharpe DESC LIMIT 1",
                (data,),
            ).fetchone()
        connection.close()
        if row is None:
            return float("nan"), float("nan")
        returns = unpack_returns(row[0])
        dsr = float(deflated_sharpe(returns, count.n, trial_variance(returns, count.variance)))
        return dsr, float(row[1] * math.sqrt(252))

    def overfitting(self, data: str, span: str = "test") -> dict:
        """SPA and PBO (`backtests.overfit`) over the configurations tried on `data` in `span`, one return
        series per configuration (its first evaluation), against the first one's benchmark."""
        from backtests.overfit import overfitting

        with self._connect() as connection:
            rows = connection.execute(
                "SELECT config, returns, benchmark FROM trials WHERE data = ? AND span = ? AND returns IS NOT NULL "
                "ORDER BY rowid",
                (data, span),
            ).fetchall()
        connection.close()
        firsts = {}
        for config, returns, benchmark in rows:
            firsts.setdefault(config, (returns, benchmark))
        series = [unpack_returns(r) for r, _ in firsts.values()]
        benchmark = next((unpack_returns(b) for _, b in firsts.values() if b is not None), None)
        return overfitting(series, benchmark)


def ledger_summary(book: TrialLedger) -> pd.DataFrame:
    """One row per data fingerprint: N (distinct configurations), V, the best annualised Sharpe, rows, last time."""
    import pandas as pd

    rows = []
    table = pd.DataFrame(book.rows())
    for data, group in table.groupby("data", sort=False) if len(table) else []:
        count = book.count(data)
        tests = {span: book.overfitting(data, span) for span in ("test", "validation")}
        rows.append(
            {
                "data": data,
                "source": ", ".join(sorted({str(v) for v in group["source"].dropna()})) or "—",
                "n": count.n,
                "variance": count.variance,
                **dict(zip(("best_dsr", "best_sharpe"), book.best_dsr(data, count))),
                "spa_benchmark_pvalue": tests["test"]["spa_benchmark_pvalue"],
                "spa_cash_pvalue": tests["test"]["spa_cash_pvalue"],
                "pbo_test": tests["test"]["pbo"],
                "pbo_validation": tests["validation"]["pbo"],
                "rows": len(group),
                "last": str(group["time"].max()),
            }
        )
    columns = [
        "data",
        "source",
        "n",
        "variance",
        "best_dsr",
        "best_sharpe",
        "spa_benchmark_pvalue",
        "spa_cash_pvalue",
        "pbo_test",
    ]
    return pd.DataFrame(rows, columns=columns + ["pbo_validation", "rows", "last"])


def ledger_configurations(book: TrialLedger, data: str) -> pd.DataFrame:
    """Every row of the data fingerprint `data` (or the one it is the start of): one configuration each."""
    import pandas as pd

    table = pd.DataFrame(book.rows())
    known = sorted(set(table["data"])) if len(table) else []
    matches = [d for d in known if d.startswith(data)]
    if len(matches) != 1:
        what = "no data fingerprint starts with" if not matches else "several data fingerprints start with"
        raise BacktestError(
            f"{what} '{data}'", "list them with: lstm-trader ledger" + (f" ({', '.join(known[:5])})" if known else "")
        )
    rows = table[table["data"] == matches[0]].copy()
    rows["sharpe_annual"] = rows["sharpe"] * math.sqrt(252)
    return rows.reset_index(drop=True)
