"""Static charts (PNG) of a run: every one drawn in the one explicit style of reports.style."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # noqa: E402  (after the Agg backend is chosen)
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from reports.derive import (  # noqa: E402
    EXPOSURE_WINDOW,
    autocorrelation,
    calibration_bins,
    drawdown,
    error_race,
    fold_starts,
    growth,
    model_rows,
    smoothed_exposure,
)
from reports.style import styled

PERCENT = mticker.PercentFormatter(1.0)


def _save(fig, path: Path, dpi: int = 100) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _strategy(column: str) -> str:
    return column.split(":", 1)[-1]


def _legend_above(ax, ncol: int = 4) -> None:
    """A legend above the axes, where it can never cover the data."""
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.01), ncol=ncol, borderaxespad=0)


def growth_axis(ax) -> None:
    """A log axis for growth of 1 whose ticks read as numbers: within a decade the log locator would
    mark 1 alone (a peak of 1.6 gets no label), so plain, evenly spaced values are marked there."""
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    if low > 0 and high / low < 10:
        ax.yaxis.set_major_locator(mticker.MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
        ax.yaxis.set_minor_locator(mticker.NullLocator())
    ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))


CONTROLS = ("naive_signal", "ridge_signal")  # the honest controls: drawn, but never allowed to set the scale


def plot_recent_predictions(predictions: pd.DataFrame, path: Path, ticker: str, last: int = 120) -> Path:
    """The last `last` predictions in price space beside the actual close and the naive forecast,
    drawn at the date each prediction is for (t + horizon sessions)."""
    lstm, naive = model_rows(predictions, ticker, "lstm"), model_rows(predictions, ticker, "naive")
    horizon = int(lstm["horizon"].iloc[0]) if "horizon" in lstm and len(lstm) else 1
    # a prediction made at t is for the session `horizon` prediction dates later (business days at the end)
    target = lstm["date"].shift(-horizon).fillna(lstm["date"] + pd.offsets.BDay(horizon))
    lstm, target = lstm.iloc[-last:], target.iloc[-last:]
    naive = naive.set_index("date").reindex(lstm["date"])
    with styled():
        fig, ax = plt.subplots(figsize=(11, 4.2))
        ax.plot(target, lstm["price_true"], color="black", lw=1.0, marker=".", ms=3, label="actual close")
        ax.plot(target, lstm["price_pred"], color="tab:blue", lw=1.1, label="LSTM prediction")
        ax.plot(
            target,
            naive["price_pred"].to_numpy(),
            color="tab:orange",
            lw=0.9,
            alpha=0.85,
            label="naive (the close at t)",
        )
        for start in fold_starts(lstm):
            ax.axvline(start, color="grey", lw=0.5, ls=":")
        ax.set_title(f"{ticker}: the last {len(lstm)} predictions (dotted: retraining)", pad=22)
        ax.set_xlabel("date the prediction is for")
        ax.set_ylabel("close")
        _legend_above(ax, 3)
        return _save(fig, path, dpi=110)


def plot_error_race(predictions: pd.DataFrame, path: Path, ticker: str) -> Path:
    """Cumulative (naive squared error - model squared error) over time, per forecasting model:
    rising stretches are where the model beats "tomorrow = today"."""
    lstm = model_rows(predictions, ticker, "lstm")
    with styled():
        fig, ax = plt.subplots(figsize=(11, 4))
        for model, color in (("lstm", "tab:blue"), ("ridge", "tab:green")):
            if (predictions["model"] == model).any():
                race = error_race(predictions, ticker, model)
                ax.plot(
                    race.index,
                    race.to_numpy(),
                    color=color,
                    lw=1.3 if model == "lstm" else 0.9,
                    label=f"naive - {model}",
                )
        for start in fold_starts(lstm):
            ax.axvline(start, color="grey", lw=0.4, alpha=0.5)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(f"{ticker}: who wins, when (rising = the model beats naive; grey: retraining)", pad=22)
        ax.set_xlabel("prediction date")
        ax.set_ylabel("cumulative squared-error gain\n(log returns²)")
        _legend_above(ax)
        return _save(fig, path)


def plot_calibration(predictions: pd.DataFrame, path: Path, ticker: str) -> Path:
    """Predicted against realised returns, with the mean realised return in ten prediction bins."""
    rows = model_rows(predictions, ticker, "lstm")
    bins = calibration_bins(rows)
    with styled():
        fig, (ax, zoom) = plt.subplots(1, 2, figsize=(11, 4.2))
        ax.scatter(rows["y_pred"], rows["y_true"], s=4, alpha=0.35, color="tab:blue", label="one day")
        lim = float(np.nanmax(np.abs(rows["y_true"]))) if len(rows) else 1.0
        ax.plot([-lim, lim], [-lim, lim], color="grey", lw=0.8, ls="--", label="perfect (y = x)")
        ax.set_xlabel("predicted log return")
        ax.set_ylabel("realised log return")
        ax.set_title("every prediction", pad=22)
        _legend_above(ax, 2)
        zoom.plot(bins["predicted"], bins["realised"], marker="o", color="tab:blue", label="mean in each decile")
        span = [float(bins["predicted"].min()), float(bins["predicted"].max())]
        zoom.plot(span, span, color="grey", lw=0.8, ls="--", label="perfect (y = x)")
        zoom.axhline(0, color="black", lw=0.5)
        zoom.set_xlabel("mean predicted log return (decile of predictions)")
        zoom.set_ylabel("mean realised log return")
        zoom.set_title("calibration", pad=22)
        _legend_above(zoom, 2)
        fig.suptitle(f"{ticker}: LSTM predictions against what happened", fontweight="bold")
        return _save(fig, path)


def plot_residual_diagnostics(predictions: pd.DataFrame, path: Path, ticker: str, lags: int = 20) -> Path:
    """Histogram of the LSTM's return residuals (with the normal of the same mean and spread) and
    their autocorrelation with the ±1.96/√n band of white noise."""
    rows = model_rows(predictions, ticker, "lstm")
    resid = (rows["y_true"] - rows["y_pred"]).to_numpy()
    acf = autocorrelation(resid, lags)
    with styled():
        fig, (hist, corr) = plt.subplots(1, 2, figsize=(11, 3.8))
        hist.hist(resid, bins=60, density=True, color="tab:blue", alpha=0.6, label="residuals")
        if len(resid) > 1 and resid.std() > 0:
            x = np.linspace(resid.min(), resid.max(), 200)
            mu, sd = resid.mean(), resid.std()
            hist.plot(
                x,
                np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)),
                color="black",
                lw=1,
                label="normal, same mean and std",
            )
        hist.set_xlabel("realised - predicted log return")
        hist.set_ylabel("density")
        hist.set_title("residual distribution", pad=22)
        _legend_above(hist, 2)
        corr.bar(np.arange(1, lags + 1), acf, color="tab:blue", width=0.6)
        band = 1.96 / np.sqrt(max(len(resid), 1))
        corr.axhspan(-band, band, color="grey", alpha=0.2, label="95% band of white noise")
        corr.axhline(0, color="black", lw=0.5)
        corr.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
        corr.set_xlabel("lag (sessions)")
        corr.set_ylabel("autocorrelation")
        corr.set_title("residual autocorrelation", pad=22)
        _legend_above(corr, 1)
        fig.suptitle(f"{ticker}: LSTM residuals", fontweight="bold")
        return _save(fig, path)


def plot_trading(equity: pd.DataFrame, exposure: pd.DataFrame, path: Path, book: str) -> Path:
    """Equity (log scale, growth of 1), drawdown in percent and exposure (a 21-session mean, since a
    signal that flips daily would fill the panel) of every strategy of a book."""
    with styled():
        fig, (eq, dd, ex) = plt.subplots(3, 1, figsize=(11, 8.5), sharex=True, height_ratios=[3, 1.6, 1.6])
        for column in equity.columns:
            if equity[column].isna().all():
                continue
            width = 1.5 if "lstm" in column else 0.9
            rise, fall = growth(equity[column]), drawdown(equity[column])
            eq.plot(rise.index, rise.to_numpy(), lw=width, label=_strategy(column))
            dd.plot(fall.index, fall.to_numpy(), lw=width)
            if column in exposure:
                ex.plot(exposure.index, smoothed_exposure(exposure[column]).to_numpy(), lw=width * 0.8)
        growth_axis(eq)
        eq.set_ylabel("growth of 1 (log scale)")
        eq.set_title(f"{book}: equity, drawdown and exposure after costs", pad=34)
        _legend_above(eq)
        dd.yaxis.set_major_formatter(PERCENT)
        dd.set_ylabel("drawdown")
        ex.yaxis.set_major_formatter(PERCENT)
        ex.set_ylabel(f"exposure, {EXPOSURE_WINDOW}-day mean\n(position value / equity)")
        ex.set_xlabel("date")
        return _save(fig, path)


def plot_trades(close: pd.Series, trades: pd.DataFrame, path: Path, title: str) -> Path:
    """The close with each trade's entry (up triangles for longs, down for shorts) and exit (crosses)."""
    with styled():
        fig, ax = plt.subplots(figsize=(11, 4.2))
        ax.plot(close.index, close.to_numpy(), color="black", lw=0.8, label="close")
        longs = trades[trades["direction"] == "long"]
        shorts = trades[trades["direction"] != "long"]
        ax.scatter(
            pd.to_datetime(longs["entry_date"]),
            longs["entry_price"],
            marker="^",
            color="tab:green",
            s=28,
            zorder=3,
            label="long entry",
        )
        if len(shorts):
            ax.scatter(
                pd.to_datetime(shorts["entry_date"]),
                shorts["entry_price"],
                marker="v",
                color="tab:red",
                s=28,
                zorder=3,
                label="short entry",
            )
        done = trades.dropna(subset=["exit_date"])
        done = done[~done["open"].astype(bool)] if "open" in done else done
        ax.scatter(
            pd.to_datetime(done["exit_date"]),
            done["exit_price"],
            marker="x",
            color="tab:purple",
            s=22,
            zorder=3,
            label="exit",
        )
        ax.set_title(title, pad=22)
        ax.set_xlabel("date (entries and exits at the fill price, the next open)")
        ax.set_ylabel("price")
        _legend_above(ax)
        return _save(fig, path)


def plot_forecast(
    history: pd.DataFrame, forecast: pd.DataFrame, path: Path, ticker: str, days_shown: int | None = None
) -> Path:
    """The last closes, the forecast path after them and its band when it has one. By default the
    history shown is six times the forecast's length (30 to 120 sessions), so a short forecast is not
    squeezed into the right edge of months of closes."""
    days_shown = days_shown or min(120, max(30, 6 * len(forecast)))
    with styled():
        fig, ax = plt.subplots(figsize=(10, 4.5))
        tail = history["close"].iloc[-days_shown:]
        ax.plot(tail.index, tail.to_numpy(), color="black", lw=1.0, label="close")
        ax.plot(
            [tail.index[-1], *forecast["date"]],
            [tail.iloc[-1], *forecast["price_pred"]],
            color="tab:blue",
            marker="o",
            ms=3,
            lw=1.2,
            label="forecast",
        )
        if "price_true" in forecast and forecast["price_true"].notna().any():
            known = forecast.dropna(subset=["price_true"])
            ax.plot(
                [tail.index[-1], *known["date"]],
                [tail.iloc[-1], *known["price_true"]],
                color="black",
                lw=1.0,
                ls="--",
                marker=".",
                ms=4,
                label="what happened",
            )
        if {"price_low", "price_high"} <= set(forecast):
            ax.fill_between(
                [tail.index[-1], *forecast["date"]],
                [tail.iloc[-1], *forecast["price_low"]],
                [tail.iloc[-1], *forecast["price_high"]],
                color="tab:blue",
                alpha=0.2,
                label="80% band",
            )
        ax.set_title(f"{ticker}: {len(forecast)}-day forecast from the close of {tail.index[-1].date()}")
        ax.set_ylabel("close")
        ax.legend(loc="upper left")
        return _save(fig, path, dpi=110)


def plot_sensitivity(table: pd.DataFrame, path: Path, book: str) -> Path:
    """Sharpe of every strategy against the cost per side (from `lstm-trader sensitivity`). The controls
    do not set the scale: one far below would squash the lines that matter, so it is clipped and its
    legend entry says how low it goes. The legend sits to the right, whatever the number of strategies."""
    rows_of = {s: r.sort_values("cost_bp") for s, r in table[table["ticker"] == book].groupby("strategy", sort=False)}
    scaled = [r["sharpe"] for s, r in rows_of.items() if s not in CONTROLS] or [r["sharpe"] for r in rows_of.values()]
    values = pd.concat(scaled).dropna()
    low, high = (min(values.min(), 0.0), max(values.max(), 0.0)) if len(values) else (-1.0, 1.0)
    margin = 0.08 * (high - low or 1.0)
    low, high = low - margin, high + margin
    with styled():
        fig, ax = plt.subplots(figsize=(11, 4))
        for strategy, rows in rows_of.items():
            label = strategy
            off = rows["sharpe"][(rows["sharpe"] < low) | (rows["sharpe"] > high)]
            if len(off):
                label += f" (off scale: to {off.min() if off.min() < low else off.max():.1f})"
            ax.plot(rows["cost_bp"], rows["sharpe"], marker="o", lw=1.6 if "lstm" in strategy else 0.9, label=label)
        ax.set_ylim(low, high)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xlabel("cost per side (bp of traded value)")
        ax.set_ylabel("Sharpe (annualised)")
        ax.set_title(f"{book}: Sharpe by trading cost (where the lines cross buy_and_hold, the edge is gone)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize="small")
        return _save(fig, path)


SCORES = ("naive",)  # rows of a universe's table with no ranking to draw


def plot_cumulative_daily(cumulative: pd.DataFrame, path: Path, title: str, ylabel: str) -> Path:
    """Cumulative daily cross-sectional statistic per model (the LSTM drawn on top, thicker)."""
    with styled():
        fig, ax = plt.subplots(figsize=(11, 4.2))
        for model in [m for m in cumulative.columns if m not in SCORES]:
            series = cumulative[model]
            ax.plot(series.index, series.to_numpy(), lw=1.6 if model == "lstm" else 0.9, label=model)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(title, pad=22)
        ax.set_xlabel("prediction date")
        ax.set_ylabel(ylabel)
        _legend_above(ax, 6)
        return _save(fig, path)


def plot_holdings(weights: pd.DataFrame, turnover: pd.Series, path: Path, title: str) -> Path:
    """A portfolio's weight in every ticker over time (a heat map: long red, short blue) above its
    turnover (traded value over equity, summed over the last 21 sessions)."""
    with styled():
        fig = plt.figure(figsize=(11, 2.4 + 0.2 * max(len(weights.columns), 1)))
        grid = fig.add_gridspec(2, 2, height_ratios=[3, 1], width_ratios=[60, 1], hspace=0.08, wspace=0.02)
        top, scale = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
        bottom = fig.add_subplot(grid[1, 0], sharex=top)
        values = weights.to_numpy(dtype=float)
        limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
        edges = weights.index.append(pd.DatetimeIndex([weights.index[-1] + pd.Timedelta(days=1)]))
        mesh = top.pcolormesh(
            edges, np.arange(len(weights.columns) + 1), values.T, cmap="RdBu_r", vmin=-limit, vmax=limit
        )
        top.set_yticks(np.arange(len(weights.columns)) + 0.5, weights.columns)
        top.invert_yaxis()
        top.grid(False)
        top.tick_params(labelbottom=False)
        top.set_title(title)
        fig.colorbar(mesh, cax=scale, format=PERCENT, label="weight (of equity)")
        monthly = turnover.rolling(21, min_periods=1).sum()
        bottom.plot(monthly.index, monthly.to_numpy(), color="black", lw=0.8)
        bottom.set_ylabel("turnover\n(21 sessions)")
        bottom.yaxis.set_major_formatter(PERCENT)
        fig.subplots_adjust(left=0.08, right=0.93, top=0.93, bottom=0.08)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


VOL_LINES = ("lstm", "garch", "har")  # the forecasts drawn against the realized volatility


def plot_volatility(vols: pd.DataFrame, path: Path, ticker: str) -> Path:
    """Forecast against realized volatility over time (annualised, in the proxy's units: a Garman-Klass
    proxy leaves the overnight gap out, so close-to-close volatility is somewhat higher), the proxy drawn as
    a grey 21-day mean."""
    with styled():
        fig, ax = plt.subplots(figsize=(11, 4.2))
        realized = vols["realized"].rolling(21, min_periods=1).mean()
        ax.plot(realized.index, realized.to_numpy(), color="grey", lw=1.4, label="realized (21-day mean)")
        for model in [m for m in VOL_LINES if m in vols.columns]:
            ax.plot(vols.index, vols[model].to_numpy(), lw=1.2 if model == "lstm" else 0.8, label=model)
        ax.yaxis.set_major_formatter(PERCENT)
        ax.set_title(f"{ticker}: volatility forecasts against the realized proxy (annualised)", pad=22)
        ax.set_xlabel("date the forecast was made")
        ax.set_ylabel("volatility (proxy units)")
        _legend_above(ax)
        return _save(fig, path)


def plot_qlike_race(races: dict[str, pd.Series], path: Path, ticker: str) -> Path:
    """Cumulative QLIKE gain over GARCH per model: rising stretches are where it forecasts better."""
    with styled():
        fig, ax = plt.subplots(figsize=(11, 4))
        for model, race in races.items():
            ax.plot(race.index, race.to_numpy(), lw=1.4 if model == "lstm" else 0.9, label=f"garch - {model}")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(f"{ticker}: who wins, when (rising = the model's QLIKE beats GARCH's)", pad=22)
        ax.set_xlabel("forecast date")
        ax.set_ylabel("cumulative QLIKE gain")
        _legend_above(ax)
        return _save(fig, path)


def plot_var(table: pd.DataFrame, path: Path, ticker: str) -> Path:
    """Daily returns against the LSTM's 99% value-at-risk, the days below it marked."""
    with styled():
        fig, ax = plt.subplots(figsize=(11, 4))
        ax.plot(table.index, table["return"].to_numpy(), color="black", lw=0.5, label="return (next session)")
        ax.plot(table.index, table["var"].to_numpy(), color="tab:blue", lw=0.9, label="LSTM 99% VaR")
        hits = table[table["exceeded"]]
        ax.scatter(hits.index, hits["return"].to_numpy(), color="tab:red", s=14, zorder=3, label="below the VaR")
        share = table["exceeded"].mean() if len(table) else float("nan")
        ax.yaxis.set_major_formatter(PERCENT)
        ax.set_title(f"{ticker}: returns below the LSTM's 99% VaR: {share:.2%} of days (1% expected)", pad=22)
        ax.set_xlabel("forecast date")
        _legend_above(ax, 3)
        return _save(fig, path)
