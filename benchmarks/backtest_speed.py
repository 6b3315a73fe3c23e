"""Our backtest engine vs raw Backtrader, the same SMA cross on the 5,031 S&P 500 bars, same process.

Prints the median wall time of each over several repeats and our overhead ratio (target <= 1.5x).

    python benchmarks/backtest_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import backtrader as bt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from backtests.engine import BrokerSpec, run_backtest  # noqa: E402
from forecasting import load_prices  # noqa: E402


class RawSmaCross(bt.Strategy):
    params = (("fast", 50), ("slow", 200))

    def __init__(self) -> None:
        self.cross = bt.indicators.CrossOver(
            bt.indicators.SMA(self.data.close, period=self.p.fast),
            bt.indicators.SMA(self.data.close, period=self.p.slow),
        )

    def next(self) -> None:
        if self.cross[0] > 0:
            self.order_target_percent(target=0.99)
        elif self.cross[0] < 0:
            self.order_target_percent(target=0.0)


def raw(prices: pd.DataFrame, broker: BrokerSpec) -> float:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=prices, openinterest=None))
    cerebro.broker.setcash(broker.cash)
    cerebro.broker.setcommission(commission=broker.commission_pct)
    cerebro.broker.set_slippage_perc(broker.slippage_pct, slip_open=True, slip_out=True)
    cerebro.addstrategy(RawSmaCross)
    cerebro.addanalyzer(bt.analyzers.TimeReturn, _name="returns")  # a daily return series, as ours has
    cerebro.run()
    return cerebro.broker.getvalue()


def ours(prices: pd.DataFrame, predictions: pd.DataFrame, broker: BrokerSpec) -> float:
    return float(run_backtest({"sp500": prices}, predictions, "sma_cross", broker, warmup=0).equity.iloc[-1])


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    prices = load_prices("builtin:sp500")["sp500"]
    predictions = pd.DataFrame(
        {
            "date": prices.index[:-1],
            "ticker": "sp500",
            "model": "lstm",
            "y_pred": 0.0,
            "price_pred": prices["close"].to_numpy()[:-1],
        }
    )
    broker = BrokerSpec()
    raw(prices, broker), ours(prices, predictions, broker)  # warm caches and imports
    t_raw = timed(lambda: raw(prices, broker), args.repeats)
    t_ours = timed(lambda: ours(prices, predictions, broker), args.repeats)
    print(f"bars: {len(prices)}")
    print(f"raw Backtrader : {t_raw:.3f} s  ({len(prices) / t_raw:,.0f} bars/s)")
    print(f"lstm-trader    : {t_ours:.3f} s  ({len(prices) / t_ours:,.0f} bars/s)")
    print(f"overhead ratio (ours / raw): {t_ours / t_raw:.2f}x  (target <= 1.5x)")
    assert np.isfinite(t_ours)


if __name__ == "__main__":
    main()
