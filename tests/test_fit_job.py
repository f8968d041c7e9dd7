"""The public fit protocol (``forest.fit_job`` -> ``FitJob``) used directly, and ``Bins``."""

from __future__ import annotations

import pickle
import warnings
from concurrent.futures import Future
from typing import Any

import numpy as np
import pytest
from forest_helpers import (
    assert_same_forest,
    assert_same_tree,
    classification_data,
    regression_data,
)

from aioforest import RandomForestClassifier, RandomForestRegressor
from aioforest.data import Binner, Bins, Dataset
from aioforest.ensemble import FitTask, trees_per_task
from aioforest.ensemble._local_fit import SubmitLoop
from aioforest.persistence import load_bytes, save_bytes
from aioforest.tree import TreeArrays


def tricky_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classification data with missing values and uneven sample weights."""
    X, y = classification_data(n=240, d=5, seed=seed)
    rng = np.random.default_rng(seed)
    X[rng.random(X.shape) < 0.05] = np.nan
    w = rng.integers(0, 4, y.size).astype(np.float64)
    return X, y, w


def test_plan_bin_tasks_install_by_hand_is_fit() -> None:
    X, y, w = tricky_data()
    params: dict[str, Any] = dict(n_estimators=7, random_state=3, n_jobs=1)
    expected = RandomForestClassifier(**params).fit(X, y, w)
    forest = RandomForestClassifier(**params)
    job = forest.fit_job(X, y, w)
    assert job.indices == tuple(range(7)) and not job.warm
    assert job.plan == expected.plan_ and job.n_outputs == 3 and job.n_features == 5
    bins, codes = job.bin()
    assert codes.dtype == np.uint8 and codes.shape == (5, 240)
    assert bins.equals(expected.bins_) and job.bins is bins
    tasks = job.tasks(n_runners=3)
    assert [i for t in tasks for i in t.indices] == list(job.indices)
    assert len(tasks) >= 3
    trees: dict[int, TreeArrays] = {}
    for task in reversed(tasks):  # any order
        trees |= task.run(bins, codes, job.y, job.sample_weight)
    job.install(trees)
    assert_same_forest(forest, expected)
    np.testing.assert_array_equal(forest.predict_proba(X), expected.predict_proba(X))


def test_tasks_split_between_two_runners_give_the_same_forest() -> None:
    X, y = regression_data(n=200, seed=4)
    expected = RandomForestRegressor(n_estimators=8, random_state=5, n_jobs=2).fit(X, y)
    forest = RandomForestRegressor(n_estimators=8, random_state=5)
    job = forest.fit_job(X, y)
    bins, codes = job.bin()
    tasks = job.tasks(per_task=1)
    assert [t.indices for t in tasks] == [(i,) for i in range(8)]
    # Runner B gets everything through pickling, as a remote worker would.
    remote = pickle.loads(pickle.dumps((bins, codes, job.y, tasks[1::2])))
    b_bins, b_codes, b_y, b_tasks = remote
    trees: dict[int, TreeArrays] = {}
    for task in b_tasks:
        trees |= task.run(b_bins, b_codes, b_y)
    for task in tasks[0::2]:
        trees |= task.run(bins, codes, job.y)
    job.install(trees)
    assert_same_forest(forest, expected)


def test_a_warm_start_job_reuses_the_bins_and_fits_only_new_trees() -> None:
    X, y = classification_data(n=150, seed=2)
    expected = RandomForestClassifier(n_estimators=6, random_state=1).fit(X, y)
    forest = RandomForestClassifier(n_estimators=3, random_state=1, warm_start=True).fit(X, y)
    old_bins = forest.bins_
    forest.set_params(n_estimators=6)
    job = forest.fit_job(X, y)
    assert job.warm and job.indices == (3, 4, 5)
    assert job.bins is old_bins  # known before binning
    with pytest.raises(ValueError, match="reuse"):
        job.use_bins(Binner(8).fit(X))
    bins, codes = job.bin()
    assert bins is old_bins
    trees: dict[int, TreeArrays] = {}
    for task in job.tasks():
        trees |= task.run(bins, codes, job.y)
    job.install(trees)
    assert_same_forest(forest, expected)


def test_the_warm_start_warning_comes_once_per_fit_from_fit_job() -> None:
    X, y = classification_data(n=90, seed=1)
    forest = RandomForestClassifier(n_estimators=2, random_state=0, warm_start=True).fit(X, y)
    before = list(forest.trees_)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        forest.fit(X, y)
        job = forest.fit_job(X, y)
    messages = [str(w.message) for w in caught]
    assert messages == ["warm_start fit without a larger n_estimators fits no new tree"] * 2
    assert caught[0].filename == __file__  # points at the caller of fit
    assert job.indices == () and job.tasks() == []
    assert forest.trees_ == before


@pytest.mark.asyncio
async def test_the_async_fit_warns_once_too() -> None:
    X, y = classification_data(n=90, seed=1)
    forest = RandomForestClassifier(n_estimators=2, random_state=0, warm_start=True).fit(X, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        progress = [p async for p in forest.iter_fit_async(X, y)]
    assert progress == [] and len(caught) == 1
    assert "fits no new tree" in str(caught[0].message)


def test_install_needs_every_tree_and_bins_come_first() -> None:
    X, y = classification_data(n=60)
    job = RandomForestClassifier(n_estimators=3, random_state=0).fit_job(X, y)
    with pytest.raises(RuntimeError, match="not binned"):
        _ = job.bins
    bins, codes = job.bin()
    with pytest.raises(RuntimeError, match="dropped"):
        _ = job.X  # binned: the float copy is gone (no out-of-bag scoring)
    (task,) = job.tasks()
    trees = task.run(bins, codes, job.y)
    del trees[1]
    with pytest.raises(RuntimeError, match=r"trees \[1\] were not fitted"):
        job.install(trees)
    with pytest.raises(ValueError, match="per_task"):
        job.tasks(per_task=0)


def test_an_oob_job_keeps_its_rows_and_scores_on_install() -> None:
    X, y = classification_data(n=120, seed=6)
    params: dict[str, Any] = dict(n_estimators=30, oob_score=True, random_state=2)
    expected = RandomForestClassifier(**params).fit(X, y)
    forest = RandomForestClassifier(**params)
    job = forest.fit_job(X, y)
    assert job.oob_score
    bins, codes = job.bin()
    np.testing.assert_array_equal(job.X, X)
    trees: dict[int, TreeArrays] = {}
    for task in job.tasks(n_runners=2):
        trees |= task.run(bins, codes, job.y)
    job.install(trees)
    np.testing.assert_array_equal(forest.oob_decision_function_, expected.oob_decision_function_)
    assert forest.oob_score_ == expected.oob_score_


def _mixed_dataset(n: int = 300, seed: int = 2) -> tuple[Dataset, np.ndarray]:
    """Five numeric columns with missing values, then two categorical ones."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, 7), dtype=object)
    numeric = rng.normal(size=(n, 5)).round(1)  # ties, and few distinct values in some
    numeric[rng.random(numeric.shape) < 0.05] = np.nan
    X[:, :5] = numeric
    X[:, 5] = np.array(list("abc"))[rng.integers(0, 3, n)]
    X[:, 6] = np.array(list("xyzw"))[rng.integers(0, 4, n)]
    y = rng.integers(0, 3, n)
    return Dataset.from_arrays(X, y, categorical=[5, 6]), rng.integers(0, 3, n).astype(float)


@pytest.mark.parametrize("n_threads", [1, 2, 3, 7, 20])
def test_binning_slices_of_features_in_threads_gives_the_bins_and_codes_of_bin(
    n_threads: int,
) -> None:
    ds, w = _mixed_dataset()
    whole = RandomForestClassifier(n_estimators=3, max_bins=8, random_state=1)
    bins, codes = whole.fit_job(ds, sample_weight=w).bin()  # zero weights shape no bins
    job = RandomForestClassifier(n_estimators=3, max_bins=8, random_state=1).fit_job(
        ds, sample_weight=w
    )
    out = np.full((300, 7), 255, dtype=np.uint8)
    got = job.bin_into(out, n_threads)
    assert got.equals(bins) and job.bins is got and bool(got.is_categorical[5:].all())
    np.testing.assert_array_equal(out, codes.T)
    with pytest.raises(RuntimeError, match="dropped"):
        job.X  # noqa: B018 - released once binned, as after bin()
    with pytest.raises(ValueError, match="shape"):
        RandomForestClassifier().fit_job(ds).bin_into(np.zeros((300, 6), np.uint8))


def test_a_warm_start_bins_into_threads_with_the_fitted_bins() -> None:
    ds, _ = _mixed_dataset()
    forest = RandomForestClassifier(n_estimators=2, warm_start=True, random_state=4).fit(ds)
    forest.set_params(n_estimators=5)
    job = forest.fit_job(ds)
    _, codes = forest.fit_job(ds).bin()
    out = np.zeros((300, 7), dtype=np.uint8)
    assert job.bin_into(out, 3) is forest.bins_
    np.testing.assert_array_equal(out, codes.T)


def test_default_tasks_differ_by_one_tree_bigger_first_in_whole_rounds() -> None:
    X, y = classification_data(n=100_000 // 8, d=3, seed=1)
    for n_trees, runners in [(50, 2), (7, 3), (3, 4), (64, 5), (1, 1), (41, 1)]:
        job = RandomForestClassifier(n_estimators=n_trees, random_state=0).fit_job(X, y)
        tasks = job.tasks(n_runners=runners)
        sizes = [len(t.indices) for t in tasks]
        assert [i for t in tasks for i in t.indices] == list(range(n_trees))
        assert sizes == sorted(sizes, reverse=True) and sizes[0] - sizes[-1] <= 1
        assert sizes[0] <= trees_per_task(n_trees, job.plan.n_draws, runners)
        if len(tasks) > runners:
            assert len(tasks) % runners == 0 or len(tasks) == n_trees
        else:
            assert len(tasks) == min(runners, n_trees)


def test_bins_learned_elsewhere_are_taken_with_use_bins() -> None:
    X, y = classification_data(n=100, seed=3)
    expected = RandomForestClassifier(n_estimators=4, max_bins=16, random_state=0).fit(X, y)
    forest = RandomForestClassifier(n_estimators=4, max_bins=16, random_state=0)
    job = forest.fit_job(X, y)
    bins = job.binner.fit(job.X, job.is_categorical, job.n_categories, job.sample_weight)
    codes = bins.transform(job.X)
    with pytest.raises(ValueError, match="features"):
        job.use_bins(Binner().fit(X[:, :2]))
    job.use_bins(bins)
    job.install(FitTask(job.plan, job.indices).run(bins, codes, job.y))
    assert_same_forest(forest, expected)


# --- Bins --------------------------------------------------------------------------------
def test_bins_know_their_features_without_any_codes() -> None:
    X = np.column_stack([np.arange(10.0), np.r_[np.zeros(5), np.ones(5)], np.full(10, np.nan)])
    bins = Binner().fit(X, is_categorical=[False, True, False], n_categories=[0, 2, 0])
    assert bins.n_features == 3
    np.testing.assert_array_equal(bins.n_bins, [10, 2, 1])
    np.testing.assert_array_equal(bins.missing_bin, bins.n_bins)
    codes = bins.transform(np.array([[3.6, 1.0, np.nan], [np.nan, 7.0, 0.0]]))
    assert codes.dtype == np.uint8 and codes.shape == (3, 2)
    np.testing.assert_array_equal(codes, [[4, 10], [1, 2], [1, 0]])  # unseen category: missing
    empty = bins.transform(np.empty((0, 3)))
    assert empty.shape == (3, 0)
    part = bins.select([2, 0])
    assert part.n_features == 2 and part.edges[1] is bins.edges[0]
    with pytest.raises(ValueError, match="one n_bins"):
        Bins(bins.n_bins, bins.is_categorical[:2], bins.edges)
    with pytest.raises(ValueError, match="expected"):
        bins.transform(np.zeros((2, 4)))


def test_bins_round_trip_and_predict_on_their_own() -> None:
    X, y, w = tricky_data(seed=5)
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y, w)
    bins = forest.bins_
    again = pickle.loads(pickle.dumps(bins))
    assert again.equals(bins) and again is not bins
    loaded = load_bytes(save_bytes(forest))
    assert loaded.bins_.equals(bins) and loaded.bins_.n_features == 5
    np.testing.assert_array_equal(loaded.predict_proba(X), forest.predict_proba(X))
    # Nothing but the trees and a Bins rebuilt from plain arrays: the same leaves.
    from aioforest.tree._predict import FlatForest

    rebuilt = Bins(
        np.array(bins.n_bins), np.array(bins.is_categorical), tuple(e.copy() for e in bins.edges)
    )
    flat = FlatForest(forest.trees_, rebuilt)
    np.testing.assert_array_equal(flat.mean_value(X), forest.predict_proba(X))


# --- the one submit loop -----------------------------------------------------------------
def test_the_submit_loop_keeps_a_bounded_number_in_flight_and_reads_in_tree_order() -> None:
    plan = RandomForestClassifier(n_estimators=6).fit_job(*classification_data(n=30)).plan
    tasks = [FitTask(plan, (i,)) for i in range(6)]
    submitted: list[Future[list[dict[str, np.ndarray]]]] = []

    def submit(task: FitTask) -> Future[list[dict[str, np.ndarray]]]:
        fut: Future[list[dict[str, np.ndarray]]] = Future()
        submitted.append(fut)
        return fut

    X, y = classification_data(n=30)
    job = RandomForestClassifier(n_estimators=6, random_state=0).fit_job(X, y)
    bins, codes = job.bin()
    loop = SubmitLoop(tasks, submit, 2, bins)
    assert len(loop.pending) == 2
    fitted = FitTask(job.plan, job.indices).run(bins, codes, job.y)
    # What a pool task sends back: the arrays a tree keeps; the loop rebuilds the rest.
    arrays = {i: t.stored_arrays() for i, t in fitted.items()}
    for fut, task in list(loop.pending.items()):
        fut.set_result([arrays[task.indices[0]]])
    got = list(loop.collect(list(loop.pending)[::-1]))
    assert [i for i, _ in got] == [0, 1] and len(loop.pending) == 2 and len(submitted) == 4
    for i, tree in got:
        assert_same_tree(tree, fitted[i])
    unfinished = loop.cancel()
    assert len(unfinished) == 2 and all(f.cancelled() for f in unfinished)


def test_binning_a_job_twice_says_its_matrix_was_dropped() -> None:
    ds, _ = _mixed_dataset()
    job = RandomForestClassifier(n_estimators=2).fit_job(ds)
    job.bin_into(np.zeros((300, 7), dtype=np.uint8))
    with pytest.raises(RuntimeError, match="dropped"):
        job.bin_into(np.zeros((300, 7), dtype=np.uint8))
