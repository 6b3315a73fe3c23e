"""The shared skeleton of every strategy: a target exposure per data, traded at the next open.

A subclass says only what it wants to hold: `target(data) -> float` in [-1, 1] (long 1, flat 0,
short -1), decided in `next()` at the close of bar t with data up to t. The base queues that
decision and sends the order in `next_open()` of bar t+1 (Backtrader's cheat-on-open hook), where
it fills at that open. Only the *size* uses the t+1 open, so that an overnight gap never makes a
fully invested order bounce for lack of cash; the decision itself never sees bar t+1.
"""

from __future__ import annotations

import math

import backtrader as bt


class TargetStrategy(bt.Strategy):
    params = (
        ("max_exposure", 1.0),    # of equity, split equally over the datas
        ("rebalance_band", 0.1),  # re-size only when the wanted exposure moves by more than this
        ("trade_start", None),    # datetime.date: no decisions before this bar (earlier bars warm indicators)
        ("liquidate_on", None),   # datetime.date: from this close on, the target is flat (filled at the next open)
        ("cash_rate", 0.0),       # annual interest on positive cash, credited for each bar from trade_start on
        ("fractional", False),    # set by the engine from the broker config
        ("slippage_pct", 0.0),    # set by the engine: sizes leave room for the costs of the fill
        ("commission_pct", 0.0),
        ("commission_per_share", 0.0),
    )

    def __init__(self) -> None:
        self.fills: list[dict] = []
        self.rejected = 0
        self._queued: dict = {}
        self._pending: dict = {}
        self._intended: dict = {}

    # --- what subclasses define ---------------------------------------------------------------
    def target(self, data) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- close of bar t: decide ---------------------------------------------------------------
    def next(self) -> None:
        if self.p.trade_start is not None and self.datetime.date(0) < self.p.trade_start:
            return
        cash = self.broker.getcash()
        if self.p.cash_rate and cash > 0:
            # one bar's interest at the daily rate QuantStats' Sharpe subtracts, booked at the next bar
            self.broker.add_cash(cash * ((1 + self.p.cash_rate) ** (1 / 252) - 1))
        share = self.p.max_exposure / len(self.datas)
        final = self.p.liquidate_on is not None and self.datetime.date(0) >= self.p.liquidate_on
        for data in self.datas:
            if self._pending.get(data._name):
                continue
            wanted = 0.0 if final else self.target(data)
            if wanted is None or math.isnan(wanted):
                continue
            wanted = max(-1.0, min(1.0, wanted)) * share
            intended = self._intended.get(data._name)
            if intended is None or self._differs(wanted, intended, share):
                self._intended[data._name] = wanted
                self._queued[data._name] = (data, wanted)

    def _differs(self, wanted: float, intended: float, share: float) -> bool:
        if (wanted == 0) != (intended == 0) or math.copysign(1, wanted) != math.copysign(1, intended):
            return True
        return abs(wanted - intended) > self.p.rebalance_band * share

    # --- open of bar t+1: size with the open price and send; it fills at this open ------------
    def next_open(self) -> None:
        if not self._queued:
            return
        cost = (1 + self.p.slippage_pct) * (1 + self.p.commission_pct) - 1  # per unit of traded value
        value = self.broker.getcash() + sum(self.getposition(d).size * d.open[0] for d in self.datas)
        for data, wanted in self._queued.values():  # closing or reversing pays costs before opening
            held = self.getposition(data).size
            if held and (wanted == 0 or math.copysign(1, wanted) != math.copysign(1, held)):
                value -= abs(held) * (data.open[0] * cost + self.p.commission_per_share)
        orders = []
        for data, wanted in self._queued.values():
            price = data.open[0]
            shares = wanted * value / (price * (1 + cost) + self.p.commission_per_share)
            # whole shares, or fractional ones in millionths, always rounded towards zero
            shares = math.trunc(shares * 1e6) / 1e6 if self.p.fractional else float(math.trunc(shares))
            delta = shares - self.getposition(data).size
            if delta:
                orders.append((delta, data))
        self._queued.clear()
        for delta, data in sorted(orders, key=lambda o: o[0]):  # sells first, so their cash pays for buys
            order = self.buy(data=data, size=delta) if delta > 0 else self.sell(data=data, size=-delta)
            self._pending[data._name] = order

    def notify_order(self, order) -> None:
        name = order.data._name
        if order.status == order.Completed:
            self.fills.append({
                "date": bt.num2date(order.executed.dt).date(), "ticker": name,
                "size": float(order.executed.size), "price": float(order.executed.price),
                "value": float(order.executed.size * order.executed.price),
                "commission": float(order.executed.comm), "open": float(order.data.open[0]),
            })
        if order.status in (order.Canceled, order.Margin, order.Rejected):
            self.rejected += 1
            self._intended.pop(name, None)  # decide again at the next close
        if not order.alive():
            self._pending.pop(name, None)
