"""What a per-ticker walk-forward learns and writes, by `model.target`: the sample targets, how a
network's output becomes a forecast, the controls fitted beside it, and a fold's rows of the table.

- `log_return` (and the cross-sectional targets, which a per-ticker sample holds as log returns: the
  universe's walk-forward ranks them): the horizon's log return, beside ridge, naive, drift and momentum.
- `close`: the future close (the classic tutorial's target), forecast as a log return from this close.
- `realized_vol`: the log of the next horizon's realized variance, raised to the variance's level by
  Duan's smearing, beside ridge and the volatility baselines (GARCH, GJR, EWMA, HAR, naive).

`target_of(model)` picks one; the walk-forward asks it instead of branching on the setting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from forecasting.ridge import fit_ridge
from forecasting.samples import Samples
from forecasting.spec import ModelSpec


def smearing(actual: np.ndarray, fitted: np.ndarray) -> float:
    """log mean(exp(actual - fitted)): Duan's (1983) smearing term for a regression of a log."""
    residual = np.asarray(actual, dtype="float64") - np.asarray(fitted, dtype="float64")
    residual = residual[np.isfinite(residual)]
    return float(np.log(np.mean(np.exp(residual)))) if len(residual) else 0.0


def ridge_forecast(
    samples: Samples, train: np.ndarray, test: np.ndarray, target: np.ndarray | None = None
) -> np.ndarray:
    """The linear control: ridge regression of the horizon's log return (or `target`) on the same windows,
    flattened.

    Fitted per fold on that fold's training samples only: standardisation fitted on them, and the
    penalty chosen among 13 values by generalised (leave-one-out) cross-validation on them too.
    """
    flat = samples.X.reshape(len(samples.X), -1)
    with threadpool_limits(limits=1, user_api="blas"):  # one BLAS thread: it runs beside the network's training
        ridge = fit_ridge(flat[train], (samples.log_return if target is None else target)[train])
        return ridge.predict(flat[test])


def fold_rows(
    ticker: str,
    samples: Samples,
    model: ModelSpec,
    fold: int,
    test: np.ndarray,
    train_end,
    forecasts: dict[str, np.ndarray],
    lstm_spread: np.ndarray,
    y_true: np.ndarray,
    close: np.ndarray | None,
    **extra,
) -> pd.DataFrame:
    """A fold's rows of the predictions table, one block per model; `close` prices the forecasts (None:
    they are no returns, price_pred is NaN); `extra` columns are the same for every model."""
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "date": samples.dates[test],
                    "ticker": ticker,
                    "model": name,
                    "y_pred": y_pred,
                    "y_true": y_true,
                    "price_pred": close * np.exp(y_pred) if close is not None else np.nan,
                    "price_true": samples.future_close[test],
                    "horizon": model.horizon,
                    "fold": fold,
                    "train_end": train_end,
                    "y_pred_std": lstm_spread if name == "lstm" else np.full(len(test), np.nan),
                    **extra,
                }
            )
            for name, y_pred in forecasts.items()
        ],
        ignore_index=True,
    )


class LogReturnTarget:
    """The horizon's log return: the network's output is the forecast."""

    def values(self, frame: pd.DataFrame, model: ModelSpec, offset: int, log_ret: np.ndarray, future: np.ndarray):
        """Every feature row's target (NaN where it is not known yet)."""
        return log_ret

    def as_log_return(self, raw: np.ndarray, close: np.ndarray) -> np.ndarray:
        """A network's output as a forecast in target units."""
        return raw

    def corrected(self, mean: np.ndarray, network, samples: Samples, train: np.ndarray) -> np.ndarray:
        """The ensemble's mean forecast, corrected where the target needs it (a log's level)."""
        return mean

    def return_var_ratio(self, samples: Samples, model: ModelSpec, train: np.ndarray) -> float | None:
        """What turns a variance forecast into one of returns (None: this target is no variance)."""
        return None

    def controls(self, samples: Samples, model: ModelSpec, train: np.ndarray, test: np.ndarray) -> dict:
        """The fitted controls' forecasts of a fold's test samples, fitted on its training samples only."""
        return {"ridge": ridge_forecast(samples, train, test)}

    def fold_table(self, ticker, samples, model, fold, train, test, lstm, controls, spread) -> pd.DataFrame:
        """One fold's rows: the LSTM's and the controls' (ridge, naive, drift, momentum)."""
        close = samples.close[test]
        train_end = samples.dates[train[-1] + model.horizon]
        drift = float(np.mean(samples.log_return[train]))
        forecasts = {
            "lstm": lstm,
            "ridge": controls["ridge"],
            "naive": np.zeros(len(test)),
            "drift": np.full(len(test), drift),
            "momentum": samples.past_return[test],
        }
        y_true = samples.log_return[test]
        return fold_rows(ticker, samples, model, fold, test, train_end, forecasts, spread, y_true, close)


class CloseTarget(LogReturnTarget):
    """The future close (the classic tutorial's target): a predicted close, as a log return from this close."""

    def values(self, frame, model, offset, log_ret, future):
        return future

    def as_log_return(self, raw, close):
        return np.log(np.where(raw > 0, raw, np.nan) / close)


class RealizedVolTarget(LogReturnTarget):
    """The log of the next horizon's realized variance (`forecasting.volatility`)."""

    def values(self, frame, model, offset, log_ret, future):
        from forecasting.volatility import daily_variance, realized_variance

        variance = daily_variance(frame, model.vol_estimator)
        return np.log(realized_variance(variance, model.horizon).to_numpy()[offset:])

    def corrected(self, mean, network, samples, train):
        """A forecast of a log variance raised to the variance's level (Duan's smearing over the fold's
        training samples)."""
        return mean + network.log_level_correction(samples, train)

    def controls(self, samples, model, train, test):
        """Ridge on the same windows (smeared as the LSTM is) and the volatility baselines (the log of their
        variance forecasts, `forecasting.volatility.baseline_forecasts`)."""
        from forecasting.volatility import baseline_forecasts

        bars = baseline_forecasts(
            samples.frame, model.vol_estimator, model.horizon, samples.positions[train], samples.positions[test]
        )
        ridge = ridge_forecast(samples, train, np.concatenate([train, test]), samples.target)  # in sample, then out
        corrected = ridge[len(train) :] + smearing(samples.target[train], ridge[: len(train)])
        return {"ridge": corrected, **{k: np.log(v) for k, v in bars.items()}}

    def return_var_ratio(self, samples: Samples, model: ModelSpec, train: np.ndarray) -> float:
        """The training span's mean squared close-to-close return over its mean variance proxy: what turns
        a variance forecast in proxy units into one of returns (a Garman-Klass proxy leaves the overnight
        gap out). Read from the bars up to the fold's last known target only."""
        from forecasting.volatility import daily_variance

        span = np.arange(1, int(samples.positions[train[-1]]) + model.horizon + 1)
        proxy = daily_variance(samples.frame, model.vol_estimator).to_numpy()[span]
        returns = np.log(samples.frame["close"].to_numpy())
        squared = np.diff(returns)[span - 1] ** 2
        return float(np.mean(squared) / np.nanmean(proxy))

    def fold_table(self, ticker, samples, model, fold, train, test, lstm, controls, spread):
        """A volatility fold's rows: y_pred and y_true are the log of the next h sessions' realized variance.

        `return_true` is the realised log return over the horizon (the VaR's outcome) and `return_var_ratio`
        the training span's mean squared return over its mean proxy: what turns a variance forecast in proxy
        units into one of close-to-close returns (a Garman-Klass proxy leaves the overnight gap out)."""
        train_end = samples.dates[train[-1] + model.horizon]
        ratio = self.return_var_ratio(samples, model, train)
        return fold_rows(
            ticker,
            samples,
            model,
            fold,
            test,
            train_end,
            {"lstm": lstm, **controls},
            spread,
            samples.target[test],
            None,
            return_true=samples.log_return[test],
            return_var_ratio=ratio,
        )


def return_variance(log_variance, ratio, horizon) -> np.ndarray:
    """A volatility forecast (the log of the next `horizon` sessions' realized variance, in proxy units) as
    a forecast of the next session's return variance: exp(y) x return_var_ratio / horizon. The backtest's
    sizing and a paper account's both read it here, so they agree to the bit."""
    return np.exp(np.asarray(log_variance, dtype="float64")) * ratio / horizon


TARGETS = {"close": CloseTarget(), "realized_vol": RealizedVolTarget()}
LOG_RETURN = LogReturnTarget()


def target_of(model: ModelSpec) -> LogReturnTarget:
    """The target `model` learns (a cross-sectional target is a log return per ticker)."""
    return TARGETS.get(model.target, LOG_RETURN)
