"""The strategy comparison table, with QuantStats for the return statistics."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy.stats import norm

from backtests.engine import BacktestResult

COMPARISON_COLUMNS = ["strategy", "ticker", "total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown",
                      "exposure", "trades", "turnover", "win_rate", "costs", "final_equity", "psr", "dsr"]
EULER_GAMMA = 0.5772156649015329


def _qs():
    import quantstats as qs

    return qs


def summarise(result: BacktestResult, ticker: str) -> dict:
    """One comparison row: QuantStats return stats plus trading activity from the fills and positions."""
    qs = _qs()
    returns = result.returns.fillna(0.0)
    equity = result.equity
    years = max(len(returns), 1) / 252
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = {
            "total_return": float(equity.iloc[-1] / equity.iloc[0] - 1),
            "cagr": float(qs.stats.cagr(returns, periods=252)),
            "volatility": float(qs.stats.volatility(returns, periods=252)),
            "sharpe": float(qs.stats.sharpe(returns, periods=252)),
            "sortino": float(qs.stats.sortino(returns, periods=252)),
            "max_drawdown": float(qs.stats.max_drawdown(equity)),
        }
    held = (result.positions.iloc[:-1] != 0).any(axis=1)  # position held over the next day
    closed = result.trades.dropna(subset=["pnl_net"])
    traded = result.fills["value"].abs().sum()
    return {
        "strategy": result.strategy, "ticker": ticker, **stats,
        "exposure": float(held.mean()) if len(held) else 0.0,
        "trades": int(len(result.trades)),
        "turnover": float(traded / equity.mean() / years),
        "win_rate": float((closed["pnl_net"] > 0).mean()) if len(closed) else float("nan"),
        "costs": float(result.fills["commission"].sum() + result.fills["slippage"].sum()),
        "final_equity": float(equity.iloc[-1]),
    }


def probabilistic_sharpe(returns: pd.Series, benchmark_sr: float = 0.0) -> float:
    """P(true Sharpe > benchmark_sr) from a daily return series (Bailey & Lopez de Prado, 2012).

    Sharpe ratios here are per period (not annualised); skew and kurtosis come from QuantStats, so
    at benchmark 0 this equals `quantstats.stats.probabilistic_sharpe_ratio`.
    """
    qs = _qs()
    r = returns.dropna()
    n = len(r)
    if n < 3:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sr = float(qs.stats.sharpe(r, periods=252, annualize=False))
        skew = float(qs.stats.skew(r, prepare_returns=False))
        kurt = float(qs.stats.kurtosis(r, prepare_returns=False)) + 3
    spread = (1 - skew * sr + (kurt - 1) / 4 * sr ** 2) / (n - 1)
    if not (np.isfinite(sr) and spread > 0):
        return float("nan")
    return float(norm.cdf((sr - benchmark_sr) / math.sqrt(spread)))


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """Expected largest per-period Sharpe among `n_trials` unskilled strategies whose Sharpes vary by `sr_variance`."""
    if n_trials < 2 or not sr_variance > 0:
        return 0.0
    return math.sqrt(sr_variance) * ((1 - EULER_GAMMA) * norm.ppf(1 - 1 / n_trials)
                                     + EULER_GAMMA * norm.ppf(1 - 1 / (n_trials * math.e)))


def deflated_sharpe(returns: pd.Series, n_trials: int, sr_variance: float) -> float:
    """Deflated Sharpe ratio (Bailey & Lopez de Prado, 2014): the PSR against the best Sharpe that
    `n_trials` compared strategies would show by luck alone. It falls as more strategies are compared."""
    return probabilistic_sharpe(returns, expected_max_sharpe(n_trials, sr_variance))


def comparison_table(results: list[tuple[str, BacktestResult]]) -> pd.DataFrame:
    """Rows for (ticker, result) pairs, in the given order, with PSR and a DSR deflated by the number
    of strategies compared on the same ticker."""
    table = pd.DataFrame([summarise(result, ticker) for ticker, result in results],
                         columns=[c for c in COMPARISON_COLUMNS if c not in ("psr", "dsr")])
    qs = _qs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_period = pd.Series([float(qs.stats.sharpe(r.returns.fillna(0.0), periods=252, annualize=False))
                                for _, r in results])
    books = table["ticker"]
    psr, dsr = [], []
    for ticker, result in results:
        peers = per_period[books == ticker]
        finite = peers[np.isfinite(peers)]
        variance = float(np.var(finite, ddof=1)) if len(finite) > 1 else 0.0
        psr.append(probabilistic_sharpe(result.returns.fillna(0.0)))
        dsr.append(deflated_sharpe(result.returns.fillna(0.0), len(peers), variance))
    table["psr"], table["dsr"] = psr, dsr
    return table
