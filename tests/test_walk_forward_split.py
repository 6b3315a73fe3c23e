import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting import ForecastingError, WalkForwardSplit


def folds(split, n):
    return [(list(tr), list(te)) for tr, te in split.split(n)]


def test_exact_fold_table_expanding():
    # first test sample = min_train - 1 + horizon + gap = 5 - 1 + 2 + 1 = 7
    split = WalkForwardSplit(min_train=5, retrain_every=3, horizon=2, gap=1)
    assert folds(split, 14) == [
        (list(range(0, 5)), [7, 8, 9]),
        (list(range(0, 8)), [10, 11, 12]),
        (list(range(0, 11)), [13]),
    ]
    assert split.n_splits(14) == 3


def test_exact_fold_table_rolling():
    split = WalkForwardSplit(min_train=5, retrain_every=3, horizon=2, gap=1, train_window=4)
    assert folds(split, 14) == [
        ([1, 2, 3, 4], [7, 8, 9]),
        ([4, 5, 6, 7], [10, 11, 12]),
        ([7, 8, 9, 10], [13]),
    ]


def test_horizon_one_no_gap_tests_the_next_sample():
    split = WalkForwardSplit(min_train=3, retrain_every=2)
    assert folds(split, 7) == [([0, 1, 2], [3, 4]), ([0, 1, 2, 3, 4], [5, 6])]


def test_too_short_series_has_no_folds():
    assert WalkForwardSplit(min_train=10, retrain_every=5).n_splits(10) == 0
    assert folds(WalkForwardSplit(min_train=10, retrain_every=5), 10) == []


def test_invalid_parameters_raise():
    with pytest.raises(ForecastingError):
        WalkForwardSplit(min_train=0, retrain_every=5)
    with pytest.raises(ForecastingError):
        WalkForwardSplit(min_train=5, retrain_every=5, gap=-1)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 400),
    min_train=st.integers(1, 100),
    retrain_every=st.integers(1, 50),
    horizon=st.integers(1, 10),
    gap=st.integers(0, 5),
    window=st.one_of(st.none(), st.integers(1, 80)),
)
def test_no_fold_trains_on_a_target_it_could_not_know(n, min_train, retrain_every, horizon, gap, window):
    split = WalkForwardSplit(min_train, retrain_every, horizon, gap, window)
    tested = []
    for train, test in split.split(n):
        # sample s's target is known at bar s + horizon; it must be known before the first test bar
        assert train[-1] + horizon + gap <= test[0]
        assert len(train) == (min(window, train[-1] + 1) if window else train[-1] + 1)
        assert np.all(np.diff(train) == 1) and np.all(np.diff(test) == 1)
        assert len(test) <= retrain_every
        tested.extend(test)
    first = min_train - 1 + horizon + gap
    assert tested == list(range(first, n))  # every sample after the first span is tested exactly once
