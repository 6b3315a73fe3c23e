"""Daily OHLCV data by URI (`builtin:`, `csv:`, `yahoo:`), validated before anything uses it.

Every loader returns frames with a DatetimeIndex named `date` and lower-case columns
`open, high, low, close, volume`, sorted and unique. Prices are the file's own (for Yahoo: split-
adjusted, not dividend-adjusted). An Adj Close column is validated but never applied: Yahoo's
adjusted close at day t is scaled by every dividend paid *after* t, so scaling the bars by it
would make each price level depend on the future.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.errors import DataError, did_you_mean

REQUIRED = ("open", "high", "low", "close", "volume")
BUILTIN = ("sp500", "nasdaq")
ALTERNATIVES = "use the embedded data (builtin:sp500, builtin:nasdaq) or a file (csv:PATH)"


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
) -> dict[str, pd.DataFrame]:
    """Load and validate daily bars for every ticker named by `uri`, keyed by ticker."""
    scheme, _, rest = uri.partition(":")
    scheme = scheme.lower().strip()
    if not rest:
        raise DataError(f"data source '{uri}' has no scheme", "write builtin:sp500, csv:PATH or yahoo:TICKER")
    if scheme == "builtin":
        frames = {rest.lower(): _load_builtin(rest.lower())}
    elif scheme == "csv":
        frames = {}
        for item in (p.strip() for p in rest.split(",") if p.strip()):
            if Path(item).stem in frames:
                raise DataError(f"two csv files are both called '{Path(item).stem}'", "the file name is the ticker")
            frames[Path(item).stem] = read_csv(item)
    elif scheme in ("yahoo", "yf"):
        tickers = [t.strip().upper() for t in rest.split(",") if t.strip()]
        frames = {t: load_yahoo(t, cache_dir=cache_dir) for t in tickers}
    else:
        raise DataError(f"unknown data scheme '{scheme}' in '{uri}'", "write builtin:sp500, csv:PATH or yahoo:TICKER")
    out = {}
    for ticker, frame in frames.items():
        frame = frame.loc[(frame.index >= pd.Timestamp(start)) if start else slice(None)]
        frame = frame.loc[(frame.index <= pd.Timestamp(end)) if end else slice(None)]
        if frame.empty:
            raise DataError(
                f"{uri}: no rows for {ticker} between {start or 'the start'} and {end or 'the end'}",
                "widen data.start / data.end",
            )
        out[ticker] = frame
    return out


def _load_builtin(name: str) -> pd.DataFrame:
    if name not in BUILTIN:
        raise DataError(f"unknown embedded data set 'builtin:{name}'", "use builtin:sp500 or builtin:nasdaq")
    import importlib

    raw = importlib.import_module(f"arch.data.{name}").load()
    return standardise(raw, f"builtin:{name}")


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a Yahoo-style CSV (Date, Open, High, Low, Close, [Adj Close], Volume; any case)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a csv file", "name the file after 'csv:', e.g. csv:data/AAPL.csv")
    if not path.is_file():
        raise DataError(f"csv file not found: {path}", "check the path after 'csv:'")
    try:
        raw = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())  # the tokenizer's message holds newlines
        raise DataError(f"{path}: not a readable CSV ({reason})", "export daily bars with a header row") from None
    cols = {c.lower().strip(): c for c in raw.columns}
    date_col = cols.get("date") or cols.get("datetime") or cols.get("timestamp")
    if date_col is None:
        raise DataError(
            f"{path}: no 'Date' column (found {', '.join(map(str, raw.columns))})",
            "the first column should be Date, as in a Yahoo download",
        )
    dates = pd.to_datetime(raw[date_col], errors="coerce")
    bad = np.flatnonzero(dates.isna().to_numpy())
    if bad.size:
        row = int(bad[0])
        raise DataError(
            f"{path}: row {row + 2}, column '{date_col}': cannot parse date '{raw[date_col].iloc[row]}'",
            "use ISO dates such as 2018-12-31",
        )
    raw = raw.drop(columns=[date_col])
    raw.index = pd.DatetimeIndex(dates, name="date")
    return standardise(raw, str(path), row_offset=2)


def standardise(raw: pd.DataFrame, source: str, row_offset: int = 0) -> pd.DataFrame:
    """Rename columns to lower case, make every price a number, then validate (Adj Close is checked, not applied)."""
    rename = {c: str(c).lower().strip().replace("_", " ") for c in raw.columns}
    frame = raw.rename(columns=rename)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        col = missing[0]
        hint = did_you_mean(
            col, frame.columns, "Yahoo-style columns: Date, Open, High, Low, Close, Adj Close, Volume", cutoff=0.6
        )
        raise DataError(f"{source}: missing column '{col}' (found {', '.join(map(str, raw.columns))})", hint)
    index = pd.DatetimeIndex(frame.index)
    if index.tz is not None:
        index = index.tz_localize(None)
    frame.index = index.normalize().rename("date")
    for col in list(REQUIRED) + (["adj close"] if "adj close" in frame.columns else []):
        numbers = pd.to_numeric(frame[col], errors="coerce")
        text = numbers.isna() & frame[col].notna()
        if text.any():
            pos = int(np.flatnonzero(text.to_numpy())[0])
            raise DataError(
                f"{source}: row {pos + row_offset} ({frame.index[pos].date()}), column '{col}': "
                f"not a number ({frame[col].iloc[pos]!r})",
                "repair or drop that bar",
            )
        frame[col] = numbers
    out = frame[list(REQUIRED)].astype("float64")
    validate(out, source, row_offset=row_offset, adj_close=frame.get("adj close"))
    return out


def validate(frame: pd.DataFrame, source: str, row_offset: int = 0, adj_close: pd.Series | None = None) -> None:
    """Raise DataError naming source, row, date and column for the first problem found."""

    def where(pos: int) -> str:
        return f"{source}: row {pos + row_offset} ({frame.index[pos].date()})"

    for col in REQUIRED:
        nan = np.flatnonzero(frame[col].isna().to_numpy())
        if nan.size:
            raise DataError(
                f"{where(int(nan[0]))}, column '{col}': missing value (NaN)",
                "drop or repair that row; values are never filled in, since filling can leak the future",
            )
        infinite = np.flatnonzero(np.isinf(frame[col].to_numpy()))
        if infinite.size:
            raise DataError(f"{where(int(infinite[0]))}, column '{col}': infinite value", "repair or drop that bar")
    if adj_close is not None:
        nan = np.flatnonzero(pd.to_numeric(adj_close, errors="coerce").isna().to_numpy())
        if nan.size:
            raise DataError(f"{where(int(nan[0]))}, column 'adj close': missing value (NaN)", "drop or repair that row")
    idx = frame.index
    dup = np.flatnonzero(idx.duplicated())
    if dup.size:
        raise DataError(f"{where(int(dup[0]))}, column 'date': duplicate date", "keep one bar per day")
    steps = np.flatnonzero(np.diff(idx.asi8) < 0)
    if steps.size:
        raise DataError(
            f"{where(int(steps[0]) + 1)}, column 'date': dates are not sorted (earlier than the row before)",
            "sort the file by date, oldest first",
        )
    checks: list[tuple[str, Callable[[pd.DataFrame], pd.Series], str]] = [
        ("open", lambda f: f["open"] > 0, "open must be positive"),
        ("high", lambda f: f["high"] > 0, "high must be positive"),
        ("low", lambda f: f["low"] > 0, "low must be positive"),
        ("close", lambda f: f["close"] > 0, "close must be positive"),
        ("volume", lambda f: f["volume"] >= 0, "volume must not be negative"),
        ("high", lambda f: f["high"] >= f[["open", "close"]].max(axis=1), "high is below max(open, close)"),
        ("low", lambda f: f["low"] <= f[["open", "close"]].min(axis=1), "low is above min(open, close)"),
    ]
    for col, ok, what in checks:
        bad = np.flatnonzero(~ok(frame).to_numpy())
        if bad.size:
            pos = int(bad[0])
            raise DataError(
                f"{where(pos)}, column '{col}': {what} (value {frame[col].iloc[pos]:g})", "repair or drop that bar"
            )


def require_rows(frame: pd.DataFrame, needed: int, source: str, why: str) -> None:
    if len(frame) < needed:
        raise DataError(
            f"{source}: {len(frame)} usable rows, but {needed} are needed ({why})",
            "load a longer history (data.start) or lower walk_forward.min_train / model.lookback",
        )


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
                actions=False,
                threads=False,
                multi_level_index=False,
            )
    except Exception:  # yfinance raises many kinds when offline; all mean "no data"
        return pd.DataFrame()
    return raw if raw is not None else pd.DataFrame()


def load_yahoo(ticker: str, cache_dir: Path | str | None = None, refresh: bool = False) -> pd.DataFrame:
    """Daily bars of `ticker` from the on-disk cache, downloading them first if absent or `refresh`."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir() / "yahoo"
    path = cache / f"{ticker}.parquet"
    if path.exists() and not refresh:
        return standardise(pd.read_parquet(path), f"yahoo:{ticker} (cache {path})")
    raw = yahoo_download(ticker)
    if isinstance(raw.columns, pd.MultiIndex):  # older yfinance: (field, ticker) columns
        raw.columns = raw.columns.get_level_values(0)
    if raw.empty:
        if path.exists():
            return standardise(pd.read_parquet(path), f"yahoo:{ticker} (cache {path})")
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
