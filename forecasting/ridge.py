"""The linear model on flattened windows: the ridge control of every task and a residual head's base."""

from __future__ import annotations

import numpy as np

RIDGE_ALPHAS = np.logspace(-2, 4, 13)


def fit_ridge(flat: np.ndarray, y: np.ndarray):
    """The linear model of the controls: standardisation and ridge regression on flattened windows, the
    penalty chosen among RIDGE_ALPHAS by generalised (leave-one-out) cross-validation on the same rows."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    # "svd" GCV: about 2.5x faster than the automatic choice for these shapes (samples > features). One BLAS
    # thread wherever it is fitted (a walk-forward, a paper step, a fold task): the same rounding everywhere
    with threadpool_limits(limits=1, user_api="blas"):
        return make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS, gcv_mode="svd")).fit(flat, y)


class RidgeBase:
    """A residual head's linear part: `fit_ridge` on the flattened windows, applied row by row (each row's
    prediction its own sum, so it never depends on which rows are predicted together)."""

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        fitted = fit_ridge(X.reshape(len(X), -1), y)
        scaler, ridge = fitted[0], fitted[-1]
        self.mean_, self.scale_ = scaler.mean_, scaler.scale_
        self.coef_ = np.atleast_2d(ridge.coef_)  # (outputs, inputs)
        self.intercept_ = np.atleast_1d(ridge.intercept_)

    def predict(self, X: np.ndarray) -> np.ndarray:
        scaled = (X.reshape(len(X), -1) - self.mean_) / self.scale_
        return np.stack([(scaled * c).sum(axis=1) for c in self.coef_], axis=1) + self.intercept_
