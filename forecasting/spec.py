"""Typed settings of the forecasting half; the experiment config in `backtests` composes them."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_serializer

from forecasting.features import validate_features


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


DEFAULT_FEATURES = ["log_return", "sma_10", "ema_20", "rsi_14", "macd_diff", "bb_pctb_20", "atr_14", "volume_change"]


class DataSpec(Strict):
    source: str = Field("builtin:sp500", description="builtin:sp500 | builtin:nasdaq | csv:PATH[,PATH] | yahoo:T1,T2")
    start: date | None = Field(date(2009, 1, 1), description="first date loaded (ISO); omit for all")
    end: date | None = Field(None, description="last date loaded (ISO); omit for all")
    cache_dir: str | None = Field(None, description="yfinance cache folder; default ~/.cache/lstm-trader/yahoo")


OPTIONAL_LEVERS = ("shrink", "linear_skip")


class ModelSpec(Strict):
    features: list[str] = Field(default_factory=lambda: list(DEFAULT_FEATURES))
    target: Literal["log_return", "close"] = "log_return"
    horizon: int = Field(1, ge=1, description="bars ahead; the target is known at close t+horizon")
    lookback: int = Field(30, ge=1, description="bars in each input window")
    n_layers: int = Field(2, ge=1, le=8)
    units: int = Field(32, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    learning_rate: float = Field(1e-3, gt=0.0)
    epochs: int = Field(20, ge=1, description="epochs of a from-scratch fit (early stopping may end sooner)")
    batch_size: int = Field(64, ge=1)
    patience: int = Field(3, ge=1, description="early-stopping patience on the validation tail")
    val_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="tail of each training span used for early stopping")
    n_seeds: int = Field(
        1,
        ge=1,
        le=50,
        description="networks per fold, each from its own seed; the prediction "
        "is their mean and y_pred_std their spread",
    )
    shrink: StrictBool = Field(
        False,
        description="pull each prediction toward the training targets' mean by a weight "
        "in [0, 1] fitted on the held-out validation tail (forecast combination)",
    )
    linear_skip: StrictBool = Field(
        False,
        description="add a linear map of the window's last row to the output "
        "(LSTNet's autoregressive highway): a linear model plus a recurrent correction",
    )
    cell: Literal["fused", "keras"] = Field(
        "fused",
        description="LSTM kernel: TensorFlow's fused BlockLSTM (fast on CPU) or keras.layers.LSTM; the same maths",
    )

    @field_validator("features")
    @classmethod
    def _known_features(cls, names: list[str]) -> list[str]:
        validate_features(names)
        return names

    @model_serializer(mode="wrap")
    def _without_unused_levers(self, handler):
        """Levers added later are left out while off, so every key made from a dump (checkpoints,
        paper accounts' models, studies, saved configs) stays what it was before they existed."""
        data = handler(self)
        for lever in OPTIONAL_LEVERS:
            if data.get(lever) is False:
                data.pop(lever)
        return data


class WalkForwardSpec(Strict):
    min_train: int = Field(1000, ge=10, description="training samples of the first fold")
    retrain_every: int = Field(21, ge=1, description="bars per test block; a model is (re)trained before each")
    gap: int = Field(0, ge=0, description="extra bars between the last training target and the first test bar")
    train_window: int | None = Field(None, ge=10, description="rolling window in samples; omit for expanding")
    warm_start: StrictBool = Field(True, description="later folds fine-tune the previous fold's weights")
    finetune_epochs: int = Field(2, ge=0, description="0: later folds reuse the first fold's network unchanged")
    finetune_window: int | None = Field(
        250, ge=10, description="most recent samples used for fine-tuning; omit for all"
    )
    finetune_learning_rate: float | None = Field(
        1e-4,
        gt=0.0,
        description="Adam step while fine-tuning; a tenth of model.learning_rate keeps warm starts from over-fitting",
    )
