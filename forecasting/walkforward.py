"""Walk-forward splits and predictions: every prediction is made by a model trained on its past.

Samples are indexed by the bar at whose close they are made (sample i <-> bar i in the sample
frame). Sample i's target is known at the close of bar i + horizon.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from forecasting.bars import require_rows
from forecasting.checkpoint import FoldCheckpoints, fingerprint
from forecasting.errors import ForecastingError
from forecasting.faults import inject
from forecasting.features import build_features
from forecasting.model import LSTMForecaster
from forecasting.progress import Progress
from forecasting.samples import Samples
from forecasting.spec import ModelSpec, WalkForwardSpec
from forecasting.targets import smearing, target_of

PREDICTION_COLUMNS = [
    "date",
    "ticker",
    "model",
    "y_pred",
    "y_true",
    "price_pred",
    "price_true",
    "horizon",
    "fold",
    "train_end",
    "y_pred_std",
]
BASELINES = ("ridge", "naive", "drift", "momentum")
VOLATILITY_COLUMNS = PREDICTION_COLUMNS + ["return_true", "return_var_ratio"]


@dataclass(frozen=True)
class WalkForwardSplit:
    """Expanding (or rolling, with `train_window`) walk-forward folds over sample indices.

    Fold k tests samples [s_k, s_k + retrain_every) with s_0 = min_train - 1 + horizon + gap and
    trains on samples up to s_k - horizon - gap, so `train[-1] + horizon + gap <= test[0]`.
    """

    min_train: int
    retrain_every: int
    horizon: int = 1
    gap: int = 0
    train_window: int | None = None

    def __post_init__(self) -> None:
        if self.min_train < 1 or self.retrain_every < 1 or self.horizon < 1 or self.gap < 0:
            raise ForecastingError("walk-forward needs min_train, retrain_every, horizon >= 1 and gap >= 0")
        if self.train_window is not None and self.train_window < 1:
            raise ForecastingError("train_window must be at least 1 (or omitted for an expanding window)")

    def first_test(self) -> int:
        return self.min_train - 1 + self.horizon + self.gap

    def n_splits(self, n_samples: int) -> int:
        span = n_samples - self.first_test()
        return max(0, -(-span // self.retrain_every))

    def split(self, n_samples: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for fold in range(self.n_splits(n_samples)):
            test_start = self.first_test() + fold * self.retrain_every
            yield self.train_rows(fold), np.arange(test_start, min(test_start + self.retrain_every, n_samples))

    def train_rows(self, fold: int) -> np.ndarray:
        """Fold `fold`'s training samples: all of them have targets known by its first test sample."""
        train_stop = self.first_test() + fold * self.retrain_every - self.horizon - self.gap + 1
        train_start = 0 if self.train_window is None else max(0, train_stop - self.train_window)
        return np.arange(train_start, train_stop)

    def fold_of(self, sample: int) -> int | None:
        """The fold whose model predicts `sample` (None before the first test sample)."""
        first = self.first_test()
        return None if sample < first else (sample - first) // self.retrain_every


def make_samples(frame: pd.DataFrame, model: ModelSpec, source: str = "data") -> Samples:
    """Features -> sliding windows and horizon-h targets for one ticker's bars."""
    feats = build_features(frame, model.features)
    require_rows(feats, model.lookback + model.horizon + 1, source, "model.lookback plus horizon after warm-up")
    close_all = frame["close"].to_numpy(dtype="float64")
    offset = len(frame) - len(feats)  # feature rows are the last rows of the frame
    close = close_all[offset:]
    h = model.horizon
    future = np.full_like(close, np.nan)
    future[:-h] = close[h:]
    past_all = np.full(len(close_all), np.nan)
    past_all[h:] = np.log(close_all[h:] / close_all[:-h])
    past = past_all[offset:]
    values = feats.to_numpy(dtype="float64")
    lb = model.lookback
    X = np.lib.stride_tricks.sliding_window_view(values, (lb, values.shape[1]))[:, 0]
    rows = slice(lb - 1, None)
    log_ret = np.log(future / close)
    target = target_of(model).values(frame, model, offset, log_ret, future)
    return Samples(
        X=X,
        target=target[rows],
        log_return=log_ret[rows],
        close=close[rows],
        future_close=future[rows],
        past_return=past[rows],
        dates=feats.index[rows],
        frame=frame,
        positions=np.arange(offset, len(frame))[rows],
    )


def make_split(model: ModelSpec, walk_forward: WalkForwardSpec) -> WalkForwardSplit:
    return WalkForwardSplit(
        walk_forward.min_train, walk_forward.retrain_every, model.horizon, walk_forward.gap, walk_forward.train_window
    )


NETWORK_SETTINGS = tuple(name for name in inspect.signature(LSTMForecaster).parameters if name != "seed")


def ticker_task(
    ticker: str,
    frame: pd.DataFrame,
    model: ModelSpec,
    walk_forward: WalkForwardSpec,
    seed: int,
    checkpoints: str | None,
) -> pd.DataFrame:
    """One executor task: a ticker's walk-forward (checkpointed in its own folder, so tasks never share files)."""
    return ticker_walk_forward(
        ticker, frame, model, walk_forward, seed, checkpoints=FoldCheckpoints(checkpoints) if checkpoints else None
    )


def make_forecaster(model: ModelSpec, seed: int) -> LSTMForecaster:
    """The network of `model`: every LSTMForecaster setting (but the seed) read from the spec by name."""
    return LSTMForecaster(seed=seed, **{name: getattr(model, name) for name in NETWORK_SETTINGS})


def ticker_walk_forward(
    ticker: str,
    frame: pd.DataFrame,
    model: ModelSpec,
    wf: WalkForwardSpec,
    seed: int = 0,
    progress: Progress | None = None,
    checkpoints: FoldCheckpoints | None = None,
) -> pd.DataFrame:
    """One ticker's rows of the predictions table: the LSTM walked forward fold by fold (warm-started
    or from scratch), beside the controls fitted on each fold's training rows."""
    samples = make_samples(frame, model, ticker)
    split = make_split(model, wf)
    n = samples.n_known
    n_folds = split.n_splits(n)
    if n_folds == 0:
        raise ForecastingError(
            f"{ticker}: {n} samples leave nothing to test after min_train={wf.min_train} (+ horizon and gap)",
            "load a longer history (data.start) or lower walk_forward.min_train",
        )
    progress = progress or Progress()
    network = WalkForwardModel(model, wf, seed)
    tables: list[pd.DataFrame] = []
    start, key = 0, None
    if checkpoints is not None:
        key = fingerprint(
            frame, {"model": model.model_dump(mode="json"), "walk_forward": wf.model_dump(mode="json"), "seed": seed}
        )
        tables, network.ensemble, start = checkpoints.restore(ticker, key)
        network.fold = start - 1
    progress.fold(ticker, start, n_folds)  # the bar knows its total before the first fold trains
    folds = list(split.split(n))
    # The ridge control needs no network: a thread fits it for every fold while the LSTM trains (its
    # LAPACK calls release the GIL, as TensorFlow's ops do), so it costs almost no wall time.
    ridge_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ridge")
    # one BLAS thread throughout, as the global walk-forward: the limit is process-wide, so a limit the ridge
    # thread set and restored would race with a residual head's ridge fitted here, which would then round
    # differently from run to run (same seed, predictions 1e-15 apart)
    blas = threadpool_limits(limits=1, user_api="blas")
    ridge = {
        fold: ridge_pool.submit(control_forecasts, samples, model, train, test)
        for fold, (train, test) in enumerate(folds)
        if fold >= start
    }
    try:
        for fold, (train, test) in enumerate(folds):
            if fold < start:
                continue
            mean, spread = network.forecast_fold(fold, samples, train, test, progress)
            fold_table = _fold_table(ticker, samples, model, fold, train, test, mean, ridge[fold].result(), spread)
            tables.append(fold_table)
            record_fold(ticker, fold, n_folds, fold_table, network, progress, checkpoints, key)
    finally:
        ridge_pool.shutdown(wait=True, cancel_futures=True)
        blas.restore_original_limits()
    return _sorted(pd.concat(tables, ignore_index=True))


class WalkForwardModel:
    """The LSTM ensemble (one forecaster per seed of `model.n_seeds`) as the walk-forward trains it.

    `train_fold(k, ...)` is the one training step of fold k: a fit from scratch on the first fold
    (and on every fold without warm start), a fine-tune of the previous fold's weights otherwise.
    `walk_forward_predict` and paper trading both step it fold by fold, so a paper account serves
    exactly the network the backtest traded. `fold` is the last fold trained (-1: none).
    """

    def __init__(self, model: ModelSpec, walk_forward: WalkForwardSpec, seed: int) -> None:
        self.model, self.walk_forward, self.seed = model, walk_forward, seed
        self.ensemble: list[LSTMForecaster] | None = None
        self.fold = -1

    def train_fold(
        self,
        fold: int,
        samples: Samples,
        train: np.ndarray,
        progress: Progress | None = None,
        recent: np.ndarray | None = None,
    ) -> None:
        """`recent`: which of the training samples a fine-tune uses (default: the last `finetune_window`)."""
        if fold != self.fold + 1:
            raise ForecastingError(f"fold {fold} cannot follow fold {self.fold}", "train the folds in order")
        progress = progress or Progress()
        wf = self.walk_forward
        X_train, y_train = samples.X[train], samples.target[train]
        if self.ensemble is None:
            self.ensemble = [make_forecaster(self.model, member_seed(self.seed, k)) for k in range(self.model.n_seeds)]
            fresh = True
        else:
            fresh = not wf.warm_start or (wf.refit_every is not None and fold % wf.refit_every == 0)
        for forecaster in self.ensemble:
            if fresh:
                # From scratch: a refit resets the same network to its initial state (no new trace).
                forecaster.fit(X_train, y_train, on_epoch=progress.epoch)
                continue
            if self.model.head == "residual":  # the ridge under the network is refit on the whole span
                forecaster.fit_base(X_train, y_train)
            if wf.finetune_epochs > 0:
                rows = (
                    recent
                    if recent is not None
                    else slice(-wf.finetune_window, None)
                    if wf.finetune_window
                    else slice(None)
                )
                forecaster.finetune(
                    X_train[rows],
                    y_train[rows],
                    wf.finetune_epochs,
                    wf.finetune_learning_rate,
                    on_epoch=progress.epoch,
                )
        self.fold = fold

    def predict(self, samples: Samples, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictions for sample `rows` in target units (a predicted close as a log return over the
        horizon): the ensemble's mean and spread."""
        members = []
        for forecaster in self.ensemble or []:
            raw = forecaster.predict_rows(samples.X[rows])  # row by row: the same number whatever the batch
            members.append(target_of(self.model).as_log_return(raw, samples.close[rows]))
        members = np.vstack(members)
        spread = members.std(axis=0) if len(members) > 1 else np.zeros(members.shape[1])
        return members.mean(axis=0), spread

    def forecast_fold(
        self, fold: int, samples: Samples, train: np.ndarray, test: np.ndarray, progress: Progress | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fold `fold` of a walk-forward: train it, then predict its test samples (the mean and spread); a
        forecast of a log variance is raised to the variance's level (`log_level_correction`)."""
        self.train_fold(fold, samples, train, progress)
        return self.forecast(samples, train, test)

    def forecast(self, samples: Samples, train: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The trained fold's forecasts of sample `rows` as the predictions table holds them (the mean and
        spread): the walk-forward's test rows, or a paper account's day."""
        mean, spread = self.predict(samples, rows)
        return target_of(self.model).corrected(mean, self, samples, train), spread

    def log_level_correction(self, samples: Samples, train: np.ndarray) -> float:
        """Duan's smearing for a model of a log: exp of a forecast of E[log RV] under-forecasts E[RV] (Jensen),
        so the forecast is raised by log mean(exp(residual)) over the fold's training samples. The GARCH
        baselines get their level from the training span too, so every model is scored on one footing."""
        members = [forecaster.predict(samples.X[train]) for forecaster in self.ensemble or []]
        return smearing(samples.target[train], np.mean(members, axis=0))


def record_fold(
    owner: str,
    fold: int,
    n_folds: int,
    table: pd.DataFrame,
    network: WalkForwardModel,
    progress: Progress,
    checkpoints: FoldCheckpoints | None,
    key: str | None,
) -> None:
    """After a fold's rows are made (per ticker or for a universe): checkpoint them with the network a warm
    start continues from, then tell `progress`."""
    if checkpoints is not None:
        checkpoints.save(owner, key, fold, table, network.ensemble if network.walk_forward.warm_start else None)
    inject(f"fold:{fold}")
    progress.predicted(owner, fold, table)
    progress.fold(owner, fold + 1, n_folds)


def fold_count(frame: pd.DataFrame, model: ModelSpec, walk_forward: WalkForwardSpec, ticker: str = "asset") -> int:
    """How many walk-forward folds the ticker's bars make."""
    return make_split(model, walk_forward).n_splits(make_samples(frame, model, ticker).n_known)


def predict_fold(
    ticker: str, frame: pd.DataFrame, model: ModelSpec, walk_forward: WalkForwardSpec, seed: int, fold: int
) -> pd.DataFrame:
    """One from-scratch fold on its own (`warm_start = false`): its rows of the predictions table.

    A from-scratch fit starts from the network's initial state and a fresh shuffle stream, so fold k
    alone equals fold k of `walk_forward_predict`; `assemble_folds` puts a ticker's folds together.
    """
    if walk_forward.warm_start:
        raise ForecastingError("a warm-started fold depends on the one before it", "run the folds in order")
    samples = make_samples(frame, model, ticker)
    split = make_split(model, walk_forward)
    train = split.train_rows(fold)
    start = split.first_test() + fold * split.retrain_every
    test = np.arange(start, min(start + split.retrain_every, samples.n_known))
    network = WalkForwardModel(model, walk_forward, seed)
    network.fold = fold - 1
    mean, spread = network.forecast_fold(fold, samples, train, test)
    controls = control_forecasts(samples, model, train, test)
    return _fold_table(ticker, samples, model, fold, train, test, mean, controls, spread)


def assemble_folds(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """A ticker's fold tables in the order `walk_forward_predict` returns them."""
    return _sorted(pd.concat(tables, ignore_index=True))


def control_forecasts(samples: Samples, model: ModelSpec, train: np.ndarray, test: np.ndarray) -> dict:
    """The fitted controls' predictions of a fold's test samples, fitted on its training samples only
    (which controls: the target's, `forecasting.targets`)."""
    return target_of(model).controls(samples, model, train, test)


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    from forecasting.volatility import VOL_MODELS

    order = {name: i for i, name in enumerate(dict.fromkeys(("lstm",) + BASELINES + VOL_MODELS))}
    table = table.sort_values(["model", "date"], key=lambda s: s.map(order) if s.name == "model" else s)
    return table.reset_index(drop=True)


def member_seed(seed: int, member: int) -> int:
    """The seed of ensemble member `member`: the run's seed for the first, independent draws after."""
    if member == 0:
        return int(seed)
    return int(np.random.SeedSequence((int(seed), member)).generate_state(1)[0] % (2**31 - 1))


def _fold_table(
    ticker: str,
    samples: Samples,
    model: ModelSpec,
    fold: int,
    train: np.ndarray,
    test: np.ndarray,
    lstm_ret: np.ndarray,
    controls: dict[str, np.ndarray],
    lstm_spread: np.ndarray,
) -> pd.DataFrame:
    """One fold's rows: the LSTM's and the controls' (as the target writes them)."""
    return target_of(model).fold_table(ticker, samples, model, fold, train, test, lstm_ret, controls, lstm_spread)
