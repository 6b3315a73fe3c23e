"""Executors: tickers (and tuning workers) in this process, a local process pool or Ray give the same
results; a worker that dies fails the run with the tickers named (local) or is retried (Ray)."""

import optuna
import pandas as pd
import pytest

from backtests.config import load_config
from backtests.errors import BacktestError
from backtests.experiment import load_experiment_prices, predict_all
from forecasting.faults import FAULT_ENV, FAULT_ONCE_ENV
from tests.helpers import TINY_SETTINGS, make_bars, write_yahoo_csv

ray = pytest.importorskip("ray")  # the `ray` extra; installed with `dev`, so CI runs these

TINY = TINY_SETTINGS + ["execution.workers=2"]


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    folder = tmp_path_factory.mktemp("three")
    paths = []
    for index, name in enumerate(("AAA", "BBB", "CCC")):
        path = folder / f"{name}.csv"
        write_yahoo_csv(make_bars(320, seed=30 + index), path)
        paths.append(str(path))
    yield "csv:" + ",".join(paths)
    ray.shutdown()


@pytest.fixture(scope="module")
def serial_table(three):
    config = config_for(three, "serial")
    return predict_all(load_experiment_prices(config), config)


def config_for(source, executor, *extra):
    return load_config(None, [*TINY, f'data.source="{source}"', f'execution.executor="{executor}"', *extra])


def test_serial_local_and_ray_write_byte_identical_predictions(three, serial_table, tmp_path):
    written = {}
    for executor in ("serial", "local", "ray"):
        config = config_for(three, executor)
        table = serial_table if executor == "serial" else predict_all(load_experiment_prices(config), config)
        assert sorted(table["ticker"].unique()) == ["AAA", "BBB", "CCC"]
        path = tmp_path / f"{executor}.parquet"
        table.to_parquet(path, index=False)
        written[executor] = path.read_bytes()
    assert written["local"] == written["serial"] and written["ray"] == written["serial"]


def test_a_killed_local_worker_fails_the_run_naming_its_tickers(three, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "fold:1")  # every worker dies after its ticker's second fold
    config = config_for(three, "local")
    with pytest.raises(BacktestError) as info:
        predict_all(load_experiment_prices(config), config)
    assert "a worker process died while running" in info.value.message
    assert any(name in info.value.message for name in ("AAA", "BBB", "CCC"))


def test_a_six_trial_tune_on_ray_records_exactly_six_trials(tmp_path):
    from backtests.tune import tune

    data = tmp_path / "ACME.csv"
    write_yahoo_csv(make_bars(420, seed=11), data)
    space = "tune.space={units={low=2, high=6}, epochs={low=1, high=2}}"
    config = load_config(
        None, [*TINY, "walk_forward.retrain_every=30", space, f'data.source="csv:{data}"', 'execution.executor="ray"']
    )
    result = tune(
        config,
        load_experiment_prices(config),
        6,
        jobs=2,
        studies_root=tmp_path / "studies",
        runs_root=tmp_path / "runs",
    )
    states = result.trials["state"].tolist()
    assert states.count("COMPLETE") + states.count("PRUNED") == 6 and len(states) == 6
    study = optuna.load_study(
        study_name=config.name,
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "studies" / config.name / "journal.log"))
        ),
    )
    assert len(study.trials) == 6  # (the Ray instance stays up for the next tests)


@pytest.mark.slow  # about 45 s on 2 cores: a worker start-up per executor
def test_from_scratch_folds_run_as_tasks_of_their_own_with_the_same_result(three, tmp_path):
    # warm_start = false: every (ticker, fold) is a task; the table equals the serial walk-forward's
    scratch = ["walk_forward.warm_start=false", "walk_forward.retrain_every=80"]
    serial = config_for(three, "serial", *scratch)
    expected = predict_all(load_experiment_prices(serial), serial)
    for executor in ("local", "ray"):
        config = config_for(three, executor, *scratch)
        pd.testing.assert_frame_equal(predict_all(load_experiment_prices(config), config), expected, check_exact=True)


def test_a_global_models_from_scratch_folds_give_the_serial_table_on_the_pool_and_on_ray(three):
    # model.scope = global with warm_start = false: each fold of the one universe network is a task
    scratch = ['model.scope="global"', "walk_forward.warm_start=false", "walk_forward.retrain_every=60"]
    scratch += ['strategies=[{name="xs_rank", params={k=1}}]']  # (the default ones trade per-ticker forecasts)
    serial = config_for(three, "serial", *scratch)
    expected = predict_all(load_experiment_prices(serial), serial)
    assert expected["fold"].nunique() >= 2 and set(expected["ticker"]) == {"AAA", "BBB", "CCC"}
    for executor in ("local", "ray"):
        config = config_for(three, executor, *scratch)
        pd.testing.assert_frame_equal(predict_all(load_experiment_prices(config), config), expected, check_exact=True)


def test_a_killed_ray_worker_is_retried_and_no_ticker_is_missing(three, serial_table, tmp_path, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "fold:1")
    monkeypatch.setenv(FAULT_ONCE_ENV, str(tmp_path / "died-once"))  # the first worker there dies, its retry not
    ray.shutdown()  # a fresh local instance, so its workers see the fault variables (last in this file: the
    # other Ray tests share one instance)
    config = config_for(three, "ray")
    table = predict_all(load_experiment_prices(config), config)
    assert (tmp_path / "died-once").exists()
    pd.testing.assert_frame_equal(table, serial_table)
    ray.shutdown()
