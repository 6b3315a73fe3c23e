"""50 concurrent clients read GET /accounts/NAME/latest while the service steps the account.

A local-broker account on the embedded S&P 500 (a tiny network) is served on a simulated clock fast
enough that a step (a worker process: data, model, decision, snapshots) is running most of the
time. The clients' latencies are kept only for requests made while /health said "stepping".
Goal (issue 25): p99 under 50 ms on 2 cores.

    .venv/bin/python benchmarks/serve_load.py [--clients 50] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
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


async def load(url: str, clients: int, seconds: float) -> tuple[list[float], int, int]:
    stepping = {"now": False}
    latencies: list[float] = []
    total = [0]
    stop = time.monotonic() + seconds

    async def watch(client):
        while time.monotonic() < stop:
            health = (await client.get("/health")).json()
            stepping["now"] = health["accounts"]["acct"]["state"] == "stepping"
            await asyncio.sleep(0.05)

    async def reader(client):
        while time.monotonic() < stop:
            during = stepping["now"]
            start = time.perf_counter()
            answer = await client.get("/accounts/acct/latest")
            elapsed = time.perf_counter() - start
            assert answer.status_code == 200
            total[0] += 1
            if during and stepping["now"]:
                latencies.append(elapsed)

    limits = httpx.Limits(max_connections=clients + 1)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        await asyncio.gather(watch(client), *(reader(client) for _ in range(clients)))
    return latencies, total[0], clients


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "LSTM_TRADER_CLOCK": "2018-06-01T21:00Z x20000"}
    cli = [sys.executable, "-m", "lstm_trader.cli"]
    subprocess.run(
        [*cli, "paper", "init", *[x for s in SETS for x in ("--set", s)], "--name", "acct", "--paper-dir", str(work)],
        check=True,
        env=env,
        capture_output=True,
    )
    server = subprocess.Popen(
        [*cli, "serve", "--paper-dir", str(work), "--port", "0"], env=env, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    url = None
    for line in server.stderr:
        if "serving" in line:
            url = line.split(" on ", 1)[1].split(" ", 1)[0]
            break
    client = httpx.Client(base_url=url)
    while client.get("/accounts/acct/latest").status_code != 200:  # the first step (it trains the folds)
        time.sleep(0.5)
    latencies, total, clients = asyncio.run(load(url, args.clients, args.seconds))
    server.terminate()
    server.wait(120)
    ms = np.array(latencies) * 1000
    print(f"{clients} clients, {args.seconds:g} s: {total} requests, {len(ms)} of them while a step ran")
    if len(ms):
        print(
            f"latency while stepping: p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, "
            f"max {ms.max():.1f} ms (goal: p99 < 50 ms) -> {'met' if np.percentile(ms, 99) < 50 else 'missed'}"
        )


if __name__ == "__main__":
    main()
