"""The stacked LSTM and its sklearn-style wrapper, which owns scaling and early stopping."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable

import numpy as np

from forecasting.errors import ForecastingError, NotFittedError
from forecasting.ridge import RidgeBase
from forecasting.spec import ModelSpec

_RidgeBase = RidgeBase  # the name models saved before forecasting.ridge existed were pickled under

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
    """Seed Python, NumPy and Keras, and make TensorFlow ops deterministic (same seed, same weights).

    The forecaster does not need it (its layers carry explicit seeds); it is for user code. It
    clears TensorFlow's caches, so never call it between small training calls.
    """
    keras = import_keras()

    keras.utils.set_random_seed(int(seed))
    enable_determinism()


def enable_determinism() -> None:
    global _DETERMINISM
    if not _DETERMINISM:
        import_keras()
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        _DETERMINISM = True


def _layer_seeds(seed: int, n: int) -> list[int]:
    """`n` independent 31-bit seeds drawn from `seed`: each layer's initializer and dropout gets its own."""
    return [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(n) % (2**31 - 1)]


_FUSED_LSTM = None


def fused_lstm_class():
    """A Keras LSTM layer that runs the whole sequence in TensorFlow's fused `BlockLSTMV2` kernel.

    The maths is Keras' LSTM (sigmoid gates, tanh cell, Glorot kernel, orthogonal recurrent kernel,
    forget bias 1, no peepholes); only the execution differs: one op per layer and batch instead of
    a while loop over `lookback` steps, about 2x faster per batch on CPU (benchmarks/train_speed.py).
    Weights have Keras' LSTM layout (kernel, recurrent kernel, bias; gates i, f, c, o).
    """
    global _FUSED_LSTM
    if _FUSED_LSTM is not None:
        return _FUSED_LSTM
    keras = import_keras()
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="lstm_trader")
    class FusedLSTM(keras.layers.Layer):
        def __init__(self, units: int, return_sequences: bool = False, seed: int | None = None, **kwargs) -> None:
            super().__init__(**kwargs)
            self.units = units
            self.return_sequences = return_sequences
            self.seed = seed

        def build(self, input_shape) -> None:
            units, inputs = self.units, input_shape[-1]
            seeds = _layer_seeds(self.seed or 0, 2)
            self.kernel = self.add_weight(
                shape=(inputs, 4 * units), name="kernel", initializer=keras.initializers.GlorotUniform(seed=seeds[0])
            )
            self.recurrent_kernel = self.add_weight(
                shape=(units, 4 * units),
                name="recurrent_kernel",
                initializer=keras.initializers.Orthogonal(seed=seeds[1]),
            )
            bias = np.zeros(4 * units, dtype="float32")
            bias[units : 2 * units] = 1.0  # forget gate (unit_forget_bias, as Keras' LSTM)
            self.bias = self.add_weight(shape=(4 * units,), name="bias", initializer=keras.initializers.Constant(bias))

        def call(self, x):
            steps = tf.transpose(x, [1, 0, 2])
            zeros = tf.zeros(tf.stack([tf.shape(x)[0], self.units]), dtype=x.dtype)
            no_peephole = tf.zeros([self.units], dtype=x.dtype)
            # BlockLSTM wants gates as i, c, f, o. (BlockLSTMV2 reads Keras' i, f, c, o, but its
            # registered gradient assumes i, c, f, o: wrong gradients, so it is not used.)
            w = _icfo(tf.concat([self.kernel, self.recurrent_kernel], axis=0))
            outputs = tf.raw_ops.BlockLSTM(
                seq_len_max=tf.cast(tf.shape(x)[1], tf.int64),
                x=steps,
                cs_prev=zeros,
                h_prev=zeros,
                w=w,
                wci=no_peephole,
                wcf=no_peephole,
                wco=no_peephole,
                b=_icfo(self.bias),
                forget_bias=0.0,
                cell_clip=-1.0,
                use_peephole=False,
            )  # cell_clip < 0: no clipping
            hidden = outputs[6]
            return tf.transpose(hidden, [1, 0, 2]) if self.return_sequences else hidden[-1]

        def compute_output_shape(self, input_shape):
            if self.return_sequences:
                return (input_shape[0], input_shape[1], self.units)
            return (input_shape[0], self.units)

        def get_config(self) -> dict:
            return {
                **super().get_config(),
                "units": self.units,
                "return_sequences": self.return_sequences,
                "seed": self.seed,
            }

    def _icfo(weights):
        i, f, c, o = tf.split(weights, 4, axis=-1)
        return tf.concat([i, c, f, o], axis=-1)

    _FUSED_LSTM = FusedLSTM
    return FusedLSTM


def build_stacked_lstm(
    n_layers: int,
    units: int,
    dropout: float,
    lookback: int,
    n_features: int,
    learning_rate: float,
    seed: int = 0,
    cell: str = "fused",
    n_outputs: int = 1,
    linear_skip: bool = False,
    zero_head: bool = False,
):
    """A compiled Keras model: `n_layers` LSTMs (each followed by dropout), a Dense(n_outputs) head
    (one output per target column, e.g. per day ahead), Adam, MSE.

    `linear_skip` adds a linear map of the window's last row straight to the output, summed with
    the head (the autoregressive "highway" of LSTNet): the network is then a linear model plus a
    recurrent correction, and can fall back on the linear part where the recurrent one finds nothing.

    `zero_head` starts the output layer at zero (a residual head: the network starts as "no correction").

    `cell = "fused"` runs each LSTM in TensorFlow's fused kernel; `"keras"` uses `keras.layers.LSTM`
    (same maths, slower on CPU). Every initializer and dropout layer is seeded from `seed`, so the
    same arguments build the same network without touching global random state.
    """
    keras = import_keras()

    if n_layers < 1 or units < 1 or lookback < 1 or n_features < 1:
        raise ForecastingError("the network needs n_layers, units, lookback and n_features >= 1")
    if cell not in ("fused", "keras"):
        raise ForecastingError(f"unknown LSTM cell '{cell}'", 'use cell = "fused" or "keras"')
    enable_determinism()
    seeds = _layer_seeds(seed, 4 * n_layers + 2)
    inputs = keras.Input(shape=(lookback, n_features))
    x = inputs
    for layer in range(n_layers):
        last = layer == n_layers - 1
        name = f"lstm_{layer + 1}"
        if cell == "fused":
            x = fused_lstm_class()(units, return_sequences=not last, seed=seeds[4 * layer], name=name)(x)
        else:
            x = keras.layers.LSTM(
                units,
                return_sequences=not last,
                name=name,
                kernel_initializer=keras.initializers.GlorotUniform(seed=seeds[4 * layer]),
                recurrent_initializer=keras.initializers.Orthogonal(seed=seeds[4 * layer + 1]),
            )(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, seed=seeds[4 * layer + 2], name=f"dropout_{layer + 1}")(x)
    head = keras.layers.Dense(
        n_outputs,
        name="head",
        kernel_initializer=keras.initializers.Zeros()
        if zero_head
        else keras.initializers.GlorotUniform(seed=seeds[-1]),
    )
    outputs = head(x)
    if linear_skip:
        last_row = keras.layers.Lambda(lambda t: t[:, -1, :], name="last_row")(inputs)
        linear = keras.layers.Dense(n_outputs, name="linear_skip", kernel_initializer=keras.initializers.Zeros())(
            last_row
        )
        outputs = keras.layers.Add(name="head_plus_linear")([outputs, linear])
    model = keras.Model(inputs, outputs, name="stacked_lstm")
    # XLA is slower than the fused kernel for these small recurrent nets on CPU (measured), so no jit.
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse", jit_compile=False)
    return model


def seed_generators(model) -> list:
    """The dropout layers' random streams (Keras keeps them apart from the weights)."""
    keras = import_keras()
    return [
        value
        for layer in model.layers
        for value in vars(layer).values()
        if isinstance(value, keras.random.SeedGenerator)
    ]


def _network_arrays(model) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return model.get_weights(), [np.asarray(g.state.numpy()) for g in seed_generators(model)]


class _Scaler:
    """Per-column standardisation fitted on training rows (sklearn's StandardScaler on 3-D windows).

    For targets, one column per output: `column` and `inverse` give a flat vector for one output
    and (n, outputs) for several."""

    def __init__(self, rows: np.ndarray) -> None:
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler().fit(rows)

    @property
    def width(self) -> int:  # derived, so scalers pickled before multi-output models still load
        return int(self.scaler.n_features_in_)

    def windows(self, X: np.ndarray) -> np.ndarray:
        shape = X.shape
        return self.scaler.transform(X.reshape(-1, shape[-1])).reshape(shape).astype("float32")

    def column(self, y: np.ndarray) -> np.ndarray:
        out = self.scaler.transform(np.asarray(y, dtype="float64").reshape(-1, self.width)).astype("float32")
        return out.ravel() if self.width == 1 else out

    def inverse(self, y: np.ndarray) -> np.ndarray:
        out = self.scaler.inverse_transform(np.asarray(y, dtype="float64").reshape(-1, self.width))
        return out.ravel() if self.width == 1 else out


_SPEC = {name: field.default for name, field in ModelSpec.model_fields.items()}


class LSTMForecaster:
    """Stacked-LSTM regressor on windows `X` of shape (samples, lookback, features).

    `fit` standardises features and target on its own training rows, holds out the last
    `val_fraction` of them (the chronological tail) for early stopping, and trains from scratch.
    `finetune` continues from the fitted weights on new samples, keeping the scalers.

    Training runs its own epoch loop over `train_on_batch`, with one traced step reused by every
    call: Keras' `fit` builds a fresh input pipeline per call, which dominates the few batches of a
    fold's fine-tune. Each training call shuffles with `default_rng((seed, call number))`, so the
    result depends only on the seed and the sequence of calls, never on global random state.
    """

    # defaults of attributes added later, for forecasters pickled before them (paper accounts, checkpoints)
    shrink = False
    linear_skip = False
    head = "lstm"
    finetune_guard = True
    n_outputs_ = 1

    # the defaults are ModelSpec's, where each network setting is declared (with its bounds) once
    def __init__(
        self,
        n_layers: int = _SPEC["n_layers"],
        units: int = _SPEC["units"],
        dropout: float = _SPEC["dropout"],
        learning_rate: float = _SPEC["learning_rate"],
        epochs: int = _SPEC["epochs"],
        batch_size: int = _SPEC["batch_size"],
        patience: int = _SPEC["patience"],
        val_fraction: float = _SPEC["val_fraction"],
        seed: int = 0,
        cell: str = _SPEC["cell"],
        shrink: bool = _SPEC["shrink"],
        linear_skip: bool = _SPEC["linear_skip"],
        head: str = _SPEC["head"],
        finetune_guard: bool = _SPEC["finetune_guard"],
    ) -> None:
        self.shrink = shrink
        self.linear_skip = linear_skip
        self.head = head
        self.finetune_guard = finetune_guard
        self.n_layers = n_layers
        self.units = units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.val_fraction = val_fraction
        self.seed = seed
        self.cell = cell

    def fit(
        self, X: np.ndarray, y: np.ndarray, on_epoch: Callable[[int, int, dict], None] | None = None
    ) -> LSTMForecaster:
        """Scale, build (or reset) the network and train it from scratch with early stopping.

        `on_epoch(done, total, logs)` hears every epoch; `logs` has `loss` and, with a validation
        tail, `val_loss` and `val_zero_loss` (the loss of predicting a raw target of 0 there).
        """
        X, y = self._check(X, y)
        self.__dict__.pop("shrink_", None)  # a refit without a validation tail must not keep an old weight
        if self.head == "residual":  # the network learns what the fold's ridge leaves
            self.fit_base(X, y)
            y = y - self.base_.predict(X)
        # Only the last row of each window is new to that sample; fitting on those rows sees every
        # training row once and nothing after the last training sample.
        self.x_scaler_ = _Scaler(X[:, -1, :])
        self.y_scaler_ = _Scaler(y)
        self.training_calls_ = 0
        shape = (X.shape[1], X.shape[2], y.shape[1])
        if (
            getattr(self, "model_", None) is not None
            and (self.lookback_, self.n_features_in_, self.n_outputs_) == shape
        ):
            self._reset_network()
        else:
            self.lookback_, self.n_features_in_, self.n_outputs_ = shape
            self.model_ = self.build_network()
            self.initial_state_ = _network_arrays(self.model_)
        self.history_ = self._train(X, y, self.epochs, self.val_fraction, on_epoch)
        return self

    def _reset_network(self) -> None:
        """Put the network back in its just-built state (weights, optimizer, dropout streams).

        A refit then gives exactly what a fresh network would, without building and tracing a new
        one: the walk-forward's from-scratch folds reuse one forecaster this way.
        """
        weights, seeds = self.initial_state_
        self.model_.set_weights(weights)
        for variable in self.model_.optimizer.variables:
            variable.assign(np.zeros(variable.shape, dtype=variable.dtype))
        self.model_.optimizer.learning_rate.assign(self.learning_rate)
        for generator, state in zip(seed_generators(self.model_), seeds):
            generator.state.assign(state)

    def build_network(self):
        """A fresh, untrained network of this forecaster's shape (also used to restore checkpoints)."""
        return build_stacked_lstm(
            self.n_layers,
            self.units,
            self.dropout,
            self.lookback_,
            self.n_features_in_,
            self.learning_rate,
            seed=self.seed,
            cell=self.cell,
            n_outputs=self.n_outputs_,
            linear_skip=self.linear_skip,
            zero_head=self.head == "residual",
        )

    def fit_base(self, X: np.ndarray, y: np.ndarray) -> LSTMForecaster:
        """A residual head's ridge, fitted on (X, y): `fit` does it, and a warm-started walk-forward refits it
        on each fold's whole training span before the network's fine-tune (as the ridge control is refit)."""
        X, y = self._check(X, y)
        self.base_ = RidgeBase(X, y)
        return self

    def _base(self, X: np.ndarray) -> np.ndarray | float:
        """The ridge base's prediction in the targets' shape (0 without a residual head)."""
        if self.head != "residual":
            return 0.0
        out = self.base_.predict(X)
        return out.ravel() if out.shape[1] == 1 else out

    def finetune(
        self,
        X: np.ndarray,
        y: np.ndarray,
        epochs: int,
        learning_rate: float | None = None,
        on_epoch: Callable[[int, int, dict], None] | None = None,
    ) -> LSTMForecaster:
        """Continue training the fitted network on (X, y) for `epochs` epochs, scalers unchanged.

        A residual head with `finetune_guard` fine-tunes as it fits: on all but the last `val_fraction` of the
        rows, keeping the state that does best on that tail among the one it starts from, each epoch's, and
        no correction at all (the ridge alone), so a fine-tune never keeps a network that the latest rows say
        is worse (at the price of not training on them)."""
        self._require_fitted()
        X, y = self._check(X, y)
        if learning_rate is not None:
            self.model_.optimizer.learning_rate.assign(learning_rate)
        held_out = 0.0
        if self.head == "residual":
            y = y - self.base_.predict(X)
            held_out = self.val_fraction if self.finetune_guard else 0.0
        self.history_ = self._train(X, y, epochs, held_out, on_epoch, fine_tune=True)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        self._require_fitted()
        X = np.asarray(X, dtype="float64")
        if X.ndim != 3 or X.shape[1:] != (self.lookback_, self.n_features_in_):
            raise ForecastingError(
                f"predict expects windows of shape (n, {self.lookback_}, {self.n_features_in_}), got {X.shape}"
            )
        scaled = self.x_scaler_.windows(X)
        out = [
            np.asarray(self.model_.predict_on_batch(scaled[i : i + 4096])).reshape(-1, self.y_scaler_.width)
            for i in range(0, len(X), 4096)
        ]
        return self.y_scaler_.inverse(np.concatenate(out) * self._weight()) + self._base(X)

    def predict_rows(self, X: np.ndarray) -> np.ndarray:
        """As `predict`, but every window goes through the network on its own (a batch of one).

        A batched matrix product rounds a row differently with other rows beside it (by up to a few
        float32 ulps), so a prediction would depend on which days were predicted together. Row by row,
        the walk-forward's block of test days and paper trading's one day at a time give
        bit-identical predictions.
        """
        self._require_fitted()
        X = np.asarray(X, dtype="float64")
        if X.ndim != 3 or X.shape[1:] != (self.lookback_, self.n_features_in_):
            raise ForecastingError(
                f"predict expects windows of shape (n, {self.lookback_}, {self.n_features_in_}), got {X.shape}"
            )
        scaled = self.x_scaler_.windows(X).astype("float32")
        out = np.asarray(_row_function(self.model_)(scaled)).astype("float64").reshape(-1, self.y_scaler_.width)
        return self.y_scaler_.inverse(out * self._weight()) + self._base(X)

    def _weight(self) -> np.ndarray | float:
        """The shrinkage weight of each output (1 without `shrink`): outputs are scaled around the
        training targets' mean, so shrinking the scaled output pulls the prediction toward that mean."""
        return getattr(self, "shrink_", 1.0) if self.shrink else 1.0

    def _fit_shrink(self, validation: tuple[np.ndarray, np.ndarray]) -> None:
        """The forecast-combination weight w in [0, 1] of the network against the training mean,
        fitted on the held-out validation tail by least squares through the origin (in scaled
        units): prediction = mean + w * (network - mean). Fine-tuning keeps it."""
        X, y = validation
        p = np.asarray(self.model_.predict_on_batch(X)).reshape(len(X), -1).astype("float64")
        y = np.asarray(y, dtype="float64").reshape(len(X), -1)
        power = np.sum(p * p, axis=0)
        w = np.divide(np.sum(p * y, axis=0), power, out=np.zeros_like(power), where=power > 0)
        self.shrink_ = np.clip(w, 0.0, 1.0)

    def _train(self, X, y, epochs, val_fraction, on_epoch, fine_tune: bool = False) -> dict:
        Xs, ys = self.x_scaler_.windows(X), self.y_scaler_.column(y)
        n_val = int(len(Xs) * val_fraction)
        validation = None
        if n_val >= 2 and len(Xs) - n_val >= 2:
            validation = (Xs[-n_val:], ys[-n_val:])
            Xs, ys = Xs[:-n_val], ys[:-n_val]
            # the loss of always predicting a raw target of 0 (no change) on the tail: a yardstick for val_loss
            zero = self.y_scaler_.column(np.zeros(self.y_scaler_.width))
            zero_loss = float(np.mean((validation[1] - zero) ** 2))
        rng = np.random.default_rng((int(self.seed), self.training_calls_))
        self.training_calls_ += 1
        model, size = self.model_, self.batch_size
        history: dict[str, list[float]] = {"loss": []}
        best, best_weights, waited = np.inf, None, 0
        if self.head == "residual" and validation is not None:
            # the state training starts from, and no correction to the ridge at all (the network as built,
            # its output layer at zero), are candidates too: kept unless an epoch beats them on the tail
            start = model.get_weights()
            for weights in [start] + ([self.initial_state_[0]] if fine_tune else []):
                model.set_weights(weights)
                loss = float(model.test_on_batch(*validation))
                if loss < best:
                    best, best_weights = loss, weights
            model.set_weights(start)
        for epoch in range(epochs):
            order = rng.permutation(len(Xs))
            losses = [
                (float(model.train_on_batch(Xs[batch], ys[batch])), len(batch))
                for batch in (order[i : i + size] for i in range(0, len(order), size))
            ]
            history["loss"].append(sum(loss * n for loss, n in losses) / len(order))
            if validation is None:
                if on_epoch is not None:
                    on_epoch(epoch + 1, epochs, {"loss": history["loss"][-1]})
                continue
            val_loss = float(model.test_on_batch(*validation))
            history.setdefault("val_loss", []).append(val_loss)
            if on_epoch is not None:
                on_epoch(
                    epoch + 1, epochs, {"loss": history["loss"][-1], "val_loss": val_loss, "val_zero_loss": zero_loss}
                )
            if val_loss < best:
                best, best_weights, waited = val_loss, model.get_weights(), 0
            else:
                waited += 1
                if waited >= self.patience:
                    break
        if best_weights is not None:
            # Early stopping keeps the weights of the best validation epoch, also when it never triggered.
            model.set_weights(best_weights)
        if self.shrink and validation is not None and not fine_tune:
            self._fit_shrink(validation)
        return history

    def _check(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype="float64")
        y = np.asarray(y, dtype="float64")
        y = y.reshape(-1, 1) if y.ndim == 1 else y
        if y.ndim != 2:
            raise ForecastingError(f"y must be one target per sample, or (samples, outputs), got shape {y.shape}")
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


_ROW_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _row_function(model):
    """A traced function that maps the network over its input one window at a time."""
    if model not in _ROW_FUNCTIONS:
        import tensorflow as tf

        network = weakref.ref(model)  # the function must not keep its (weakly keyed) model alive

        @tf.function(reduce_retracing=True)
        def rows(x):
            return tf.map_fn(
                lambda r: network()(r[tf.newaxis], training=False)[0],
                x,
                fn_output_signature=tf.float32,
                parallel_iterations=1,
            )

        _ROW_FUNCTIONS[model] = rows
    return _ROW_FUNCTIONS[model]
