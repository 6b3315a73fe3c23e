"""Paper replay against the backtest over the default out-of-sample span (the parity claim of docs/guide/paper.md:
Paper trading), and what a paper step costs.

Runs the default config's walk-forward and backtests `lstm_signal` (positions held at the end), then
replays a local paper account over the same sessions, and prints: sessions, predictions that are
bit-identical, target mismatches, the largest relative equity gap, and the replay's time per session
beside the walk-forward's time (the same training, plus a step's bookkeeping).

    .venv/bin/python benchmarks/paper_parity.py [--set section.key=value ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from backtests.config import load_config  # noqa: E402
from backtests.engine import run_backtest  # noqa: E402
from backtests.experiment import load_experiment_prices  # noqa: E402
from forecasting.tasks import walk_forward_predict  # noqa: E402
from trading.account import Account, init_account, replay  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], dest="sets")
    args = parser.parse_args()
    config = load_config(None, args.sets)
    prices = load_experiment_prices(config)
    spec = next(s for s in config.strategies if s.name == "lstm_signal")

    started = time.perf_counter()
    predictions = walk_forward_predict(prices, config.model, config.walk_forward, config.seed)
    walk_forward_s = time.perf_counter() - started
    result = run_backtest(
        prices, predictions, "lstm_signal", config.broker.model_copy(update={"close_at_end": False}), spec.params
    )
    lstm = predictions[predictions["model"] == "lstm"]
    first, last = lstm["date"].min(), lstm["date"].max()

    with tempfile.TemporaryDirectory() as root:
        init_account(None, args.sets, "parity", "local", root)
        started = time.perf_counter()
        with Account(root, "parity") as account:
            replay(account, first.date(), last.date())
            replay_s = time.perf_counter() - started
            signals = account.ledger.table("signals", "date")
            equity = account.ledger.table("equity", "date")
            fills = account.ledger.table("fills")

    signals.index = pd.to_datetime(signals["date"])
    same_pred = int((signals["y_pred"].to_numpy() == lstm.set_index("date")["y_pred"].reindex(signals.index)).sum())
    decided = result.decisions.set_index(pd.to_datetime(result.decisions["date"]))["target"].reindex(signals.index)
    mismatches = int((~np.isclose(decided.to_numpy(), signals["target"].to_numpy(), rtol=0, atol=0)).sum())
    paper = pd.Series(equity["equity"].to_numpy(), index=pd.to_datetime(equity["date"]))
    gap = (paper / result.equity.reindex(paper.index) - 1).abs()

    print(f"sessions replayed        {len(signals)} ({first.date()} to {last.date()})")
    print(f"identical predictions    {same_pred} of {len(lstm)}")
    print(f"target mismatches        {mismatches}")
    print(f"fills                    paper {len(fills)}, backtest {int((result.fills['date'] <= last).sum())}")
    print(f"max relative equity gap  {gap.max():.2e} (final equity {paper.iloc[-1]:,.2f})")
    print(f"walk-forward             {walk_forward_s:.1f} s")
    print(
        f"replay                   {replay_s:.1f} s, {replay_s / len(signals) * 1e3:.0f} ms per session, "
        f"{replay_s / walk_forward_s:.2f}x the walk-forward"
    )


if __name__ == "__main__":
    main()
