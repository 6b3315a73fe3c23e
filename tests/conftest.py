import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pandas as pd
import pytest

from forecasting.spec import ModelSpec, WalkForwardSpec


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


@pytest.fixture
def bars() -> pd.DataFrame:
    return make_bars()


@pytest.fixture
def tiny_model() -> ModelSpec:
    return ModelSpec(features=["log_return", "rsi_14", "sma_10"], lookback=5, n_layers=1, units=4, epochs=2,
                     batch_size=32, patience=1, val_fraction=0.1)


@pytest.fixture
def tiny_walk_forward() -> WalkForwardSpec:
    return WalkForwardSpec(min_train=120, retrain_every=40, warm_start=True, finetune_epochs=1, finetune_window=60)


def write_yahoo_csv(frame: pd.DataFrame, path) -> None:
    out = frame.rename(columns=str.title).rename(columns={"Volume": "Volume"})
    out.insert(4, "Adj Close", out["Close"])
    out.index.name = "Date"
    out.to_csv(path)


def run_dirs(root) -> list:
    """The run dirs under a runs root (it also holds the trial ledger)."""
    return sorted(p for p in root.iterdir() if p.is_dir())
