"""Cost sensitivity: every strategy backtested again at other costs, and where the LSTM's edge ends.

No training: the run's predictions are traded again with the cost per side (commission, with
slippage set to 0, since both are a fraction of the traded value) at each point of a grid. The
break-even cost is where the LSTM strategy's Sharpe, interpolated linearly on the grid, falls to
buy-and-hold's Sharpe at that cost, and to 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from backtests.config import ExperimentConfig
from backtests.experiment import lstm_strategies, run_strategies
from backtests.stats import comparison_table

DEFAULT_COSTS_BP = (0.0, 2.0, 5.0, 10.0, 20.0, 50.0)
BENCHMARK = "buy_and_hold"


def cost_sensitivity(prices: dict[str, pd.DataFrame], predictions: pd.DataFrame, config: ExperimentConfig,
                     costs_bp=DEFAULT_COSTS_BP) -> pd.DataFrame:
    """One row per (cost, book, strategy): Sharpe, total return, CAGR, trades and costs paid."""
    rows = []
    for cost in costs_bp:
        broker = config.broker.model_copy(update={"commission_pct": cost / 1e4, "slippage_pct": 0.0,
                                                  "commission_per_share": 0.0, "commission_min": 0.0})
        results = run_strategies(prices, predictions, config.model_copy(update={"broker": broker}))
        table = comparison_table(results)
        table.insert(0, "cost_bp", float(cost))
        rows.append(table[["cost_bp", "ticker", "strategy", "sharpe", "total_return", "cagr", "trades", "costs"]])
    return pd.concat(rows, ignore_index=True)


def _crossing(costs: np.ndarray, gap: np.ndarray) -> float:
    """The first cost where `gap` (decreasing in cost, ideally) reaches 0, linearly interpolated.

    The lowest cost when it is not positive even there (the break-even is at or below it); NaN when
    it stays positive on the whole grid.
    """
    if not gap[0] > 0:
        return float(costs[0])
    for i in range(1, len(gap)):
        if gap[i] <= 0:
            return float(costs[i - 1] + (costs[i] - costs[i - 1]) * gap[i - 1] / (gap[i - 1] - gap[i]))
    return float("nan")


def break_even(table: pd.DataFrame, config: ExperimentConfig) -> pd.DataFrame:
    """Per book and LSTM strategy: the cost (bp per side) at which its Sharpe falls to buy-and-hold's and to 0."""
    out = []
    labels = lstm_strategies(config)
    for (book, strategy), rows in table.groupby(["ticker", "strategy"], sort=False):
        if strategy not in labels:
            continue
        rows = rows.sort_values("cost_bp")
        bench = table[(table["ticker"] == book) & (table["strategy"] == BENCHMARK)].set_index("cost_bp")["sharpe"]
        costs, sharpe = rows["cost_bp"].to_numpy(), rows["sharpe"].to_numpy()
        gap = sharpe - bench.reindex(costs).to_numpy() if len(bench) else np.full(len(costs), np.nan)
        out.append({"book": book, "strategy": strategy,
                    "break_even_vs_buy_and_hold_bp": _crossing(costs, gap) if len(bench) else float("nan"),
                    "break_even_vs_zero_bp": _crossing(costs, sharpe)})
    return pd.DataFrame(out, columns=["book", "strategy", "break_even_vs_buy_and_hold_bp", "break_even_vs_zero_bp"])


def write_sensitivity(run: Path, table: pd.DataFrame, even: pd.DataFrame) -> None:
    from backtests.rundir import write_csv

    write_csv(run / "sensitivity.csv", table)
    write_csv(run / "break_even.csv", even)
