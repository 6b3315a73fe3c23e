import os

import pandas as pd
import pytest
from typer.testing import CliRunner

from forecasting import ForecastingError, walk_forward_predict
from forecasting.checkpoint import FoldCheckpoints
from forecasting.walkforward import Progress
from lstm_trader import cli
from lstm_trader.console import RichProgress
from tests.helpers import TINY, make_bars, run_dirs, write_yahoo_csv

runner = CliRunner()


class StopAfter(Progress):
    def __init__(self, folds: int) -> None:
        self.folds = folds

    def fold(self, ticker, done, total):
        if done == self.folds:
            raise KeyboardInterrupt


@pytest.mark.parametrize("warm_start, n_seeds", [(True, 1), (False, 1), (True, 2)])
def test_interrupted_walk_forward_resumes_to_the_identical_table(
    tmp_path, tiny_model, tiny_walk_forward, warm_start, n_seeds
):
    # dropout's random stream must resume too, for every member of a seed ensemble
    model = tiny_model.model_copy(update={"dropout": 0.3, "n_seeds": n_seeds})
    wf = tiny_walk_forward.model_copy(update={"warm_start": warm_start})
    bars = make_bars(300, seed=5)
    unbroken = walk_forward_predict(bars, model, wf, seed=3)
    store = FoldCheckpoints(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        walk_forward_predict(bars, model, wf, seed=3, progress=StopAfter(2), checkpoints=store)
    assert sorted(p.name for p in (tmp_path / "asset").glob("fold_*.parquet")) == [
        "fold_0000.parquet",
        "fold_0001.parquet",
    ]
    resumed = walk_forward_predict(bars, model, wf, seed=3, checkpoints=store)
    assert unbroken["fold"].max() >= 3
    pd.testing.assert_frame_equal(unbroken, resumed)


def test_checkpoints_refuse_other_settings(tmp_path, tiny_model, tiny_walk_forward):
    bars = make_bars(300, seed=5)
    store = FoldCheckpoints(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        walk_forward_predict(bars, tiny_model, tiny_walk_forward, seed=3, progress=StopAfter(1), checkpoints=store)
    with pytest.raises(ForecastingError, match="other data or settings"):
        walk_forward_predict(bars, tiny_model, tiny_walk_forward, seed=4, checkpoints=store)


def interrupt_after(monkeypatch, folds: int):
    """Make the CLI's progress bar raise Ctrl-C after `folds` folds; returns the original method."""
    original = RichProgress.fold

    def interrupt(self, ticker, done, total):
        original(self, ticker, done, total)
        if done == folds:
            raise KeyboardInterrupt

    monkeypatch.setattr(RichProgress, "fold", interrupt)
    return original


@pytest.mark.slow  # tests/test_resume.py kills a run in the walk-forward (SIGKILL) in the fast suite
def test_cli_run_resumes_after_an_interrupt(tmp_path, monkeypatch):
    data = tmp_path / "ACME.csv"
    write_yahoo_csv(make_bars(320, seed=9), data)
    args = ["run", *TINY, "--set", f"data.source=csv:{data}", "--no-report"]
    fresh = runner.invoke(app := cli.app, [*args, "--runs-dir", str(tmp_path / "fresh")])
    assert fresh.exit_code == 0, fresh.output

    original = interrupt_after(monkeypatch, 2)
    broken = runner.invoke(app, [*args, "--runs-dir", str(tmp_path / "runs")])
    assert broken.exit_code == 130
    (run,) = run_dirs((tmp_path / "runs"))
    assert f"lstm-trader run --resume {run}" in broken.stderr
    assert not (run / "predictions.parquet").exists() and (run / "checkpoints").is_dir()

    monkeypatch.setattr(RichProgress, "fold", original)
    resumed = runner.invoke(app, ["run", "--resume", str(run), "--no-report"])
    assert resumed.exit_code == 0, resumed.output
    (done,) = run_dirs((tmp_path / "fresh"))
    pd.testing.assert_frame_equal(
        pd.read_parquet(run / "predictions.parquet"), pd.read_parquet(done / "predictions.parquet")
    )
    pd.testing.assert_frame_equal(pd.read_csv(run / "comparison.csv"), pd.read_csv(done / "comparison.csv"))
    assert not (run / "checkpoints").exists()

    again = runner.invoke(app, ["run", "--resume", str(run), "--no-report"])
    assert again.exit_code == 2 and "already finished" in again.stderr


@pytest.mark.slow  # tests/test_resume.py kills a run at the same point (SIGKILL) in the fast suite
def test_a_run_interrupted_in_the_backtests_resumes_without_training(tmp_path, monkeypatch):
    from backtests import experiment

    data = tmp_path / "ACME.csv"
    write_yahoo_csv(make_bars(320, seed=9), data)
    args = ["run", *TINY, "--set", f"data.source=csv:{data}", "--no-report"]
    fresh = runner.invoke(cli.app, [*args, "--runs-dir", str(tmp_path / "fresh")])
    assert fresh.exit_code == 0, fresh.output

    original = experiment.backtest_all

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "backtest_all", interrupted)
    broken = runner.invoke(cli.app, [*args, "--runs-dir", str(tmp_path / "runs")])
    assert broken.exit_code == 130
    (run,) = run_dirs(tmp_path / "runs")
    assert (run / "predictions.parquet").is_file() and not (run / "metrics.json").exists()

    monkeypatch.setattr(experiment, "backtest_all", original)
    monkeypatch.setattr(experiment, "walk_forward_predict", lambda *a, **k: pytest.fail("retrained"))
    resumed = runner.invoke(cli.app, ["run", "--resume", str(run), "--no-report"])
    assert resumed.exit_code == 0, resumed.output
    (done,) = run_dirs(tmp_path / "fresh")
    for name in ("comparison.csv", "equity.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(run / name), pd.read_csv(done / name))
    again = runner.invoke(cli.app, ["run", "--resume", str(run), "--no-report"])
    assert again.exit_code == 2 and "already finished" in again.stderr


def test_a_second_process_on_the_same_run_dir_is_refused(tmp_path, monkeypatch):
    from backtests.rundir import FolderLock

    data = tmp_path / "ACME.csv"
    write_yahoo_csv(make_bars(320, seed=9), data)
    original = interrupt_after(monkeypatch, 1)
    broken = runner.invoke(
        cli.app, ["run", *TINY, "--set", f"data.source=csv:{data}", "--no-report", "--runs-dir", str(tmp_path / "runs")]
    )
    assert broken.exit_code == 130
    monkeypatch.setattr(RichProgress, "fold", original)
    (run,) = run_dirs(tmp_path / "runs")
    with FolderLock(run):  # as another `run --resume` of this dir would hold it
        second = runner.invoke(cli.app, ["run", "--resume", str(run), "--no-report"])
    assert second.exit_code == 2 and "already in use" in second.stderr and "pid" in second.stderr
    assert not (run / "predictions.parquet").exists()
    finished = runner.invoke(cli.app, ["run", "--resume", str(run), "--no-report"])  # the lock is gone with its holder
    assert finished.exit_code == 0, finished.output


def test_a_saved_ensemble_keeps_its_shrinkage_and_linear_skip(tmp_path):
    import numpy as np

    from forecasting import LSTMForecaster
    from forecasting.checkpoint import load_ensemble, save_ensemble

    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(160, 4, 2)), 0.001 + rng.normal(0, 0.01, 160)
    nets = [
        LSTMForecaster(n_layers=1, units=3, epochs=2, val_fraction=0.2, seed=s, shrink=True, linear_skip=True).fit(X, y)
        for s in (1, 2)
    ]
    save_ensemble(tmp_path / "m", nets)
    loaded = load_ensemble(tmp_path / "m", 2)
    for before, after in zip(nets, loaded):
        assert np.array_equal(after.shrink_, before.shrink_)
        assert after.model_.get_layer("linear_skip") is not None
        assert np.array_equal(after.predict_rows(X[:20]), before.predict_rows(X[:20]))


def test_every_key_is_the_one_content_hash_recipe_written_out_by_hand():
    import hashlib
    import json

    from backtests.provenance import bars_sha256
    from backtests.trials import config_hash
    from forecasting.checkpoint import fingerprint
    from tests.helpers import make_bars

    def rows(frame):
        return pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes()

    prices = {"B": make_bars(300, seed=2), "A": make_bars(280, seed=1)}
    settings = {"x": 1, "a": [1, 2]}
    by_hand = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    by_hand.update(rows(prices["A"]))
    assert fingerprint(prices["A"], settings) == by_hand.hexdigest()[:16]
    named = hashlib.sha256()
    for ticker in ("A", "B"):
        named.update(ticker.encode())
        named.update(rows(prices[ticker]))
    assert bars_sha256(prices) == named.hexdigest()[:16]
    assert config_hash({"b": 2, "a": 1.5}) == hashlib.sha256(b'{"a": 1.5, "b": 2}').hexdigest()[:16]


def test_a_folder_lock_refuses_a_second_taker_and_leaves_no_file_when_released(tmp_path):
    from backtests.errors import BacktestError
    from backtests.rundir import FolderLock

    first = FolderLock(tmp_path).__enter__()
    assert (tmp_path / ".lock").read_text() == str(os.getpid())
    with pytest.raises(BacktestError, match=r"is already in use \(pid \d+\)"):
        FolderLock(tmp_path).__enter__()
    first.__exit__(None, None, None)
    assert not (tmp_path / ".lock").exists()
    with FolderLock(tmp_path):  # free again
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_lock_file_removed_between_open_and_lock_is_not_taken_as_held(tmp_path, monkeypatch):
    import fcntl

    from backtests.rundir import FolderLock

    # a taker that opened the file just before its holder removed it must not hold the removed file: it
    # locks the file that is at the path then
    real_flock, removed = fcntl.flock, []

    def flock_after_removal(handle, op):
        if not removed and op & fcntl.LOCK_EX:
            removed.append(True)
            (tmp_path / ".lock").unlink()  # as a holder's release does, between our open and our lock
        return real_flock(handle, op)

    monkeypatch.setattr(fcntl, "flock", flock_after_removal)
    lock = FolderLock(tmp_path).__enter__()
    assert removed and (tmp_path / ".lock").is_file()
    assert os.fstat(lock.handle.fileno()).st_ino == os.stat(tmp_path / ".lock").st_ino
    lock.__exit__(None, None, None)


def test_a_lock_released_after_its_file_was_replaced_leaves_the_new_holders_file(tmp_path):
    from backtests.errors import BacktestError
    from backtests.rundir import FolderLock

    first = FolderLock(tmp_path).__enter__()
    (tmp_path / ".lock").unlink()  # removed by hand while held
    second = FolderLock(tmp_path).__enter__()  # takes a new file
    first.__exit__(None, None, None)
    assert (tmp_path / ".lock").read_text() == str(os.getpid())  # the second's file is still there
    with pytest.raises(BacktestError, match="is already in use"):
        FolderLock(tmp_path).__enter__()
    second.__exit__(None, None, None)
    assert not (tmp_path / ".lock").exists()
