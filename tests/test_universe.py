"""Universes of many stocks and close-only data: the embedded 20-stock universe, `csv:DIR/*.csv`,
`yahoo:@FILE`, close-only frames, and features that say which columns they need."""

import csv
import gzip
import hashlib
import tomllib
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting import DataError, FeatureError, build_features, load_prices
from forecasting import data as data_module
from forecasting.bars import is_close_only
from forecasting.data import BUILTIN
from forecasting.features import CLOSE_ONLY_FEATURES, check_feature_columns
from tests.helpers import make_bars, write_yahoo_csv

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED = ROOT / "forecasting" / "datasets" / "sp500_stocks.csv.gz"
# skfolio 1.12.2's skfolio/datasets/data/sp500_dataset.csv.gz, which the README says is copied unchanged
SKFOLIO_SHA256 = "ee21cac28befb1d0a739a9ceb22184f995394726aa0cfde9a21941d1ac04ac0d"
TICKERS = "AAPL AMD BAC BBY CVX GE HD JNJ JPM KO LLY MRK MSFT PEP PFE PG RRC UNH WMT XOM".split()
CLOSE_FEATURES = [
    "log_return",
    "log_return_5",
    "sma_10",
    "ema_20",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_diff",
    "bb_pctb_20",
    "bb_width_20",
    "volatility_20",
    "close",
    "log_close",
]


def embedded_rows() -> list[list[str]]:
    """The embedded file read with the standard library only (no pandas, no loader code)."""
    with gzip.open(EMBEDDED, "rt", newline="") as handle:
        return list(csv.reader(handle))


# --- builtin:sp500_stocks -------------------------------------------------------------------------


def test_embedded_file_is_skfolios_file_unchanged():
    assert hashlib.sha256(EMBEDDED.read_bytes()).hexdigest() == SKFOLIO_SHA256


def test_embedded_file_ships_as_package_data():
    assert (files("forecasting.datasets") / "sp500_stocks.csv.gz").is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "*.csv.gz" in package_data["forecasting.datasets"]


def test_embedded_universe_is_20_close_only_tickers_in_file_order():
    prices = load_prices("builtin:sp500_stocks")
    assert list(prices) == TICKERS
    for ticker, frame in prices.items():
        assert list(frame.columns) == ["close"], ticker
        assert is_close_only(frame)
        assert not frame.isna().any().any(), ticker


def test_embedded_universe_spans_1990_to_2022_in_8313_rows():
    for frame in load_prices("builtin:sp500_stocks").values():
        assert len(frame) == 8313
        assert frame.index[0] == pd.Timestamp("1990-01-02") and frame.index[-1] == pd.Timestamp("2022-12-28")


def test_embedded_universe_window_matches_the_file():
    rows = embedded_rows()
    header, body = rows[0], rows[1:]
    in_2010 = [r for r in body if "2010-01-01" <= r[0] <= "2010-12-31"]
    prices = load_prices("builtin:sp500_stocks", start="2010-01-01", end="2010-12-31")
    aapl, xom = prices["AAPL"], prices["XOM"]
    assert len(aapl) == len(in_2010) == 252  # NYSE sessions in 2010
    assert aapl.index[0] == pd.Timestamp(in_2010[0][0]) == pd.Timestamp("2010-01-04")
    assert aapl.index[-1] == pd.Timestamp(in_2010[-1][0]) == pd.Timestamp("2010-12-31")
    np.testing.assert_array_equal(aapl["close"].to_numpy(), [float(r[header.index("AAPL")]) for r in in_2010])
    np.testing.assert_array_equal(xom["close"].to_numpy(), [float(r[header.index("XOM")]) for r in in_2010])


def test_embedded_frames_name_their_source():
    prices = load_prices("builtin:sp500_stocks", start="2020-01-01")
    assert prices["AAPL"].attrs["source"] == "builtin:sp500_stocks (AAPL)"
    assert load_prices("builtin:sp500", start="2018-01-01")["sp500"].attrs["source"] == "builtin:sp500"


def test_unknown_builtin_lists_all_three():
    with pytest.raises(DataError) as info:
        load_prices("builtin:dax")
    for name in ("builtin:sp500", "builtin:nasdaq", "builtin:sp500_stocks"):
        assert name in info.value.hint
    assert set(BUILTIN) == {"sp500", "nasdaq", "sp500_stocks"}


# --- close-only frames ----------------------------------------------------------------------------


def test_date_close_csv_loads_close_only(tmp_path):
    path = tmp_path / "k.csv"
    path.write_text("date,CLOSE\n2020-01-02,10.5\n2020-01-03,11\n")
    frame = load_prices(f"csv:{path}")["k"]
    assert list(frame.columns) == ["close"] and is_close_only(frame)
    assert frame["close"].tolist() == [10.5, 11.0]
    assert list(frame.index) == [pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-03")]


def test_close_only_csv_keeps_its_volume(tmp_path):
    path = tmp_path / "k.csv"
    path.write_text("Date,Close,Volume\n2020-01-02,10.5,100\n2020-01-03,11,0\n")
    frame = load_prices(f"csv:{path}")["k"]
    assert list(frame.columns) == ["close", "volume"] and is_close_only(frame)
    assert frame["volume"].tolist() == [100.0, 0.0]


def test_ohlc_frame_is_not_close_only():
    assert not is_close_only(load_prices("builtin:nasdaq", start="2018-01-01")["nasdaq"])


@pytest.mark.parametrize(
    "header, row, missing",
    [
        ("Date,Open,Close,Volume", "2020-01-02,10,11,100", "high"),
        ("Date,Open,High,Close,Volume", "2020-01-02,10,12,11,100", "low"),
        ("Date,High,Low,Close,Volume", "2020-01-02,12,9,11,100", "open"),
    ],
)
def test_partial_ohlc_csv_names_the_missing_column(tmp_path, header, row, missing):
    path = tmp_path / "p.csv"
    path.write_text(f"{header}\n{row}\n")
    with pytest.raises(DataError) as info:
        load_prices(f"csv:{path}")
    assert f"missing column '{missing}'" in str(info.value) and str(path) in str(info.value)
    assert "none of them" in info.value.hint


def test_adj_close_without_close_is_refused_not_guessed(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("Date,Adj Close\n2020-01-02,10.5\n")
    with pytest.raises(DataError) as info:
        load_prices(f"csv:{path}")
    assert "'Adj Close' column but no 'Close'" in str(info.value)
    assert "rename Adj Close to Close" in info.value.hint


BAD_CLOSE_ONLY = {
    "nan": ("Date,Close\n2020-01-02,10\n2020-01-03,\n", ["row 3", "2020-01-03", "'close'", "NaN"]),
    "negative": ("Date,Close\n2020-01-02,10\n2020-01-03,-1\n", ["row 3", "'close'", "positive"]),
    "inf": ("Date,Close\n2020-01-02,10\n2020-01-03,inf\n", ["row 3", "'close'", "infinite"]),
    "volume": ("Date,Close,Volume\n2020-01-02,10,5\n2020-01-03,11,-5\n", ["row 3", "'volume'", "negative"]),
    "unsorted": ("Date,Close\n2020-01-03,10\n2020-01-02,11\n", ["row 3", "'date'", "not sorted"]),
    "duplicate": ("Date,Close\n2020-01-02,10\n2020-01-02,11\n", ["row 3", "duplicate date"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CLOSE_ONLY))
def test_bad_close_only_csv_names_row_and_column(tmp_path, case):
    text, expected = BAD_CLOSE_ONLY[case]
    path = tmp_path / f"{case}.csv"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_prices(f"csv:{path}")
    for fragment in expected:
        assert fragment in str(info.value), (fragment, str(info.value))


# --- csv:DIR/*.csv ----------------------------------------------------------------------------------


def test_csv_glob_loads_every_file_sorted_by_name(tmp_path):
    folder = tmp_path / "bars"
    folder.mkdir()
    written = {}
    for seed, name in enumerate(["MSFT", "AAPL", "KO"]):  # written out of order on purpose
        written[name] = make_bars(40, seed=seed)
        write_yahoo_csv(written[name], folder / f"{name}.csv")
    (folder / "notes.txt").write_text("not a csv")
    prices = load_prices(f"csv:{folder}/*.csv")
    assert list(prices) == ["AAPL", "KO", "MSFT"]
    for name, frame in prices.items():
        pd.testing.assert_frame_equal(frame, written[name], check_freq=False)
    assert prices["KO"].attrs["source"] == f"csv:{folder}/*.csv (KO)"


def test_csv_glob_without_a_match_says_so(tmp_path):
    pattern = f"{tmp_path}/nodir/*.csv"
    with pytest.raises(DataError) as info:
        load_prices(f"csv:{pattern}")
    assert str(info.value).startswith(f"no files match '{pattern}'")
    assert "csv:data/*.csv" in info.value.hint


def test_csv_folder_hints_at_the_glob(tmp_path):
    with pytest.raises(DataError) as info:
        load_prices(f"csv:{tmp_path}")
    assert "is a folder" in str(info.value) and f"csv:{tmp_path / '*.csv'}" in info.value.hint


# --- yahoo:@FILE ------------------------------------------------------------------------------------


def cache_yahoo(cache: Path, ticker: str, seed: int) -> pd.DataFrame:
    """Write what yfinance returns (title-case columns) to the disk cache; return the bars."""
    bars = make_bars(50, seed=seed)
    raw = bars.rename(columns=str.title)
    raw.insert(3, "Adj Close", raw["Close"])
    raw.index.name = "Date"
    cache.mkdir(parents=True, exist_ok=True)
    raw.to_parquet(cache / f"{ticker}.parquet")
    return bars


def test_yahoo_ticker_file_reads_tickers_from_the_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    expected = {t: cache_yahoo(cache, t, seed) for seed, t in enumerate(["MSFT", "AAPL"])}
    tickers = tmp_path / "tickers.txt"
    tickers.write_text("# my universe\n\nmsft\n  AAPL   # Apple\n\n# the end\n")
    monkeypatch.setattr(data_module, "yahoo_download", lambda t: pytest.fail("the cache was not used"))
    prices = load_prices(f"yahoo:@{tickers}", cache_dir=cache)
    assert list(prices) == ["MSFT", "AAPL"]  # the file's order
    for ticker, frame in prices.items():
        pd.testing.assert_frame_equal(frame, expected[ticker], check_freq=False)


def test_yahoo_ticker_file_missing_is_a_clear_error(tmp_path):
    with pytest.raises(DataError) as info:
        load_prices(f"yahoo:@{tmp_path / 'missing.txt'}", cache_dir=tmp_path)
    assert "ticker list not found" in str(info.value) and "one ticker a line" in info.value.hint


def test_yahoo_ticker_file_without_tickers_is_a_clear_error(tmp_path):
    tickers = tmp_path / "tickers.txt"
    tickers.write_text("# nothing yet\n\n")
    with pytest.raises(DataError) as info:
        load_prices(f"yahoo:@{tickers}", cache_dir=tmp_path)
    assert "no tickers" in str(info.value) and info.value.hint


def test_yahoo_ticker_file_offline_without_cache_names_the_alternatives(tmp_path, monkeypatch):
    tickers = tmp_path / "tickers.txt"
    tickers.write_text("ZZZZ\n")
    monkeypatch.setattr(data_module, "yahoo_download", lambda t: pd.DataFrame())
    with pytest.raises(DataError) as info:
        load_prices(f"yahoo:@{tickers}", cache_dir=tmp_path / "cache")
    assert "yahoo:ZZZZ: could not download" in str(info.value)
    assert "builtin:sp500_stocks" in info.value.hint


# --- features on close-only data -------------------------------------------------------------------


def test_atr_on_close_only_data_is_one_clear_error():
    aapl = load_prices("builtin:sp500_stocks", start="2020-01-01")["AAPL"]
    with pytest.raises(FeatureError) as info:
        build_features(aapl, ["log_return", "atr_14"])
    assert info.value.message == (
        "feature 'atr_14' needs high and low prices, but builtin:sp500_stocks (AAPL) is close-only"
    )
    assert info.value.hint.startswith(
        "use features computed from closes: log_return_N, sma_N, ema_N, rsi_N, macd, macd_signal, macd_diff, "
        "bb_pctb_N, bb_width_N, volatility_N"
    )


def test_volume_features_need_volume():
    closes = make_bars(60)[["close"]]
    with pytest.raises(FeatureError, match="feature 'obv' needs volume, but T has no volume column"):
        check_feature_columns(["obv"], closes, "T")
    check_feature_columns(["obv", "volume_change_5"], ["close", "volume"], "T")  # a column list is enough


def test_close_only_features_are_the_ones_without_high_low_or_volume():
    assert set(CLOSE_ONLY_FEATURES) == {
        "log_return",
        "sma",
        "ema",
        "rsi",
        "macd",
        "macd_signal",
        "macd_diff",
        "bb_pctb",
        "bb_width",
        "volatility",
        "log_rv",  # Garman-Klass on OHLC bars, squared returns on closes
        "close",
        "log_close",
    }


def test_close_only_features_equal_those_of_ohlc_bars_with_the_same_closes():
    bars = make_bars(200, seed=4)
    closes = bars[["close"]]
    pd.testing.assert_frame_equal(build_features(closes, CLOSE_FEATURES), build_features(bars, CLOSE_FEATURES))
