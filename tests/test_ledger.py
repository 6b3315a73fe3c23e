import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from backtests.ledger import Ledger
from backtests.stats import deflated_sharpe, probabilistic_sharpe, trial_variance

GAMMA = 0.5772156649015329


def daily_returns(seed: int = 0, n: int = 1000) -> pd.Series:
    rng = np.random.default_rng(seed)
    return pd.Series(rng.normal(0.0006, 0.01, n), index=pd.bdate_range("2015-01-01", periods=n))


def hand_dsr(returns: pd.Series, sharpes: list[float]) -> float:
    """Bailey & Lopez de Prado (2014) written out with pandas and scipy only."""
    r = returns
    sr = r.mean() / r.std()
    skew, kurt = r.skew(), r.kurtosis() + 3
    n_days = len(r)
    spread = (1 - skew * sr + (kurt - 1) / 4 * sr ** 2) / (n_days - 1)
    n = len(sharpes)
    variance = max(np.var(sharpes, ddof=1), spread)
    sr0 = math.sqrt(variance) * ((1 - GAMMA) * norm.ppf(1 - 1 / n) + GAMMA * norm.ppf(1 - 1 / (n * math.e)))
    return norm.cdf((sr - sr0) / math.sqrt(spread))


def test_three_row_ledger_gives_the_hand_computed_dsr(tmp_path):
    ledger = Ledger(tmp_path)
    for i, sharpe in enumerate([0.0, 0.1, 0.2]):
        ledger.add(f"tune:s:{i}", "tune", "data-a", f"config-{i}", {"units": i}, "validation", sharpe, 0.01)
    ledger.add("run:other", "run", "data-b", "config-x", {}, "test", 5.0, 0.01)  # other data: not counted
    count = ledger.count("data-a")
    assert count.n == 3 and count.variance == pytest.approx(0.01)
    returns = daily_returns()
    ours = deflated_sharpe(returns, count.n, trial_variance(returns, count.variance))
    assert ours == pytest.approx(hand_dsr(returns, [0.0, 0.1, 0.2]), rel=1e-9)
    assert ours < probabilistic_sharpe(returns)


def test_dsr_falls_strictly_as_equal_sharpe_rows_are_added(tmp_path):
    ledger = Ledger(tmp_path)
    returns = daily_returns(1)
    values = []
    for i in range(6):
        ledger.add(f"run:r{i}", "run", "data", f"config-{i}", {}, "test", 0.04, 0.01)
        count = ledger.count("data")
        assert count.n == i + 1 and count.variance == pytest.approx(0.0, abs=1e-18)
        values.append(deflated_sharpe(returns, count.n, trial_variance(returns, count.variance)))
    assert values[0] == pytest.approx(probabilistic_sharpe(returns))
    assert all(a > b for a, b in zip(values, values[1:])), values


def test_a_resumed_key_or_a_repeated_config_counts_once(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.add("run:a", "run", "data", "config-1", {}, "test", 0.05, 0.01)
    ledger.add("run:a", "run", "data", "config-1", {}, "test", 0.07, 0.01)  # the same run, resumed
    ledger.add("backtest:b", "backtest", "data", "config-1", {}, "test", 0.05, 0.01)  # same predictions and costs
    assert len(ledger.rows()) == 2
    assert ledger.count("data").n == 1
    ledger.add("tune:s:3", "tune", "data", "config-2", {}, "validation", float("nan"), None)  # pruned
    count = ledger.count("data")
    assert count.n == 2 and count.variance == 0.0  # counted as tried, but no Sharpe for the variance
