"""Helpers the tests share: made-up bars, Yahoo-style CSV files, run dirs and the tiny network settings.

A module of its own (pytest's advice: conftest.py holds fixtures and is not imported); the fixtures
in conftest.py are built from these.
"""

import math

import numpy as np
import pandas as pd
from scipy.stats import norm

# The tiny network every CLI test trains: seconds per run, still a real walk-forward.
TINY_SETTINGS = [
    'model.features=["log_return", "rsi_14"]',
    "model.lookback=5",
    "model.units=4",
    "model.n_layers=1",
    "model.epochs=2",
    "walk_forward.min_train=150",
    "walk_forward.retrain_every=50",
    "walk_forward.finetune_window=50",
]
TINY = [arg for setting in TINY_SETTINGS for arg in ("--set", setting)]  # as command-line arguments


def make_bars(n: int = 300, seed: int = 0, start: str = "2015-01-01") -> pd.DataFrame:
    """A random-walk OHLCV frame that passes validation."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.003, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    volume = rng.integers(1_000_000, 5_000_000, n).astype(float)
    index = pd.bdate_range(start, periods=n, name="date")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index)


def write_yahoo_csv(frame: pd.DataFrame, path) -> None:
    out = frame.rename(columns=str.title).rename(columns={"Volume": "Volume"})
    out.insert(4, "Adj Close", out["Close"])
    out.index.name = "Date"
    out.to_csv(path)


def run_dirs(root) -> list:
    """The run dirs under a runs root (it also holds the trial ledger)."""
    return sorted(p for p in root.iterdir() if p.is_dir())


def bars_from(open_, close, start="2020-01-01") -> pd.DataFrame:
    open_, close = np.asarray(open_, float), np.asarray(close, float)
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": 1e6,
        },
        index=pd.bdate_range(start, periods=len(close), name="date"),
    )


def predictions_for(prices: pd.DataFrame, y_pred, model="lstm", ticker="T") -> pd.DataFrame:
    close = prices["close"].to_numpy()
    y_true = np.append(np.log(close[1:] / close[:-1]), np.nan)
    frame = pd.DataFrame(
        {
            "date": prices.index,
            "ticker": ticker,
            "model": model,
            "y_pred": np.asarray(y_pred, float),
            "y_true": y_true,
            "price_pred": close * np.exp(y_pred),
            "price_true": close * np.exp(y_true),
            "horizon": 1,
            "fold": 0,
            "train_end": prices.index[0],
        }
    )
    return frame.iloc[:-1]  # the last bar's target is unknown, as walk_forward_predict writes it


GAMMA = 0.5772156649015329  # Euler-Mascheroni, in the expected maximum of N Sharpes


def hand_dsr(returns: pd.Series, sharpes: list[float], n: int | None = None) -> float:
    """Bailey & Lopez de Prado (2014) written out with pandas and scipy only; `n` configurations tried
    (default: one per Sharpe; a pruned trial counts but has no Sharpe)."""
    r = returns
    sr = r.mean() / r.std()
    skew, kurt = r.skew(), r.kurtosis() + 3
    n_days = len(r)
    spread = (1 - skew * sr + (kurt - 1) / 4 * sr**2) / (n_days - 1)
    n = n or len(sharpes)
    variance = max(np.var(sharpes, ddof=1), spread) if len(sharpes) > 1 else spread  # one Sharpe: the floor
    sr0 = math.sqrt(variance) * ((1 - GAMMA) * norm.ppf(1 - 1 / n) + GAMMA * norm.ppf(1 - 1 / (n * math.e)))
    return norm.cdf((sr - sr0) / math.sqrt(spread))
