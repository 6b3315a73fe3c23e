"""Forecast plots from a predictions table (matplotlib, non-interactive, no font noise)."""

from __future__ import annotations

from pathlib import Path

import reports.quiet  # noqa: F401  (backend and font set-up before pyplot)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _save(fig, path: Path, dpi: int = 100) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_predicted_vs_actual(predictions: pd.DataFrame, path: Path, ticker: str | None = None) -> Path:
    """Predicted vs actual close over the out-of-sample span (fold boundaries marked), a zoom on the
    last 120 predictions beside the naive forecast, and both error series. Points are drawn at the
    target's date (t + horizon business days)."""
    tickers = list(predictions["ticker"].unique())
    ticker = ticker or tickers[0]
    rows = predictions[predictions["ticker"] == ticker]
    lstm = rows[rows["model"] == "lstm"].sort_values("date")
    naive = rows[rows["model"] == "naive"].sort_values("date")
    target_dates = lstm["date"] + pd.offsets.BDay(int(lstm["horizon"].iloc[0]))
    fig = plt.figure(figsize=(11, 9.5))
    grid = fig.add_gridspec(3, 1, height_ratios=[3, 2.2, 1.2])
    top, zoom = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    bottom = fig.add_subplot(grid[2], sharex=top)
    top.plot(target_dates, lstm["price_true"], color="black", lw=1.0, label="actual close")
    top.plot(target_dates, lstm["price_pred"], color="tab:blue", lw=0.9, alpha=0.85, label="LSTM prediction")
    for start in lstm.groupby("fold")["date"].min().iloc[1:]:
        top.axvline(start, color="grey", lw=0.4, alpha=0.4)
    top.set_title(f"{ticker}: walk-forward predictions (grey lines: retraining)")
    top.set_ylabel("price")
    top.legend(loc="upper left")
    last = slice(-120, None)
    zoom.plot(target_dates.iloc[last], lstm["price_true"].iloc[last], color="black", lw=1.0, marker=".", ms=3,
              label="actual close")
    zoom.plot(target_dates.iloc[last], lstm["price_pred"].iloc[last], color="tab:blue", lw=1.0, label="LSTM")
    zoom.plot(target_dates.iloc[last], naive["price_pred"].iloc[last].to_numpy(), color="tab:orange", lw=0.9,
              alpha=0.8, label="naive (today's close)")
    zoom.set_title("last 120 predictions")
    zoom.legend(loc="upper left", fontsize=8)
    bottom.plot(target_dates, lstm["price_pred"] - lstm["price_true"], color="tab:blue", lw=0.6, label="LSTM error")
    bottom.plot(target_dates, naive["price_pred"].to_numpy() - naive["price_true"].to_numpy(), color="tab:orange",
                lw=0.6, alpha=0.7, label="naive error")
    bottom.axhline(0, color="black", lw=0.5)
    bottom.set_ylabel("error")
    bottom.legend(loc="upper left")
    return _save(fig, path, dpi=110)


def plot_forecast(history: pd.DataFrame, forecast: pd.DataFrame, path: Path, ticker: str, days_shown: int = 120) -> Path:
    """The last `days_shown` closes and the forecast path after them."""
    fig, ax = plt.subplots(figsize=(10, 4.5))
    tail = history["close"].iloc[-days_shown:]
    ax.plot(tail.index, tail.to_numpy(), color="black", lw=1.0, label="close")
    ax.plot([tail.index[-1], *forecast["date"]], [tail.iloc[-1], *forecast["price_pred"]], color="tab:blue",
            marker="o", ms=3, lw=1.2, label="forecast")
    ax.set_title(f"{ticker}: {len(forecast)}-day forecast")
    ax.legend(loc="upper left")
    return _save(fig, path, dpi=110)


def _lstm_and_naive(predictions: pd.DataFrame, ticker: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = predictions[predictions["ticker"] == ticker]
    return (rows[rows["model"] == "lstm"].sort_values("date"), rows[rows["model"] == "naive"].sort_values("date"))


def plot_residuals(predictions: pd.DataFrame, path: Path, ticker: str) -> Path:
    """LSTM residuals in return space over time, with a 21-day rolling RMSE beside the naive one."""
    lstm, naive = _lstm_and_naive(predictions, ticker)
    resid = (lstm["y_pred"] - lstm["y_true"]).to_numpy()
    naive_resid = (naive["y_pred"] - naive["y_true"]).to_numpy()
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.plot(lstm["date"], resid, color="tab:blue", lw=0.4, alpha=0.6, label="LSTM residual (log return)")
    roll = pd.Series(resid ** 2, index=lstm["date"]).rolling(21).mean() ** 0.5
    roll_naive = pd.Series(naive_resid ** 2, index=naive["date"]).rolling(21).mean() ** 0.5
    ax.plot(roll.index, roll.to_numpy(), color="tab:blue", lw=1.4, label="LSTM 21-day RMSE")
    ax.plot(roll_naive.index, roll_naive.to_numpy(), color="tab:orange", lw=1.2, label="naive 21-day RMSE")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_title(f"{ticker}: residuals over time")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path, dpi=100)


def plot_rmse_by_fold(per_fold: pd.DataFrame, path: Path, ticker: str) -> Path:
    """Price RMSE of each fold, LSTM and naive side by side."""
    rows = per_fold[per_fold["ticker"] == ticker]
    lstm = rows[rows["model"] == "lstm"].set_index("fold")["price_rmse"]
    naive = rows[rows["model"] == "naive"].set_index("fold")["price_rmse"].reindex(lstm.index)
    x = np.arange(len(lstm))
    fig, ax = plt.subplots(figsize=(11, 3.8))
    ax.bar(x - 0.2, lstm.to_numpy(), width=0.4, color="tab:blue", label="LSTM")
    ax.bar(x + 0.2, naive.to_numpy(), width=0.4, color="tab:orange", label="naive")
    step = max(1, len(x) // 20)
    ax.set_xticks(x[::step], [str(f) for f in lstm.index[::step]])
    ax.set_xlabel("fold")
    ax.set_ylabel("price RMSE")
    ax.set_title(f"{ticker}: RMSE per walk-forward fold")
    ax.legend(loc="upper left")
    return _save(fig, path, dpi=100)


def plot_equity(equity: pd.DataFrame, path: Path, title: str) -> Path:
    """Equity curves of all strategies on one chart (each starts at 1)."""
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for name in equity.columns:
        series = equity[name].dropna()
        ax.plot(series.index, (series / series.iloc[0]).to_numpy(), lw=1.3 if "lstm" in name else 0.9,
                label=name.split(":", 1)[-1])
    ax.set_title(title)
    ax.set_ylabel("growth of 1")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path, dpi=100)


def plot_drawdowns(equity: pd.DataFrame, path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(11, 3.5))
    for name in equity.columns:
        series = equity[name].dropna()
        ax.plot(series.index, (series / series.cummax() - 1).to_numpy(), lw=0.9, label=name.split(":", 1)[-1])
    ax.set_title(title)
    ax.set_ylabel("drawdown")
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path, dpi=100)


def plot_sensitivity(table: pd.DataFrame, path: Path, book: str) -> Path:
    """Sharpe of every strategy against the cost per side (from `lstm-trader sensitivity`)."""
    fig, ax = plt.subplots(figsize=(11, 4))
    for strategy, rows in table[table["ticker"] == book].groupby("strategy", sort=False):
        rows = rows.sort_values("cost_bp")
        ax.plot(rows["cost_bp"], rows["sharpe"], marker="o", lw=1.6 if "lstm" in strategy else 0.9, label=strategy)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("cost per side (bp of traded value)")
    ax.set_ylabel("Sharpe (annualised)")
    ax.set_title(f"{book}: Sharpe by trading cost (where the lines cross buy_and_hold, the edge is gone)")
    ax.legend(loc="lower left", fontsize=8, ncol=2)
    return _save(fig, path)
