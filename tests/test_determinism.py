"""Same config and seed, two processes: byte-identical predictions files (no global random state)."""

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import TINY, make_bars, run_dirs, write_yahoo_csv

ROOT = Path(__file__).resolve().parent.parent


def test_two_processes_write_byte_identical_predictions(tmp_path):
    data = tmp_path / "ACME.csv"
    write_yahoo_csv(make_bars(320, seed=9), data)
    files = []
    for name in ("first", "second"):
        command = [
            sys.executable,
            "-m",
            "lstm_trader.cli",
            "run",
            *TINY,
            "--set",
            f"data.source=csv:{data}",
            "--set",
            "model.dropout=0.3",
            "--set",
            "walk_forward.finetune_epochs=2",
            "--runs-dir",
            str(tmp_path / name),
            "--no-report",
        ]
        # different hash seeds: nothing may depend on set or dict iteration order either
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "1" if name == "first" else "2"}
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr
        (run,) = run_dirs((tmp_path / name))
        files.append((run / "predictions.parquet").read_bytes())
    assert files[0] == files[1]
