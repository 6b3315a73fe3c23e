"""A table of daily bars, read and checked: columns named and typed, dates sorted and unique, no
impossible bar (high below low, a close outside the range, a negative volume), gaps filled or refused
by policy. Every loader of `forecasting.data` returns frames that passed `validate`."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.errors import DataError, did_you_mean

REQUIRED = ("open", "high", "low", "close", "volume")  # the columns of an OHLC frame
BAR_RANGE = ("open", "high", "low")  # all present (an OHLC frame) or none (a close-only frame)
MISSING = ("error", "drop", "ffill")
_missing: ContextVar[str] = ContextVar("missing", default="error")  # the policy of the load under way
_dividends: ContextVar[bool] = ContextVar("dividends", default=False)  # keep a Dividends column


def is_close_only(frame: pd.DataFrame) -> bool:
    """True for a frame of closes (and perhaps volume) without open, high and low."""
    return "open" not in frame.columns


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a Yahoo-style CSV (Date, Open, High, Low, Close, [Adj Close], Volume; any case), or a
    close-only one (Date, Close, [Volume])."""
    path = Path(path)
    if path.is_dir():
        raise DataError(
            f"{path} is a folder, not a csv file",
            f"name a file (csv:{path / 'AAPL.csv'}) or every csv file in it (csv:{path / '*.csv'})",
        )
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
    """Rename columns to lower case, make every price a number, then validate (Adj Close is checked, not applied).

    With open, high and low it is an OHLC frame (volume required); with none of them a close-only
    frame (close required, volume kept when present); with some of them an error."""
    rename = {c: str(c).lower().strip().replace("_", " ") for c in raw.columns}
    frame = raw.rename(columns=rename)
    found = ", ".join(map(str, raw.columns))
    range_columns = [c for c in BAR_RANGE if c in frame.columns]
    if range_columns:
        columns = list(REQUIRED)
        forms = "Yahoo-style columns: Date, Open, High, Low, Close, Adj Close, Volume"
        if len(range_columns) < len(BAR_RANGE):  # a partial bar: never guess the missing prices
            forms = "a bar has all of Open, High and Low, or none of them (close-only: Date, Close[, Volume])"
    else:
        columns = ["close"] + (["volume"] if "volume" in frame.columns else [])
        forms = "Yahoo-style columns (Date, Open, High, Low, Close, Adj Close, Volume) or close-only ones (Date, Close)"
    if "close" not in frame.columns and "adj close" in frame.columns:
        raise DataError(
            f"{source}: an 'Adj Close' column but no 'Close' (found {found})",
            "Adj Close is never used as the price (it moves with dividends paid later); add the Close column, "
            "or rename Adj Close to Close to use adjusted prices knowingly",
        )
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        col = missing[0]
        raise DataError(
            f"{source}: missing column '{col}' (found {found})", did_you_mean(col, frame.columns, forms, cutoff=0.6)
        )
    index = pd.DatetimeIndex(frame.index)
    if index.tz is not None:
        index = index.tz_localize(None)
    frame.index = index.normalize().rename("date")
    for col in columns + (["adj close"] if "adj close" in frame.columns else []):
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
    if _dividends.get():
        columns = columns + ["dividends"]
        if "dividends" not in frame.columns:
            raise DataError(
                f"{source}: no 'Dividends' column (found {found}), but data.dividends is true",
                "add the column (cash per share on each ex-date, 0 or empty on other days), refresh a Yahoo "
                "cache (lstm-trader data fetch TICKER --refresh), or set data.dividends = false",
            )
        numbers = pd.to_numeric(frame["dividends"], errors="coerce")
        text = numbers.isna() & frame["dividends"].notna() & (frame["dividends"].astype(str).str.strip() != "")
        if text.any():
            pos = int(np.flatnonzero(text.to_numpy())[0])
            raise DataError(
                f"{source}: row {pos + row_offset} ({frame.index[pos].date()}), column 'dividends': "
                f"not a number ({frame['dividends'].iloc[pos]!r})",
                "a dividend is cash per share on its ex-date (empty or 0 on other days)",
            )
        if (numbers < 0).any():
            pos = int(np.flatnonzero((numbers < 0).to_numpy())[0])
            raise DataError(
                f"{source}: row {pos + row_offset} ({frame.index[pos].date()}), column 'dividends': negative",
                "a dividend is cash paid to holders: 0 or more",
            )
        frame["dividends"] = numbers.fillna(0.0)
    out = frame[columns].astype("float64")
    gaps = 0
    if _missing.get() != "error":  # (Adj Close is never used: its gaps do not matter then)
        out, gaps = fill_missing(out, _missing.get())
        adj_close = None
    else:
        adj_close = frame.get("adj close")
    validate(out, source, row_offset=row_offset, adj_close=adj_close)
    out.attrs["gaps"] = gaps
    return out


def fill_missing(frame: pd.DataFrame, policy: str) -> tuple[pd.DataFrame, int]:
    """Bars with a missing value: left out (`drop`), or (`ffill`) replaced by a flat bar at the last close
    before them (open = high = low = that close, volume 0): a missing session where nothing traded,
    never a value from a later bar. Bars before the first complete one have no close to carry: left out.
    Returns the frame and how many bars were dropped or filled."""
    broken = frame.isna().any(axis=1).to_numpy()
    if not broken.any():
        return frame, 0
    if policy == "drop":
        return frame[~broken], int(broken.sum())
    first = int(np.argmax(~broken)) if (~broken).any() else len(frame)
    out = frame.iloc[first:].copy()
    gaps = broken[first:]
    carried = out["close"].where(~gaps).ffill()  # the last complete bar's close, forward only
    for column in out.columns:
        out.loc[gaps, column] = 0.0 if column in ("volume", "dividends") else carried[gaps]
    return out, int(broken.sum())


def validate(frame: pd.DataFrame, source: str, row_offset: int = 0, adj_close: pd.Series | None = None) -> None:
    """Raise DataError naming source, row, date and column for the first problem found; an OHLC or a
    close-only frame (the checks of the columns it has)."""

    def where(pos: int) -> str:
        return f"{source}: row {pos + row_offset} ({frame.index[pos].date()})"

    if "close" not in frame.columns:
        raise DataError(f"{source}: missing column 'close'", "every frame needs a close")
    present = [c for c in REQUIRED if c in frame.columns]
    for col in present:
        nan = np.flatnonzero(frame[col].isna().to_numpy())
        if nan.size:
            raise DataError(
                f"{where(int(nan[0]))}, column '{col}': missing value (NaN)",
                'repair or drop that row, or set data.missing = "drop" or "ffill" (the last close carried forward)',
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
    # (column, the columns the check reads, rule, what is wrong): each check runs when its columns exist
    checks: list[tuple[str, tuple[str, ...], Callable[[pd.DataFrame], pd.Series], str]] = [
        ("open", ("open",), lambda f: f["open"] > 0, "open must be positive"),
        ("high", ("high",), lambda f: f["high"] > 0, "high must be positive"),
        ("low", ("low",), lambda f: f["low"] > 0, "low must be positive"),
        ("close", ("close",), lambda f: f["close"] > 0, "close must be positive"),
        ("volume", ("volume",), lambda f: f["volume"] >= 0, "volume must not be negative"),
        (
            "high",
            ("high", "open", "close"),
            lambda f: f["high"] >= f[["open", "close"]].max(axis=1),
            "high is below max(open, close)",
        ),
        (
            "low",
            ("low", "open", "close"),
            lambda f: f["low"] <= f[["open", "close"]].min(axis=1),
            "low is above min(open, close)",
        ),
    ]
    for col, reads, ok, what in checks:
        if not set(reads) <= set(frame.columns):
            continue
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
