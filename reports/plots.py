"""Forecast plots from a predictions table (matplotlib, non-interactive, no font noise)."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def plot_predicted_vs_actual(predictions: pd.DataFrame, path: Path, ticker: str | None = None) -> Path:
    """Predicted vs actual close over the out-of-sample span, fold boundaries marked."""
    tickers = list(predictions["ticker"].unique())
    ticker = ticker or tickers[0]
    rows = predictions[predictions["ticker"] == ticker]
    lstm = rows[rows["model"] == "lstm"].sort_values("date")
    naive = rows[rows["model"] == "naive"].sort_values("date")
    target_dates = lstm["date"] + pd.offsets.BDay(int(lstm["horizon"].iloc[0]))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True, height_ratios=[3, 1])
    top.plot(target_dates, lstm["price_true"], color="black", lw=1.0, label="actual close")
    top.plot(target_dates, lstm["price_pred"], color="tab:blue", lw=0.9, alpha=0.85, label="LSTM prediction")
    for start in lstm.groupby("fold")["date"].min().iloc[1:]:
        top.axvline(start, color="grey", lw=0.4, alpha=0.4)
    top.set_title(f"{ticker}: walk-forward predictions (grey lines: retraining)")
    top.set_ylabel("price")
    top.legend(loc="upper left")
    bottom.plot(target_dates, lstm["price_pred"] - lstm["price_true"], color="tab:blue", lw=0.6, label="LSTM error")
    bottom.plot(target_dates, naive["price_pred"].to_numpy() - naive["price_true"].to_numpy(), color="tab:orange",
                lw=0.6, alpha=0.7, label="naive error")
    bottom.axhline(0, color="black", lw=0.5)
    bottom.set_ylabel("error")
    bottom.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_forecast(history: pd.DataFrame, forecast: pd.DataFrame, path: Path, ticker: str, days_shown: int = 120) -> Path:
    """The last `days_shown` closes and the forecast path after them."""
    fig, ax = plt.subplots(figsize=(10, 4.5))
    tail = history["close"].iloc[-days_shown:]
    ax.plot(tail.index, tail.to_numpy(), color="black", lw=1.0, label="close")
    ax.plot([tail.index[-1], *forecast["date"]], [tail.iloc[-1], *forecast["price_pred"]], color="tab:blue",
            marker="o", ms=3, lw=1.2, label="forecast")
    ax.set_title(f"{ticker}: {len(forecast)}-day forecast")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
