"""`lstm-trader serve`: the paper accounts, stepped after each close, over HTTP with a status page."""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
import threading
from pathlib import Path
from typing import Annotated

import typer

from lstm_trader.console import console, user_errors

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@user_errors
def serve(
    paper_dir: Annotated[Path, typer.Option("--paper-dir", help="folder that holds the paper accounts")] = Path(
        "paper"
    ),
    accounts: Annotated[
        str | None, typer.Option(help="comma list of accounts to serve; default: every account in --paper-dir")
    ] = None,
    host: Annotated[
        str, typer.Option(help="address to listen on; the default answers this machine only")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free one, printed at start)")] = 8080,
    log_json: Annotated[bool, typer.Option("--log-json", help="one JSON object per log line, for machines")] = False,
) -> None:
    """Step the paper accounts after each close (data refresh, step, alerts) and answer over HTTP.

    After each session's close plus serve.after_close minutes (the exchange calendar paper.calendar),
    each account's data source is refreshed and the account is stepped, exactly as `paper step`
    would; failures are retried with doubling waits, then alerted (log, and serve.webhook_url).
    The status page is at /, the API under /accounts, /health, /metrics and /forecast (OpenAPI at
    /docs). Acting endpoints (POST /accounts/NAME/step) need Authorization: Bearer
    $LSTM_TRADER_TOKEN. LSTM_TRADER_CLOCK="2018-12-03T21:00Z x600" runs on a simulated clock
    (from that instant, 600 times as fast) for rehearsals and tests. SIGTERM or Ctrl-C stops it:
    a running step finishes first.
    """
    import logging
    import sys

    import uvicorn

    from trading.clock import clock
    from trading.http import create_app
    from trading.service import LogFormat, Service

    names = [n.strip() for n in accounts.split(",") if n.strip()] if accounts else None
    service = Service(paper_dir, names, clock())
    service.open()  # unknown account, damaged ledger, a second serve: one line each, before the port
    try:
        sock = _bind(host, port)
    except BaseException:
        service.close()
        raise
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogFormat(log_json, service.clock))
    for name in ("lstm_trader.serve", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    address, bound = sock.getsockname()[:2]
    url = f"http://{'[' + address + ']' if ':' in address else address}:{bound}"
    logging.getLogger("lstm_trader.serve").info(
        f"serving {len(service.runners)} paper account(s) ({', '.join(service.runners)}) on {url} "
        f"(status page {url}/, API {url}/docs); Ctrl-C stops after a running step",
        extra={"event": "start", "url": url},
    )
    if host not in LOOPBACK:
        logging.getLogger("lstm_trader.serve").warning(
            f"listening on {host}: the read endpoints answer anyone who can reach it",
            extra={"event": "exposed"},
        )
    config = uvicorn.Config(
        create_app(service),
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    try:
        _server_class()(config).run(sockets=[sock])
    finally:
        sock.close()
        service.close()
    console.print("stopped", highlight=False)


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that SIGTERM and Ctrl-C end it with exit code 0 once it has shut
        down (uvicorn re-raises the signal, which would end the process as killed by it)."""

        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server


def _bind(host: str, port: int) -> socket.socket:
    from backtests.errors import BacktestError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BacktestError(
                f"port {port} on {host} is in use", "pick another --port, or stop what listens there"
            ) from None
        raise BacktestError(f"cannot listen on {host}:{port} ({exc.strerror})", "check --host and --port") from None
    sock.listen(128)
    sock.set_inheritable(False)
    return sock
