import numpy as np
import pytest

from forecasting import LSTMForecaster, NotFittedError, build_stacked_lstm


@pytest.mark.parametrize("cell", ["fused", "keras"])
def test_build_stacked_lstm_shapes_and_compile(cell):
    model = build_stacked_lstm(
        n_layers=3, units=8, dropout=0.2, lookback=10, n_features=4, learning_rate=0.01, cell=cell
    )
    lstm = [layer for layer in model.layers if layer.name.startswith("lstm_")]
    assert len(lstm) == 3 and all(layer.units == 8 for layer in lstm)
    assert [layer.return_sequences for layer in lstm] == [True, True, False]
    assert model.input_shape == (None, 10, 4) and model.output_shape == (None, 1)
    assert model.loss == "mse"
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.01)


def test_predict_before_fit_is_refused():
    with pytest.raises(NotFittedError, match="not fitted"):
        LSTMForecaster().predict(np.zeros((2, 5, 1)))


def windows(series: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    X = np.lib.stride_tricks.sliding_window_view(series[:-1], lookback)[..., None]
    return X, series[lookback:]


def test_lstm_learns_a_noisy_sine_better_than_naive():
    rng = np.random.default_rng(0)
    t = np.arange(700)
    series = np.sin(2 * np.pi * t / 25) + rng.normal(0, 0.1, len(t))
    X, y = windows(series, 20)
    train, test = slice(0, 550), slice(550, None)
    model = LSTMForecaster(
        n_layers=1,
        units=16,
        dropout=0.0,
        learning_rate=0.01,
        epochs=25,
        batch_size=32,
        patience=5,
        val_fraction=0.1,
        seed=1,
    ).fit(X[train], y[train])
    pred = model.predict(X[test])
    rmse = np.sqrt(np.mean((pred - y[test]) ** 2))
    naive = np.sqrt(np.mean((X[test][:, -1, 0] - y[test]) ** 2))
    assert rmse < 0.7 * naive, (rmse, naive)
    assert model.history_["loss"][-1] < model.history_["loss"][0]


def test_scalers_are_fitted_on_training_rows_only():
    rng = np.random.default_rng(2)
    X = rng.normal(5, 2, (60, 4, 3))
    y = rng.normal(0, 1, 60)
    model = LSTMForecaster(n_layers=1, units=2, epochs=1, seed=0).fit(X[:40], y[:40])
    np.testing.assert_allclose(model.x_scaler_.scaler.mean_, X[:40, -1, :].mean(axis=0))
    np.testing.assert_allclose(model.x_scaler_.scaler.var_, X[:40, -1, :].var(axis=0))
    np.testing.assert_allclose(model.y_scaler_.scaler.mean_, [y[:40].mean()])
    before = model.x_scaler_.scaler.mean_.copy()
    model.predict(X[40:] * 100)  # predicting never refits
    model.finetune(X[40:], y[40:], epochs=1)  # fine-tuning keeps the scalers of the fit
    np.testing.assert_array_equal(model.x_scaler_.scaler.mean_, before)


def test_same_seed_same_predictions():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(80, 5, 2)), rng.normal(size=80)
    a = LSTMForecaster(n_layers=2, units=4, epochs=2, seed=7).fit(X, y).predict(X[:10])
    b = LSTMForecaster(n_layers=2, units=4, epochs=2, seed=7).fit(X, y).predict(X[:10])
    c = LSTMForecaster(n_layers=2, units=4, epochs=2, seed=8).fit(X, y).predict(X[:10])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fused_cell_computes_keras_lstm():
    """Same weights, same outputs: the fused kernel is Keras' LSTM (same weight layout)."""
    rng = np.random.default_rng(4)
    fused = build_stacked_lstm(2, 5, 0.0, 7, 3, 1e-3, seed=1, cell="fused")
    plain = build_stacked_lstm(2, 5, 0.0, 7, 3, 1e-3, seed=2, cell="keras")
    for layer in ("lstm_1", "lstm_2"):
        weights = fused.get_layer(layer).get_weights()
        assert [w.shape for w in weights] == [w.shape for w in plain.get_layer(layer).get_weights()]
        plain.get_layer(layer).set_weights(weights)
    plain.get_layer("head").set_weights(fused.get_layer("head").get_weights())
    X = rng.normal(size=(6, 7, 3)).astype("float32")
    np.testing.assert_allclose(fused.predict_on_batch(X), plain.predict_on_batch(X), rtol=1e-5, atol=1e-6)
    # and the same gradients, which is what training sees
    import tensorflow as tf

    target = tf.constant(rng.normal(size=(6, 1)).astype("float32"))
    gradients = []
    for model in (fused, plain):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(X) - target) ** 2)
        gradients.append(tape.gradient(loss, model.trainable_variables))
    for g_fused, g_plain in zip(*gradients):
        np.testing.assert_allclose(g_fused.numpy(), g_plain.numpy(), rtol=1e-4, atol=1e-6)
    # Keras' unit forget bias: the forget block (i, f, c, o) of the bias starts at 1, the rest at 0
    bias = fused.get_layer("lstm_1").get_weights()[2]
    np.testing.assert_array_equal(bias, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])


def test_seeded_networks_do_not_depend_on_global_random_state():
    import keras

    keras.utils.set_random_seed(1)
    a = build_stacked_lstm(2, 4, 0.1, 5, 2, 1e-3, seed=9).get_weights()
    keras.utils.set_random_seed(2)
    b = build_stacked_lstm(2, 4, 0.1, 5, 2, 1e-3, seed=9).get_weights()
    c = build_stacked_lstm(2, 4, 0.1, 5, 2, 1e-3, seed=10).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_early_stopping_keeps_the_best_validation_epoch():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(120, 4, 2)), rng.normal(size=120)  # pure noise: validation loss soon rises
    model = LSTMForecaster(
        n_layers=1, units=8, epochs=30, learning_rate=0.05, patience=2, val_fraction=0.25, seed=0
    ).fit(X, y)
    val = model.history_["val_loss"]
    assert len(val) < 30 and len(val) == len(model.history_["loss"])
    assert np.argmin(val) == len(val) - 1 - 2  # stopped `patience` epochs after the best one
    Xs = model.x_scaler_.windows(X[-30:])
    ys = model.y_scaler_.column(y[-30:])
    restored = float(model.model_.test_on_batch(Xs, ys))
    assert restored == pytest.approx(min(val), rel=1e-5)


def test_a_refit_is_a_fresh_fit():
    """Refitting resets the network (weights, optimizer, dropout streams) instead of rebuilding it."""
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(90, 6, 2)), rng.normal(size=90)
    X2, y2 = rng.normal(size=(90, 6, 2)), rng.normal(size=90)
    reused = LSTMForecaster(n_layers=2, units=4, dropout=0.3, epochs=3, seed=2).fit(X, y)
    reused.finetune(X2[:40], y2[:40], epochs=2, learning_rate=1e-2)
    network = reused.model_
    refit = reused.fit(X2, y2).predict(X2[:12])
    fresh = LSTMForecaster(n_layers=2, units=4, dropout=0.3, epochs=3, seed=2).fit(X2, y2).predict(X2[:12])
    assert reused.model_ is network
    np.testing.assert_array_equal(refit, fresh)


def test_shrink_weight_is_least_squares_through_the_origin_clipped_to_0_1():
    rng = np.random.default_rng(0)
    p = rng.normal(size=300)
    noise = rng.normal(size=300)
    noise -= p * (p @ noise) / (p @ p)  # orthogonal to p: the least-squares weight is exact

    class Network:
        def predict_on_batch(self, X):
            return p.reshape(-1, 1).astype("float32")

    forecaster = LSTMForecaster(shrink=True)
    forecaster.model_ = Network()
    for y, expected in ((0.5 * p + noise, 0.5), (-p + noise, 0.0), (3 * p + noise, 1.0)):
        forecaster._fit_shrink((np.zeros((300, 1, 1)), y))
        assert forecaster.shrink_ == pytest.approx([expected], abs=1e-6)


def test_shrink_pulls_every_prediction_toward_the_training_mean_by_one_weight():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(240, 4, 2))
    y = 0.002 + rng.normal(0, 0.01, 240)  # noise: nothing to learn
    settings = dict(n_layers=1, units=4, epochs=3, batch_size=32, patience=2, val_fraction=0.2, seed=5)
    plain = LSTMForecaster(**settings).fit(X, y)
    shrunk = LSTMForecaster(**settings, shrink=True).fit(X, y)
    mean = float(plain.y_scaler_.scaler.mean_[0])
    assert mean == pytest.approx(y.mean())
    w = float(shrunk.shrink_[0])
    assert 0.0 <= w <= 1.0
    for predict in ("predict", "predict_rows"):
        a, b = getattr(plain, predict)(X[:50]), getattr(shrunk, predict)(X[:50])
        assert np.allclose(b - mean, w * (a - mean), rtol=1e-6, atol=1e-12)


def test_linear_skip_adds_a_linear_map_of_the_last_row_to_the_recurrent_head():
    x = np.random.default_rng(3).normal(size=(6, 5, 3)).astype("float32")
    plain = build_stacked_lstm(1, 4, 0.0, 5, 3, 1e-3, seed=7)
    skip = build_stacked_lstm(1, 4, 0.0, 5, 3, 1e-3, seed=7, linear_skip=True)
    assert np.allclose(skip.predict_on_batch(x), plain.predict_on_batch(x), atol=1e-7)  # zero-initialised
    kernel, bias = np.array([[0.5], [-2.0], [1.0]], dtype="float32"), np.array([0.25], dtype="float32")
    skip.get_layer("linear_skip").set_weights([kernel, bias])
    expected = plain.predict_on_batch(x) + x[:, -1, :] @ kernel + bias
    assert np.allclose(skip.predict_on_batch(x), expected, atol=1e-6)


def test_forecasters_and_settings_saved_before_the_levers_existed_still_work():
    """A paper account's or checkpoint's pickled forecaster lacks the newer attributes, and the keys
    made from a model dump (checkpoints, paper models, studies) must not change while levers are off."""
    from forecasting.spec import ModelSpec

    dump = ModelSpec().model_dump(mode="json")
    assert "shrink" not in dump and "linear_skip" not in dump
    assert ModelSpec(shrink=True).model_dump(mode="json")["shrink"] is True
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(80, 3, 2)), rng.normal(0, 0.01, 80)
    old = LSTMForecaster(n_layers=1, units=3, epochs=1, val_fraction=0.2, seed=1).fit(X, y)
    for name in ("shrink", "linear_skip", "n_outputs_"):
        old.__dict__.pop(name, None)
    before = old.predict_rows(X[:5])
    old.finetune(X[-20:], y[-20:], epochs=1)
    assert old.predict_rows(X[:5]).shape == before.shape
    old.fit(X, y)  # a refit rebuilds nothing it should not


def test_the_forecaster_takes_its_defaults_and_settings_from_model_spec():
    import inspect

    from forecasting.model import LSTMForecaster
    from forecasting.spec import ModelSpec
    from forecasting.walkforward import NETWORK_SETTINGS, make_forecaster

    spec = ModelSpec()
    for name, parameter in inspect.signature(LSTMForecaster).parameters.items():
        if name != "seed":
            assert parameter.default == getattr(spec, name), name
    custom = spec.model_copy(update={"units": 7, "dropout": 0.3, "shrink": True})
    made = make_forecaster(custom, seed=5)
    assert all(getattr(made, name) == getattr(custom, name) for name in NETWORK_SETTINGS) and made.seed == 5
