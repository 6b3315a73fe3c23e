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

from backtests.books import lstm_sharpe, lstm_strategies, run_strategies, trial_config_hash
from backtests.config import ExperimentConfig
from backtests.errors import ConfigError
from backtests.stats import comparison_table
from backtests.trials import TrialLedger, data_fingerprint, legacy_fingerprint, open_trial_ledger

DEFAULT_COSTS_BP = (0.0, 2.0, 5.0, 10.0, 20.0, 50.0)
BENCHMARK = "buy_and_hold"


def parse_costs(text: str) -> list[float]:
    """A `--costs` grid ('0,2,5') as sorted distinct basis points, each from 0 to below 1000."""
    example = "e.g. --costs " + ",".join(f"{c:g}" for c in DEFAULT_COSTS_BP)
    try:
        grid = sorted({float(c) for c in text.split(",") if c.strip()})
    except ValueError:
        raise ConfigError(f"--costs '{text}' is not a list of numbers", example) from None
    if not grid:
        raise ConfigError("--costs is empty", example)
    if not all(np.isfinite(c) and 0 <= c < 1000 for c in grid):
        raise ConfigError(f"--costs '{text}': each cost must be a number of basis points from 0 to below 1000", example)
    return grid


def at_cost(config: ExperimentConfig, cost_bp: float) -> ExperimentConfig:
    """The config with the cost per side set to `cost_bp` as commission (slippage and fixed fees 0)."""
    broker = config.broker.model_copy(
        update={
            "commission_pct": cost_bp / 1e4,
            "slippage_pct": 0.0,
            "commission_per_share": 0.0,
            "commission_min": 0.0,
        }
    )
    return config.model_copy(update={"broker": broker})


def cost_sensitivity(
    prices: dict[str, pd.DataFrame],
    predictions: pd.DataFrame,
    config: ExperimentConfig,
    costs_bp=DEFAULT_COSTS_BP,
    ledger: TrialLedger | None = None,
    ledger_key: str = "sensitivity",
) -> pd.DataFrame:
    """One row per (cost, book, strategy): Sharpe, total return, CAGR, trades and costs paid.

    With a `ledger`, each cost is a configuration tried (key `<ledger_key>:<cost>`), recorded with the
    per-day Sharpe of the LSTM strategy as `run` and `backtest` record theirs."""
    rows = []
    labels = lstm_strategies(config)
    fingerprint = data_fingerprint(prices, config.data.start) if ledger else ""
    if ledger:
        ledger.adopt(legacy_fingerprint(config.data.source, config.data.start, config.data.end, prices), fingerprint)
    for cost in costs_bp:
        costly = at_cost(config, cost)
        results = run_strategies(prices, predictions, costly)
        if ledger is not None:
            ledger.add(
                f"{ledger_key}:{cost:g}",
                "sensitivity",
                fingerprint,
                trial_config_hash(predictions, costly),
                {"cost_bp": cost},
                "test",
                lstm_sharpe(results, labels),
                None,
            )
        table = comparison_table(results)
        table.insert(0, "cost_bp", float(cost))
        rows.append(table[["cost_bp", "ticker", "strategy", "sharpe", "total_return", "cagr", "trades", "costs"]])
    return pd.concat(rows, ignore_index=True)


def run_sensitivity(
    run_dir: str | Path, costs_bp=DEFAULT_COSTS_BP, ledger: str | Path | None = None
) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """A run dir's predictions traded again at each cost: writes sensitivity.csv and break_even.csv into
    it, records each cost in the trial ledger (`ledger`, else the run's config's or the user's); returns
    (run, table, break-evens)."""
    from backtests.backtest_only import read_predictions
    from backtests.config import load_config
    from backtests.rundir import require_run_dir
    from forecasting import load_prices

    run = require_run_dir(run_dir)
    config = load_config(run / "config.toml")
    predictions = read_predictions(run / "predictions.parquet")
    prices = load_prices(
        config.data.source, None, config.data.end, config.data.cache_dir, config.data.missing, config.data.dividends
    )
    prices = {t: prices[t] for t in prices if t in set(predictions["ticker"])}
    book = open_trial_ledger(ledger or config.ledger, run.parent)
    table = cost_sensitivity(prices, predictions, config, costs_bp, book, f"sensitivity:{run.resolve()}")
    even = break_even(table, config)
    write_sensitivity(run, table, even)
    return run, table, even


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
        out.append(
            {
                "book": book,
                "strategy": strategy,
                "break_even_vs_buy_and_hold_bp": _crossing(costs, gap) if len(bench) else float("nan"),
                "break_even_vs_zero_bp": _crossing(costs, sharpe),
            }
        )
    return pd.DataFrame(out, columns=["book", "strategy", "break_even_vs_buy_and_hold_bp", "break_even_vs_zero_bp"])


def write_sensitivity(run: Path, table: pd.DataFrame, even: pd.DataFrame) -> None:
    from backtests.rundir import write_csv

    write_csv(run / "sensitivity.csv", table)
    write_csv(run / "break_even.csv", even)
