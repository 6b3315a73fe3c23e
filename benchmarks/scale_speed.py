"""Scale-out: the default walk-forward on 4 tickers, serial vs a local pool of 2 workers vs Ray.

The tickers are cut from the embedded data (S&P 500 and NASDAQ, each as 1999-2008 and 2009-2018,
renamed), so every run is offline. Prints each executor's walk-forward time, the speed-up against
serial measured in the same script, Ray's start-up time (a local instance) and whether the three
predictions tables are byte-identical. Targets: local >= 1.6x, ray >= 1.5x on 2 cores.

    .venv/bin/python benchmarks/scale_speed.py [--workers 2]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backtests.config import load_config  # noqa: E402
from backtests.execution import start_ray  # noqa: E402
from backtests.experiment import load_experiment_prices, predict_all  # noqa: E402
from forecasting.data import load_prices  # noqa: E402


def write_tickers(folder: Path) -> str:
    paths = []
    for name in ("sp500", "nasdaq"):
        frame = load_prices(f"builtin:{name}")[name]
        for label, span in (("early", slice("1999", "2008")), ("late", slice("2009", "2018"))):
            path = folder / f"{name.upper()}_{label.upper()}.csv"
            part = frame.loc[span].rename(columns=str.title)
            part.index.name = "Date"
            part.to_csv(path)
            paths.append(str(path))
    return "csv:" + ",".join(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        source = write_tickers(Path(folder))
        tables, seconds = {}, {}
        for executor in ("serial", "local", "ray"):
            config = load_config(
                None,
                [
                    'data.start="1999-01-01"',
                    f'data.source="{source}"',
                    f'execution.executor="{executor}"',
                    f"execution.workers={args.workers}",
                ],
            )
            prices = load_experiment_prices(config)
            if executor == "ray":
                started = time.perf_counter()
                start_ray(config.execution, args.workers)
                seconds["ray start-up"] = time.perf_counter() - started
            started = time.perf_counter()
            table = predict_all(prices, config)
            seconds[executor] = time.perf_counter() - started
            buffer = io.BytesIO()
            table.to_parquet(buffer, index=False)
            tables[executor] = buffer.getvalue()
    print(f"4 tickers, default network, {args.workers} workers, {os.cpu_count()} cores")
    print(f"serial      {seconds['serial']:6.1f} s")
    print(f"local       {seconds['local']:6.1f} s   {seconds['serial'] / seconds['local']:.2f}x  (target >= 1.6x)")
    print(
        f"ray         {seconds['ray']:6.1f} s   {seconds['serial'] / seconds['ray']:.2f}x  (target >= 1.5x), "
        f"plus {seconds['ray start-up']:.1f} s to start a local Ray instance"
    )
    same = tables["local"] == tables["serial"] and tables["ray"] == tables["serial"]
    print(f"predictions byte-identical across executors: {same}")


if __name__ == "__main__":
    main()
