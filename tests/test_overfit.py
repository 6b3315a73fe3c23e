"""SPA and PBO over the configurations tried: noise looks like noise, a true edge does not."""

import numpy as np
import pandas as pd
import pytest

from backtests.overfit import pbo, spa_pvalue
from backtests.trials import TrialLedger, pack_returns, unpack_returns

DAYS = pd.bdate_range("2015-01-01", periods=1000)


def configurations(n: int, seed: int, edge: float = 0.0) -> pd.DataFrame:
    """n configurations of daily returns, pure noise (mean 0, 1% a day); the first with `edge` a day more."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 0.01, (len(DAYS), n))
    values[:, 0] += edge
    return pd.DataFrame(values, index=DAYS)


def test_spa_gives_a_small_p_when_one_configuration_truly_beats_the_benchmark():
    # a Sharpe of 0.2 a day (3.2 a year) over 1,000 days: t about 6
    assert spa_pvalue(configurations(5, seed=1, edge=0.002)) < 0.01


def test_spa_gives_a_large_p_when_no_configuration_beats_the_benchmark():
    assert spa_pvalue(configurations(5, seed=2)) > 0.2
    # against a benchmark that earns what the edge earns, the edge is gone too
    benchmark = pd.Series(0.002, index=DAYS)
    assert spa_pvalue(configurations(5, seed=1, edge=0.002), benchmark) > 0.2


def test_pbo_is_about_one_half_for_noise_and_small_when_one_configuration_dominates():
    noise = [pbo(configurations(20, seed=seed)) for seed in range(5)]
    assert 0.3 < np.mean(noise) < 0.7
    assert pbo(configurations(20, seed=9, edge=0.002)) < 0.05
    assert np.isnan(pbo(configurations(1, seed=3)))  # one configuration: nothing to choose among


def test_the_ledger_keeps_each_configurations_daily_returns_for_spa_and_pbo(tmp_path):
    returns = configurations(4, seed=5, edge=0.002)
    assert unpack_returns(pack_returns(returns[0])).equals(returns[0].rename(None))
    ledger = TrialLedger(tmp_path)
    benchmark = pd.Series(0.0, index=DAYS)
    for i in range(4):
        ledger.add(f"run:{i}", "run", "data-a", f"config-{i}", {}, "test", 0.1, 0.01, returns[i], benchmark)
    ledger.add("run:again", "run", "data-a", "config-0", {}, "test", 0.1, 0.01, returns[1], benchmark)  # a repeat
    stats = ledger.overfitting("data-a")
    assert stats["configurations"] == 4 and stats["days"] == len(DAYS)
    assert stats["spa_benchmark_pvalue"] < 0.01 and stats["spa_cash_pvalue"] < 0.01
    assert stats["pbo"] == pytest.approx(pbo(returns.set_axis(range(4), axis=1)))
    assert ledger.overfitting("data-b")["configurations"] == 0


def test_the_ledgers_best_dsr_is_the_hand_computed_dsr_of_the_best_configuration(tmp_path):
    from backtests.trials import ledger_summary
    from tests.helpers import hand_dsr

    returns = configurations(3, seed=6, edge=0.001)
    ledger = TrialLedger(tmp_path)
    sharpes = [float(returns[i].mean() / returns[i].std()) for i in range(3)]
    for i in range(3):
        ledger.add(f"run:{i}", "run", "data-a", f"config-{i}", {}, "test", sharpes[i], 0.01, returns[i])
    row = ledger_summary(ledger).iloc[0]
    best = int(np.argmax(sharpes))
    assert row["n"] == 3 and row["best_sharpe"] == pytest.approx(max(sharpes) * np.sqrt(252))
    assert row["best_dsr"] == pytest.approx(hand_dsr(returns[best], sharpes), rel=1e-9)


def test_overfitting_tests_the_best_against_the_benchmark_and_against_cash_separately():
    from backtests.overfit import overfitting

    # every configuration's edge of 0.2% a day is what the benchmark earns too: it beats cash, not the benchmark
    returns = configurations(5, seed=1, edge=0.002)
    benchmark = pd.Series(0.002, index=DAYS)
    stats = overfitting([returns[i] for i in range(5)], benchmark)
    assert stats["spa_benchmark_pvalue"] > 0.2
    assert stats["spa_cash_pvalue"] < 0.01
    assert np.isnan(overfitting([returns[i] for i in range(5)], None)["spa_benchmark_pvalue"])
