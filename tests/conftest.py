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
