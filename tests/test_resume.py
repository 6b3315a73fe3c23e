"""A run killed (SIGKILL) or interrupted (SIGINT) in any phase finishes with `run --resume`, to the same
files as an unbroken run; two resumes of one run dir at once: one finishes, the other is refused."""

import os
import subprocess
import sys
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from forecasting.faults import FAULT_ENV
from lstm_trader import cli
from lstm_trader.commands import research
from tests.helpers import TINY as BASE
from tests.helpers import make_bars, run_dirs, write_yahoo_csv

runner = CliRunner()
TINY = BASE + ["--set", 'strategies=[{name="lstm_signal"}, {name="sma_cross", params={fast=5, slow=20}}]']
OUTPUTS = ("predictions.parquet", "comparison.csv", "equity.csv", "trades.csv")


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "ACME.csv"
    write_yahoo_csv(make_bars(320, seed=9), path)
    return path


def command(data, runs, *extra):
    return [
        sys.executable,
        "-m",
        "lstm_trader.cli",
        "run",
        *TINY,
        "--set",
        f"data.source=csv:{data}",
        "--no-report",
        "--runs-dir",
        str(runs),
        *extra,
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An unbroken run of the same data and config: what every resumed run must equal."""
    root = tmp_path_factory.mktemp("unbroken")
    write_yahoo_csv(make_bars(320, seed=9), root / "ACME.csv")
    result = runner.invoke(cli.app, command(root / "ACME.csv", root / "fresh")[3:])
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(root / "fresh")
    return run


@pytest.mark.parametrize("point", ["fold:1", "run:backtests"], ids=["in-the-walk-forward", "in-the-backtests"])
def test_sigkill_then_resume_gives_byte_identical_files(tmp_path, data, point, reference):
    killed = subprocess.run(
        command(data, tmp_path / "runs"), env={**os.environ, FAULT_ENV: point}, capture_output=True, text=True
    )
    assert killed.returncode == -9, killed.stderr
    (run,) = run_dirs(tmp_path / "runs")
    assert not (run / "metrics.json").exists()
    resumed = runner.invoke(cli.app, ["run", "--resume", str(run), "--no-report"])
    assert resumed.exit_code == 0, resumed.output
    for name in OUTPUTS:
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name


def test_resume_trains_only_the_folds_the_killed_run_had_not_finished(tmp_path, data, monkeypatch):
    from forecasting.walkforward import WalkForwardModel

    killed = subprocess.run(
        command(data, tmp_path / "runs"), env={**os.environ, FAULT_ENV: "fold:1"}, capture_output=True, text=True
    )
    assert killed.returncode == -9, killed.stderr  # killed once fold 1 was saved
    (run,) = run_dirs(tmp_path / "runs")
    trained = []
    original = WalkForwardModel.train_fold

    def recording(self, fold, *args, **kwargs):
        trained.append(fold)
        return original(self, fold, *args, **kwargs)

    monkeypatch.setattr(WalkForwardModel, "train_fold", recording)
    resumed = runner.invoke(cli.app, ["run", "--resume", str(run), "--no-report", "--executor", "serial"])
    assert resumed.exit_code == 0, resumed.output
    n_folds = int(pd.read_parquet(run / "predictions.parquet")["fold"].max()) + 1
    assert n_folds > 3 and trained == list(range(2, n_folds))  # folds 0 and 1 came from their checkpoints


def test_sigint_while_writing_reports_then_resume_writes_them(tmp_path, data, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(research, "_make_reports", interrupted)
    args = ["run", *TINY, "--set", f"data.source=csv:{data}", "--runs-dir", str(tmp_path / "runs")]  # with reports
    broken = runner.invoke(cli.app, args)
    assert broken.exit_code == 130 and "lstm-trader run --resume" in broken.stderr
    (run,) = run_dirs(tmp_path / "runs")
    assert (run / "metrics.json").is_file() and not (run / "reports" / "index.html").exists()
    monkeypatch.undo()
    resumed = runner.invoke(cli.app, ["run", "--resume", str(run)])
    assert resumed.exit_code == 0, resumed.output
    assert "reports missing" in resumed.output and (run / "reports" / "index.html").is_file()
    again = runner.invoke(cli.app, ["run", "--resume", str(run)])
    assert again.exit_code == 2 and "already finished" in again.stderr


def test_resume_of_a_run_written_without_reports_writes_them_without_claiming_an_interrupt(tmp_path, reference):
    import shutil

    run = tmp_path / reference.name  # a copy of a run written with --no-report, as tune --evaluate writes its runs
    shutil.copytree(reference, run)
    resumed = runner.invoke(cli.app, ["run", "--resume", str(run)])
    assert resumed.exit_code == 0, resumed.output
    assert "interrupted" not in resumed.output and "none were written" in resumed.output
    assert (run / "reports" / "index.html").is_file()


def test_two_resumes_at_once_one_finishes_the_other_is_refused(tmp_path, data):
    killed = subprocess.run(
        command(data, tmp_path / "runs"), env={**os.environ, FAULT_ENV: "fold:0"}, capture_output=True
    )
    assert killed.returncode == -9
    (run,) = run_dirs(tmp_path / "runs")
    resume = [sys.executable, "-m", "lstm_trader.cli", "run", "--resume", str(run), "--no-report"]
    first = subprocess.Popen(resume, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = run / ".lock"
    deadline = time.monotonic() + 120
    while not (lock.is_file() and lock.read_text().strip() == str(first.pid)):  # the first holds the run dir
        assert time.monotonic() < deadline and first.poll() is None, "the first resume never took the lock"
        time.sleep(0.05)
    second = subprocess.run(resume, capture_output=True, text=True)
    assert second.returncode == 2
    assert second.stderr.startswith(f"error: run dir {run} is already in use (pid {first.pid})")
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert all((run / name).is_file() for name in OUTPUTS + ("metrics.json",))
