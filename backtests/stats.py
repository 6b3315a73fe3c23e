"""The strategy comparison table, with QuantStats for the return statistics."""

from __future__ import annotations

import warnings

import pandas as pd

from backtests.engine import BacktestResult

COMPARISON_COLUMNS = ["strategy", "ticker", "total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown",
                      "exposure", "trades", "turnover", "win_rate", "costs", "final_equity"]


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
        "turnover": float(traded / equity.mean() / years) if years else 0.0,
        "win_rate": float((closed["pnl_net"] > 0).mean()) if len(closed) else float("nan"),
        "costs": float(result.fills["commission"].sum() + result.fills["slippage"].sum()),
        "final_equity": float(equity.iloc[-1]),
    }


def comparison_table(results: list[tuple[str, BacktestResult]]) -> pd.DataFrame:
    """Rows for (ticker, result) pairs, in the given order."""
    return pd.DataFrame([summarise(result, ticker) for ticker, result in results], columns=COMPARISON_COLUMNS)
