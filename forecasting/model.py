"""The stacked LSTM and its sklearn-style wrapper, which owns scaling and early stopping."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from forecasting.errors import ForecastingError, NotFittedError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

_DETERMINISM = False


def import_keras():
    """Import TensorFlow and Keras with the C++ start-up chatter (absl, oneDNN notice) kept off stderr."""
    import sys

    if "tensorflow" not in sys.modules:
        import tempfile

        with tempfile.TemporaryFile() as sink:
            saved = os.dup(2)
            os.dup2(sink.fileno(), 2)
            try:
                import tensorflow  # noqa: F401
            finally:
                os.dup2(saved, 2)
                os.close(saved)
        import logging

        # The last, shorter test block of a walk-forward retraces predict once; not worth a warning.
        tensorflow.get_logger().setLevel(logging.ERROR)
    import keras

    return keras


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and Keras, and make TensorFlow ops deterministic (same seed, same weights)."""
    global _DETERMINISM
    keras = import_keras()
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    if not _DETERMINISM:
        tf.config.experimental.enable_op_determinism()
        _DETERMINISM = True


def build_stacked_lstm(
    n_layers: int,
    units: int,
    dropout: float,
    lookback: int,
    n_features: int,
    learning_rate: float,
    jit_compile: bool | str = "auto",
):
    """A compiled Keras model: `n_layers` LSTMs (each followed by dropout), a Dense(1) head, Adam, MSE."""
    keras = import_keras()

    if n_layers < 1 or units < 1 or lookback < 1 or n_features < 1:
        raise ForecastingError("the network needs n_layers, units, lookback and n_features >= 1")
    inputs = keras.Input(shape=(lookback, n_features))
    x = inputs
    for layer in range(n_layers):
        x = keras.layers.LSTM(units, return_sequences=layer < n_layers - 1, name=f"lstm_{layer + 1}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"dropout_{layer + 1}")(x)
    outputs = keras.layers.Dense(1, name="head")(x)
    model = keras.Model(inputs, outputs, name="stacked_lstm")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse", metrics=["mae"],
                  jit_compile=jit_compile)
    return model


class _Scaler:
    """Per-column standardisation fitted on training rows (sklearn's StandardScaler on 3-D windows)."""

    def __init__(self, rows: np.ndarray) -> None:
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler().fit(rows)

    def windows(self, X: np.ndarray) -> np.ndarray:
        shape = X.shape
        return self.scaler.transform(X.reshape(-1, shape[-1])).reshape(shape).astype("float32")

    def column(self, y: np.ndarray) -> np.ndarray:
        return self.scaler.transform(np.asarray(y, dtype="float64").reshape(-1, 1)).ravel().astype("float32")

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return self.scaler.inverse_transform(np.asarray(y, dtype="float64").reshape(-1, 1)).ravel()


class LSTMForecaster:
    """Stacked-LSTM regressor on windows `X` of shape (samples, lookback, features).

    `fit` standardises features and target on its own training rows, holds out the last
    `val_fraction` of them (the chronological tail) for early stopping, and trains from scratch.
    `finetune` continues from the fitted weights on new samples, keeping the scalers.
    """

    def __init__(self, n_layers: int = 2, units: int = 32, dropout: float = 0.1, learning_rate: float = 1e-3,
                 epochs: int = 20, batch_size: int = 64, patience: int = 3, val_fraction: float = 0.1,
                 seed: int = 0, jit_compile: bool | str = "auto") -> None:
        self.n_layers = n_layers
        self.units = units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.val_fraction = val_fraction
        self.seed = seed
        self.jit_compile = jit_compile

    def fit(self, X: np.ndarray, y: np.ndarray, on_epoch: Callable[[int, int], None] | None = None) -> LSTMForecaster:
        X, y = self._check(X, y)
        set_seed(self.seed)
        # Only the last row of each window is new to that sample; fitting on those rows sees every
        # training row once and nothing after the last training sample.
        self.x_scaler_ = _Scaler(X[:, -1, :])
        self.y_scaler_ = _Scaler(y.reshape(-1, 1))
        self.model_ = build_stacked_lstm(self.n_layers, self.units, self.dropout, X.shape[1], X.shape[2],
                                         self.learning_rate, self.jit_compile)
        self.n_features_in_ = X.shape[2]
        self.lookback_ = X.shape[1]
        self.history_ = self._train(X, y, self.epochs, self.val_fraction, on_epoch)
        return self

    def finetune(self, X: np.ndarray, y: np.ndarray, epochs: int, learning_rate: float | None = None,
                 on_epoch: Callable[[int, int], None] | None = None) -> LSTMForecaster:
        """Continue training the fitted network on (X, y) for `epochs` epochs, scalers unchanged."""
        self._require_fitted()
        X, y = self._check(X, y)
        set_seed(self.seed)
        if learning_rate is not None:
            self.model_.optimizer.learning_rate.assign(learning_rate)
        self.history_ = self._train(X, y, epochs, 0.0, on_epoch)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        self._require_fitted()
        X = np.asarray(X, dtype="float64")
        if X.ndim != 3 or X.shape[1:] != (self.lookback_, self.n_features_in_):
            raise ForecastingError(f"predict expects windows of shape (n, {self.lookback_}, {self.n_features_in_}), "
                                   f"got {X.shape}")
        out = self.model_.predict_on_batch(self.x_scaler_.windows(X))
        return self.y_scaler_.inverse(np.asarray(out).ravel())

    def _train(self, X, y, epochs, val_fraction, on_epoch) -> dict:
        keras = import_keras()

        Xs, ys = self.x_scaler_.windows(X), self.y_scaler_.column(y)
        n_val = int(len(Xs) * val_fraction)
        callbacks = []
        validation = None
        if n_val >= 2 and len(Xs) - n_val >= 2:
            validation = (Xs[-n_val:], ys[-n_val:])
            Xs, ys = Xs[:-n_val], ys[:-n_val]
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.patience,
                                                           restore_best_weights=True))
        if on_epoch is not None:
            callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1, epochs)))
        history = self.model_.fit(Xs, ys, epochs=epochs, batch_size=self.batch_size, shuffle=True,
                                  validation_data=validation, callbacks=callbacks, verbose=0)
        return history.history

    def _check(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype="float64")
        y = np.asarray(y, dtype="float64").ravel()
        if X.ndim != 3:
            raise ForecastingError(f"X must be 3-D windows (samples, lookback, features), got shape {X.shape}")
        if len(X) != len(y):
            raise ForecastingError(f"X has {len(X)} samples but y has {len(y)}")
        if len(X) < 2:
            raise ForecastingError("at least two training samples are needed")
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise ForecastingError("training windows or targets contain NaN or inf")
        return X, y

    def _require_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("this LSTMForecaster is not fitted yet", "call fit(X, y) before predict or finetune")
