"""Analyzers that record what the engine needs bar by bar."""

from __future__ import annotations

import backtrader as bt


class BookRecorder(bt.analyzers.Analyzer):
    """Equity, cash and shares held per data at every close from `start` (a date) on."""

    params = (("start", None),)

    def start(self) -> None:
        self.rows: list[dict] = []

    def next(self) -> None:
        date = self.strategy.datetime.date(0)
        if self.p.start is not None and date < self.p.start:
            return
        row = {"date": date, "equity": self.strategy.broker.getvalue(), "cash": self.strategy.broker.getcash()}
        for data in self.strategy.datas:
            row[data._name] = self.strategy.getposition(data).size
        self.rows.append(row)

    def get_analysis(self) -> list[dict]:
        return self.rows
