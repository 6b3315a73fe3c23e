"""What an account says of itself, read without its step lock: its status (equity, positions, the model
served and its age, drift against the backtest's replay) and the last session's predictions and orders."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from backtests.books import is_universe_strategy
from forecasting.tasks import task_of
from forecasting.walkforward import make_split

if TYPE_CHECKING:
    from trading.account import Account


def status(account: Account, replay_equity: dict | None = None) -> dict:
    """Positions, cash, equity and P&L, the last signal, the model's age and the drift from the backtest.
    `replay_equity`, a dict, receives the backtest replay's equity by date (the service charts it)."""
    ledger = account.ledger
    equity = ledger.table("equity", "date")
    if equity.empty:
        return {"name": account.name, "broker": account.info["broker"], "strategy": account.spec.title, "steps": 0}
    last = equity.iloc[-1]
    start_cash = account.config.broker.cash
    signals = ledger.table("signals", "date")
    last_signal = [
        {**row, "forecast_vol": _annual_vol(row)}
        for row in signals[signals["date"] == signals["date"].max()].to_dict("records")
    ]
    orders = ledger.table("orders", "date")
    models = _models(account, last["date"])
    return {
        "name": account.name,
        "broker": account.info["broker"],
        "strategy": account.spec.title,
        "universe": is_universe_strategy(account.spec),
        "forecasts": task_of(account.config.model).forecasts,  # what a signal's y_pred is: return or variance
        "steps": int(len(equity)),
        "first": equity["date"].iloc[0],
        "last": last["date"],
        "cash": float(last["cash"]),
        "equity": float(last["equity"]),
        "positions": json.loads(last["positions"]),
        "pnl": float(last["equity"] - start_cash),
        "return": float(last["equity"] / start_cash - 1),
        "last_signal": last_signal,
        "models": models,
        "open_orders": orders[orders["status"].isin(["new", "sent"])].to_dict("records"),
        "rejected_orders": int((orders["status"] == "rejected").sum()) if len(orders) else 0,
        "drift": drift(account, equity, signals, replay_equity),
    }


def _models(account: Account, last_day: str) -> dict:
    """Every network the account serves (each role's), by owner: its fold and age at `last_day`."""
    return {
        owner: _model_age(account, role.config, pointer.parent.name, json.loads(pointer.read_text()), last_day)
        for role in account.roles
        for owner, pointer in role.pointers()
    }


def _model_age(account: Account, config, ticker: str, state: dict, last_day: str) -> dict:
    split = make_split(config.model, config.walk_forward)
    if ticker in account.prices():
        sessions = account.prices()[ticker].loc[:last_day].index
    else:  # the universe model: its sessions are every ticker's
        sessions = pd.DatetimeIndex(sorted(set().union(*(f.loc[:last_day].index for f in account.prices().values()))))
    first = pd.Timestamp(state["first_date"])
    age = int(((sessions > first) & (sessions <= pd.Timestamp(last_day))).sum())
    return {
        "fold": state["fold"],
        "trained_through": state["trained_through"][:10],
        "serving_since": state["first_date"][:10],
        "sessions_served": age + 1,
        "next_retrain_in": max(split.retrain_every - age - 1, 0),
        "retrain_every": split.retrain_every,
    }


def drift(account: Account, equity: pd.DataFrame, signals: pd.DataFrame, keep: dict | None = None) -> dict:
    """The backtest of the account's own predictions over its dates, beside the ledger.

    The same predictions, rule and costs in Backtrader: with the local broker the equity curves and
    targets agree to rounding, so any drift is a bug; with a real broker it is the cost of reality.
    """
    from backtests.engine import WARMUP_BARS, run_backtest

    last_day = pd.Timestamp(equity["date"].iloc[-1])
    prices = {t: f.loc[:last_day] for t, f in account.prices().items()}
    table = _as_predictions(account, signals)
    broker = account.config.broker.model_copy(update={"close_at_end": False})
    result = run_backtest(prices, table, account.spec.name, broker, account.spec.params, warmup=WARMUP_BARS)
    paper = pd.Series(equity["equity"].to_numpy(), index=pd.to_datetime(equity["date"]))
    common = paper.index.intersection(result.equity.index)
    rel = (paper[common] / result.equity[common] - 1).abs()
    if keep is not None:
        keep.update({day.date().isoformat(): float(value) for day, value in result.equity[common].items()})
    decided = result.decisions.assign(date=pd.to_datetime(result.decisions["date"]))
    traded = table[table["model"] == "lstm"]
    merged = traded.merge(decided, on=["date", "ticker"], how="inner", suffixes=("_paper", "_backtest"))
    same = np.isclose(merged["target_paper"], merged["target_backtest"], rtol=0, atol=1e-12, equal_nan=True)
    return {
        "days": int(len(common)),
        "max_equity_drift": float(rel.max()) if len(rel) else 0.0,
        "last_equity_drift": float(rel.iloc[-1]) if len(rel) else 0.0,
        "backtest_equity": float(result.equity[common].iloc[-1]) if len(common) else None,
        "target_mismatches": int((~same).sum()),
    }


def _as_predictions(account: Account, signals: pd.DataFrame) -> pd.DataFrame:
    """The ledger's signals as rows of a predictions table: the traded forecast as model `lstm`, and a
    variance forecast that sized it from a second network as `vol_lstm` (`backtest --volatility`'s name),
    each with its return_var_ratio and horizon, so the backtest sizes by the numbers the account used."""
    from trading.rules import VOL_FORECAST

    rows = signals.assign(
        date=pd.to_datetime(signals["date"]), model="lstm", price_pred=signals["close"] * np.exp(signals["y_pred"])
    )
    if "vol_pred" not in rows or rows["vol_pred"].isna().all():
        return rows
    sized = rows.assign(return_var_ratio=rows["vol_ratio"], horizon=rows["vol_horizon"])
    if len(account.roles) == 1:  # the traded forecast is the variance forecast (vol_target)
        return sized
    vol = sized.assign(model=VOL_FORECAST, y_pred=rows["vol_pred"])
    return pd.concat([sized, vol], ignore_index=True)


def latest(account: Account) -> dict:
    """The last close's prediction per ticker, the decision taken on it (the orders for the next open)
    and the model that made it: what `paper latest` prints and the service's `/latest` returns."""
    ledger = account.ledger
    day = ledger.db.execute("SELECT max(date) FROM signals").fetchone()[0]
    base = {"name": account.name, "broker": account.info["broker"], "strategy": account.spec.title}
    if day is None:
        return {**base, "date": None, "predictions": [], "orders": [], "models": {}}
    horizon = account.config.model.horizon
    rows = ledger.db.execute("SELECT * FROM signals WHERE date = ? ORDER BY ticker", (day,)).fetchall()
    predictions = [
        {
            "ticker": r["ticker"],
            "y_pred": r["y_pred"],
            "y_pred_std": r["y_pred_std"],
            "close": r["close"],
            "predicted_close": r["close"] * math.exp(r["y_pred"])
            if task_of(account.config.model).predicts_log_return()
            else None,
            "target": r["target"],
            "fold": r["fold"],
            "forecast_vol": _annual_vol(r),
        }
        for r in rows
    ]
    models = _models(account, day)
    return {
        **base,
        "date": day,
        "target": account.config.model.target,
        "forecasts": task_of(account.config.model).forecasts,  # y_pred: a return, or a log variance
        "horizon": horizon,
        "predictions": predictions,
        "orders": [
            {k: r[k] for k in ("client_order_id", "ticker", "symbol", "qty", "status")} for r in ledger.orders(day)
        ],
        "models": models,
    }


def _annual_vol(row) -> float | None:
    """The annualised volatility forecast that sized a signal's trade (None: none did)."""
    from strategies.decision import annual_vol
    from trading.models import Forecast

    keys = row.keys()
    if "vol_pred" not in keys or row["vol_pred"] is None or row["vol_pred"] != row["vol_pred"]:  # none, or NaN
        return None
    sized = Forecast(row["vol_pred"], 0.0, 0, row["vol_ratio"], row["vol_horizon"])
    return annual_vol(sized.variance())
