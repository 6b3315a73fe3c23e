import numpy as np
import pandas as pd
import pytest

from forecasting import PREDICTION_COLUMNS, ForecastingError, make_samples, walk_forward_predict
from forecasting.features import build_features
from tests.helpers import make_bars


def test_samples_align_windows_and_targets(tiny_model):
    bars = make_bars(120)
    model = tiny_model.model_copy(update={"horizon": 3})
    s = make_samples(bars, model)
    feats = build_features(bars, model.features)
    close = bars["close"]
    i = 10
    date = s.dates[i]
    pos = close.index.get_loc(date)
    # the window ends at the sample's own bar, never after it
    np.testing.assert_array_equal(s.X[i][-1], feats.loc[date].to_numpy())
    np.testing.assert_array_equal(s.X[i][0], feats.iloc[feats.index.get_loc(date) - model.lookback + 1].to_numpy())
    assert s.log_return[i] == pytest.approx(np.log(close.iloc[pos + 3] / close.iloc[pos]))
    assert s.past_return[i] == pytest.approx(np.log(close.iloc[pos] / close.iloc[pos - 3]))
    assert np.isnan(s.log_return[-3:]).all() and np.isfinite(s.log_return[:-3]).all()
    assert s.n_known == len(s.dates) - 3


def test_predictions_table_contract(tiny_model, tiny_walk_forward):
    bars = make_bars(260)
    pred = walk_forward_predict({"AAA": bars}, tiny_model, tiny_walk_forward, seed=0)
    assert list(pred.columns) == PREDICTION_COLUMNS
    assert set(pred["model"]) == {"lstm", "ridge", "naive", "drift", "momentum"}
    lstm = pred[pred["model"] == "lstm"]
    assert lstm["date"].is_unique and lstm["date"].is_monotonic_increasing
    # every prediction comes from a model whose training targets were all known by its date
    assert (pred["train_end"] <= pred["date"]).all()
    close = bars["close"]
    for row in lstm.sample(10, random_state=0).itertuples():
        pos = close.index.get_loc(row.date)
        assert row.price_true == pytest.approx(close.iloc[pos + 1])
        assert row.y_true == pytest.approx(np.log(close.iloc[pos + 1] / close.iloc[pos]))
        assert row.price_pred == pytest.approx(close.iloc[pos] * np.exp(row.y_pred))
    naive = pred[pred["model"] == "naive"]
    assert (naive["y_pred"] == 0).all()
    np.testing.assert_allclose(naive["price_pred"], naive["price_true"] * np.exp(-naive["y_true"]))
    # drift = mean training return of the fold; momentum = the last one-day return
    first = pred[(pred["model"] == "drift") & (pred["fold"] == 0)]
    samples = make_samples(bars, tiny_model)
    n_train = tiny_walk_forward.min_train
    assert first["y_pred"].iloc[0] == pytest.approx(samples.log_return[:n_train].mean())
    mom = pred[pred["model"] == "momentum"].iloc[0]
    pos = close.index.get_loc(mom.date)
    assert mom.y_pred == pytest.approx(np.log(close.iloc[pos] / close.iloc[pos - 1]))


def test_changing_the_future_changes_no_earlier_prediction(tiny_model, tiny_walk_forward):
    """Alter every price after D: predictions made on or before D must be bit-identical."""
    bars = make_bars(300, seed=5)
    cut = bars.index[220]
    future = bars.copy()
    later = future.index > cut
    future.loc[later, ["open", "high", "low", "close"]] *= np.linspace(0.5, 2.0, later.sum())[:, None]
    future.loc[later, "volume"] *= 7
    a = walk_forward_predict(bars, tiny_model, tiny_walk_forward, seed=11)
    b = walk_forward_predict(future, tiny_model, tiny_walk_forward, seed=11)
    upto_a, upto_b = a[a["date"] <= cut], b[b["date"] <= cut]
    assert len(upto_a) > 0 and a["fold"].max() >= 2
    cols = ["date", "model", "y_pred", "price_pred", "fold", "train_end"]
    pd.testing.assert_frame_equal(upto_a[cols].reset_index(drop=True), upto_b[cols].reset_index(drop=True))
    after_a = a[(a["date"] > cut) & (a["model"] == "lstm")]["y_pred"].to_numpy()
    after_b = b[(b["date"] > cut) & (b["model"] == "lstm")]["y_pred"].to_numpy()
    assert not np.array_equal(after_a, after_b)  # the test can fail: the future does reach later predictions


@pytest.mark.parametrize("where", ["at a fold start", "the bar before a fold start"])
def test_changing_prices_after_a_fold_boundary_changes_no_prediction_up_to_it(tiny_model, tiny_walk_forward, where):
    """As the audit cuts: a fold trained one sample too far reads the close after its first test bar,
    which only a cut at (or just before) the fold start can show."""
    bars = make_bars(300, seed=5)
    a = walk_forward_predict(bars, tiny_model, tiny_walk_forward, seed=11)
    start = a.loc[(a["model"] == "lstm") & (a["fold"] == 2), "date"].min()
    cut = start if where == "at a fold start" else bars.index[bars.index.get_loc(start) - 1]
    future = bars.copy()
    later = future.index > cut
    future.loc[later, ["open", "high", "low", "close"]] *= np.linspace(1.5, 0.5, later.sum())[:, None]
    b = walk_forward_predict(future, tiny_model, tiny_walk_forward, seed=11)
    cols = ["date", "model", "y_pred", "price_pred", "fold", "train_end"]
    upto_a, upto_b = a[a["date"] <= cut][cols], b[b["date"] <= cut][cols]
    assert (upto_a["fold"] == 2).any() == (where == "at a fold start")
    pd.testing.assert_frame_equal(upto_a.reset_index(drop=True), upto_b.reset_index(drop=True))


def test_same_config_and_seed_give_identical_predictions(tiny_model, tiny_walk_forward):
    bars = make_bars(220, seed=2)
    a = walk_forward_predict(bars, tiny_model, tiny_walk_forward, seed=3)
    b = walk_forward_predict(bars, tiny_model, tiny_walk_forward, seed=3)
    pd.testing.assert_frame_equal(a, b)


def test_from_scratch_and_rolling_modes_run(tiny_model, tiny_walk_forward):
    bars = make_bars(240, seed=4)
    wf = tiny_walk_forward.model_copy(update={"warm_start": False, "train_window": 100})
    pred = walk_forward_predict({"X": bars, "Y": make_bars(240, seed=6)}, tiny_model, wf, seed=0)
    assert set(pred["ticker"]) == {"X", "Y"}
    assert pred[pred["model"] == "lstm"].groupby("ticker").size().nunique() == 1


def test_close_target_gives_price_predictions(tiny_model, tiny_walk_forward):
    bars = make_bars(220, seed=8)
    model = tiny_model.model_copy(update={"target": "close", "features": ["close", "log_return"]})
    pred = walk_forward_predict(bars, model, tiny_walk_forward, seed=0)
    lstm = pred[pred["model"] == "lstm"]
    assert np.isfinite(lstm["price_pred"]).all()
    np.testing.assert_allclose(
        lstm["y_pred"], np.log(lstm["price_pred"] / (lstm["price_true"] * np.exp(-lstm["y_true"])))
    )


def test_too_short_history_is_a_clear_error(tiny_model, tiny_walk_forward):
    with pytest.raises(ForecastingError, match="min_train"):
        walk_forward_predict(make_bars(100), tiny_model, tiny_walk_forward)


def test_ridge_learns_a_linear_target_from_training_rows_only():
    from forecasting.targets import ridge_forecast
    from forecasting.walkforward import Samples

    rng = np.random.default_rng(8)
    X = rng.normal(size=(400, 4, 2))
    target = 0.5 * X[:, -1, 0] - 0.2 * X[:, -2, 1] + rng.normal(0, 0.05, 400)
    samples = Samples(
        X=X,
        target=target,
        log_return=target,
        close=np.ones(400),
        future_close=np.ones(400),
        past_return=np.zeros(400),
        dates=pd.bdate_range("2020-01-01", periods=400),
    )
    train, test = np.arange(0, 300), np.arange(300, 400)
    pred = ridge_forecast(samples, train, test)
    assert np.sqrt(np.mean((pred - target[test]) ** 2)) < 0.08  # noise sd 0.05, signal sd about 0.54
    # the fit never reads test targets: scrambling them changes nothing
    scrambled = Samples(**{**samples.__dict__, "log_return": np.r_[target[:300], rng.normal(size=100)]})
    np.testing.assert_array_equal(ridge_forecast(scrambled, train, test), pred)


def test_a_seed_ensemble_is_the_mean_of_its_members(tiny_model, tiny_walk_forward):
    from forecasting.walkforward import member_seed

    bars = make_bars(260, seed=12)
    model = tiny_model.model_copy(update={"dropout": 0.2})
    ensemble = walk_forward_predict(bars, model.model_copy(update={"n_seeds": 3}), tiny_walk_forward, seed=5)
    members = [walk_forward_predict(bars, model, tiny_walk_forward, seed=member_seed(5, k)) for k in range(3)]
    assert member_seed(5, 0) == 5 and len({member_seed(5, k) for k in range(3)}) == 3
    lstm = ensemble[ensemble["model"] == "lstm"]
    preds = np.vstack([m.loc[m["model"] == "lstm", "y_pred"].to_numpy() for m in members])
    np.testing.assert_allclose(lstm["y_pred"].to_numpy(), preds.mean(axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(lstm["y_pred_std"].to_numpy(), preds.std(axis=0), rtol=1e-12, atol=1e-15)
    assert (lstm["y_pred_std"] > 0).all()
    assert ensemble.loc[ensemble["model"] != "lstm", "y_pred_std"].isna().all()
    assert (members[0].loc[members[0]["model"] == "lstm", "y_pred_std"] == 0).all()  # one seed: no spread
