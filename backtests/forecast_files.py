"""`lstm-trader forecast` below the command line: check the request, forecast each ticker with the
direct multi-horizon network, and save its table and plot."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from backtests.config import ExperimentConfig
from backtests.errors import BacktestError
from backtests.rundir import check_output_folder, write_csv
from forecasting.progress import Progress


@dataclass
class SavedForecast:
    ticker: str
    table: pd.DataFrame  # date, step, y_pred, price_pred, the band, price_true (NaN past the data's end)
    history: pd.DataFrame  # the bars up to the forecast's close
    csv: Path
    png: Path


def parse_as_of(text: str | None) -> pd.Timestamp | None:
    """`--as-of` as a naive date, or None."""
    if text is None:
        return None
    try:
        day = pd.Timestamp(text)
    except ValueError:
        raise BacktestError(f"--as-of {text!r} is not a date", "use ISO dates, e.g. --as-of 2018-06-29") from None
    return day.tz_localize(None) if day.tzinfo is not None else day


def forecast_to_files(
    config: ExperimentConfig, days: int, as_of: pd.Timestamp | None, out: str | Path, progress: Progress | None = None
) -> Iterator[SavedForecast]:
    """Forecast `days` sessions for every ticker of the config's data, from its last bar or `as_of`
    (reading no later bar), and save `forecast_<ticker>[_<as-of>].csv` and `.png` in `out`.

    A forecast from the past keeps its own files and carries the closes that followed."""
    from forecasting import load_prices
    from forecasting.forecast import forecast
    from reports.plots import plot_forecast

    out = check_output_folder(out, "--out")
    prices = load_prices(
        config.data.source, config.data.start, config.data.end, config.data.cache_dir, config.data.missing
    )
    for ticker, frame in prices.items():
        if as_of is not None and as_of < frame.index[0]:
            raise BacktestError(
                f"--as-of {as_of.date()} is before {ticker}'s first bar ({frame.index[0].date()})",
                "pick a date inside the data",
            )
        if as_of is not None and as_of > frame.index[-1]:
            raise BacktestError(
                f"--as-of {as_of.date()} is after {ticker}'s last bar ({frame.index[-1].date()})",
                "leave --as-of out to forecast from the last bar",
            )
    for ticker, frame in prices.items():
        table = forecast(
            frame,
            config.model,
            days,
            seed=config.seed,
            ticker=ticker,
            calendar=config.paper.calendar,
            as_of=as_of,
            progress=progress,
        )
        out.mkdir(parents=True, exist_ok=True)  # only once there is something to save
        history = frame[frame.index <= table["as_of"].iloc[0]]
        table["price_true"] = frame["close"].reindex(table["date"]).to_numpy()
        stem = f"forecast_{ticker}" + (f"_{history.index[-1].date()}" if as_of is not None else "")
        csv = write_csv(out / f"{stem}.csv", table)
        png = plot_forecast(history, table, out / f"{stem}.png", ticker)
        yield SavedForecast(ticker, table, history, csv, png)
