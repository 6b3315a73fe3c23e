"""Networks that nest their control: the residual head (a fold's ridge plus a network on what it leaves),
and full refits every K folds of a warm-started walk-forward."""

import numpy as np
import pandas as pd
import pytest

from backtests.audit import perturb_after
from forecasting.model import LSTMForecaster
from forecasting.ridge import fit_ridge
from forecasting.spec import ModelSpec, WalkForwardSpec
from forecasting.tasks import walk_forward_predict
from tests.helpers import make_bars

FEATURES = ["log_return", "rsi_14", "sma_10"]
MADE = ["date", "ticker", "model", "y_pred", "price_pred", "fold", "train_end", "y_pred_std"]  # known at the close


def windows(n=300, lookback=5, features=3, outputs=1, seed=0):
    """Random windows and a target that is linear in the last row plus noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, lookback, features))
    weights = rng.normal(size=(features, outputs))
    y = X[:, -1, :] @ weights + 0.1 * rng.normal(size=(n, outputs))
    return X, (y.ravel() if outputs == 1 else y)


@pytest.mark.parametrize("outputs", [1, 3])
def test_an_untrained_residual_head_is_the_ridge_of_its_training_rows(outputs):
    X, y = windows(outputs=outputs)
    net = LSTMForecaster(head="residual", epochs=0, units=4, n_layers=1, seed=1).fit(X[:200], y[:200])
    ridge = fit_ridge(X[:200].reshape(200, -1), y[:200]).predict(X[200:].reshape(100, -1))
    np.testing.assert_allclose(net.predict(X[200:]), ridge, rtol=0, atol=1e-6)
    np.testing.assert_allclose(net.predict_rows(X[200:]), ridge, rtol=0, atol=1e-6)


def test_training_that_never_beats_the_ridge_on_the_validation_tail_leaves_the_ridge():
    # a learning rate of 50 throws every epoch's weights far off: early stopping keeps the untrained state
    X, y = windows(seed=2)
    net = LSTMForecaster(head="residual", epochs=3, units=4, n_layers=1, learning_rate=50.0, seed=3)
    net.fit(X[:200], y[:200])
    ridge = fit_ridge(X[:200].reshape(200, -1), y[:200]).predict(X[200:].reshape(100, -1))
    np.testing.assert_allclose(net.predict(X[200:]), ridge, rtol=0, atol=1e-6)


def test_a_fine_tune_that_makes_the_tail_worse_is_not_kept():
    # fitted with no training (the ridge alone), then fine-tuned at a learning rate that throws the weights off:
    # the held-out tail of the fine-tune's rows prefers the state it started from
    X, y = windows(seed=6)
    net = LSTMForecaster(head="residual", epochs=0, units=4, n_layers=1, seed=7).fit(X[:200], y[:200])
    before = net.predict(X[250:])
    net.finetune(X[150:250], y[150:250], epochs=3, learning_rate=50.0)
    np.testing.assert_allclose(net.predict(X[250:]), before, rtol=0, atol=1e-9)
    assert len(net.history_["val_loss"]) == 3  # it trained, and threw the epochs away
    free = LSTMForecaster(head="residual", epochs=0, units=4, n_layers=1, seed=7, finetune_guard=False)
    free.fit(X[:200], y[:200]).finetune(X[150:250], y[150:250], epochs=3, learning_rate=50.0)
    assert np.max(np.abs(free.predict(X[250:]) - before)) > 1e-3  # unguarded, the last epoch is kept


def test_a_residual_head_learns_what_the_ridge_cannot():
    # y = x_last + 0.5 |x_last|: the ridge fits the line; the network adds the kink, and the validation tail
    # picks a trained state over the ridge's
    rng = np.random.default_rng(4)
    X = rng.normal(size=(1200, 3, 1))
    y = X[:, -1, 0] + 0.5 * np.abs(X[:, -1, 0]) + 0.05 * rng.normal(size=1200)
    net = LSTMForecaster(head="residual", epochs=30, units=8, n_layers=1, patience=5, seed=5).fit(X[:1000], y[:1000])
    ridge = fit_ridge(X[:1000].reshape(1000, -1), y[:1000]).predict(X[1000:].reshape(200, -1))
    network_mse = np.mean((net.predict(X[1000:]) - y[1000:]) ** 2)
    ridge_mse = np.mean((ridge - y[1000:]) ** 2)
    assert network_mse < 0.7 * ridge_mse


def per_ticker(target="log_return", **changes) -> ModelSpec:
    features = ["log_return", "log_rv_1", "log_rv_5"] if target == "realized_vol" else FEATURES
    settings = dict(features=features, lookback=5, units=4, n_layers=1, epochs=2, target=target, head="residual")
    return ModelSpec(**{**settings, **changes})


WF = WalkForwardSpec(min_train=260, retrain_every=60, finetune_window=50, finetune_epochs=1)


@pytest.mark.parametrize("target", ["log_return", "realized_vol"])
def test_the_residual_head_with_the_network_off_reproduces_the_ridge_control_in_a_walk_forward(target):
    frame = make_bars(520, seed=6)
    model = per_ticker(target, epochs=0)
    table = walk_forward_predict({"T": frame}, model, WF.model_copy(update={"finetune_epochs": 0}), seed=1)
    lstm = table[table["model"] == "lstm"].set_index("date")["y_pred"]
    ridge = table[table["model"] == "ridge"].set_index("date")["y_pred"]
    assert len(lstm) > 200 and lstm.index.equals(ridge.index)
    np.testing.assert_allclose(lstm.to_numpy(), ridge.to_numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("target", ["log_return", "realized_vol"])
def test_no_residual_head_prediction_on_or_before_d_changes_when_every_bar_after_d_changes(target):
    frame = make_bars(520, seed=7)
    cut = frame.index[400]  # inside the third fold's test block
    model = per_ticker(target)
    wf = WF.model_copy(update={"refit_every": 2})
    a = walk_forward_predict({"T": frame}, model, wf, seed=1)
    b = walk_forward_predict({"T": perturb_after(frame, cut, seed=9)}, model, wf, seed=1)
    before = pd.to_datetime(a["date"]) <= cut
    pd.testing.assert_frame_equal(a.loc[before, MADE], b.loc[before.to_numpy(), MADE], check_exact=True)
    lstm = (a["model"] == "lstm") & ~before
    assert not np.allclose(a.loc[lstm, "y_pred"], b.loc[lstm.to_numpy(), "y_pred"])


def test_no_global_residual_prediction_on_or_before_d_changes_when_one_tickers_bars_after_d_change():
    from tests.test_cross_section import tiny, universe

    prices = universe(4, n=260)
    model = tiny("log_return", head="residual")
    wf = WalkForwardSpec(min_train=120, retrain_every=40, finetune_window=30, refit_every=2)
    a = walk_forward_predict(prices, model, wf, seed=1)
    cut = pd.Timestamp(a["date"].sort_values().iloc[len(a) // 2])
    b = walk_forward_predict(dict(prices, T2=perturb_after(prices["T2"], cut, seed=5)), model, wf, seed=1)
    before = a[a["date"] <= cut][MADE].reset_index(drop=True)
    pd.testing.assert_frame_equal(before, b[b["date"] <= cut][MADE].reset_index(drop=True), check_exact=True)
    assert not np.array_equal(a[a["date"] > cut]["y_pred"].to_numpy(), b[b["date"] > cut]["y_pred"].to_numpy())


def test_refit_every_k_fits_those_folds_from_scratch_and_fine_tunes_between():
    frame = make_bars(520, seed=8)
    model = per_ticker(head="lstm")
    refit = walk_forward_predict({"T": frame}, model, WF.model_copy(update={"refit_every": 2}), seed=1)
    scratch = walk_forward_predict({"T": frame}, model, WF.model_copy(update={"warm_start": False}), seed=1)
    warm = walk_forward_predict({"T": frame}, model, WF, seed=1)

    def fold(table, k):
        return table[(table["model"] == "lstm") & (table["fold"] == k)]["y_pred"].to_numpy()

    assert len(fold(refit, 2)) > 0 and len(fold(refit, 3)) > 0
    np.testing.assert_array_equal(fold(refit, 2), fold(scratch, 2))  # fold 2: a fit from scratch
    np.testing.assert_array_equal(fold(refit, 1), fold(warm, 1))  # fold 1: the first fold's fine-tune
    assert not np.array_equal(fold(refit, 2), fold(warm, 2))
    assert not np.array_equal(fold(refit, 3), fold(scratch, 3))  # fold 3: fine-tuned from fold 2's refit


def test_every_ridge_of_a_walk_forward_is_fitted_on_one_blas_thread(monkeypatch):
    # BLAS's thread count is process-wide: the ridge control's thread once set it to 1 and back while the
    # residual head's ridge was fitted in the main thread, which then rounded differently from run to run.
    # Now every ridge fit, the head's and the control's, runs on one thread, so a run repeats bit for bit.
    from sklearn.linear_model import RidgeCV
    from threadpoolctl import threadpool_info

    seen = []
    original = RidgeCV.fit

    def recording(self, X, y, **kwargs):
        seen.append(max((pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"), default=1))
        return original(self, X, y, **kwargs)

    monkeypatch.setattr(RidgeCV, "fit", recording)
    frame = make_bars(400, seed=8)
    walk_forward_predict({"T": frame}, per_ticker("realized_vol", epochs=1), WF, seed=1)
    assert len(seen) >= 6 and set(seen) == {1}  # the head's fit and fine-tunes, and the control's, each fold
    net = LSTMForecaster(head="residual", epochs=0, units=4, n_layers=1, seed=1)
    seen.clear()
    net.fit(*windows())  # outside a walk-forward too (a paper step): one thread
    assert seen == [1]
