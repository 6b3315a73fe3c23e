"""The shared skeleton of every strategy: a target exposure per data, decided at the close, filled at the next open.

A subclass says only what it wants to hold: `target(data) -> float` in [-1, 1] (long 1, flat 0,
short -1), decided in `next()` at the close of bar t with data up to t. The orders come from the
same pure rule the paper-trading job uses (`strategies.decision.plan_orders`): sized from equity
and the close of t, sent at that close, and filled by Backtrader at the open of t+1.
"""

from __future__ import annotations

import backtrader as bt

from strategies.decision import Sizing, backtrader_params, cash_interest, plan_orders


class TargetStrategy(bt.Strategy):
    # the sizing parameters are declared once, in strategies.decision.Sizing (the broker's are set by the
    # engine from the broker config); these three are the engine's own
    _engine = (
        ("trade_start", None),  # datetime.date: no decisions before this bar (earlier bars warm indicators)
        ("liquidate_on", None),  # datetime.date: from this close on, the target is flat (filled at the next open)
        ("cash_rate", 0.0),  # annual interest on positive cash, credited for each bar from trade_start on
    )
    params = backtrader_params(Sizing) + _engine
    ENGINE_PARAMS = tuple(name for name, _ in _engine)

    def __init__(self) -> None:
        self.fills: list[dict] = []
        self.rejected = 0
        self.decisions: list[dict] = []  # date, ticker, target (in [-1, 1]) at every close from trade_start
        self._pending: dict = {}
        self._intended: dict = {}
        self._sizing = Sizing(**{name: getattr(self.p, name) for name, _ in backtrader_params(Sizing)})

    # --- what subclasses define ---------------------------------------------------------------
    def target(self, data) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- close of bar t: decide, size from this close, send; it fills at the next open ----------
    def next(self) -> None:
        day = self.datetime.date(0)
        if self.p.trade_start is not None and day < self.p.trade_start:
            return
        cash = self.broker.getcash()
        if self.p.cash_rate:
            self.broker.add_cash(cash_interest(cash, self.p.cash_rate))  # booked at the next bar
        final = self.p.liquidate_on is not None and day >= self.p.liquidate_on
        targets = {}
        for data in self.datas:
            if self._pending.get(data._name):
                continue
            targets[data._name] = 0.0 if final else self.target(data)
            self.decisions.append({"date": day, "ticker": data._name, "target": float(targets[data._name])})
        by_name = {d._name: d for d in self.datas}
        plan = plan_orders(
            targets,
            {n: self.getposition(d).size for n, d in by_name.items()},
            {n: d.close[0] for n, d in by_name.items()},
            cash,
            self._intended,
            self._sizing,
            len(self.datas),
        )
        self._intended = plan.intended
        for name, delta in plan.orders:
            data = by_name[name]
            self._pending[name] = self.buy(data=data, size=delta) if delta > 0 else self.sell(data=data, size=-delta)

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
