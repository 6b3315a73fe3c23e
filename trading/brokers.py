"""Where a paper account's orders go: the local simulated broker, or an Alpaca paper account.

Both take market orders after the close with a client order id and fill them at the next session's
open. Submitting is idempotent: an id the broker already knows is never sent twice, and `find`
asks the broker about an id, which is how a step that crashed after sending reconciles.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date

from backtests.engine import BrokerSpec, fill_commission
from backtests.errors import BacktestError
from forecasting.data import ALPACA_KEY_ENV, ALPACA_SECRET_ENV, alpaca_keys

KEY_ENV, SECRET_ENV, URL_ENV = ALPACA_KEY_ENV, ALPACA_SECRET_ENV, "APCA_API_BASE_URL"


@dataclass
class Fill:
    client_order_id: str
    ticker: str
    qty: float  # signed shares
    price: float
    commission: float
    date: str


@dataclass
class Book:
    cash: float
    positions: dict[str, tuple[float, float]]  # ticker -> (signed shares, average entry price)


class LocalBroker:
    """A simulated broker in the account's SQLite file: fills at the next open from the data source,
    with the config's slippage and commission, exactly as the backtest's Backtrader broker does.

    Its own tables (`broker_orders`, `broker_book`) stand for the broker's side of the world: the
    ledger reads them through this class only.
    """

    name = "local"

    def __init__(self, db, costs: BrokerSpec) -> None:
        self.db, self.costs = db, costs

    @staticmethod
    def create(db, costs: BrokerSpec) -> None:
        """The broker's tables and its starting cash (at `paper init`)."""
        db.executescript("""
            CREATE TABLE IF NOT EXISTS broker_orders (client_order_id TEXT PRIMARY KEY, ticker TEXT NOT NULL,
                qty REAL NOT NULL, date TEXT NOT NULL, status TEXT NOT NULL, fill_date TEXT, price REAL,
                commission REAL);
            CREATE TABLE IF NOT EXISTS broker_book (ticker TEXT PRIMARY KEY, qty REAL NOT NULL, price REAL NOT NULL,
                since TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS broker_cash (id INTEGER PRIMARY KEY CHECK (id = 0), cash REAL NOT NULL,
                pending REAL NOT NULL DEFAULT 0);
        """)
        if db.execute("SELECT 1 FROM broker_cash").fetchone() is None:
            db.execute("INSERT OR IGNORE INTO broker_cash (id, cash) VALUES (0, ?)", (costs.cash,))

    def check(self) -> None:
        return None

    def book(self) -> Book:
        cash = self.db.execute("SELECT cash FROM broker_cash").fetchone()[0]
        rows = self.db.execute("SELECT ticker, qty, price FROM broker_book WHERE qty != 0").fetchall()
        return Book(cash, {r[0]: (r[1], r[2]) for r in rows})

    def find(self, client_order_id: str) -> dict | None:
        row = self.db.execute(
            "SELECT rowid, status FROM broker_orders WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        return {"id": f"local-{row[0]}", "status": row[1]} if row else None

    def submit(self, client_order_id: str, ticker: str, symbol: str, qty: float, day: str) -> str:
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute(
            "INSERT OR IGNORE INTO broker_orders (client_order_id, ticker, qty, date, status) "
            "VALUES (?, ?, ?, ?, 'accepted')",
            (client_order_id, ticker, qty, day),
        )
        self.db.execute("COMMIT")
        return self.find(client_order_id)["id"]

    def credit(self, amount: float) -> None:
        """Interest on cash computed at this close; it reaches the cash after the next open's fills."""
        if amount:
            self.db.execute("UPDATE broker_cash SET pending = pending + ?", (amount,))

    def settle(self, day: str, opens: dict[str, float]) -> tuple[list[Fill], list[tuple[str, str]]]:
        """Fill every accepted order sent before `day` at `day`'s open (inside the caller's transaction).

        As Backtrader: short positions are charged their borrow interest first; orders fill in the
        order they were sent (sells first); a buy that cash can't pay is refused.
        """
        c = self.costs
        cash = self.db.execute("SELECT cash FROM broker_cash").fetchone()[0]
        book = {r[0]: [r[1], r[2], r[3]] for r in self.db.execute("SELECT ticker, qty, price, since FROM broker_book")}
        if c.short_borrow_rate:
            for ticker, (qty, price, since) in book.items():
                if qty < 0 and day > since:
                    days = (date.fromisoformat(day) - date.fromisoformat(since)).days
                    cash -= days * price * abs(qty) * c.short_borrow_rate / 365
                if qty:
                    book[ticker][2] = day
        fills, refused = [], []
        pending = self.db.execute(
            "SELECT client_order_id, ticker, qty FROM broker_orders WHERE status = 'accepted' "
            "AND date < ? ORDER BY rowid",
            (day,),
        ).fetchall()
        for client_order_id, ticker, qty in pending:
            open_ = opens[ticker]
            price = open_ * (1 + c.slippage_pct) if qty > 0 else open_ * (1 - c.slippage_pct)
            held, avg, _ = book.get(ticker, [0.0, 0.0, day])
            # as Backtrader: the part that closes (or reduces) the position, then the part that opens one,
            # each with its own commission; only the opening part needs cash
            against = held and (held > 0) != (qty > 0)
            closing = (-held if abs(qty) >= abs(held) else qty) if against else 0.0
            opening = qty - closing
            cash -= closing * price + self._commission(closing, price)
            after = cash - opening * price - self._commission(opening, price)
            status, reason = "filled", None
            if opening > 0 and after < 0:
                status, reason, opening = "rejected", "insufficient cash at the open", 0.0
                if closing:
                    reason = "the position was closed, but cash can't pay the rest at the open"
            else:
                cash = after
            done = closing + opening
            commission = self._commission(closing, price) + self._commission(opening, price)
            if status == "rejected":
                refused.append((client_order_id, reason))
            if done:
                position = held
                for leg in (closing, opening):
                    if leg:
                        avg, position = _average(position, avg, leg, price), position + leg
                book[ticker] = [position, avg, day]
                fills.append(Fill(client_order_id, ticker, done, price, commission, day))
            self.db.execute(
                "UPDATE broker_orders SET status = ?, fill_date = ?, price = ?, commission = ? "
                "WHERE client_order_id = ?",
                (status, day, price if done else None, commission if done else None, client_order_id),
            )
        # interest credited at the previous close reaches the cash after this open's fills (Backtrader's add_cash)
        cash += self.db.execute("SELECT pending FROM broker_cash").fetchone()[0]
        self.db.execute("UPDATE broker_cash SET cash = ?, pending = 0", (cash,))
        for ticker, (qty, price, since) in book.items():
            self.db.execute(
                "INSERT OR REPLACE INTO broker_book (ticker, qty, price, since) VALUES (?, ?, ?, ?)",
                (ticker, qty, price, since),
            )
        return fills, refused

    def _commission(self, qty: float, price: float) -> float:
        c = self.costs
        return fill_commission(qty, price, c.commission_pct, c.commission_per_share, c.commission_min)


def _average(held: float, avg: float, qty: float, price: float) -> float:
    """Average entry price after a fill, as Backtrader's Position keeps it."""
    new = held + qty
    if new == 0:
        return 0.0
    if held == 0 or (held > 0) != (new > 0):  # opened, or reversed: the fill's price
        return price
    if (held > 0) == (qty > 0):  # added to the position
        return (avg * held + price * qty) / new
    return avg  # reduced


class AlpacaBroker:
    """An Alpaca paper account through alpaca-py. Keys come from the environment only and are
    never written anywhere; `APCA_API_BASE_URL` points the client elsewhere (a test stub)."""

    name = "alpaca"

    def __init__(self, symbols: dict[str, str]) -> None:
        try:
            from alpaca.trading.client import TradingClient
        except ImportError:
            raise BacktestError(
                "the alpaca broker needs alpaca-py, which is not installed", "pip install 'lstm-trader[alpaca]'"
            ) from None
        keys = alpaca_keys()
        if keys is None:
            raise BacktestError(
                f"the alpaca broker needs {KEY_ENV} and {SECRET_ENV} in the environment",
                "export your Alpaca paper-trading keys (they are never written to disk)",
            )
        self.symbols = symbols
        self.client = TradingClient(*keys, paper=True, raw_data=True, url_override=os.environ.get(URL_ENV) or None)

    def _call(self, what: str, fn, *args, missing_ok: bool = False, order: bool = False):
        """Call the API; errors become one clear line. `missing_ok`: a 404 returns None. `order`: a refusal
        of the order itself (403/422, e.g. insufficient buying power) raises OrderRejected."""
        from alpaca.common.exceptions import APIError
        from requests.exceptions import RequestException

        try:
            return fn(*args)
        except APIError as exc:
            status, message = getattr(exc, "status_code", None), _message(exc)
            if status == 401 or (status == 403 and "not authorized" in message.lower()):
                raise BacktestError(
                    f"Alpaca refused the keys ({what}: HTTP {status})",
                    f"check {KEY_ENV} / {SECRET_ENV}: they must be paper-trading keys",
                ) from None
            if missing_ok and status == 404:
                return None
            if order and status in (403, 422):
                raise OrderRejected(message) from None
            raise BacktestError(f"Alpaca: {what} failed: {message}", "see the Alpaca dashboard") from None
        except RequestException as exc:
            raise BacktestError(
                f"Alpaca: {what} failed: cannot reach the API ({type(exc).__name__})",
                "check the network; the next step reconciles whatever was sent",
            ) from None

    def check(self) -> None:
        account = self._call("reading the account", self.client.get_account)
        if str(account.get("status", "ACTIVE")).upper() != "ACTIVE":
            raise BacktestError(f"the Alpaca account is {account.get('status')}", "open the Alpaca dashboard")

    def clock(self) -> dict:
        """The market clock: `is_open`, `timestamp`, next open and close."""
        return self._call("reading the market clock", self.client.get_clock)

    def book(self) -> Book:
        account = self._call("reading the account", self.client.get_account)
        positions = self._call("reading positions", self.client.get_all_positions)
        by_symbol = {v: k for k, v in self.symbols.items()}
        held = {}
        for p in positions:
            ticker = by_symbol.get(p["symbol"], p["symbol"])  # unmapped: the data's ticker is the symbol
            held[ticker] = (float(p["qty"]), float(p.get("avg_entry_price") or 0.0))
        return Book(float(account["cash"]), held)

    def find(self, client_order_id: str) -> dict | None:
        order = self._call(
            f"looking up {client_order_id}", self.client.get_order_by_client_id, client_order_id, missing_ok=True
        )
        if order is None:
            return None
        return {
            "id": order["id"],
            "status": order["status"],
            "filled_qty": float(order.get("filled_qty") or 0),
            "price": float(order["filled_avg_price"]) if order.get("filled_avg_price") else None,
        }

    def submit(self, client_order_id: str, ticker: str, symbol: str, qty: float, day: str) -> str:
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        request = MarketOrderRequest(
            symbol=symbol,
            qty=abs(qty),
            side=OrderSide.BUY if qty > 0 else OrderSide.SELL,
            time_in_force=TimeInForce.DAY,
            client_order_id=client_order_id,
        )
        order = self._call(f"sending {client_order_id}", self.client.submit_order, request, order=True)
        return order["id"]

    def credit(self, amount: float) -> None:
        return None  # the broker pays its own interest

    def settle(self, day: str, opens: dict[str, float], sent: list | None = None) -> tuple[list[Fill], list]:
        """Fills of the orders `sent` (ledger rows) that the broker has finished with.

        Filled, or canceled/expired after a partial fill: the filled part is a fill. Rejected,
        canceled or expired with nothing filled: refused. Still working (new, accepted,
        partially filled, pending): left as sent, and that ticker is not re-decided until it is done.
        """
        fills, refused = [], []
        for row in sent or []:
            found = self.find(row["client_order_id"])
            if found is None:
                refused.append((row["client_order_id"], "unknown to the broker"))
                continue
            final = found["status"] in ("filled", "canceled", "expired", "rejected", "done_for_day")
            if not final:
                continue
            if found["filled_qty"] and found["price"] is not None:
                sign = 1.0 if row["qty"] > 0 else -1.0
                fills.append(
                    Fill(row["client_order_id"], row["ticker"], sign * found["filled_qty"], found["price"], 0.0, day)
                )
            else:
                refused.append((row["client_order_id"], found["status"]))
        return fills, refused


class OrderRejected(BacktestError):
    """The broker refused an order (e.g. insufficient buying power)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the broker rejected the order: {reason}", "the rejection is in the ledger")
        self.reason = reason


def _message(exc) -> str:
    try:
        return json.loads(str(exc)).get("message", str(exc))
    except (ValueError, AttributeError):
        return str(exc)
