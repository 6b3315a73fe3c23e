import numpy as np
import pandas as pd
import pytest

from forecasting import DataError, load_prices
from forecasting import data as data_module
from tests.helpers import make_bars, write_yahoo_csv


def test_builtin_sp500_is_the_embedded_history():
    frame = load_prices("builtin:sp500")["sp500"]
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert len(frame) == 5031
    assert frame.index[0] == pd.Timestamp("1999-01-04") and frame.index[-1] == pd.Timestamp("2018-12-31")
    assert frame.index.is_monotonic_increasing and frame.index.is_unique


def test_builtin_date_range_and_nasdaq():
    frame = load_prices("builtin:nasdaq", start="2018-01-01", end="2018-01-31")["nasdaq"]
    assert frame.index[0] >= pd.Timestamp("2018-01-01") and frame.index[-1] <= pd.Timestamp("2018-01-31")
    assert len(frame) == 21  # trading days in January 2018


def test_csv_columns_are_case_insensitive_and_prices_are_not_back_adjusted(tmp_path):
    path = tmp_path / "abc.csv"
    path.write_text(
        "date,OPEN,High,low,Close,Adj Close,VOLUME\n2020-01-02,10,12,9,11,5.5,100\n2020-01-03,11,13,10,12,6,200\n"
    )
    frame = load_prices(f"csv:{path}")["abc"]
    # the file's own prices: Adj Close (which moves with dividends paid later) is validated, not applied
    assert frame["close"].tolist() == [11.0, 12.0]
    assert frame["open"].tolist() == [10.0, 11.0]
    assert frame["high"].tolist() == [12.0, 13.0]
    assert frame["volume"].tolist() == [100.0, 200.0]


def test_a_dividend_paid_after_d_changes_no_bar_on_or_before_d(tmp_path):
    bars = make_bars(40, seed=5)
    cut = bars.index[25]
    before, after = tmp_path / "before.csv", tmp_path / "after.csv"
    write_yahoo_csv(bars, before)
    write_yahoo_csv(bars, after)
    # a 3% dividend with ex-date after D: Yahoo rescales the Adj Close of every earlier day
    text = pd.read_csv(after)
    text.loc[text["Date"] <= str(cut.date()), "Adj Close"] *= 0.97
    text.to_csv(after, index=False)
    a, b = load_prices(f"csv:{before}")["before"], load_prices(f"csv:{after}")["after"]
    pd.testing.assert_frame_equal(a.loc[:cut], b.loc[:cut])


def test_csv_without_adj_close(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n2020-01-02,10,12,9,11,100\n")
    assert load_prices(f"csv:{path}")["x"]["close"].tolist() == [11.0]


BAD_CSV = {
    "nan": (
        "Date,Open,High,Low,Close,Volume\n2020-01-02,10,12,9,11,100\n2020-01-03,10,12,,11,100\n",
        ["row 3", "2020-01-03", "'low'", "NaN"],
    ),
    "unsorted": (
        "Date,Open,High,Low,Close,Volume\n2020-01-03,10,12,9,11,100\n2020-01-02,10,12,9,11,100\n",
        ["row 3", "'date'", "not sorted"],
    ),
    "duplicate": (
        "Date,Open,High,Low,Close,Volume\n2020-01-02,10,12,9,11,100\n2020-01-02,10,12,9,11,100\n",
        ["row 3", "duplicate date"],
    ),
    "negative": (
        "Date,Open,High,Low,Close,Volume\n2020-01-02,10,12,9,11,100\n2020-01-03,10,12,9,-1,100\n",
        ["row 3", "'close'", "positive"],
    ),
    "high": ("Date,Open,High,Low,Close,Volume\n2020-01-02,10,10.5,9,11,100\n", ["row 2", "'high'", "max(open, close)"]),
    "low": ("Date,Open,High,Low,Close,Volume\n2020-01-02,10,12,10.5,11,100\n", ["row 2", "'low'", "min(open, close)"]),
    "column": ("Date,Open,High,Low,Closee,Volume\n2020-01-02,10,12,9,11,100\n", ["missing column 'close'", "closee"]),
    "date": ("Date,Open,High,Low,Close,Volume\nyesterday,10,12,9,11,100\n", ["row 2", "cannot parse date"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_bad_csv_names_file_row_and_column(tmp_path, case):
    text, expected = BAD_CSV[case]
    path = tmp_path / f"{case}.csv"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_prices(f"csv:{path}")
    message = str(info.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message, (fragment, message)
    assert info.value.hint


def test_missing_file_and_unknown_scheme():
    with pytest.raises(DataError, match="csv file not found"):
        load_prices("csv:/no/such/file.csv")
    with pytest.raises(DataError, match="unknown data scheme"):
        load_prices("ftp:x")
    with pytest.raises(DataError, match="builtin:sp500"):
        load_prices("builtin:dow")


# --- Yahoo: recorded data, never the network -----------------------------------------------------


def recorded_yahoo_frame() -> pd.DataFrame:
    """What yfinance.download(..., auto_adjust=False, multi_level_index=False) returns: title-case columns."""
    bars = make_bars(60, seed=3)
    frame = bars.rename(columns=str.title)
    frame.insert(3, "Adj Close", frame["Close"] * 0.9)
    frame.index = pd.DatetimeIndex(frame.index, name="Date")
    return frame[["Adj Close", "Close", "High", "Low", "Open", "Volume"]]


def test_yahoo_downloads_once_then_reads_the_cache(tmp_path, monkeypatch):
    calls = []

    def fake_download(ticker):
        calls.append(ticker)
        return recorded_yahoo_frame()

    monkeypatch.setattr(data_module, "yahoo_download", fake_download)
    first = load_prices("yahoo:aapl,msft", cache_dir=tmp_path)
    assert list(first) == ["AAPL", "MSFT"] and calls == ["AAPL", "MSFT"]
    expected = recorded_yahoo_frame()
    np.testing.assert_allclose(first["AAPL"]["close"].to_numpy(), expected["Close"].to_numpy())
    np.testing.assert_allclose(first["AAPL"]["open"].to_numpy(), expected["Open"].to_numpy())
    assert (tmp_path / "AAPL.parquet").is_file()

    monkeypatch.setattr(data_module, "yahoo_download", lambda t: pytest.fail("cache not used"))
    again = load_prices("yahoo:AAPL", cache_dir=tmp_path)
    pd.testing.assert_frame_equal(again["AAPL"], first["AAPL"])


def test_yahoo_offline_without_cache_names_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "yahoo_download", lambda t: pd.DataFrame())
    with pytest.raises(DataError) as info:
        load_prices("yahoo:AAPL", cache_dir=tmp_path)
    assert "could not download" in str(info.value)
    assert "builtin:sp500" in info.value.hint and "csv:" in info.value.hint


def test_real_yfinance_offline_is_a_clear_error(tmp_path):
    # No network here: the real yfinance call must come back empty and become a DataError.
    with pytest.raises(DataError, match="yahoo:ZZZNOTATICKER"):
        load_prices("yahoo:ZZZNOTATICKER", cache_dir=tmp_path)


def test_write_yahoo_csv_round_trip(tmp_path):
    bars = make_bars(30)
    write_yahoo_csv(bars, tmp_path / "t.csv")
    pd.testing.assert_frame_equal(load_prices(f"csv:{tmp_path / 't.csv'}")["t"], bars, check_freq=False)


def _with_gap(tmp_path, name="GAP.csv"):
    from tests.helpers import make_bars, write_yahoo_csv

    frame = make_bars(60, seed=4)
    write_yahoo_csv(frame, tmp_path / name)
    text = (tmp_path / name).read_text().splitlines()
    cells = text[31].split(",")  # row 30 of the bars: every price missing
    text[31] = ",".join([cells[0]] + [""] * (len(cells) - 1))
    (tmp_path / name).write_text("\n".join(text) + "\n")
    return frame


def test_ffill_carries_the_last_close_forward_and_never_reads_a_later_bar(tmp_path):
    from backtests.audit import perturb_after
    from forecasting.data import load_prices
    from tests.helpers import write_yahoo_csv

    frame = _with_gap(tmp_path)
    filled = load_prices(f"csv:{tmp_path / 'GAP.csv'}", missing="ffill")["GAP"]
    day = frame.index[30]
    previous_close = frame["close"].iloc[29]
    row = filled.loc[day]
    assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == pytest.approx(
        (previous_close, previous_close, previous_close, previous_close, 0.0)
    )
    assert filled.attrs["gaps"] == 1 and len(filled) == 60
    # every bar after the gap changed: the filled bar is the same
    changed = perturb_after(frame, day, seed=3)
    write_yahoo_csv(changed, tmp_path / "GAP2.csv")
    text = (tmp_path / "GAP2.csv").read_text().splitlines()
    cells = text[31].split(",")
    text[31] = ",".join([cells[0]] + [""] * (len(cells) - 1))
    (tmp_path / "GAP2.csv").write_text("\n".join(text) + "\n")
    again = load_prices(f"csv:{tmp_path / 'GAP2.csv'}", missing="ffill")["GAP2"]
    pd.testing.assert_series_equal(again.loc[day], row, check_names=False)


def test_drop_leaves_the_gap_out_and_counts_it_and_error_says_how_to_choose(tmp_path):
    from forecasting.data import load_prices
    from forecasting.errors import DataError

    frame = _with_gap(tmp_path)
    dropped = load_prices(f"csv:{tmp_path / 'GAP.csv'}", missing="drop")["GAP"]
    assert frame.index[30] not in dropped.index and len(dropped) == 59 and dropped.attrs["gaps"] == 1
    with pytest.raises(DataError, match="missing value") as info:
        load_prices(f"csv:{tmp_path / 'GAP.csv'}")
    assert 'data.missing = "drop" or "ffill"' in info.value.hint


def test_a_sources_tickers_are_known_without_reading_its_bars(tmp_path):
    from forecasting.data import source_tickers

    for name in ("sp500", "sp500_stocks"):
        assert source_tickers(f"builtin:{name}") == list(load_prices(f"builtin:{name}"))
    for ticker in ("BBB", "AAA"):
        write_yahoo_csv(make_bars(30), tmp_path / f"{ticker}.csv")
    glob = f"csv:{tmp_path}/*.csv"
    assert source_tickers(glob) == list(load_prices(glob)) == ["AAA", "BBB"]
    assert source_tickers("yahoo:msft, aapl,MSFT") == ["MSFT", "AAPL"]
    with pytest.raises(DataError, match="unknown embedded data set 'builtin:dax'"):
        source_tickers("builtin:dax")
