"""Helpers the tests share: made-up bars, Yahoo-style CSV files, run dirs and the tiny network settings.

A module of its own (pytest's advice: conftest.py holds fixtures and is not imported); the fixtures
in conftest.py are built from these.
"""

import json
import math
import re
import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

# The tiny network every CLI test trains: seconds per run, still a real walk-forward.
TINY_SETTINGS = [
    'model.features=["log_return", "rsi_14"]',
    "model.lookback=5",
    "model.units=4",
    "model.n_layers=1",
    "model.epochs=2",
    "walk_forward.min_train=150",
    "walk_forward.retrain_every=50",
    "walk_forward.finetune_window=50",
]
TINY = [arg for setting in TINY_SETTINGS for arg in ("--set", setting)]  # as command-line arguments


def make_bars(n: int = 300, seed: int = 0, start: str = "2015-01-01") -> pd.DataFrame:
    """A random-walk OHLCV frame that passes validation."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.003, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    volume = rng.integers(1_000_000, 5_000_000, n).astype(float)
    index = pd.bdate_range(start, periods=n, name="date")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index)


def write_yahoo_csv(frame: pd.DataFrame, path) -> None:
    out = frame.rename(columns=str.title).rename(columns={"Volume": "Volume"})
    out.insert(4, "Adj Close", out["Close"])
    out.index.name = "Date"
    out.to_csv(path)


def run_dirs(root) -> list:
    """The run dirs under a runs root (it also holds the trial ledger)."""
    return sorted(p for p in root.iterdir() if p.is_dir())


def bars_from(open_, close, start="2020-01-01") -> pd.DataFrame:
    open_, close = np.asarray(open_, float), np.asarray(close, float)
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": 1e6,
        },
        index=pd.bdate_range(start, periods=len(close), name="date"),
    )


def predictions_for(prices: pd.DataFrame, y_pred, model="lstm", ticker="T") -> pd.DataFrame:
    close = prices["close"].to_numpy()
    y_true = np.append(np.log(close[1:] / close[:-1]), np.nan)
    frame = pd.DataFrame(
        {
            "date": prices.index,
            "ticker": ticker,
            "model": model,
            "y_pred": np.asarray(y_pred, float),
            "y_true": y_true,
            "price_pred": close * np.exp(y_pred),
            "price_true": close * np.exp(y_true),
            "horizon": 1,
            "fold": 0,
            "train_end": prices.index[0],
        }
    )
    return frame.iloc[:-1]  # the last bar's target is unknown, as walk_forward_predict writes it


GAMMA = 0.5772156649015329  # Euler-Mascheroni, in the expected maximum of N Sharpes


def hand_dsr(returns: pd.Series, sharpes: list[float], n: int | None = None) -> float:
    """Bailey & Lopez de Prado (2014) written out with pandas and scipy only; `n` configurations tried
    (default: one per Sharpe; a pruned trial counts but has no Sharpe)."""
    r = returns
    sr = r.mean() / r.std()
    skew, kurt = r.skew(), r.kurtosis() + 3
    n_days = len(r)
    spread = (1 - skew * sr + (kurt - 1) / 4 * sr**2) / (n_days - 1)
    n = n or len(sharpes)
    variance = max(np.var(sharpes, ddof=1), spread) if len(sharpes) > 1 else spread  # one Sharpe: the floor
    sr0 = math.sqrt(variance) * ((1 - GAMMA) * norm.ppf(1 - 1 / n) + GAMMA * norm.ppf(1 - 1 / (n * math.e)))
    return norm.cdf((sr - sr0) / math.sqrt(spread))


# --- loopback stubs of Alpaca's REST APIs (pytest-httpserver) -------------------------------------

KEY, SECRET = "PKTESTKEY0123456789", "secret-DO-NOT-LEAK-42"


class AlpacaStub:
    """The endpoints a step uses: account, clock, positions, orders and orders by client order id."""

    def __init__(self, server) -> None:
        self.orders: dict[str, dict] = {}
        self.posts = 0
        self.drop_after_accept = False
        self.refuse = None  # (status, message) for the next order
        self.is_open = False
        self.now = "2018-12-03T21:30:00Z"
        self.cash = 100_000.0
        self.held: dict[str, tuple[float, float]] = {}  # symbol -> (qty, average entry price)
        for path, method, handler in [
            ("/v2/account", "GET", self.account),
            ("/v2/clock", "GET", self.clock),
            ("/v2/positions", "GET", self.positions),
            ("/v2/orders", "POST", self.submit),
            ("/v2/orders:by_client_order_id", "GET", self.by_client_id),
        ]:
            server.expect_request(path, method=method).respond_with_handler(handler)

    def _json(self, payload, status=200):
        from werkzeug import Response

        return Response(json.dumps(payload), status=status, content_type="application/json")

    def _authorised(self, request) -> bool:
        return request.headers.get("APCA-API-KEY-ID") == KEY and request.headers.get("APCA-API-SECRET-KEY") == SECRET

    def account(self, request):
        if not self._authorised(request):
            return self._json({"code": 40110000, "message": "request is not authorized"}, 401)
        return self._json({"id": "acct", "status": "ACTIVE", "cash": str(self.cash), "equity": str(self.cash)})

    def clock(self, request):
        return self._json(
            {
                "timestamp": self.now,
                "is_open": self.is_open,
                "next_open": "2018-12-04T14:30:00Z",
                "next_close": "2018-12-04T21:00:00Z",
            }
        )

    def positions(self, request):
        return self._json([{"symbol": s, "qty": str(q), "avg_entry_price": str(p)} for s, (q, p) in self.held.items()])

    def fill(self, price: float) -> None:
        """Fill every accepted order at `price` (the next open, as Alpaca fills a `day` order sent after
        the close): its status, the cash and the positions change as the broker's would."""
        for order in self.orders.values():
            if order["status"] != "accepted":
                continue
            qty = float(order["qty"]) * (1 if order["side"] == "buy" else -1)
            held, avg = self.held.pop(order["symbol"], (0.0, 0.0))
            self.cash -= qty * price
            if held + qty != 0:  # a position's entry price is the average of its buys; a closed one is gone
                self.held[order["symbol"]] = (held + qty, avg if qty < 0 else (held * avg + qty * price) / (held + qty))
            order.update(status="filled", filled_qty=order["qty"], filled_avg_price=str(price))

    def submit(self, request):
        body = request.get_json()
        if self.refuse:
            status, message = self.refuse
            return self._json({"code": 40310000, "message": message}, status)
        self.posts += 1
        order = {
            "id": f"order-{len(self.orders) + 1}",
            "client_order_id": body["client_order_id"],
            "symbol": body["symbol"],
            "qty": body["qty"],
            "side": body["side"],
            "time_in_force": body["time_in_force"],
            "type": body["type"],
            "status": "accepted",
            "filled_qty": "0",
            "filled_avg_price": None,
        }
        self.orders[body["client_order_id"]] = order
        if self.drop_after_accept:  # accepted, then the connection dies before the answer
            request.environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
        return self._json(order)

    def by_client_id(self, request):
        order = self.orders.get(request.args.get("client_order_id"))
        return self._json(order) if order else self._json({"code": 40410000, "message": "order not found"}, 404)


class AlpacaDataStub:
    """Alpaca's historical stock bars endpoint, as alpaca-py 0.44 calls it:
    `GET {APCA_API_DATA_URL}/v2/stocks/bars` with the query parameters symbols, timeframe (`1Day`),
    start (RFC 3339, e.g. `1990-01-01T00:00:00+00:00`), adjustment, feed, limit (10000) and, after the
    first page, page_token; the keys in the APCA-API-KEY-ID / APCA-API-SECRET-KEY headers. The answer is
    `{"bars": {SYMBOL: [{"t", "o", "h", "l", "c", "v", "n", "vw"}, ...]}, "next_page_token": ...}`.

    `bars[symbol]` holds each symbol's bars as Alpaca sends them (sorted by `t`); a request gets those at
    or after its `start`, `page_size` a page (the token is the offset of the next page). `requests`
    records each request as (query parameters, headers). `error = (status, message)` answers every
    request with that error; wrong keys get a 401."""

    def __init__(self, server, page_size: int = 3, key: str = KEY, secret: str = SECRET) -> None:
        self.key, self.secret = key, secret
        self.bars: dict[str, list[dict]] = {}
        self.page_size = page_size
        self.requests: list[tuple[dict, dict]] = []
        self.error: tuple[int, str] | None = None
        server.expect_request("/v2/stocks/bars", method="GET").respond_with_handler(self.stock_bars)

    def _json(self, payload, status=200):
        from werkzeug import Response

        return Response(json.dumps(payload), status=status, content_type="application/json")

    def stock_bars(self, request):
        query = request.args.to_dict()
        self.requests.append((query, dict(request.headers)))
        if self.error:
            status, message = self.error
            return self._json({"message": message}, status)
        if (
            request.headers.get("APCA-API-KEY-ID") != self.key
            or request.headers.get("APCA-API-SECRET-KEY") != self.secret
        ):
            return self._json({"message": "unauthorized."}, 401)
        start = pd.Timestamp(query["start"]) if "start" in query else None
        out, offset = {}, int(query.get("page_token") or 0)
        rows = [
            (symbol, bar)
            for symbol in query["symbols"].split(",")
            for bar in self.bars.get(symbol, [])
            if start is None or pd.Timestamp(bar["t"]) >= start
        ]
        for symbol, bar in rows[offset : offset + self.page_size]:
            out.setdefault(symbol, []).append(bar)
        more = offset + self.page_size < len(rows)
        return self._json({"bars": out, "next_page_token": str(offset + self.page_size) if more else None})


# --- pages in headless Chromium -------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || e.type)), true);
const __error = console.error; console.error = (...a) => { window.__errors.push(a.join(" ")); __error(...a); };
window.addEventListener("load", () => setTimeout(() => {
  const width = document.documentElement.clientWidth;
  const tables = [...document.querySelectorAll("table")].map(t => {
    const box = (t.closest(".scroll") || t).getBoundingClientRect();
    return {id: t.id, right: box.right};
  });
  const charts = [...document.querySelectorAll(".js-plotly-plot")].map(d => ({id: d.id,
    traces: (d.data || []).length, points: (d.data || []).reduce((n, t) => n + (t.x ? t.x.length : 0), 0)}));
  const out = document.createElement("pre"); out.id = "probe";
  out.textContent = JSON.stringify({width, scrollWidth: document.documentElement.scrollWidth, tables, charts,
                                    errors: window.__errors});
  document.body.appendChild(out);
}, 500));
</script>"""


def page_requests(netlog: Path) -> list[str]:
    """URLs of the network requests a page made, from Chromium's net log: those whose isolation key
    is the file:// page (the browser's own update and time checks have none, and are left out)."""
    text = netlog.read_text(errors="replace").rstrip()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a log cut short at exit lacks its closing brackets
        log = json.loads(text.rstrip(",") + "]}")
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start and "file://" in str(e.get("params", {}).get("network_isolation_key", ""))
    ]


def probe_page(page: Path, tmp_path: Path) -> tuple[dict, list[str]]:
    """Open a copy of `page` (beside it, so relative assets load) at 1024 px in headless Chromium;
    returns what the probe measured (widths, charts, errors) and the network requests it made."""
    import html

    copy = page.with_name(f"_probe_{page.name}")
    text = page.read_text(encoding="utf-8")
    copy.write_text(text.replace("<head>", "<head>" + PROBE, 1) if "<head>" in text else PROBE + text, encoding="utf-8")
    netlog = tmp_path / f"{page.stem}.netlog.json"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--window-size=1024,3000",
        "--virtual-time-budget=15000",
        f"--log-net-log={netlog}",
        f"--user-data-dir={tmp_path / ('profile-' + page.stem)}",
    ]
    try:
        dom = subprocess.run(
            [CHROMIUM, *flags, "--dump-dom", copy.as_uri()], capture_output=True, text=True, timeout=180, check=True
        ).stdout
    finally:
        copy.unlink()
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run: the page did not finish loading"
    remote = [url for url in page_requests(netlog) if not url.startswith("file:")]
    return json.loads(html.unescape(found.group(1))), remote


def without_alpaca(monkeypatch) -> None:
    """Make `import alpaca...` fail, as where the alpaca extra is not installed."""
    import builtins

    real_import = builtins.__import__

    def no_alpaca(name, *args, **kwargs):
        if name.startswith("alpaca"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_alpaca)
