import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import pandas as pd
import pytest

from forecasting.spec import ModelSpec, WalkForwardSpec
from tests.helpers import make_bars


@pytest.fixture
def bars() -> pd.DataFrame:
    return make_bars()


@pytest.fixture
def tiny_model() -> ModelSpec:
    return ModelSpec(
        features=["log_return", "rsi_14", "sma_10"],
        lookback=5,
        n_layers=1,
        units=4,
        epochs=2,
        batch_size=32,
        patience=1,
        val_fraction=0.1,
    )


@pytest.fixture
def tiny_walk_forward() -> WalkForwardSpec:
    return WalkForwardSpec(min_train=120, retrain_every=40, warm_start=True, finetune_epochs=1, finetune_window=60)


@pytest.fixture(scope="session", autouse=True)
def _session_ledger_home(tmp_path_factory):
    """No test writes to the user's own trial ledger: a session-wide home for module-scoped fixtures ..."""
    saved = os.environ.get("LSTM_TRADER_HOME")
    os.environ["LSTM_TRADER_HOME"] = str(tmp_path_factory.mktemp("home"))
    yield
    if saved is None:
        os.environ.pop("LSTM_TRADER_HOME", None)
    else:
        os.environ["LSTM_TRADER_HOME"] = saved


@pytest.fixture(autouse=True)
def _ledger_home(tmp_path_factory, monkeypatch):
    """... and a fresh one for each test, so a test's count of configurations is its own (subprocesses
    inherit it)."""
    monkeypatch.setenv("LSTM_TRADER_HOME", str(tmp_path_factory.mktemp("home")))
