"""Typed settings of the forecasting half; the experiment config in `backtests` composes them."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_serializer, model_validator

from forecasting.features import validate_features


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


DEFAULT_FEATURES = ["log_return", "sma_10", "ema_20", "rsi_14", "macd_diff", "bb_pctb_20", "atr_14", "volume_change"]


class DataSpec(Strict):
    source: str = Field(
        "builtin:sp500",
        description="builtin:sp500 | builtin:nasdaq | builtin:sp500_stocks (20 stocks, closes) | "
        "csv:PATH[,PATH] | csv:DIR/*.csv | yahoo:T1,T2 | yahoo:@FILE (one ticker a line) | alpaca:T1,T2 | "
        "alpaca:@FILE (Alpaca's market data; keys in APCA_API_KEY_ID / APCA_API_SECRET_KEY)",
    )
    start: date | None = Field(date(2009, 1, 1), description="first date loaded (ISO); omit for all")
    end: date | None = Field(None, description="last date loaded (ISO); omit for all")
    cache_dir: str | None = Field(
        None, description="download cache folder (alpaca: in its alpaca/ subfolder); default ~/.cache/lstm-trader/yahoo"
    )
    missing: Literal["error", "drop", "ffill"] = Field(
        "error",
        description="a bar with a missing value: error | drop (left out) | ffill (a flat bar at the last close "
        "before it, volume 0; never a later value)",
    )

    dividends: StrictBool = Field(
        False,
        description="credit dividends (a CSV's Dividends column, Yahoo's actions) to holders on the ex-date, so "
        "buy-and-hold is a total return; shorts pay them. The embedded data have none",
    )

    @model_serializer(mode="wrap")
    def _without_default_missing(self, handler):
        """Added later: left out while at their defaults, so configs and studies keep their identity."""
        data = handler(self)
        if data.get("missing") == "error":
            data.pop("missing")
        if data.get("dividends") is False:
            data.pop("dividends")
        return data


# settings added after runs, checkpoints and paper accounts were keyed by a dump of this spec: while at
# their default they are left out of the dump, so every existing key stays what it was
LATER_SETTINGS = {
    "shrink": False,
    "linear_skip": False,
    "scope": "per_ticker",
    "vol_estimator": "auto",
    "head": "lstm",
    "finetune_guard": True,
}
TARGETS = ("log_return", "close", "xs_demeaned", "xs_rank", "realized_vol")
CROSS_SECTIONAL_TARGETS = ("xs_demeaned", "xs_rank")


class ModelSpec(Strict):
    features: list[str] = Field(
        default_factory=lambda: list(DEFAULT_FEATURES),
        description="the inputs of each window, names from `forecasting.features` (log_return, sma_10, rsi_14, ...; "
        "an unknown name is an error listing the known ones)",
    )
    target: Literal["log_return", "close", "xs_demeaned", "xs_rank", "realized_vol"] = Field(
        "log_return",
        description="log_return | close | xs_demeaned (minus the day's universe mean) | xs_rank (the day's "
        "rank across the universe, scaled to [-0.5, 0.5]); the xs_ forms need scope = global | realized_vol "
        "(the log of the next horizon's realized variance, beside GARCH, GJR, EWMA and HAR)",
    )
    vol_estimator: Literal["auto", "garman_klass", "parkinson", "close"] = Field(
        "auto",
        description="the daily variance proxy of realized_vol's target and baselines: auto (Garman-Klass on OHLC "
        "bars, squared close-to-close returns on closes) | garman_klass | parkinson | close (log_rv_N features "
        "always use auto)",
    )
    scope: Literal["per_ticker", "global"] = Field(
        "per_ticker",
        description="per_ticker: one network per ticker; global: one network on the pooled windows of every "
        "ticker, walked forward on dates (features scaled per ticker on each fold's training rows)",
    )
    horizon: int = Field(1, ge=1, description="bars ahead; the target is known at close t+horizon")
    lookback: int = Field(30, ge=1, description="bars in each input window")
    n_layers: int = Field(2, ge=1, le=8, description="stacked LSTM layers")
    units: int = Field(32, ge=1, description="units per LSTM layer")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout after each LSTM layer (seeded)")
    learning_rate: float = Field(1e-3, gt=0.0, description="Adam's learning rate for a fit from scratch")
    epochs: int = Field(
        20,
        ge=0,
        description="epochs of a from-scratch fit (early stopping may end sooner); 0: a from-scratch fit trains "
        "nothing, which only a residual head allows (it is then its ridge base; warm-started folds still "
        "fine-tune unless walk_forward.finetune_epochs = 0)",
    )
    batch_size: int = Field(64, ge=1, description="samples per training batch")
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
    head: Literal["lstm", "residual"] = Field(
        "lstm",
        description="lstm: the network's output is the forecast | residual: a ridge regression on the flattened "
        "window (the ridge control's) fitted on each fold's training rows, plus the network trained on what it "
        "leaves, its output layer starting at zero and early stopping keeping the untrained (ridge) state when no "
        "epoch beats it on the validation tail: it nests the linear model",
    )
    finetune_guard: StrictBool = Field(
        True,
        description="a residual head's fine-tunes hold out the last val_fraction of their rows and keep the best "
        "there of the state they start from, each epoch's and no correction (the ridge alone); false: they train "
        "on every row and keep the last epoch",
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

    @model_validator(mode="after")
    def _cross_sectional_targets_are_global(self) -> ModelSpec:
        if self.target in CROSS_SECTIONAL_TARGETS and self.scope != "global":
            raise ValueError(f"target '{self.target}' ranks tickers against each other; it needs scope = \"global\"")
        if self.target == "close" and self.scope == "global":
            raise ValueError("a global model pools tickers of different price levels; use a return target")
        if self.target == "realized_vol" and self.scope == "global":
            raise ValueError("target 'realized_vol' is forecast per ticker; use scope = \"per_ticker\"")
        if self.epochs == 0 and self.head != "residual":
            raise ValueError('epochs = 0 trains nothing: only head = "residual" (then its ridge base) can do without')
        return self

    @model_serializer(mode="wrap")
    def _without_unused_levers(self, handler):
        """Settings added later are left out while at their default, so every key made from a dump
        (checkpoints, paper accounts' models, studies, saved configs) stays what it was before they existed."""
        data = handler(self)
        for name, default in LATER_SETTINGS.items():
            if name in data and data[name] == default and type(data[name]) is type(default):
                data.pop(name)
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
    refit_every: int | None = Field(
        None,
        ge=1,
        description="with warm_start: fit from scratch on every refit_every-th fold (0, K, 2K, ...) and fine-tune "
        "in between; omit to fit only the first fold from scratch",
    )

    @model_serializer(mode="wrap")
    def _without_unused_refit(self, handler):
        """refit_every came later: left out while unset, so keys made from a dump stay what they were."""
        data = handler(self)
        if data.get("refit_every") is None:
            data.pop("refit_every", None)
        return data
