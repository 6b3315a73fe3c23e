"""The paper account's ledger: one SQLite file with every step, signal, order, fill and equity mark.

Rows are only ever added, or moved forward in status (`new` -> `sent` -> `filled`/`rejected`);
every write is a transaction, so a crash leaves the ledger as it was after the last one.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from backtests.errors import BacktestError

SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (
    date TEXT PRIMARY KEY, finished_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS signals (
    date TEXT NOT NULL, ticker TEXT NOT NULL, y_pred REAL, y_pred_std REAL, fold INTEGER, close REAL,
    target REAL, vol_pred REAL, vol_ratio REAL, vol_horizon INTEGER, PRIMARY KEY (date, ticker));
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY, date TEXT NOT NULL, ticker TEXT NOT NULL, symbol TEXT NOT NULL,
    qty REAL NOT NULL, status TEXT NOT NULL, broker_id TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS fills (
    client_order_id TEXT PRIMARY KEY, date TEXT NOT NULL, ticker TEXT NOT NULL, qty REAL NOT NULL,
    price REAL NOT NULL, commission REAL NOT NULL);
CREATE TABLE IF NOT EXISTS equity (
    date TEXT PRIMARY KEY, cash REAL NOT NULL, equity REAL NOT NULL, positions TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    ticker TEXT NOT NULL, fold INTEGER NOT NULL, trained_through TEXT NOT NULL, first_date TEXT NOT NULL,
    created_at TEXT NOT NULL, PRIMARY KEY (ticker, fold));
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


# columns added to a table after ledgers were first written: a ledger without them gets them (empty)
ADDED_COLUMNS = {"vol_pred": "REAL", "vol_ratio": "REAL", "vol_horizon": "INTEGER"}  # the variance sizing a trade


class PaperLedger:
    """`reader=True` opens it to read only (status, latest, a forecast): no schema is written, and in WAL
    mode a reader neither waits for a step's transaction nor holds one up; it sees the last committed."""

    def __init__(self, path: Path, reader: bool = False) -> None:
        self.path = Path(path)
        if reader and not self.path.is_file():
            raise BacktestError(f"{self.path} is missing", "restore it from a backup, or start a new account")
        self.db = sqlite3.connect(self.path, isolation_level=None)  # explicit transactions only
        try:
            self.db.row_factory = sqlite3.Row
            if not reader:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=FULL")
            found = self.db.execute("PRAGMA quick_check").fetchone()[0]  # a damaged page fails here, not mid-step
            if found != "ok":
                raise sqlite3.DatabaseError(found)
            if not reader:
                self.db.executescript(SCHEMA)
                self._add_columns("signals", ADDED_COLUMNS)
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise BacktestError(
                f"{self.path} is not a readable paper ledger ({exc})",
                "it is damaged: restore it from a backup, or start a new account with lstm-trader paper init",
            ) from None

    def close(self) -> None:
        self.db.close()

    def _add_columns(self, table: str, columns: dict[str, str]) -> None:
        have = {row["name"] for row in self.db.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns.items():
            if name not in have:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def transaction(self):
        return _Transaction(self.db)

    # --- reads ----------------------------------------------------------------------------------
    def done(self, date: str) -> bool:
        return self.db.execute("SELECT 1 FROM steps WHERE date = ?", (date,)).fetchone() is not None

    def last_step(self) -> str | None:
        row = self.db.execute("SELECT max(date) FROM steps").fetchone()
        return row[0]

    def first_step(self) -> str | None:
        return self.db.execute("SELECT min(date) FROM steps").fetchone()[0]

    def decided(self, date: str) -> bool:
        return self.db.execute("SELECT 1 FROM equity WHERE date = ?", (date,)).fetchone() is not None

    def orders(self, date: str | None = None, status: str | None = None) -> list[sqlite3.Row]:
        sql, args = "SELECT * FROM orders WHERE 1=1", []
        if date is not None:
            sql, args = sql + " AND date = ?", args + [date]
        if status is not None:
            sql, args = sql + " AND status = ?", args + [status]
        return self.db.execute(sql + " ORDER BY rowid", args).fetchall()

    def get_state(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def step_summaries(self, after: str | None) -> list[dict]:
        """The steps after session `after` (all when None), in order: date, equity, fills that day, orders
        sent that day ({symbol, qty}) — what the service's log line of a step reports."""
        days = [
            row[0]
            for row in self.db.execute(
                "SELECT date FROM steps WHERE ? IS NULL OR date > ? ORDER BY date", (after, after)
            ).fetchall()
        ]
        out = []
        for day in days:
            equity = self.db.execute("SELECT equity FROM equity WHERE date = ?", (day,)).fetchone()
            fills = self.db.execute("SELECT count(*) FROM fills WHERE date = ?", (day,)).fetchone()[0]
            orders = self.db.execute("SELECT symbol, qty FROM orders WHERE date = ? ORDER BY rowid", (day,)).fetchall()
            out.append(
                {
                    "date": day,
                    "equity": equity[0] if equity else None,
                    "fills": int(fills),
                    "orders": [{"symbol": o["symbol"], "qty": o["qty"]} for o in orders],
                }
            )
        return out

    def table(self, name: str, order: str = "rowid"):
        import pandas as pd

        return pd.read_sql_query(f"SELECT * FROM {name} ORDER BY {order}", self.db)

    # --- writes (inside a transaction) ----------------------------------------------------------
    def set_state(self, key: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def add(self, table: str, row: dict, replace: bool = False) -> None:
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.db.execute(f"{verb} INTO {table} ({names}) VALUES ({marks})", list(row.values()))

    def set_order_status(
        self, client_order_id: str, status: str, broker_id: str | None = None, reason: str | None = None
    ) -> None:
        self.db.execute(
            "UPDATE orders SET status = ?, broker_id = coalesce(?, broker_id), "
            "reason = coalesce(?, reason) WHERE client_order_id = ?",
            (status, broker_id, reason, client_order_id),
        )


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, kind, *_):
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
