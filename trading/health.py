"""A paper account's health: the live forecast quality since its first step beside the research
run's, the model's age, the gap to the backtest replay, and the checks the service alerts on.

Live quality scores each recorded prediction against the return that followed it, once the h-th
session after it has closed and been stepped (no later bar is read). A per-ticker account gets
Theil's U2 against the zero forecast, directional accuracy and its base rate (the share of days
that rose), as `forecasting.metrics.score` computes them for a run; a universe account gets the
mean daily rank IC (Spearman) against the h-day return; a variance account (vol_target) gets QLIKE of its
variance forecast against the realized variance proxy of the h sessions that followed, as
`forecasting.vol_metrics` scores a volatility run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from backtests.rundir import require_run_dir, write_json
from forecasting.metrics import base_rate, directional_accuracy, theil_u2
from forecasting.xs_metrics import daily_cross_section

SNAPSHOTS = ("status", "latest", "health", "equity")  # files the service serves: serve/<name>.json


def realised_returns(signals: pd.DataFrame, prices: dict[str, pd.DataFrame], horizon: int, last: str) -> pd.Series:
    """log(close h sessions after the signal / close at the signal) per signal row; NaN where that
    session comes after `last` (the last stepped session)."""
    out = pd.Series(np.nan, index=signals.index)
    for ticker, rows in signals.groupby("ticker"):
        close = prices[ticker]["close"].loc[:last]
        position = close.index.get_indexer(pd.to_datetime(rows["date"]))
        later = position + horizon
        ok = (position >= 0) & (later < len(close))
        values = np.full(len(rows), np.nan)
        values[ok] = np.log(close.to_numpy()[later[ok]] / close.to_numpy()[position[ok]])
        out.loc[rows.index] = values
    return out


def realised_log_variance(signals: pd.DataFrame, prices: dict[str, pd.DataFrame], model, last: str) -> pd.Series:
    """The log of the realized variance proxy over the h sessions after each signal (a volatility run's
    y_true); NaN where the h-th session comes after `last`."""
    from forecasting.volatility import daily_variance, realized_variance

    out = pd.Series(np.nan, index=signals.index)
    for ticker, rows in signals.groupby("ticker"):
        frame = prices[ticker].loc[:last]
        realized = realized_variance(daily_variance(frame, model.vol_estimator), model.horizon)
        out.loc[rows.index] = np.log(realized.reindex(pd.to_datetime(rows["date"])).to_numpy())
    return out


def variance_quality(frame: pd.DataFrame) -> dict:
    """QLIKE of the rows' variance forecasts (y_pred, a log) against their realized proxies (y_true, a log)."""
    from forecasting.vol_metrics import qlike

    known = frame[np.isfinite(frame["y_pred"].astype(float)) & np.isfinite(frame["y_true"].astype(float))]
    if len(known) == 0:
        return {"n": 0, "qlike": float("nan")}
    proxy, forecast = np.exp(known["y_true"].to_numpy(float)), np.exp(known["y_pred"].to_numpy(float))
    return {"n": int(len(known)), "qlike": qlike(proxy, forecast)}


def quality(frame: pd.DataFrame, universe: bool = False) -> dict:
    """U2, directional accuracy and its base rate (per-ticker), or the mean daily rank IC (universe),
    of the rows of `frame` (date, ticker, y_pred, y_true) whose outcome is known; the formulas are
    the research run's (`forecasting.metrics`, `forecasting.xs_metrics`)."""
    known = frame[np.isfinite(frame["y_pred"].astype(float)) & np.isfinite(frame["y_true"].astype(float))]
    y_pred, y_true = known["y_pred"].to_numpy(float), known["y_true"].to_numpy(float)
    nan = float("nan")
    if universe:
        if len(known) == 0:
            return {"n": 0, "days": 0, "rank_ic": nan}
        daily = daily_cross_section(known.assign(model="lstm"))["rank_ic"].dropna()
        return {"n": int(len(known)), "days": int(len(daily)), "rank_ic": float(daily.mean()) if len(daily) else nan}
    if len(known) == 0:
        return {"n": 0, "u2": nan, "directional_accuracy": nan, "base_rate": nan}
    return {
        "n": int(len(known)),
        "u2": theil_u2(y_pred, y_true),
        "directional_accuracy": directional_accuracy(y_pred, y_true),
        "base_rate": base_rate(y_pred, y_true),
    }


def live_quality(account, signals: pd.DataFrame, last: str, universe: bool, variance: bool = False) -> dict:
    """The quality of the account's own predictions, on the returns (or the variance) that followed
    them by `last`."""
    empty = pd.DataFrame({"date": [], "ticker": [], "y_pred": [], "y_true": []})
    if not last or signals.empty:
        return variance_quality(empty) if variance else quality(empty, universe)
    if variance:
        realised = realised_log_variance(signals, account.prices(), account.config.model, last)
        return variance_quality(signals[["date", "ticker", "y_pred"]].assign(y_true=realised.to_numpy(float)))
    realised = realised_returns(signals, account.prices(), account.config.model.horizon, last)
    return quality(signals[["date", "ticker", "y_pred"]].assign(y_true=realised.to_numpy(float)), universe)


def reference_quality(run: str | None, universe: bool, variance: bool = False) -> dict | None:
    """The research run's out-of-sample LSTM quality, measured the same way; None without a run."""
    if not run:
        return None
    folder = require_run_dir(run)
    table = pd.read_parquet(folder / "predictions.parquet")
    table = table[table["model"] == "lstm"]
    if variance:
        measured = variance_quality(table[["date", "ticker", "y_pred", "y_true"]])
    else:
        truth = "return_true" if "return_true" in table else "y_true"
        rows = table[["date", "ticker", "y_pred"]].assign(y_true=table[truth].to_numpy(float))
        measured = quality(rows, universe)
    measured["run"] = str(folder)
    measured["span"] = [str(pd.Timestamp(table["date"].min()).date()), str(pd.Timestamp(table["date"].max()).date())]
    return measured


def checks(account, state: dict) -> list[dict]:
    """The conditions the service alerts on, each `ok` or not, with the numbers in its message."""
    serve = account.config.serve
    drift = state.get("drift") or {}
    gap = float(drift.get("last_equity_drift") or 0.0)
    mismatches = int(drift.get("target_mismatches") or 0)
    every = account.config.walk_forward.retrain_every
    models = state.get("models") or {}

    def limit_of(model: dict) -> int:  # each network against its own schedule (a volatility network's may differ)
        return serve.max_model_age or model.get("retrain_every", every)

    worst = max(models, key=lambda o: models[o]["sessions_served"] - limit_of(models[o]), default=None)
    oldest = models[worst]["sessions_served"] if worst else 0
    limit = limit_of(models[worst]) if worst else serve.max_model_age or every
    retrains = models[worst].get("retrain_every", every) if worst else every
    named = f" {worst}" if worst and len(models) > 1 else ""
    return [
        {
            "kind": "equity_gap",
            "ok": gap <= serve.max_equity_gap,
            "message": f"equity is {gap:.2%} away from the backtest replay of its own predictions "
            f"(threshold {serve.max_equity_gap:.2%})",
        },
        {
            "kind": "target_mismatch",
            "ok": mismatches <= serve.max_target_mismatches,
            "message": f"{mismatches} decision(s) differ from the backtest's on the same predictions "
            f"(threshold {serve.max_target_mismatches})",
        },
        {
            "kind": "model_age",
            "ok": oldest <= limit,
            "message": f"the model{named} has served {oldest} sessions (threshold {limit}); the walk-forward "
            f"retrains every {retrains}",
        },
    ]


def health(account, state: dict) -> dict:
    from backtests.books import is_universe_strategy
    from forecasting.tasks import task_of

    universe = is_universe_strategy(account.spec)
    variance = task_of(account.config.model).forecasts == "variance"
    signals = account.ledger.table("signals", "date, ticker")
    last = state.get("last")
    return {
        "name": account.name,
        "last": last,
        "universe": universe,
        "variance": variance,
        "live": live_quality(account, signals, last, universe, variance),
        "reference": reference_quality(account.config.serve.reference_run, universe, variance),
        "checks": checks(account, state) if last else [],
    }


def write_snapshots(account) -> dict:
    """status, latest, health and the replay's equity, as JSON files in the account's `serve/`
    folder (each written atomically): what the service answers from, recomputed after each step."""
    from trading.readout import latest, status

    replay: dict = {}
    state = status(account, replay)
    equity = account.ledger.table("equity", "date")
    curve = {
        "dates": equity["date"].tolist(),
        "equity": equity["equity"].tolist(),
        "backtest": [replay.get(d) for d in equity["date"]],
    }
    snapshots = {"status": state, "latest": latest(account), "health": health(account, state), "equity": curve}
    folder = Path(account.folder) / "serve"
    folder.mkdir(exist_ok=True)
    for name, value in snapshots.items():
        write_json(folder / f"{name}.json", value)
    return snapshots
