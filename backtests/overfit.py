"""Overfitting across the configurations tried: Hansen's SPA test and the probability of backtest
overfitting (PBO), from the daily returns the trial ledger keeps for every configuration.

The deflated Sharpe asks whether one strategy's Sharpe is above the best that luck would show among
N tries. These two ask the next questions, over every configuration tried on the same data and span:
- SPA (Hansen 2005, `arch.bootstrap.SPA`): does the best of them beat buy-and-hold (and cash),
  after accounting for all of them? A small p says at least one does.
- PBO (Bailey, Borwein, Lopez de Prado & Zhu 2017), by combinatorially symmetric cross-validation:
  split the days into S blocks; for every choice of S/2 blocks as "in sample", take the configuration
  with the best in-sample Sharpe and see where it ranks on the other half. PBO is the share of splits
  where it lands below the median: about 0.5 when the configurations are noise, near 0 when one truly
  dominates.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd

MIN_DAYS = 60  # common days the configurations need for either test
PBO_BLOCKS = 10  # C(10, 5) = 252 splits
SPA_REPS = 500


def aligned(series: list[pd.Series]) -> pd.DataFrame:
    """The configurations' daily returns on the days they all have (one column each)."""
    frame = pd.concat(series, axis=1, join="inner")
    frame.columns = range(frame.shape[1])
    return frame.dropna()


def spa_pvalue(returns: pd.DataFrame, benchmark: pd.Series | None = None, seed: int = 0) -> float:
    """Hansen's consistent SPA p-value that no configuration (a column of daily returns) beats the
    benchmark's returns (cash, 0, when None); stationary bootstrap, `arch`'s automatic block length."""
    import warnings

    from arch.bootstrap import SPA, optimal_block_length

    if len(returns) < MIN_DAYS or returns.shape[1] == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant column (a strategy that never traded) has no block length
        return _spa(returns, benchmark, seed, SPA, optimal_block_length)


def _spa(returns: pd.DataFrame, benchmark: pd.Series | None, seed: int, SPA, optimal_block_length) -> float:
    base = np.zeros(len(returns)) if benchmark is None else benchmark.reindex(returns.index).fillna(0.0).to_numpy()
    losses = -returns.to_numpy()
    differences = losses - (-base)[:, None]
    lengths = optimal_block_length(differences)["stationary"].to_numpy()
    block = float(max(1.0, np.nanmean(lengths))) if np.isfinite(lengths).any() else 1.0
    test = SPA(-base, losses, block_size=block, reps=SPA_REPS, bootstrap="stationary", seed=np.random.default_rng(seed))
    test.compute()
    return float(test.pvalues["consistent"])


def pbo(returns: pd.DataFrame, blocks: int = PBO_BLOCKS) -> float:
    """The probability of backtest overfitting by CSCV over the configurations (columns); NaN for fewer
    than two configurations or too few days."""
    n_days, n_configs = returns.shape
    if n_configs < 2 or n_days < max(MIN_DAYS, 2 * blocks):
        return float("nan")
    values = returns.to_numpy()
    parts = np.array_split(np.arange(n_days), blocks)
    logits = []
    for chosen in combinations(range(blocks), blocks // 2):
        inside = np.concatenate([parts[b] for b in chosen])
        outside = np.concatenate([parts[b] for b in range(blocks) if b not in chosen])
        best = int(np.argmax(_sharpes(values[inside])))
        oos = _sharpes(values[outside])
        rank = (np.sum(oos < oos[best]) + 0.5 * (np.sum(oos == oos[best]) - 1) + 1) / (n_configs + 1)
        logits.append(math.log(rank / (1.0 - rank)))
    return float(np.mean(np.asarray(logits) <= 0.0))


def _sharpes(values: np.ndarray) -> np.ndarray:
    spread = values.std(axis=0, ddof=1)
    return np.divide(values.mean(axis=0), spread, out=np.full(values.shape[1], -np.inf), where=spread > 0)


def overfitting(series: list[pd.Series], benchmark: pd.Series | None) -> dict:
    """SPA p-values against the benchmark and against cash, and PBO, over the configurations' returns."""
    frame = aligned(series) if series else pd.DataFrame()
    return {
        "configurations": int(frame.shape[1]) if len(frame) else len(series),
        "days": int(len(frame)),
        "spa_benchmark_pvalue": spa_pvalue(frame, benchmark) if benchmark is not None and len(frame) else float("nan"),
        "spa_cash_pvalue": spa_pvalue(frame) if len(frame) else float("nan"),
        "pbo": pbo(frame) if len(frame) else float("nan"),
    }
