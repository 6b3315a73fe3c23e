"""The strategy comparison table, with QuantStats for the return statistics."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy.stats import norm

from backtests.engine import BacktestResult
from strategies.decision import per_bar_rate

COMPARISON_COLUMNS = [
    "strategy",
    "ticker",
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "exposure",
    "trades",
    "rejected",
    "turnover",
    "win_rate",
    "costs",
    "final_equity",
    "psr",
    "dsr",
    "dsr_variance",
    "sharpe_low",
    "sharpe_high",
    "cagr_low",
    "cagr_high",
    "max_drawdown_low",
    "max_drawdown_high",
]
INTERVAL_LEVEL = 0.90
BOOTSTRAP_REPS = 500
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
            "sharpe": float(qs.stats.sharpe(returns, rf=result.risk_free, periods=252)),
            "sortino": float(qs.stats.sortino(returns, rf=result.risk_free, periods=252)),
            "max_drawdown": float(qs.stats.max_drawdown(equity)),
        }
    held = (result.positions.iloc[:-1] != 0).any(axis=1)  # position held over the next day
    closed = result.trades.dropna(subset=["pnl_net"])
    traded = result.fills["value"].abs().sum()
    return {
        "strategy": result.strategy,
        "ticker": ticker,
        **stats,
        "exposure": float(held.mean()) if len(held) else 0.0,
        "trades": int(len(result.trades)),
        "rejected": int(result.rejected_orders),  # orders the broker refused (a gap beyond the cash buffer)
        "turnover": float(traded / equity.mean() / years),
        "win_rate": float((closed["pnl_net"] > 0).mean()) if len(closed) else float("nan"),
        "costs": float(result.fills["commission"].sum() + result.fills["slippage"].sum()),
        "final_equity": float(equity.iloc[-1]),
    }


def _sharpe_moments(returns: pd.Series) -> tuple[float, float, int]:
    """Per-period Sharpe, and the variance of its estimate (skew and kurtosis from QuantStats)."""
    qs = _qs()
    r = returns.dropna()
    n = len(r)
    if n < 3:
        return float("nan"), float("nan"), n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sr = float(qs.stats.sharpe(r, periods=252, annualize=False))
        skew = float(qs.stats.skew(r, prepare_returns=False))
        kurt = float(qs.stats.kurtosis(r, prepare_returns=False)) + 3
    return sr, (1 - skew * sr + (kurt - 1) / 4 * sr**2) / (n - 1), n


def probabilistic_sharpe(returns: pd.Series, benchmark_sr: float = 0.0) -> float:
    """P(true Sharpe > benchmark_sr) from a daily return series (Bailey & Lopez de Prado, 2012).

    Sharpe ratios here are per period (not annualised); skew and kurtosis come from QuantStats, so
    at benchmark 0 this equals `quantstats.stats.probabilistic_sharpe_ratio`.
    """
    sr, spread, _ = _sharpe_moments(returns)
    if not (np.isfinite(sr) and spread > 0):
        return float("nan")
    return float(norm.cdf((sr - benchmark_sr) / math.sqrt(spread)))


def sharpe_estimate_variance(returns: pd.Series) -> float:
    """Sampling variance of the per-period Sharpe estimated from `returns` (Mertens / Lo)."""
    return _sharpe_moments(returns)[1]


def per_period_sharpe(returns: pd.Series) -> float:
    return _sharpe_moments(returns)[0]


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """Expected largest per-period Sharpe among `n_trials` unskilled strategies whose Sharpes vary by `sr_variance`."""
    if n_trials < 2 or not sr_variance > 0:
        return 0.0
    return math.sqrt(sr_variance) * (
        (1 - EULER_GAMMA) * norm.ppf(1 - 1 / n_trials) + EULER_GAMMA * norm.ppf(1 - 1 / (n_trials * math.e))
    )


def deflated_sharpe(returns: pd.Series, n_trials: int, sr_variance: float) -> float:
    """Deflated Sharpe ratio (Bailey & Lopez de Prado, 2014): the PSR against the best Sharpe that
    `n_trials` configurations would show by luck alone. It falls as more configurations are tried."""
    return probabilistic_sharpe(returns, expected_max_sharpe(n_trials, sr_variance))


def trial_variance(returns: pd.Series, ledger_variance: float) -> float:
    """The V of the deflated Sharpe: the ledger's variance of Sharpes across configurations, but never
    below the sampling variance of one Sharpe estimate (even identical configurations differ by that
    much under the null, and a handful of ledger rows says little about the spread)."""
    floor = sharpe_estimate_variance(returns)
    return max(ledger_variance, floor if np.isfinite(floor) else 0.0)


def excess_returns(result: BacktestResult) -> pd.Series:
    """Daily returns over the risk-free rate (the broker's cash rate per bar, (1 + r)^(1/252) - 1, as
    QuantStats converts it), which the Sharpe ratios use."""
    return result.returns.fillna(0.0) - per_bar_rate(result.risk_free)


def bootstrap_intervals(
    returns: pd.Series, risk_free: float = 0.0, level: float = INTERVAL_LEVEL, reps: int = BOOTSTRAP_REPS, seed: int = 0
) -> dict[str, float]:
    """Stationary-bootstrap (Politis & Romano; `arch`) percentile intervals at `level` for the annualised
    Sharpe (over `risk_free`, as the table's), the CAGR and the maximum drawdown of daily `returns`.

    Blocks of random (geometric) length keep the returns' serial dependence; their mean length is
    `arch`'s optimal block length for the series (Politis & White). Seeded: the same returns give the
    same interval. Over 5.8 years a Sharpe of 0.47 has a standard error of about 0.4: the interval says
    how far apart two strategies' Sharpes must be before the difference means anything."""
    from arch.bootstrap import StationaryBootstrap, optimal_block_length

    values = returns.fillna(0.0).to_numpy(dtype="float64")
    nan = {f"{name}_{side}": float("nan") for name in ("sharpe", "cagr", "max_drawdown") for side in ("low", "high")}
    if len(values) < 20 or np.ptp(values) == 0:
        return nan
    rf = per_bar_rate(risk_free)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (a series with no autocorrelation to speak of: a length of 1)
        length = float(optimal_block_length(values)["stationary"].iloc[0])
    block = max(1.0, length) if math.isfinite(length) else 1.0

    def statistics(sample: np.ndarray) -> np.ndarray:
        excess = sample - rf
        spread = excess.std(ddof=1)
        sharpe = excess.mean() / spread * math.sqrt(252) if spread > 0 else float("nan")
        growth = np.cumprod(1.0 + sample)
        cagr = growth[-1] ** (252 / len(sample)) - 1.0
        drawdown = float(np.min(growth / np.maximum.accumulate(np.maximum(growth, 1.0)) - 1.0))
        return np.array([sharpe, cagr, drawdown])

    bootstrap = StationaryBootstrap(block, values, seed=np.random.default_rng(seed))
    draws = bootstrap.apply(statistics, reps)
    tail = (1.0 - level) / 2 * 100
    low, high = np.nanpercentile(draws, [tail, 100 - tail], axis=0)
    names = ("sharpe", "cagr", "max_drawdown")
    return {
        **{f"{n}_low": float(v) for n, v in zip(names, low)},
        **{f"{n}_high": float(v) for n, v in zip(names, high)},
    }


def comparison_table(
    results: list[tuple[str, BacktestResult]],
    lstm_strategies: frozenset[str] | set[str] = frozenset(),
    n_trials: int = 1,
    ledger_variance: float = 0.0,
) -> pd.DataFrame:
    """Rows for (ticker, result) pairs, in the given order, with PSR for every strategy and the DSR of
    the strategies in `lstm_strategies` (labels), deflated for `n_trials` configurations tried on the
    same data (the trial ledger). Benchmarks and controls were not searched over: their DSR is NaN."""
    derived = ("psr", "dsr", "dsr_variance")
    table = pd.DataFrame(
        [
            {**summarise(result, ticker), **bootstrap_intervals(result.returns, result.risk_free)}
            for ticker, result in results
        ],
        columns=[c for c in COMPARISON_COLUMNS if c not in derived],
    )
    psr, dsr, used = [], [], []
    for _, result in results:
        returns = excess_returns(result)
        psr.append(probabilistic_sharpe(returns))
        searched = result.strategy in lstm_strategies
        used.append(trial_variance(returns, ledger_variance) if searched else float("nan"))
        dsr.append(deflated_sharpe(returns, n_trials, used[-1]) if searched else float("nan"))
    table["psr"], table["dsr"], table["dsr_variance"] = psr, dsr, used  # the V each DSR was deflated with
    return table[COMPARISON_COLUMNS]
