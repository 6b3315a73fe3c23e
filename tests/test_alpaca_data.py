"""The `alpaca:` market-data source and `refresh_source`, against a stub of Alpaca's data API on 127.0.0.1."""

import socket

import pandas as pd
import pytest

from forecasting import DataError, load_prices
from forecasting import data as data_module
from forecasting.data import load_alpaca, refresh_source
from tests.helpers import AlpacaDataStub, make_bars, without_alpaca, write_yahoo_csv

KEY, SECRET = "PKDATAKEY0123456789", "data-secret-DO-NOT-LEAK-7"


def bar(t, o, h, low, c, v):
    return {"t": t, "o": o, "h": h, "l": low, "c": c, "v": v, "n": 1234, "vw": round((h + low + c) / 3, 4)}


# Five sessions around the switch to daylight saving time (Sunday 2024-03-10): Alpaca stamps a daily
# bar at midnight New York time, 05:00 UTC in winter (EST) and 04:00 UTC in summer (EDT).
AAA_BARS = [
    bar("2024-03-07T05:00:00Z", 170.00, 172.50, 169.25, 171.75, 1_000_100),  # Thu 00:00 EST = 2024-03-07
    bar("2024-03-08T05:00:00Z", 171.50, 173.00, 170.10, 170.40, 1_000_200),  # Fri 00:00 EST = 2024-03-08
    bar("2024-03-11T04:00:00Z", 170.90, 171.20, 168.00, 168.50, 1_000_300),  # Mon 00:00 EDT = 2024-03-11
    bar("2024-03-12T04:00:00Z", 168.60, 169.90, 167.80, 169.85, 1_000_400),  # Tue 00:00 EDT = 2024-03-12
    bar("2024-03-13T04:00:00Z", 169.80, 171.00, 169.00, 170.95, 1_000_500),  # Wed 00:00 EDT = 2024-03-13
]
NEW_BAR = bar("2024-03-14T04:00:00Z", 171.00, 174.00, 170.50, 173.60, 1_000_600)  # Thu 2024-03-14
# The same bars as a frame, written out by hand: session dates from the comments above
AAA_FRAME = pd.DataFrame(
    {
        "open": [170.00, 171.50, 170.90, 168.60, 169.80],
        "high": [172.50, 173.00, 171.20, 169.90, 171.00],
        "low": [169.25, 170.10, 168.00, 167.80, 169.00],
        "close": [171.75, 170.40, 168.50, 169.85, 170.95],
        "volume": [1_000_100.0, 1_000_200.0, 1_000_300.0, 1_000_400.0, 1_000_500.0],
    },
    index=pd.DatetimeIndex(["2024-03-07", "2024-03-08", "2024-03-11", "2024-03-12", "2024-03-13"], name="date"),
)


@pytest.fixture
def stub(httpserver, monkeypatch):
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    monkeypatch.setenv("APCA_API_DATA_URL", httpserver.url_for("").rstrip("/"))
    monkeypatch.delenv("APCA_DATA_FEED", raising=False)
    stub = AlpacaDataStub(httpserver, key=KEY, secret=SECRET)
    stub.bars["AAA"] = list(AAA_BARS)
    return stub


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there now: connection refused


def same_values(frame: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(frame, expected, check_freq=False, check_index_type=False)
    assert frame.index.tz is None and list(frame.index.time) == [pd.Timestamp("00:00").time()] * len(frame)


def test_two_pages_of_bars_become_the_sessions_ohlcv(stub, tmp_path):
    frame = load_alpaca("AAA", cache_dir=tmp_path)
    same_values(frame, AAA_FRAME)
    assert len(stub.requests) == 2  # 5 bars, 3 a page
    first, second = (query for query, _ in stub.requests)
    assert "page_token" not in first and second["page_token"] == "3"
    assert (tmp_path / "AAA.parquet").is_file()
    # the cache answers the next load without asking Alpaca
    same_values(load_alpaca("AAA", cache_dir=tmp_path), AAA_FRAME)
    assert len(stub.requests) == 2


def test_a_bar_is_dated_by_its_new_york_session_not_its_utc_date():
    # 02:00 UTC on the 13th is 22:00 EDT on the 12th (Alpaca's own stamps, midnight New York, never differ)
    frame = data_module._alpaca_frame([bar("2024-03-13T02:00:00Z", 10.0, 11.0, 9.0, 10.5, 100)])
    assert list(frame.index) == [pd.Timestamp("2024-03-12")] and frame.index.tz is None


def test_the_request_carries_the_keys_split_adjustment_daily_bars_and_iex(stub, tmp_path):
    load_alpaca("AAA", cache_dir=tmp_path)
    query, headers = stub.requests[0]
    assert headers["Apca-Api-Key-Id"] == KEY and headers["Apca-Api-Secret-Key"] == SECRET
    assert query["symbols"] == "AAA"
    assert query["timeframe"] == "1Day"
    assert query["adjustment"] == "split"
    assert query["feed"] == "iex"
    assert pd.Timestamp(query["start"]) == pd.Timestamp("1990-01-01", tz="UTC")  # a first download: all there is


def test_apca_data_feed_picks_the_feed_and_a_refused_feed_says_so(stub, tmp_path, monkeypatch):
    monkeypatch.setenv("APCA_DATA_FEED", "sip")
    load_alpaca("AAA", cache_dir=tmp_path)
    assert stub.requests[0][0]["feed"] == "sip"
    stub.error = (403, "subscription does not permit querying recent SIP data")
    with pytest.raises(DataError) as info:
        load_alpaca("AAA", cache_dir=tmp_path / "other")
    assert "refused the sip feed" in info.value.message and "APCA_DATA_FEED" in info.value.hint
    monkeypatch.setenv("APCA_DATA_FEED", "nasdaq")
    with pytest.raises(DataError, match="APCA_DATA_FEED='nasdaq' is not an Alpaca data feed"):
        load_alpaca("AAA", cache_dir=tmp_path / "other")


def test_a_refresh_asks_from_the_cached_last_date_and_appends_the_new_bar(stub, tmp_path):
    load_alpaca("AAA", cache_dir=tmp_path)
    stub.bars["AAA"].append(NEW_BAR)
    stub.requests.clear()
    frame = load_alpaca("AAA", cache_dir=tmp_path, refresh=True)
    # one request, from the last cached session (2024-03-13, 00:00 UTC: before its bar at 04:00 UTC), so
    # that the one bar it shares with the cache can be compared; the cached bars are not asked again
    assert len(stub.requests) == 1
    assert pd.Timestamp(stub.requests[0][0]["start"]) == pd.Timestamp("2024-03-13", tz="UTC")
    new = pd.DataFrame(
        {"open": [171.00], "high": [174.00], "low": [170.50], "close": [173.60], "volume": [1_000_600.0]},
        index=pd.DatetimeIndex(["2024-03-14"], name="date"),
    )
    expected = pd.concat([AAA_FRAME, new])
    same_values(frame, expected)
    same_values(data_module.standardise(pd.read_parquet(tmp_path / "AAA.parquet"), "cache"), expected)
    assert not list(tmp_path.glob("*.tmp"))


def test_a_split_since_the_cache_downloads_the_whole_history_again(stub, tmp_path):
    load_alpaca("AAA", cache_dir=tmp_path)
    # a 2-for-1 split after 2024-03-14: Alpaca now answers every earlier bar halved (split-adjusted)
    stub.bars["AAA"] = [{**b, **{k: b[k] / 2 for k in "ohlc"}, "v": b["v"] * 2} for b in [*AAA_BARS, NEW_BAR]] + [
        bar("2024-03-15T04:00:00Z", 87.00, 88.00, 86.00, 87.50, 2_500_000)
    ]
    stub.requests.clear()
    frame = load_alpaca("AAA", cache_dir=tmp_path, refresh=True)
    starts = [pd.Timestamp(query["start"]) for query, _ in stub.requests if "page_token" not in query]
    assert starts == [pd.Timestamp("2024-03-13", tz="UTC"), pd.Timestamp("1990-01-01", tz="UTC")]
    assert len(frame) == 7
    assert frame.loc["2024-03-07", "close"] == 171.75 / 2 and frame.loc["2024-03-07", "volume"] == 2_000_200
    assert frame.loc["2024-03-15", "close"] == 87.50


def test_wrong_keys_are_one_error_naming_the_keys(stub, tmp_path, monkeypatch):
    monkeypatch.setenv("APCA_API_SECRET_KEY", "wrong")
    with pytest.raises(DataError) as info:
        load_alpaca("AAA", cache_dir=tmp_path)
    assert info.value.message == "alpaca:AAA: Alpaca refused the keys (HTTP 401: unauthorized.)"
    assert "APCA_API_KEY_ID" in info.value.hint and "APCA_API_SECRET_KEY" in info.value.hint
    assert "wrong" not in str(info.value) and SECRET not in str(info.value)
    assert not (tmp_path / "AAA.parquet").exists()


def test_no_keys_in_the_environment_names_both_variables(stub, tmp_path, monkeypatch):
    monkeypatch.delenv("APCA_API_KEY_ID")
    with pytest.raises(DataError) as info:
        load_alpaca("AAA", cache_dir=tmp_path)
    assert "APCA_API_KEY_ID" in info.value.message and "APCA_API_SECRET_KEY" in info.value.message
    assert stub.requests == []


def test_unreachable_alpaca_without_a_cache_names_the_folder(stub, tmp_path, monkeypatch):
    monkeypatch.setenv("APCA_API_DATA_URL", closed_port_url())
    with pytest.raises(DataError) as info:
        load_alpaca("AAA", cache_dir=tmp_path / "cache")
    assert "could not reach Alpaca (ConnectionError)" in info.value.message
    assert f"nothing is cached in {tmp_path / 'cache'}" in info.value.message
    assert "builtin:sp500" in info.value.hint


def test_unreachable_alpaca_with_a_cache_serves_the_cache(stub, tmp_path, monkeypatch):
    load_alpaca("AAA", cache_dir=tmp_path)
    monkeypatch.setenv("APCA_API_DATA_URL", closed_port_url())
    same_values(load_alpaca("AAA", cache_dir=tmp_path, refresh=True), AAA_FRAME)


def test_a_server_error_is_unreachable_and_an_unknown_ticker_is_no_bars(stub, tmp_path):
    stub.error = (500, "internal server error")
    with pytest.raises(DataError, match="could not reach Alpaca \\(HTTP 500\\)"):
        load_alpaca("AAA", cache_dir=tmp_path)
    stub.error = None
    with pytest.raises(DataError, match="alpaca:ZZZ: Alpaca has no daily bars for ZZZ"):
        load_alpaca("ZZZ", cache_dir=tmp_path)


def test_without_alpaca_py_the_error_names_the_extra(stub, tmp_path, monkeypatch):
    without_alpaca(monkeypatch)
    with pytest.raises(DataError) as info:
        load_alpaca("AAA", cache_dir=tmp_path)
    assert "needs alpaca-py" in info.value.message and "pip install 'lstm-trader[alpaca]'" in info.value.hint


def test_load_prices_alpaca_universe_end_to_end(stub, tmp_path):
    stub.bars["BBB"] = [bar(b["t"], b["o"] / 10, b["h"] / 10, b["l"] / 10, b["c"] / 10, 500.0) for b in AAA_BARS]
    prices = load_prices("alpaca:aaa,BBB", cache_dir=tmp_path, start="2024-03-08")
    assert list(prices) == ["AAA", "BBB"]
    same_values(prices["AAA"], AAA_FRAME.loc["2024-03-08":])
    assert prices["BBB"]["close"].tolist() == pytest.approx([17.04, 16.85, 16.985, 17.095])
    assert prices["AAA"].attrs["source"] == "alpaca:aaa,BBB (AAA)"
    assert prices["BBB"].attrs["source"] == "alpaca:aaa,BBB (BBB)"
    # the source's cache_dir is Yahoo's folder: Alpaca keeps its own subfolder of it
    assert sorted(p.name for p in (tmp_path / "alpaca").iterdir()) == ["AAA.parquet", "BBB.parquet"]
    tickers = tmp_path / "tickers.txt"
    tickers.write_text("# one a line\nbbb\n")
    assert list(load_prices(f"alpaca:@{tickers}", cache_dir=tmp_path)) == ["BBB"]
    assert load_prices("alpaca:AAA", cache_dir=tmp_path)["AAA"].attrs["source"] == "alpaca:AAA"


def test_alpaca_default_cache_folder_ticker_list_hint_and_no_dividends(stub, tmp_path, monkeypatch):
    monkeypatch.setenv("LSTM_TRADER_CACHE", str(tmp_path))
    load_prices("alpaca:AAA")
    assert (tmp_path / "alpaca" / "AAA.parquet").is_file()
    with pytest.raises(DataError) as info:
        load_prices(f"alpaca:@{tmp_path / 'missing.txt'}")
    assert "'alpaca:@'" in info.value.hint
    with pytest.raises(DataError, match="has no dividends"):
        load_prices("alpaca:AAA", dividends=True)


def test_refresh_source_downloads_nothing_for_csv_and_builtin(stub, tmp_path):
    write_yahoo_csv(make_bars(30), tmp_path / "XYZ.csv")
    assert refresh_source(f"csv:{tmp_path}/*.csv") == {"XYZ": "csv: re-read at load"}
    assert refresh_source("builtin:sp500") == {"sp500": "builtin: embedded, nothing to download"}
    assert stub.requests == []
    with pytest.raises(DataError, match="unknown data scheme 'ftp'"):
        refresh_source("ftp:AAA")


def test_refresh_source_brings_alpaca_up_to_date_and_fails_loudly_offline(stub, tmp_path, monkeypatch):
    assert refresh_source("alpaca:AAA", cache_dir=tmp_path) == {"AAA": "alpaca: 5 bars through 2024-03-13"}
    assert len(stub.requests) == 2  # the first download: two pages
    stub.bars["AAA"].append(NEW_BAR)
    notes = refresh_source("alpaca:AAA", cache_dir=tmp_path)
    assert notes == {"AAA": "alpaca: 6 bars through 2024-03-14 (1 new)"}
    assert pd.Timestamp(stub.requests[-1][0]["start"]) == pd.Timestamp("2024-03-13", tz="UTC")
    cache = tmp_path / "alpaca" / "AAA.parquet"
    stored = cache.read_bytes()
    # offline, a refresh is an error even with a cache (the caller retries), and the cache stays as it was
    monkeypatch.setenv("APCA_API_DATA_URL", closed_port_url())
    with pytest.raises(DataError) as info:
        refresh_source("alpaca:AAA", cache_dir=tmp_path)
    assert "could not reach Alpaca" in info.value.message and "2024-03-14" in info.value.message
    assert cache.read_bytes() == stored


def test_refresh_source_downloads_yahoo_again_even_when_cached(tmp_path, monkeypatch):
    bars = make_bars(20, start="2024-01-02")
    yahoo = bars.rename(columns=str.title)
    yahoo.index.name = "Date"
    calls = []
    monkeypatch.setattr(data_module, "yahoo_download", lambda t: calls.append(t) or yahoo.copy())
    load_prices("yahoo:MSFT", cache_dir=tmp_path)
    notes = refresh_source("yahoo:MSFT", cache_dir=tmp_path)
    assert calls == ["MSFT", "MSFT"]
    assert notes == {"MSFT": f"yahoo: 20 bars through {bars.index[-1].date()} (0 new)"}
    monkeypatch.setattr(data_module, "yahoo_download", lambda t: pd.DataFrame())
    with pytest.raises(DataError, match="could not download from Yahoo Finance \\(the cache"):
        refresh_source("yahoo:MSFT", cache_dir=tmp_path)


def test_data_fetch_source_alpaca_fills_the_cache_that_alpaca_source_reads(stub, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lstm_trader.cli import app

    runner = CliRunner()
    fetch = ["data", "fetch", "aaa", "--source", "alpaca", "--cache-dir", str(tmp_path)]
    first = runner.invoke(app, fetch)
    assert first.exit_code == 0, first.output
    assert "alpaca:AAA: 5 bars, 2024-03-07 to 2024-03-13" in first.output
    same_values(data_module.standardise(pd.read_parquet(tmp_path / "alpaca" / "AAA.parquet"), "cache"), AAA_FRAME)
    stub.requests.clear()
    same_values(load_prices("alpaca:AAA", cache_dir=tmp_path)["AAA"], AAA_FRAME)
    assert stub.requests == []  # served from what data fetch stored
    stub.bars["AAA"].append(NEW_BAR)
    again = runner.invoke(app, [*fetch, "--refresh"])
    assert again.exit_code == 0 and "alpaca:AAA: 6 bars, 2024-03-07 to 2024-03-14" in again.output
    # offline, --refresh is one error line, not the stale cache
    monkeypatch.setenv("APCA_API_DATA_URL", closed_port_url())
    offline = runner.invoke(app, [*fetch, "--refresh"])
    assert offline.exit_code != 0 and "could not reach Alpaca" in offline.output
    bad = runner.invoke(app, ["data", "fetch", "AAA", "--source", "bloomberg"])
    assert bad.exit_code == 2 and "unknown --source 'bloomberg'" in bad.output
