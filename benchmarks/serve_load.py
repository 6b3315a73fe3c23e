"""50 concurrent clients read GET /accounts/NAME/latest while the service steps the account.

A local-broker account on the embedded S&P 500 (a tiny network) is served on a simulated clock fast
enough that steps (a worker process: data, model, decision, snapshots) run back to back. The load
comes from `wrk` (C, `apt install wrk`), so that the load generator takes little of the 2 cores the
server and the step share: a Python client at 50 connections used more CPU than the server it
measured. wrk runs in one-second slices, and a slice counts only when /health said "stepping" for
the same session before and after it; the kept slices' latency histograms are merged.
Goal (issue 25): p99 under 50 ms on 2 cores while a step runs.

    .venv/bin/python benchmarks/serve_load.py [--clients 50] [--seconds 20] [--nice 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SETS = [
    'data.start="2016-06-01"',
    'model.features=["log_return", "rsi_14"]',
    "model.lookback=5",
    "model.units=4",
    "model.n_layers=1",
    "model.epochs=2",
    "walk_forward.min_train=500",
    "walk_forward.retrain_every=40",
]
# wrk's done() hook prints every distinct latency (microseconds) with its count, so slices merge exactly.
DUMP = """
done = function(summary, latency, requests)
  io.write(string.format("requests %d errors %d\\n", summary.requests,
    summary.errors.status + summary.errors.timeout + summary.errors.read + summary.errors.connect))
  local i = 1
  while true do
    local v, c = latency(i)
    if v == nil or v == 0 then break end
    io.write(string.format("lat %d %d\\n", v, c))
    i = i + 1
  end
end
"""


def wrk_slice(url: str, clients: int, script: Path) -> tuple[np.ndarray, int]:
    """One second of `clients` connections: the latencies in ms (one per request) and the errors."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", "-d1s", "--timeout", "10s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    values, counts, errors = [], [], 0
    for line in out.splitlines():
        parts = line.split()
        if parts[:1] == ["lat"]:
            values.append(int(parts[1]) / 1000)
            counts.append(int(parts[2]))
        elif parts[:1] == ["requests"]:
            errors = int(parts[3])
    return np.repeat(values, counts), errors


def stepping(client: httpx.Client) -> tuple | None:
    """The account's (session, last step) while it is stepping, else None."""
    account = client.get("/health").json()["accounts"]["acct"]
    return (account["next_session"], account["last_step"]) if account["state"] == "stepping" else None


def summary(label: str, ms: np.ndarray, seconds: float, errors: int) -> float:
    p99 = float(np.percentile(ms, 99))
    print(
        f"{label}: {len(ms)} requests in {seconds:g} s ({len(ms) / seconds:,.0f}/s), {errors} errors; "
        f"p50 {np.percentile(ms, 50):.1f} ms, p90 {np.percentile(ms, 90):.1f} ms, p99 {p99:.1f} ms, "
        f"max {ms.max():.1f} ms"
    )
    return p99


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20, help="seconds of load while stepping to collect")
    parser.add_argument("--nice", type=int, default=10, help="serve.worker_nice (0: the step competes as an equal)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("serve_load: needs wrk on PATH (Debian/Ubuntu: apt install wrk; macOS: brew install wrk)")
    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    script = work / "dump.lua"
    script.write_text(DUMP)
    # The first step (it trains the folds) is due at once; later sessions follow every ~4 s of wall time.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "LSTM_TRADER_CLOCK": "2018-06-01T21:00Z x20000"}
    cli = [sys.executable, "-m", "lstm_trader.cli"]
    subprocess.run(
        [
            *cli,
            "paper",
            "init",
            *[x for s in [*SETS, f"serve.worker_nice={args.nice}"] for x in ("--set", s)],
            "--name",
            "acct",
            "--paper-dir",
            str(work),
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    server = subprocess.Popen(
        [*cli, "serve", "--paper-dir", str(work), "--port", "0"], env=env, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        url = None
        for line in server.stderr:
            if "serving" in line:
                url = line.split(" on ", 1)[1].split(" ", 1)[0]
                break
        client = httpx.Client(base_url=url, timeout=30)
        while client.get("/accounts/acct/latest").status_code != 200:  # the first step, with its training
            time.sleep(0.5)
        path = f"{url}/accounts/acct/latest"
        kept, errors, slices, tried = [], 0, 0, 0
        deadline = time.monotonic() + 20 * args.seconds
        while slices < args.seconds and time.monotonic() < deadline:
            before = stepping(client)
            if before is None:
                time.sleep(0.05)
                continue
            ms, errs = wrk_slice(path, args.clients, script)
            tried += 1
            if stepping(client) == before:
                kept.append(ms)
                errors += errs
                slices += 1
    finally:
        server.terminate()
        server.wait(120)
    print(
        f"serve.worker_nice = {args.nice}; {args.clients} connections (wrk), one-second slices: {slices} of {tried} lay wholly inside a step"
    )
    if not kept:
        sys.exit("serve_load: no one-second slice lay wholly inside a step (steps too short?); nothing measured")
    p99 = summary("while a step runs", np.concatenate(kept), slices, errors)
    print(f"goal: p99 < 50 ms on 2 cores -> {'met' if p99 < 50 else 'missed'}")


if __name__ == "__main__":
    main()
