"""The shared skeleton of every strategy: what to hold, decided at the close, filled at the next open.

A per-ticker subclass says only what it wants to hold of each data: `target(data) -> float` in
[-1, 1] (long 1, flat 0, short -1), decided in `next()` at the close of bar t with data up to t.
A universe subclass (`universe = True`) decides all names at once: `weights(session, datas)`
returns the wanted signed fraction of equity of each name on a decision day (None on other days).
The orders come from the same pure rule the paper-trading job uses (`strategies.decision`): sized
from equity and the close of t, sent at that close, and filled by Backtrader at the open of t+1.
"""

from __future__ import annotations

import backtrader as bt

from strategies.decision import (
    Sizing,
    backtrader_params,
    cash_interest,
    dividend_cash,
    plan_orders,
    universe_orders,
)


class TargetStrategy(bt.Strategy):
    universe = False  # True: one decision for the whole universe (`weights`), run once on all tickers

    # the sizing parameters are declared once, in strategies.decision.Sizing (the broker's are set by the
    # engine from the broker config); these are the engine's own
    _engine = (
        ("trade_start", None),  # datetime.date: no decisions before this bar (earlier bars warm indicators)
        ("liquidate_on", None),  # datetime.date: from this close on, the target is flat (filled at the next open)
        ("cash_rate", 0.0),  # annual interest on positive cash, credited for each bar from trade_start on
        ("ticker_starts", None),  # {ticker: date}: a universe strategy counts a name from its first prediction
    )
    params = backtrader_params(Sizing) + _engine
    ENGINE_PARAMS = tuple(name for name, _ in _engine)

    def __init__(self) -> None:
        self.fills: list[dict] = []
        self.rejected = 0
        # date, ticker, target at every decision: per ticker in [-1, 1] at every close from trade_start;
        # for universe strategies the weight (signed fraction of equity) of every name on decision days
        self.decisions: list[dict] = []
        self.session = 0  # closes decided from trade_start: 0 at the first (universe strategies' schedule)
        self._pending: dict = {}
        self._intended: dict = {}
        self._last_decided: dict = {}  # a universe strategy's last decided weights (a refused buy retries them)
        self._held: dict = {}  # shares held at the last close: a dividend's holders of record
        self._sizing = Sizing(**{name: getattr(self.p, name) for name, _ in backtrader_params(Sizing)})

    # --- what subclasses define ---------------------------------------------------------------
    def target(self, data) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def weights(self, session: int, datas: list) -> dict[str, float] | None:  # pragma: no cover - abstract
        """Universe strategies: each name's wanted weight at this close (None: not a decision day).

        `datas` are the feeds with a bar dated today whose first prediction has come; `session` counts
        the closes from trade_start (0 at the first)."""
        raise NotImplementedError

    def band_unit(self, weights: dict[str, float]) -> float:  # pragma: no cover - abstract
        """Universe strategies: the weight the rebalance band is a fraction of (one slot)."""
        raise NotImplementedError

    @classmethod
    def check_universe_size(cls, params: dict, n_tickers: int) -> None:
        """Raise StrategyError when `params` cannot be traded on `n_tickers` names (checked before a run)."""

    # --- close of bar t: decide, size from this close, send; it fills at the next open ----------
    def prenext(self) -> None:
        if self.universe:  # a ragged universe trades from its first feed's first bar, not its last one's
            self.next()

    def next(self) -> None:
        day = self.datetime.date(0)
        if self.p.trade_start is not None and day < self.p.trade_start:
            return
        cash = self.broker.getcash()
        if self.p.cash_rate:
            self.broker.add_cash(cash_interest(cash, self.p.cash_rate))  # booked at the next bar
        paid = dividend_cash(
            self._held, {d._name: d.dividend[0] for d in self.datas if len(d) and d.datetime.date(0) == day}
        )
        if paid:  # to the holders at the last close (shorts pay), booked at the next bar as the interest
            self.broker.add_cash(paid)
        final = self.p.liquidate_on is not None and day >= self.p.liquidate_on
        plan = self._plan_universe(day, cash, final) if self.universe else self._plan_each(day, cash, final)
        self._held = {d._name: self.getposition(d).size for d in self.datas if len(d)}  # held at this close
        self.session += 1
        if plan is None:
            return
        self._intended = plan.intended
        by_name = {d._name: d for d in self.datas}
        for name, delta in plan.orders:
            data = by_name[name]
            self._pending[name] = self.buy(data=data, size=delta) if delta > 0 else self.sell(data=data, size=-delta)

    def _plan_each(self, day, cash: float, final: bool):
        targets = {}
        for data in self.datas:
            if self._pending.get(data._name):
                continue
            targets[data._name] = 0.0 if final else self.target(data)
            self.decisions.append({"date": day, "ticker": data._name, "target": float(targets[data._name])})
        by_name = {d._name: d for d in self.datas}
        return plan_orders(
            targets,
            {n: self.getposition(d).size for n, d in by_name.items()},
            {n: d.close[0] for n, d in by_name.items()},
            cash,
            self._intended,
            self._sizing,
            len(self.datas),
        )

    def _plan_universe(self, day, cash: float, final: bool):
        live = [d for d in self.datas if self._trades_on(d, day)]
        if final:
            decided, unit = {d._name: 0.0 for d in live}, 1.0
        else:
            decided = self.weights(self.session, live)
            unit = self.band_unit(decided if decided is not None else self._last_decided)
        started = [d for d in self.datas if len(d)]  # a feed not yet started has no close to read
        live_names = {d._name for d in live}
        plan, acting, self._last_decided = universe_orders(
            decided,
            self._last_decided,
            {d._name: self.getposition(d).size for d in started},
            {d._name: d.close[0] for d in started},
            cash,
            self._intended,
            self._sizing,
            unit,
            busy={n for n in self._pending if self._pending.get(n)} | {d._name for d in started} - live_names,
        )
        for name, weight in (decided if decided is not None else acting).items():
            self.decisions.append({"date": day, "ticker": name, "target": float(weight)})
        return plan if (decided is not None or acting) else None

    def _trades_on(self, data, day) -> bool:
        """Whether `data` takes part in today's decision: a bar dated today, on or after its first prediction."""
        starts = self.p.ticker_starts or {}
        first = starts.get(data._name)
        return bool(len(data)) and data.datetime.date(0) == day and (first is None or day >= first)

    def notify_order(self, order) -> None:
        name = order.data._name
        # a market order fills whole (Completed), or closes the position and is refused the rest for lack
        # of cash (Partial, then Margin): each is one notification with what was executed
        if order.status in (order.Partial, order.Completed) and order.executed.size:
            self.fills.append(
                {
                    "date": bt.num2date(order.executed.dt).date(),
                    "ticker": name,
                    "size": float(order.executed.size),
                    "price": float(order.executed.price),
                    "value": float(order.executed.size * order.executed.price),
                    "commission": float(order.executed.comm),
                    "open": float(order.data.open[0]),
                }
            )
        if order.status in (order.Canceled, order.Margin, order.Rejected):
            self.rejected += 1
            self._intended.pop(name, None)  # decide again at the next close
        if not order.alive():
            self._pending.pop(name, None)
