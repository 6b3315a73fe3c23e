"""`lstm-trader forecast` (the next trading days) and `data fetch` (fill the download cache)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backtests.errors import BacktestError
from lstm_trader.console import (
    IDENTITY,
    RichProgress,
    SetOpt,
    console,
    fitted_table,
    progress_bars,
    show,
    toml_quote,
    user_errors,
)


@user_errors
def forecast_cmd(
    data: Annotated[str | None, typer.Option(help="data URI; default: the config's data.source")] = None,
    days: Annotated[
        int,
        typer.Option(
            min=1, max=260, help="trading days to forecast (exchange calendar paper.calendar, XNYS by default)"
        ),
    ] = 10,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="forecast from the close of this date (ISO) instead of the last bar, using no later bar"
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="TOML experiment for the network settings")] = None,
    set_: SetOpt = None,
    out: Annotated[Path, typer.Option(help="folder for the forecast CSV and plot")] = Path("runs/forecasts"),
) -> None:
    """Forecast the next N trading days: a direct multi-horizon network (one output per day ahead)
    with an 80% band."""
    from backtests.config import load_config
    from backtests.forecast_files import forecast_to_files, parse_as_of

    day = parse_as_of(as_of)
    cfg = load_config(config, (set_ or []) + ([f"data.source={toml_quote(data)}"] if data else []))
    with progress_bars() as bars:
        saved = list(forecast_to_files(cfg, days, day, out, RichProgress(bars)))
    seeds = f", {cfg.model.n_seeds} seeds" if cfg.model.n_seeds > 1 else ""
    for item in saved:
        table, history = item.table, item.history
        title = (
            f"{item.ticker}: {days}-day forecast from the close of {history.index[-1].date()} "
            f"({history['close'].iloc[-1]:,.2f}); direct multi-horizon network{seeds}"
        )
        known = table["price_true"].notna().any()
        columns = [
            ("date", "right", IDENTITY),
            ("step", "right", 3),
            ("predicted close", "right", 9),
            ("80% band", "right", 8),
            ("log return", "right", 5),
        ] + ([("actual", "right", 7)] if known else [])
        rows = [
            [
                str(row.date.date()),
                str(row.step),
                f"{row.price_pred:,.2f}",
                f"{row.price_low:,.2f} - {row.price_high:,.2f}",
                f"{row.y_pred:+.2%}",
            ]
            + ([f"{row.price_true:,.2f}" if row.price_true == row.price_true else "—"] if known else [])
            for row in table.itertuples()
        ]
        show(fitted_table(title, columns, rows))
        console.print(
            "80% band: the held-out residuals in units of the volatility at their origin (EWMA), at today's "
            f"volatility; on held-out days it was not set on it held {table['band_coverage'].iloc[0]:.0%} of the "
            f"time at step 1 ({table['fixed_band_coverage'].iloc[0]:.0%} for a band of fixed width)"
        )
        console.print(f"saved {item.csv} and {item.png}", soft_wrap=True)


@user_errors
def data_fetch(
    tickers: Annotated[list[str], typer.Argument(help="tickers, e.g. AAPL MSFT")],
    source: Annotated[
        str,
        typer.Option(
            help="yahoo (yahoo:TICKER) or alpaca (alpaca:TICKER; keys in APCA_API_KEY_ID and APCA_API_SECRET_KEY)"
        ),
    ] = "yahoo",
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="the data.cache_dir folder (alpaca: its alpaca/ subfolder); default ~/.cache/lstm-trader/yahoo"
        ),
    ] = None,
    refresh: Annotated[bool, typer.Option(help="bring the cache up to date (yahoo: download again)")] = False,
) -> None:
    """Download daily bars from Yahoo Finance or Alpaca into the on-disk cache that yahoo:TICKER or
    alpaca:TICKER reads."""
    from forecasting.data import alpaca_cache, load_alpaca, load_yahoo

    if source not in ("yahoo", "alpaca"):
        raise BacktestError(f"unknown --source '{source}'", "use --source yahoo or --source alpaca")
    for ticker in tickers:
        if source == "alpaca":
            frame = load_alpaca(ticker.upper(), cache_dir=alpaca_cache(cache_dir), refresh=refresh, offline_ok=False)
        else:
            frame = load_yahoo(ticker.upper(), cache_dir=cache_dir, refresh=refresh, offline_ok=False)
        console.print(
            f"{source}:{ticker.upper()}: {len(frame)} bars, {frame.index[0].date()} to {frame.index[-1].date()}"
        )
