"""Daily bars by URI (`builtin:`, `csv:`, `yahoo:`, `alpaca:`), validated before anything uses it.

Every loader returns frames with a DatetimeIndex named `date`, sorted and unique, and lower-case
columns: `open, high, low, close, volume` (an OHLC frame), or `close` alone, with `volume` when the
source has it (a close-only frame; see `forecasting.bars.is_close_only`). Prices are the file's own (for Yahoo and
Alpaca: split-adjusted, not dividend-adjusted). An Adj Close column is validated but never applied:
Yahoo's adjusted close at day t is scaled by every dividend paid *after* t, so scaling the bars by
it would make each price level depend on the future. (The embedded `builtin:sp500_stocks` universe is
the exception the user opts into: its closes came adjusted; forecasting/datasets/README.md.)

A universe is named by a comma list (`csv:a.csv,b.csv`, `yahoo:AAPL,MSFT`), a glob of files
(`csv:data/*.csv`, the file stem is the ticker) or a ticker file (`yahoo:@tickers.txt`).

`alpaca:AAPL,MSFT` (or `alpaca:@FILE`) reads daily bars from Alpaca's market data API through alpaca-py
(the `alpaca` extra), split-adjusted, from the IEX feed (free keys cannot read SIP; `APCA_DATA_FEED`
picks another), with the keys in `APCA_API_KEY_ID` / `APCA_API_SECRET_KEY` (never written anywhere);
`APCA_API_DATA_URL` points the client elsewhere (a test stub). Bars are cached as parquet in
`default_cache_dir()/"alpaca"`, and a refresh downloads only the bars from the cache's last date on.
`refresh_source` brings a source up to date before a scheduled paper step.
"""

from __future__ import annotations

import glob
import os
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.bars import MISSING, _dividends, _missing, read_csv, standardise
from forecasting.errors import DataError, did_you_mean

# name after 'builtin:' -> what it holds (the CLI may list these)
BUILTIN: dict[str, str] = {
    "sp500": "S&P 500 index, daily OHLCV 1999-2018 (from the arch package)",
    "nasdaq": "NASDAQ Composite index, daily OHLCV 1999-2018 (from the arch package)",
    "sp500_stocks": "20 S&P 500 stocks, daily adjusted closes 1990-2022, close-only (from skfolio)",
}
BUILTIN_NAMES = ", ".join(f"builtin:{name}" for name in BUILTIN)
ALTERNATIVES = f"use the embedded data ({BUILTIN_NAMES}) or a file (csv:PATH)"
SOURCE_FORMS = (
    "write builtin:sp500, csv:PATH, csv:DIR/*.csv, yahoo:TICKER[,TICKER...], yahoo:@FILE, "
    "alpaca:TICKER[,TICKER...] or alpaca:@FILE"
)


def default_cache_dir() -> Path:
    root = os.environ.get("LSTM_TRADER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lstm-trader"
    )
    return Path(root)


def load_prices(
    uri: str,
    start: str | date | None = None,
    end: str | date | None = None,
    cache_dir: Path | str | None = None,
    missing: str = "error",
    dividends: bool = False,
) -> dict[str, pd.DataFrame]:
    """Load and validate daily bars for every ticker named by `uri`, keyed by ticker.

    Each frame's `attrs["source"]` names where it came from (e.g. 'builtin:sp500_stocks (AAPL)'),
    so that later errors, such as a feature that needs high and low prices, can say which data.
    `missing` is what a bar with a missing value (NaN) gets: an error (default), `drop` (the bar is
    left out) or `ffill` (`fill_missing`); `attrs["gaps"]` counts the bars dropped or filled. With
    `dividends`, each frame keeps a `dividends` column (cash per share, on its ex-date; 0 on other
    days) from the source's Dividends (a CSV column, Yahoo's actions); the embedded data and Alpaca's
    bars have none. `cache_dir` is Yahoo's cache folder; Alpaca's is its `alpaca` subfolder."""
    if missing not in MISSING:
        raise DataError(f"unknown data.missing '{missing}'", 'use "error", "drop" or "ffill"')
    scheme = uri.partition(":")[0].lower().strip()
    if dividends and scheme in ("builtin", "alpaca"):
        what = "the embedded data are price series" if scheme == "builtin" else "Alpaca's bars are prices only"
        raise DataError(
            f"{uri} has no dividends: {what}",
            "set data.dividends = false, or load a source that has them (csv with a Dividends column, yahoo)",
        )
    tokens = _missing.set(missing), _dividends.set(dividends)
    try:
        return _load_prices(uri, start, end, cache_dir)
    finally:
        _missing.reset(tokens[0])
        _dividends.reset(tokens[1])


def _load_prices(uri: str, start, end, cache_dir) -> dict[str, pd.DataFrame]:
    scheme, _, rest = uri.partition(":")
    scheme = scheme.lower().strip()
    if not rest:
        raise DataError(f"data source '{uri}' has no scheme", SOURCE_FORMS)
    if scheme == "builtin":
        frames = _load_builtin(rest.lower().strip())
    elif scheme == "csv":
        frames = {}
        for path in csv_paths(rest):
            if path.stem in frames:
                raise DataError(f"two csv files are both called '{path.stem}'", "the file name is the ticker")
            frames[path.stem] = read_csv(path)
    elif scheme in ("yahoo", "yf"):
        tickers = yahoo_tickers(rest)
        frames = {t: load_yahoo(t, cache_dir=cache_dir) for t in tickers}
    elif scheme == "alpaca":
        tickers = yahoo_tickers(rest, scheme="alpaca")
        frames = {t: load_alpaca(t, cache_dir=alpaca_cache(cache_dir)) for t in tickers}
    else:
        raise DataError(f"unknown data scheme '{scheme}' in '{uri}'", SOURCE_FORMS)
    out = {}
    for ticker, frame in frames.items():
        frame = frame.loc[(frame.index >= pd.Timestamp(start)) if start else slice(None)]
        frame = frame.loc[(frame.index <= pd.Timestamp(end)) if end else slice(None)]
        if frame.empty:
            raise DataError(
                f"{uri}: no rows for {ticker} between {start or 'the start'} and {end or 'the end'}",
                "widen data.start / data.end",
            )
        single = len(frames) == 1 and ticker.lower() in uri.lower()
        frame.attrs["source"] = uri if single else f"{uri} ({ticker})"
        out[ticker] = frame
    return out


def source_tickers(uri: str) -> list[str]:
    """The tickers a data source holds, without reading its bars: what `load_prices` would return the keys
    of (a service checks a requested ticker against it before any work)."""
    scheme, _, rest = uri.partition(":")
    scheme = scheme.lower().strip()
    if scheme == "builtin":
        name = rest.lower().strip()
        if name not in BUILTIN:
            _load_builtin(name)  # its error, with the names that exist
        if name == "sp500_stocks":
            from importlib.resources import files

            with (files("forecasting.datasets") / f"{name}.csv.gz").open("rb") as handle:
                return [str(c) for c in pd.read_csv(handle, compression="gzip", nrows=0).columns if c != "Date"]
        return [name]
    if scheme == "csv":
        return list(dict.fromkeys(path.stem for path in csv_paths(rest)))
    if scheme in ("yahoo", "yf", "alpaca"):
        return yahoo_tickers(rest, scheme="alpaca" if scheme == "alpaca" else "yahoo")
    return list(_load_prices(uri, None, None, None))  # (an unknown scheme: its own clear error)


def _load_builtin(name: str) -> dict[str, pd.DataFrame]:
    if name not in BUILTIN:
        close = did_you_mean(name, BUILTIN, "", cutoff=0.6)  # bare names: the shared 'builtin:' would match anything
        raise DataError(
            f"unknown embedded data set 'builtin:{name}'",
            f"{close + ' ' if close else ''}the embedded data sets are {BUILTIN_NAMES}",
        )
    if name == "sp500_stocks":
        return _load_embedded_closes(name)
    import importlib

    raw = importlib.import_module(f"arch.data.{name}").load()
    return {name: standardise(raw, f"builtin:{name}")}


def _load_embedded_closes(name: str) -> dict[str, pd.DataFrame]:
    """One close-only frame per column of forecasting/datasets/<name>.csv.gz (Date, then a close per ticker)."""
    from importlib.resources import files

    with (files("forecasting.datasets") / f"{name}.csv.gz").open("rb") as handle:
        table = pd.read_csv(handle, compression="gzip", index_col="Date", parse_dates=["Date"])
    return {
        str(ticker): standardise(table[[ticker]].set_axis(["close"], axis=1), f"builtin:{name} ({ticker})")
        for ticker in table.columns
    }


def csv_paths(spec: str) -> list[Path]:
    """The files a `csv:` source names: a comma list, where an item may be a glob (sorted by file name)."""
    paths: list[Path] = []
    for item in (p.strip() for p in spec.split(",") if p.strip()):
        if not glob.has_magic(item):
            paths.append(Path(item))
            continue
        matches = sorted((Path(p) for p in glob.glob(item, recursive=True)), key=lambda p: (p.name, str(p)))
        matches = [p for p in matches if p.is_file()]
        if not matches:
            raise DataError(
                f"no files match '{item}'",
                "check the folder and the pattern, e.g. csv:data/*.csv (each file is a ticker)",
            )
        paths.extend(matches)
    return paths


def yahoo_tickers(spec: str, scheme: str = "yahoo") -> list[str]:
    """The tickers a `yahoo:` (or `alpaca:`) source names: a comma list, where `@FILE` stands for the
    tickers in FILE."""
    tickers: list[str] = []
    for item in (p.strip() for p in spec.split(",") if p.strip()):
        tickers.extend(read_ticker_list(item[1:].strip(), scheme) if item.startswith("@") else [item.upper()])
    return list(dict.fromkeys(tickers))  # a ticker named twice is loaded once


def read_ticker_list(path: str | Path, scheme: str = "yahoo") -> list[str]:
    """Tickers from a text file, one a line; blank lines and `#` comments are ignored. `scheme` is the
    source the list belongs to (its name appears in the hints)."""
    path = Path(path)
    example = f"one ticker a line, e.g. AAPL; or list them: {scheme}:AAPL,MSFT"
    if path.is_dir():
        raise DataError(
            f"ticker list {path} is a folder, not a file", f"name a text file after '{scheme}:@' with {example}"
        )
    if not path.is_file():
        raise DataError(
            f"ticker list not found: {path}", f"check the path after '{scheme}:@'; the file holds {example}"
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text", f"write the ticker list as plain text, {example}") from None
    tickers = []
    for number, line in enumerate(lines, start=1):
        ticker = line.split("#", 1)[0].strip()
        if not ticker:
            continue
        if any(c.isspace() or c == "," for c in ticker):
            raise DataError(f"{path}: line {number}: '{ticker}' is not one ticker", f"write {example}")
        tickers.append(ticker.upper())
    if not tickers:
        raise DataError(f"{path}: no tickers in the ticker list", f"write {example}")
    return tickers


# --- Yahoo Finance -------------------------------------------------------------------------------


def yahoo_download(ticker: str) -> pd.DataFrame:
    """Download the full daily history of `ticker` from Yahoo (network call; replaced in tests)."""
    import logging
    import warnings

    import yfinance as yf

    logging.getLogger("yfinance").setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # yfinance's own pandas deprecation noise
            raw = yf.download(
                ticker,
                period="max",
                interval="1d",
                auto_adjust=False,
                progress=False,
                actions=True,  # the Dividends column (data.dividends); ignored otherwise
                threads=False,
                multi_level_index=False,
            )
    except Exception:  # yfinance raises many kinds when offline; all mean "no data"
        return pd.DataFrame()
    return raw if raw is not None else pd.DataFrame()


def load_yahoo(
    ticker: str, cache_dir: Path | str | None = None, refresh: bool = False, *, offline_ok: bool = True
) -> pd.DataFrame:
    """Daily bars of `ticker` from the on-disk cache, downloading them first if absent or `refresh`.
    A download that fails falls back on the cache, unless not `offline_ok` (`refresh_source`)."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir() / "yahoo"
    path = cache / f"{ticker}.parquet"
    if path.exists() and not refresh:
        return standardise(pd.read_parquet(path), f"yahoo:{ticker} (cache {path})")
    raw = yahoo_download(ticker)
    if isinstance(raw.columns, pd.MultiIndex):  # older yfinance: (field, ticker) columns
        raw.columns = raw.columns.get_level_values(0)
    if raw.empty:
        if path.exists() and offline_ok:
            return standardise(pd.read_parquet(path), f"yahoo:{ticker} (cache {path})")
        if path.exists():
            raise DataError(
                f"yahoo:{ticker}: could not download from Yahoo Finance (the cache in {cache} is kept as it was)",
                "check the network or the ticker, then try again",
            )
        raise DataError(
            f"yahoo:{ticker}: could not download from Yahoo Finance and nothing is cached in {cache}",
            f"check the network or the ticker, or {ALTERNATIVES}",
        )
    frame = standardise(raw, f"yahoo:{ticker}")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    raw_to_store = raw.copy()
    raw_to_store.index = frame.index
    raw_to_store.to_parquet(tmp)
    os.replace(tmp, path)
    return frame


# --- Alpaca market data --------------------------------------------------------------------------

# the environment alpaca-py's own clients read (trading/brokers.py reads the keys through alpaca_keys)
ALPACA_KEY_ENV, ALPACA_SECRET_ENV = "APCA_API_KEY_ID", "APCA_API_SECRET_KEY"
ALPACA_DATA_URL_ENV = "APCA_API_DATA_URL"  # the data endpoint (a test stub); default Alpaca's
ALPACA_FEED_ENV = "APCA_DATA_FEED"  # default iex: free keys cannot read sip
ALPACA_FIRST_DAY = date(1990, 1, 1)  # a first download asks from here; Alpaca answers what it has (IEX: 2016 on)
ALPACA_BAR_FIELDS = {"t": "date", "o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}
NEW_YORK = "America/New_York"  # a daily bar's timestamp is midnight of its session there


def alpaca_keys() -> tuple[str, str] | None:
    """(key id, secret) from the environment, which the data source and the broker both read; None
    unless both are set."""
    key, secret = os.environ.get(ALPACA_KEY_ENV), os.environ.get(ALPACA_SECRET_ENV)
    return (key, secret) if key and secret else None


class AlpacaUnreachable(Exception):
    """No answer from Alpaca (network error or a server error): a cache may stand in."""


def alpaca_cache(cache_dir: Path | str | None) -> Path | None:
    """The Alpaca cache under a source's `cache_dir` (which is Yahoo's folder): its `alpaca` subfolder,
    so that yahoo:AAPL and alpaca:AAPL never share a file; None: the default folder."""
    return Path(cache_dir) / "alpaca" if cache_dir else None


def _alpaca_message(exc: Exception) -> str:
    import json

    text = str(exc)
    try:
        text = str(json.loads(text).get("message") or text)
    except (ValueError, AttributeError):
        pass
    return " ".join(text.split())[:200]


def alpaca_download(ticker: str, start: date) -> pd.DataFrame:
    """Daily split-adjusted bars of `ticker` from `start` on (a network call through alpaca-py, which
    follows `next_page_token`), as a frame with a `date` index of session dates. Raises DataError for
    what the user must fix (alpaca-py missing, keys missing or refused, a refused request) and
    AlpacaUnreachable when Alpaca does not answer."""
    source = f"alpaca:{ticker}"
    try:
        from alpaca.common.exceptions import APIError
        from alpaca.data.enums import Adjustment, DataFeed
        from alpaca.data.historical import StockHistoricalDataClient
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame
        from requests.exceptions import RequestException
    except ImportError:
        raise DataError(
            f"{source}: the alpaca source needs alpaca-py, which is not installed",
            f"pip install 'lstm-trader[alpaca]', or {ALTERNATIVES}",
        ) from None
    keys = alpaca_keys()
    if keys is None:
        raise DataError(
            f"{source}: the alpaca source needs {ALPACA_KEY_ENV} and {ALPACA_SECRET_ENV} in the environment",
            "export your Alpaca keys (paper keys read market data too; they are never written to disk)",
        )
    feed_name = (os.environ.get(ALPACA_FEED_ENV) or "iex").strip().lower()
    try:
        feed = DataFeed(feed_name)
    except ValueError:
        raise DataError(
            f"{ALPACA_FEED_ENV}={feed_name!r} is not an Alpaca data feed",
            f"use one of {', '.join(f.value for f in DataFeed)}, or unset it (iex, which free keys read)",
        ) from None
    client = StockHistoricalDataClient(*keys, raw_data=True, url_override=os.environ.get(ALPACA_DATA_URL_ENV) or None)
    request = StockBarsRequest(
        symbol_or_symbols=ticker,
        timeframe=TimeFrame.Day,
        start=datetime(start.year, start.month, start.day),  # naive: UTC midnight, before the session's bar
        adjustment=Adjustment.SPLIT,  # never dividend-adjusted: see the module docstring
        feed=feed,
    )
    try:
        raw = client.get_stock_bars(request)
    except APIError as exc:
        status, message = exc.status_code, _alpaca_message(exc)
        if status is not None and status >= 500:
            raise AlpacaUnreachable(f"HTTP {status}") from None
        if status == 403 and "subscription" in message.lower():
            raise DataError(
                f"{source}: Alpaca refused the {feed.value} feed for these keys (HTTP 403: {message})",
                f"free keys read IEX: unset {ALPACA_FEED_ENV} or set it to iex",
            ) from None
        if status in (401, 403):
            raise DataError(
                f"{source}: Alpaca refused the keys (HTTP {status}: {message})",
                f"check {ALPACA_KEY_ENV} / {ALPACA_SECRET_ENV} (paper keys read market data too)",
            ) from None
        raise DataError(
            f"{source}: Alpaca refused the request (HTTP {status}: {message})",
            "check the ticker (Alpaca lists US stocks and ETFs, e.g. BRK.B)",
        ) from None
    except (ValueError, AttributeError) as exc:  # (before RequestException: a body that is not JSON is both)
        raise DataError(
            f"{source}: Alpaca's answer is not daily bars ({type(exc).__name__})",
            f"check {ALPACA_DATA_URL_ENV} (unset it for Alpaca's own endpoint)",
        ) from None
    except RequestException as exc:
        raise AlpacaUnreachable(type(exc).__name__) from None
    return _alpaca_frame((raw or {}).get(ticker) or [])


def _alpaca_frame(bars: list[dict]) -> pd.DataFrame:
    """Alpaca's bars (`t, o, h, l, c, v`; `n`, `vw` and the rest dropped) as the project's columns on a
    tz-naive index of session dates: each timestamp in New York time, then its date."""
    table = pd.DataFrame(list(bars), columns=list(ALPACA_BAR_FIELDS)).rename(columns=ALPACA_BAR_FIELDS)
    stamps = pd.to_datetime(table.pop("date"), utc=True).dt.tz_convert(NEW_YORK)
    table.index = pd.DatetimeIndex(stamps.dt.tz_localize(None).dt.normalize(), name="date").as_unit("ns")
    return table.astype("float64")


def _continues(cached: pd.DataFrame, fresh: pd.DataFrame) -> bool:
    """Whether `fresh` (downloaded from the cache's last date on) continues `cached`: the one bar both
    hold is the same. A split since then rescales every earlier split-adjusted bar, and a bar cached
    while its session was under way is not the final one: either way the overlap differs."""
    last = cached.index[-1]
    if last not in fresh.index:
        return True  # nothing to compare (no bar on that date came back)
    columns = list(ALPACA_BAR_FIELDS.values())[1:]
    before = cached.loc[last, columns].to_numpy(dtype="float64")
    after = fresh.loc[last, columns].to_numpy(dtype="float64")
    return bool(np.allclose(before, after, rtol=1e-9, atol=0.0))


def load_alpaca(
    ticker: str, cache_dir: Path | str | None = None, refresh: bool = False, *, offline_ok: bool = True
) -> pd.DataFrame:
    """Daily bars of `ticker` from Alpaca (split-adjusted), kept as parquet in `cache_dir` (default
    `default_cache_dir()/"alpaca"`). Downloads them all when nothing is cached; with `refresh`, only the
    bars from the cache's last date on (that bar again, to check it: if it changed, e.g. a split, the
    whole history is downloaded again). When Alpaca cannot be reached the cache is served, unless not
    `offline_ok` (`refresh_source`); with nothing cached it is a DataError naming the folder."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir() / "alpaca"
    path = cache / f"{ticker}.parquet"
    cached = pd.read_parquet(path) if path.exists() else None
    if cached is not None and not refresh:
        return standardise(cached, f"alpaca:{ticker} (cache {path})")
    if cached is not None and cached.empty:
        cached = None
    try:
        if cached is None:
            stored = alpaca_download(ticker, ALPACA_FIRST_DAY)
        else:
            fresh = alpaca_download(ticker, cached.index[-1].date())
            if _continues(cached, fresh):
                stored = pd.concat([cached, fresh[fresh.index > cached.index[-1]]])
            else:
                stored = alpaca_download(ticker, ALPACA_FIRST_DAY)
    except AlpacaUnreachable as exc:
        if cached is not None and offline_ok:
            return standardise(cached, f"alpaca:{ticker} (cache {path})")
        kept = (
            f"nothing is cached in {cache}"
            if cached is None
            else f"the cache in {cache} (through {cached.index[-1].date()}) is kept as it was"
        )
        raise DataError(
            f"alpaca:{ticker}: could not reach Alpaca ({exc}) and {kept}",
            f"check the network (and {ALPACA_DATA_URL_ENV}, if set), or {ALTERNATIVES}",
        ) from None
    if stored.empty:
        raise DataError(
            f"alpaca:{ticker}: Alpaca has no daily bars for {ticker}",
            "check the ticker (Alpaca lists US stocks and ETFs; the IEX feed starts in 2016)",
        )
    frame = standardise(stored, f"alpaca:{ticker}")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    stored.to_parquet(tmp)
    os.replace(tmp, path)
    return frame


# --- bringing a source up to date ----------------------------------------------------------------


def refresh_source(uri: str, cache_dir: Path | str | None = None, missing: str = "error") -> dict[str, str]:
    """Bring the source `uri` up to date before a scheduled paper step, ticker by ticker: `yahoo:`
    downloads each history again, `alpaca:` the bars from its cache's last date on; `csv:` and `builtin:`
    have nothing to download (the next load reads them again). Returns a short note per ticker, e.g.
    'alpaca: 2,512 bars through 2026-11-30 (1 new)'. `cache_dir` and `missing` as for `load_prices`.
    A download that fails is a DataError even when a cache exists (the cache is kept; the caller retries)."""
    if missing not in MISSING:
        raise DataError(f"unknown data.missing '{missing}'", 'use "error", "drop" or "ffill"')
    scheme, _, rest = uri.partition(":")
    scheme = scheme.lower().strip()
    if not rest:
        raise DataError(f"data source '{uri}' has no scheme", SOURCE_FORMS)
    token = _missing.set(missing)
    try:
        if scheme == "builtin":
            return {t: "builtin: embedded, nothing to download" for t in _load_builtin(rest.lower().strip())}
        if scheme == "csv":
            return {path.stem: "csv: re-read at load" for path in csv_paths(rest)}
        if scheme in ("yahoo", "yf"):
            loader, folder = load_yahoo, Path(cache_dir) if cache_dir else default_cache_dir() / "yahoo"
        elif scheme == "alpaca":
            loader, folder = load_alpaca, alpaca_cache(cache_dir) or default_cache_dir() / "alpaca"
        else:
            raise DataError(f"unknown data scheme '{scheme}' in '{uri}'", SOURCE_FORMS)
        notes = {}
        for ticker in yahoo_tickers(rest, scheme="alpaca" if scheme == "alpaca" else "yahoo"):
            path = folder / f"{ticker}.parquet"
            before = len(pd.read_parquet(path)) if path.exists() else None
            frame = loader(ticker, cache_dir=folder, refresh=True, offline_ok=False)
            note = (
                f"{'alpaca' if scheme == 'alpaca' else 'yahoo'}: {len(frame):,} bars through {frame.index[-1].date()}"
            )
            added = len(pd.read_parquet(path)) - before if before is not None and path.exists() else -1
            if added >= 0:
                note += f" ({added:,} new)"
            notes[ticker] = note
        return notes
    finally:
        _missing.reset(token)
