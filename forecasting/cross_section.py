"""One model for a universe: the pooled windows of every ticker, walked forward on dates.

`model.scope = "global"` trains one network (and each control) on the windows of all tickers
together. Each ticker's windows are built from its own bars (`make_samples`), so tickers with
different start dates or missing days pool without breaking anything. The walk-forward runs on the
calendar of sample dates: fold k predicts the sessions [first + k * retrain_every, ...) of every
ticker, and trains only on samples whose target is known by the close of its first test session
(less `gap`). A sample's target is known at the close of its ticker's bar `horizon` bars later; a
cross-sectional target (`xs_demeaned`, `xs_rank`) needs every ticker's return that day, so it is
known when the last of them is.

Features are standardised per ticker with the mean and spread of that ticker's rows in the fold's
training samples only, so a stock's level of volatility is not a feature the pooled model can
confuse with another's, and no statistic reaches past the fold's training end.

Rows of the predictions table, every model on the same pooled windows and folds:
`lstm`, `ridge` (ridge regression on the flattened windows), `lightgbm` (gradient-boosted trees on
them), `naive` (0: no move relative to the universe for the xs targets), and two classic ranking
signals with no fitting: `momentum_12_1` (the log return from 252 to 21 sessions ago) and
`reversal_5` (minus the last 5 sessions' log return). The last two are scores to rank, not return
forecasts: their `price_pred` is NaN and the per-ticker error metrics leave them out.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from forecasting.checkpoint import FoldCheckpoints, fingerprint
from forecasting.errors import DataError, ForecastingError
from forecasting.metrics import RANKING_SCORES
from forecasting.progress import Progress
from forecasting.ridge import RIDGE_ALPHAS
from forecasting.spec import CROSS_SECTIONAL_TARGETS, ModelSpec, WalkForwardSpec
from forecasting.walkforward import PREDICTION_COLUMNS, Samples, WalkForwardModel, make_samples, record_fold
from forecasting.xs_metrics import MIN_TICKERS as MIN_UNIVERSE  # a day needs them for a cross-sectional correlation

GLOBAL_MODELS = ("lstm", "ridge", "lightgbm", "naive") + RANKING_SCORES
GLOBAL_COLUMNS = PREDICTION_COLUMNS + ["return_true"]
UNIVERSE = "universe"  # the one "ticker" a global walk-forward reports progress and checkpoints under
MOMENTUM_LOOKBACK, MOMENTUM_SKIP, REVERSAL_WINDOW = 252, 21, 5
MIN_TRAIN_ROWS = 2  # a ticker needs this many training samples in a fold to be scaled and predicted


@dataclass
class Panel:
    """The pooled samples of a universe, sorted by (date, ticker). Row i is ticker `ticker[i]`'s window
    ending at `dates[i]`; `day[i]` is that date's position in `calendar`."""

    X: np.ndarray  # (n, lookback, features) unscaled
    ticker: np.ndarray  # (n,) index into `tickers`
    tickers: list[str]
    dates: np.ndarray  # (n,) datetime64[ns]
    known_at: np.ndarray  # (n,) when the target is known (NaT: not within the data)
    log_return: np.ndarray  # (n,) log(close[t+h] / close[t]); NaN where unknown
    target: np.ndarray  # (n,) what the models learn: the log return or its cross-sectional form
    close: np.ndarray
    future_close: np.ndarray
    momentum: np.ndarray  # 12-1 momentum score at the window's last bar
    reversal: np.ndarray  # 5-day reversal score
    calendar: pd.DatetimeIndex  # every sample date, sorted: positions stay put as later bars arrive
    day: np.ndarray  # (n,) position of `dates[i]` in `calendar`

    def __len__(self) -> int:
        return len(self.dates)

    @property
    def known_days(self) -> int:
        """Calendar days up to the last one with a known target: the walk-forward tests these."""
        known = self.day[np.isfinite(self.target)]
        return int(known.max()) + 1 if len(known) else 0


def build_panel(prices: dict[str, pd.DataFrame], model: ModelSpec) -> Panel:
    """Every ticker's windows (`make_samples`), pooled and sorted by date, with the targets of `model`."""
    parts = []
    for code, (ticker, frame) in enumerate(prices.items()):
        samples = make_samples(frame, model, ticker)
        where = frame.index.get_indexer(samples.dates)
        close = frame["close"].to_numpy(dtype="float64")
        ahead = where + model.horizon
        known = np.full(len(where), np.datetime64("NaT"), dtype="datetime64[ns]")
        inside = ahead < len(frame)
        known[inside] = frame.index.to_numpy()[ahead[inside]]
        parts.append(
            (
                samples,
                np.full(len(where), code),
                known,
                _lagged_log_return(close, where, MOMENTUM_SKIP, MOMENTUM_LOOKBACK),
                -_lagged_log_return(close, where, 0, REVERSAL_WINDOW),
            )
        )
    dates = np.concatenate([p[0].dates.to_numpy() for p in parts])
    ticker = np.concatenate([p[1] for p in parts])
    order = np.lexsort((ticker, dates))

    def pooled(values) -> np.ndarray:
        return np.concatenate(values)[order]

    log_return = pooled([p[0].log_return for p in parts])
    dates, ticker = dates[order], ticker[order]
    known_at = pooled([p[2] for p in parts])
    calendar = pd.DatetimeIndex(np.unique(dates))
    day = calendar.get_indexer(dates)
    if model.target in CROSS_SECTIONAL_TARGETS:
        # A day's cross-section is fixed at the close h universe sessions later: the tickers whose return
        # is known by then are ranked (a ticker halted past it is left out of that day's target), and the
        # target is known at that close. So no target ever changes as later bars arrive.
        ahead = day + model.horizon
        cutoff = np.full(len(day), np.datetime64("NaT"), dtype="datetime64[ns]")
        inside = ahead < len(calendar)
        cutoff[inside] = calendar.to_numpy()[ahead[inside]]
        usable = np.isfinite(log_return) & ~np.isnat(known_at) & ~np.isnat(cutoff) & (known_at <= cutoff)
        target = cross_sectional_target(np.where(usable, log_return, np.nan), dates, model.target)
        known_at = np.where(np.isfinite(target), cutoff, np.datetime64("NaT")).astype("datetime64[ns]")
    else:
        target = cross_sectional_target(log_return, dates, model.target)
    return Panel(
        X=np.concatenate([p[0].X for p in parts])[order],
        ticker=ticker,
        tickers=list(prices),
        dates=dates,
        known_at=known_at,
        log_return=log_return,
        target=target,
        close=pooled([p[0].close for p in parts]),
        future_close=pooled([p[0].future_close for p in parts]),
        momentum=pooled([p[3] for p in parts]),
        reversal=pooled([p[4] for p in parts]),
        calendar=calendar,
        day=day,
    )


def _lagged_log_return(close: np.ndarray, where: np.ndarray, skip: int, lookback: int) -> np.ndarray:
    """log(close[t - skip] / close[t - lookback]) at bar positions `where` (NaN without that history)."""
    out = np.full(len(where), np.nan)
    ok = where - lookback >= 0
    out[ok] = np.log(close[where[ok] - skip] / close[where[ok] - lookback])
    return out


def cross_sectional_target(log_return: np.ndarray, dates: np.ndarray, target: str) -> np.ndarray:
    """The learnt target: the log return, or per date across the tickers with a known return: minus
    their mean (`xs_demeaned`), or the average rank scaled to [-0.5, 0.5] (`xs_rank`; 0 for one ticker)."""
    if target not in CROSS_SECTIONAL_TARGETS:
        return log_return.copy()
    frame = pd.DataFrame({"date": dates, "r": log_return})
    by_date = frame.groupby("date")["r"]
    if target == "xs_demeaned":
        return (frame["r"] - by_date.transform("mean")).to_numpy()
    count = by_date.transform("count").to_numpy(dtype="float64")
    rank = by_date.rank(method="average").to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(count > 1, (rank - 1.0) / (count - 1.0) - 0.5, 0.0)
    return np.where(np.isfinite(log_return), scaled, np.nan)


@dataclass(frozen=True)
class DateSplit:
    """Walk-forward folds over a calendar of dates, for pooled samples.

    Fold k tests the sessions [s_k, s_k + retrain_every) of the calendar, s_0 = min_train - 1 +
    horizon + gap (`min_train` counts sessions, as a per-ticker split counts bars), and trains on
    every sample whose target is known by the close of session s_k - gap (and, with `train_window`,
    dated in the last `train_window` sessions before that).
    """

    min_train: int
    retrain_every: int
    horizon: int = 1
    gap: int = 0
    train_window: int | None = None

    def first_test(self) -> int:
        return self.min_train - 1 + self.horizon + self.gap

    def n_splits(self, n_days: int) -> int:
        return max(0, -(-(n_days - self.first_test()) // self.retrain_every))

    def test_days(self, fold: int, n_days: int) -> np.ndarray:
        start = self.first_test() + fold * self.retrain_every
        return np.arange(start, min(start + self.retrain_every, n_days))

    def fold_of(self, day: int) -> int | None:
        """The fold whose model predicts calendar day `day` (None before the first test day)."""
        first = self.first_test()
        return None if day < first else (day - first) // self.retrain_every

    def train_rows(self, panel: Panel, fold: int) -> np.ndarray:
        """Rows whose target is known by the fold's cut-off (the close of its first test session less gap)."""
        start = self.first_test() + fold * self.retrain_every
        cutoff = panel.calendar[start - self.gap].to_datetime64()
        ok = np.isfinite(panel.target) & (panel.known_at <= cutoff) & ~np.isnat(panel.known_at)
        if self.train_window is not None:
            first_day = start - self.gap - self.horizon + 1 - self.train_window
            ok &= panel.dates >= panel.calendar[max(first_day, 0)].to_datetime64()
        return np.flatnonzero(ok)


def make_date_split(model: ModelSpec, walk_forward: WalkForwardSpec) -> DateSplit:
    return DateSplit(
        walk_forward.min_train, walk_forward.retrain_every, model.horizon, walk_forward.gap, walk_forward.train_window
    )


class TickerScaler:
    """Per-ticker standardisation of window features, fitted on one fold's training rows (the last row
    of each window: every training bar once, nothing after the last training sample)."""

    def __init__(self, panel: Panel, train: np.ndarray) -> None:
        n_tickers, width = len(panel.tickers), panel.X.shape[-1]
        last = panel.X[train, -1, :]
        codes = panel.ticker[train]
        self.count = np.bincount(codes, minlength=n_tickers)
        self.mean = np.zeros((n_tickers, width))
        self.scale = np.ones((n_tickers, width))
        for code in np.flatnonzero(self.count >= MIN_TRAIN_ROWS):
            rows = last[codes == code]
            self.mean[code] = rows.mean(axis=0)
            spread = rows.std(axis=0)
            self.scale[code] = np.where(spread > 0, spread, 1.0)

    def known(self, codes: np.ndarray) -> np.ndarray:
        return self.count[codes] >= MIN_TRAIN_ROWS

    def windows(self, panel: Panel, rows: np.ndarray) -> np.ndarray:
        codes = panel.ticker[rows]
        return (panel.X[rows] - self.mean[codes][:, None, :]) / self.scale[codes][:, None, :]


def global_walk_forward(
    prices: dict[str, pd.DataFrame],
    model: ModelSpec,
    walk_forward: WalkForwardSpec,
    seed: int = 0,
    progress: Progress | None = None,
    checkpoints: FoldCheckpoints | None = None,
) -> pd.DataFrame:
    """The predictions table of a global model over the universe `prices` (every ticker's rows, every
    model of `GLOBAL_MODELS`), with `return_true` (the realised log return) beside `y_true` (the target)."""
    panel = build_panel(prices, model)
    split = make_date_split(model, walk_forward)
    n_folds = split.n_splits(panel.known_days)
    if n_folds == 0:
        raise ForecastingError(
            f"the universe's {panel.known_days} sessions leave nothing to test after "
            f"min_train={walk_forward.min_train} (+ horizon and gap)",
            "load a longer history (data.start) or lower walk_forward.min_train",
        )
    progress = progress or Progress()
    network = GlobalNetwork(model, walk_forward, seed)
    tables: list[pd.DataFrame] = []
    start, key = 0, None
    if checkpoints is not None:
        key = universe_fingerprint(prices, model, walk_forward, seed)
        tables, network.ensemble, start = checkpoints.restore(UNIVERSE, key)
        network.fold = start - 1
    progress.fold(UNIVERSE, start, n_folds)
    # the controls need no network: two threads fit them fold by fold while the LSTM trains (LAPACK and
    # LightGBM release the GIL, as TensorFlow's ops do); they are most of a global walk-forward's work
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="controls")
    # one BLAS thread throughout: a limit set and restored inside each thread would race with the other's,
    # and a ridge fit rounds differently with more BLAS threads (same seed, different predictions)
    blas = threadpool_limits(limits=1, user_api="blas")
    controls = {fold: pool.submit(control_forecasts, panel, split, fold, seed) for fold in range(start, n_folds)}
    try:
        for fold in range(start, n_folds):
            table = network.fold_table(panel, split, fold, progress, controls[fold].result())
            tables.append(table)
            record_fold(UNIVERSE, fold, n_folds, table, network, progress, checkpoints, key)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        blas.restore_original_limits()
    return sort_global(pd.concat(tables, ignore_index=True))


def universe_fingerprint(prices: dict[str, pd.DataFrame], model: ModelSpec, walk_forward, seed: int) -> str:
    bars = pd.concat({ticker: frame for ticker, frame in prices.items()}, names=["ticker", "date"])
    settings = {"model": model.model_dump(mode="json"), "walk_forward": walk_forward.model_dump(mode="json")}
    return fingerprint(bars, {**settings, "seed": seed})


def global_fold(
    prices: dict[str, pd.DataFrame], model: ModelSpec, walk_forward: WalkForwardSpec, seed: int, fold: int
) -> pd.DataFrame:
    """One from-scratch global fold on its own (`warm_start = false`), equal to that fold of
    `global_walk_forward`: the executor's task when folds are independent."""
    if walk_forward.warm_start:
        raise ForecastingError("a warm-started fold depends on the one before it", "run the folds in order")
    panel = build_panel(prices, model)
    split = make_date_split(model, walk_forward)
    network = GlobalNetwork(model, walk_forward, seed)
    network.fold = fold - 1
    return network.fold_table(panel, split, fold, None, control_forecasts(panel, split, fold, seed))


def global_fold_count(prices: dict[str, pd.DataFrame], model: ModelSpec, walk_forward: WalkForwardSpec) -> int:
    return make_date_split(model, walk_forward).n_splits(build_panel(prices, model).known_days)


class GlobalNetwork(WalkForwardModel):
    """The LSTM ensemble of a global model, stepped fold by fold like a per-ticker one. Fine-tuning's
    `finetune_window` counts sessions: the training samples dated in its last `finetune_window` sessions."""

    def fold_table(
        self,
        panel: Panel,
        split: DateSplit,
        fold: int,
        progress: Progress | None,
        controls: dict[str, np.ndarray] | None = None,
    ) -> pd.DataFrame:
        """Train fold `fold` on its rows and predict its test rows: that fold's part of the table."""
        train, test, scaler = fold_rows(panel, split, fold)
        self.train_panel(panel, split, fold, progress)
        mean, spread = self.predict_panel(panel, scaler, test)
        if controls is None:
            controls = control_forecasts(panel, split, fold, self.seed)
        return panel_table(panel, self.model, fold, train, test, {"lstm": mean, **controls}, spread)

    def train_panel(self, panel: Panel, split: DateSplit, fold: int, progress: Progress | None = None) -> TickerScaler:
        """The one training step of fold `fold` on the panel (the step a paper account takes too); returns the
        fold's scaler."""
        train, _, scaler = fold_rows(panel, split, fold)
        recent = None
        if self.walk_forward.finetune_window:
            days = panel.day[train]
            recent = np.flatnonzero(days > days.max() - self.walk_forward.finetune_window)
        self.train_fold(fold, panel_samples(panel, scaler, train), np.arange(len(train)), progress, recent)
        return scaler

    def predict_panel(self, panel: Panel, scaler: TickerScaler, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictions of panel `rows`, row by row: the same numbers whichever rows are predicted together."""
        return self.predict(panel_samples(panel, scaler, rows), np.arange(len(rows)))


def panel_samples(panel: Panel, scaler: TickerScaler, rows: np.ndarray) -> Samples:
    """Panel rows as the network's samples: windows scaled per ticker by the fold's scaler."""
    return Samples(
        X=scaler.windows(panel, rows),
        target=panel.target[rows],
        log_return=panel.log_return[rows],
        close=panel.close[rows],
        future_close=panel.future_close[rows],
        past_return=np.zeros(len(rows)),
        dates=pd.DatetimeIndex(panel.dates[rows]),
    )


def fold_rows(panel: Panel, split: DateSplit, fold: int) -> tuple[np.ndarray, np.ndarray, TickerScaler]:
    """A fold's training rows, test rows (tickers with enough training rows to be scaled) and scaler."""
    train = split.train_rows(panel, fold)
    if len(train) < 2:
        raise ForecastingError(f"fold {fold} has {len(train)} training samples", "lower walk_forward.min_train")
    scaler = TickerScaler(panel, train)
    days = split.test_days(fold, panel.known_days)
    # every ticker with a bar on a test day is predicted (a trade needs a forecast on every bar), also
    # one whose target is unknown there (halted past the day's cut-off): its y_true is then NaN
    test = np.flatnonzero(np.isin(panel.day, days))
    return train, test[scaler.known(panel.ticker[test])], scaler


def control_forecasts(panel: Panel, split: DateSplit, fold: int, seed: int) -> dict[str, np.ndarray]:
    """The controls' predictions of a fold's test rows, fitted on its training rows only."""
    train, test, scaler = fold_rows(panel, split, fold)
    flat_train = scaler.windows(panel, train).reshape(len(train), -1)
    flat_test = scaler.windows(panel, test).reshape(len(test), -1)
    y = panel.target[train]
    with threadpool_limits(limits=1, user_api="blas"):  # as global_walk_forward: the same rounding everywhere
        ridge = ridge_control(flat_train, y, flat_test)
    boosted = lightgbm_control(flat_train, y, flat_test, seed)
    return {
        "ridge": ridge,
        "lightgbm": boosted,
        "naive": np.zeros(len(test)),
        "momentum_12_1": panel.momentum[test],
        "reversal_5": panel.reversal[test],
    }


def ridge_control(X_train: np.ndarray, y: np.ndarray, X_test: np.ndarray) -> np.ndarray:
    """Ridge regression on the flattened windows, the penalty chosen by generalised cross-validation
    on the training rows (as the per-ticker ridge control)."""
    from sklearn.linear_model import RidgeCV

    return RidgeCV(alphas=RIDGE_ALPHAS, gcv_mode="svd").fit(X_train, y).predict(X_test)


LIGHTGBM_SETTINGS = {  # small, regularised trees: the field's default control, not a tuned model
    "n_estimators": 100,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 200,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.5,
    "max_bin": 63,
    "reg_lambda": 1.0,
}


def lightgbm_control(X_train: np.ndarray, y: np.ndarray, X_test: np.ndarray, seed: int) -> np.ndarray:
    """LightGBM on the flattened windows; deterministic for a seed (one thread, row-wise histograms)."""
    from lightgbm import LGBMRegressor

    booster = LGBMRegressor(
        **LIGHTGBM_SETTINGS,
        random_state=int(seed),
        n_jobs=1,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )
    return booster.fit(X_train, y).predict(X_test)


def panel_table(
    panel: Panel,
    model: ModelSpec,
    fold: int,
    train: np.ndarray,
    test: np.ndarray,
    forecasts: dict[str, np.ndarray],
    lstm_spread: np.ndarray,
) -> pd.DataFrame:
    """One fold's rows of the predictions table, every model on the same test rows."""
    close = panel.close[test]
    train_end = pd.Timestamp(panel.known_at[train].max())
    returns = model.target not in CROSS_SECTIONAL_TARGETS
    frames = []
    for name, y_pred in forecasts.items():
        # naive's price is today's close (the random walk) whatever the target, as in a per-ticker table
        priced = name == "naive" or (returns and name not in RANKING_SCORES)
        frames.append(
            pd.DataFrame(
                {
                    "date": pd.DatetimeIndex(panel.dates[test]),
                    "ticker": np.asarray(panel.tickers, dtype=object)[panel.ticker[test]],
                    "model": name,
                    "y_pred": np.asarray(y_pred, dtype="float64"),
                    "y_true": panel.target[test],
                    "price_pred": close * np.exp(y_pred) if priced else np.nan,
                    "price_true": panel.future_close[test],
                    "horizon": model.horizon,
                    "fold": fold,
                    "train_end": train_end,
                    "y_pred_std": lstm_spread if name == "lstm" else np.nan,
                    "return_true": panel.log_return[test],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def sort_global(table: pd.DataFrame) -> pd.DataFrame:
    order = {name: i for i, name in enumerate(GLOBAL_MODELS)}
    table = table.sort_values(
        ["model", "ticker", "date"], key=lambda s: s.map(order) if s.name == "model" else s, kind="stable"
    )
    return table.reset_index(drop=True)[GLOBAL_COLUMNS]


def usable_universe(
    prices: dict[str, pd.DataFrame], model: ModelSpec, needed: int
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The tickers with at least `needed` bars, and a note naming each one left out (too short for the
    feature warm-up and lookback): a universe model can go on without them."""
    keep, notes = {}, []
    for ticker, frame in prices.items():
        if len(frame) >= needed:
            keep[ticker] = frame
        else:
            notes.append(f"{ticker} left out: {len(frame)} bars, fewer than the {needed} the lookback needs")
    if len(keep) < MIN_UNIVERSE:
        have = f"{len(keep)} ({', '.join(keep)})" if keep else "none"
        raise DataError(
            f"a global model ranks a universe: it needs at least {MIN_UNIVERSE} tickers with {needed} bars or "
            f"more; the data has {have}",
            "load a universe (e.g. builtin:sp500_stocks) or a longer history, or use model.scope = per_ticker",
        )
    dates = pd.Index(np.concatenate([frame.index.to_numpy() for frame in keep.values()]))
    if dates.value_counts().max() < MIN_UNIVERSE:
        spans = ", ".join(f"{t} {f.index[0].date()}..{f.index[-1].date()}" for t, f in list(keep.items())[:5])
        raise DataError(
            f"no date has {MIN_UNIVERSE} of the universe's tickers: their dates do not overlap ({spans})",
            "load tickers over one common span of dates",
        )
    return keep, notes
