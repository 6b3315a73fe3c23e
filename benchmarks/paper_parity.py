"""Paper replay against the backtest over the out-of-sample span (the parity claim of docs/guide/paper.md:
Paper trading), and what a paper step costs, for every kind of account.

- `returns`: the default config's `lstm_signal`, traded on the LSTM's return forecast;
- `vol_target`: configs/volatility.toml's `vol_target_lstm`, sized by the LSTM's variance forecast;
- `sized`: the default config's `lstm_signal` (always long) sized to a 10% volatility target by the
  variance forecast of a second network (configs/volatility.toml), as `backtest --volatility` does.

For each, the walk-forward(s) run and the backtest trades the predictions (positions held at the end),
then a local paper account replays the same sessions, and the script prints: sessions, predictions that
are bit-identical (the traded forecast, and the sizing variance forecast where there is one), target
mismatches, fills, the largest relative equity gap, and the replay's time beside the walk-forward's.

    .venv/bin/python benchmarks/paper_parity.py [--case returns|vol_target|sized ...] [--set section.key=value ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from backtests.backtest_only import VOL_PREFIX  # noqa: E402
from backtests.config import load_config  # noqa: E402
from backtests.engine import run_backtest  # noqa: E402
from backtests.experiment import load_experiment_prices  # noqa: E402
from forecasting.tasks import walk_forward_predict  # noqa: E402
from trading.account import VOL_FORECAST, Account, init_account, replay  # noqa: E402

VOLATILITY = ROOT / "configs" / "volatility.toml"
SIZED = 'strategies=[{name="lstm_signal", params={enter_long=-1.0, target_vol=0.10, vol_forecast="vol_lstm"}}]'
CASES = {  # name: (config, its overrides, the strategy traded, a volatility config sizing it)
    "returns": (None, [], "lstm_signal", None),
    "vol_target": (VOLATILITY, ['paper.strategy="vol_target_lstm"'], "vol_target_lstm", None),
    "sized": (None, [SIZED], "lstm_signal", VOLATILITY),
}


def parity(case: str, sets: list[str]) -> None:
    path, own, strategy, vol_path = CASES[case]
    overrides = own + sets
    config = load_config(path, overrides)
    prices = load_experiment_prices(config, beside=(VOL_FORECAST,) if vol_path else ())
    spec = next(s for s in config.strategies if strategy in (s.title, s.name))

    started = time.perf_counter()
    predictions = walk_forward_predict(prices, config.model, config.walk_forward, config.seed)
    traded = predictions
    vol_lstm = None
    if vol_path is not None:  # the second network, walked forward on the same bars; traded from its first row
        vol = load_config(vol_path, sets).model_copy(update={"data": config.data})
        vol_predictions = walk_forward_predict(prices, vol.model, vol.walk_forward, vol.seed)
        predictions = predictions[predictions["date"] >= vol_predictions["date"].min()]
        traded = pd.concat(
            [predictions, vol_predictions.assign(model=VOL_PREFIX + vol_predictions["model"])], ignore_index=True
        )
        vol_lstm = vol_predictions[vol_predictions["model"] == "lstm"].set_index("date")["y_pred"]
    walk_forward_s = time.perf_counter() - started
    broker = config.broker.model_copy(update={"close_at_end": False})
    result = run_backtest(prices, traded, spec.name, broker, spec.params)
    lstm = predictions[predictions["model"] == "lstm"]
    first, last = lstm["date"].min(), lstm["date"].max()

    with tempfile.TemporaryDirectory() as root:
        vol_sets = [s for s in sets if not s.strip().startswith("data.")]  # the account's data serve both
        init_account(path, overrides, "parity", "local", root, vol_path, vol_sets if vol_path else None)
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

    print(
        f"[{case}] {path.name if path else 'default config'}, {spec.title}"
        + (f" sized by {VOL_FORECAST}" if vol_path else "")
    )
    print(f"  sessions replayed        {len(signals)} ({first.date()} to {last.date()})")
    print(f"  identical predictions    {same_pred} of {len(lstm)}")
    if vol_lstm is not None:
        same_vol = int((signals["vol_pred"].to_numpy() == vol_lstm.reindex(signals.index).to_numpy()).sum())
        print(f"  identical variance fcst  {same_vol} of {len(signals)}")
    print(f"  target mismatches        {mismatches}")
    print(f"  fills                    paper {len(fills)}, backtest {int((result.fills['date'] <= last).sum())}")
    print(f"  max relative equity gap  {gap.max():.2e} (final equity {paper.iloc[-1]:,.2f})")
    print(f"  walk-forward             {walk_forward_s:.1f} s")
    print(
        f"  replay                   {replay_s:.1f} s, {replay_s / len(signals) * 1e3:.0f} ms per session, "
        f"{replay_s / walk_forward_s:.2f}x the walk-forward"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="default: every case")
    parser.add_argument("--set", action="append", default=[], dest="sets", help="applied to every config")
    args = parser.parse_args()
    for case in args.case or list(CASES):
        parity(case, args.sets)


if __name__ == "__main__":
    main()
