"""Fits and predictions on a real Dask cluster (``distributed.LocalCluster``, worker
processes with nannies): both modes give the local forest bit for bit, for any
partitioning; a worker killed mid-fit changes nothing; a cluster that cannot make
progress fails with a clear error instead of hanging."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import dask.array as da
import dask.dataframe as dd
import distributed
import numpy as np
import pandas as pd
import pytest
from forest_helpers import assert_same_forest

from aioforest import RandomForestClassifier, RandomForestRegressor
from aioforest.dask import DaskCluster, DaskFitError
from aioforest.ensemble import FitProgress

pytestmark = [
    # dask's own chatter (ports, graph sizes, shutdown) is not under test here
    pytest.mark.filterwarnings("ignore::UserWarning:distributed"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore:.*:pytest.PytestUnraisableExceptionWarning"),
    # few trees: some rows are in every bag, locally as on the cluster
    pytest.mark.filterwarnings("ignore:.*in-bag for every tree"),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=40) as lc:
        yield lc


@pytest.fixture(scope="module")
def client(cluster: Any) -> Iterator[Any]:
    with distributed.Client(cluster) as c:
        yield c


def _classification(n: int = 2400, d: int = 6, seed: int = 0) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[rng.random((n, d)) < 0.03] = np.nan  # missing values travel too
    y = (X[:, 0] + np.nan_to_num(X[:, 1]) * X[:, 2] > 0).astype(int) + (X[:, 3] > 1)
    return X, y


@pytest.mark.parametrize("mode", ["model", "data"])
@pytest.mark.parametrize("chunks", [700, 1300])
def test_a_dask_array_fit_is_the_local_fit(client: Any, mode: str, chunks: int) -> None:
    X, y = _classification()
    params = {"n_estimators": 6, "random_state": 3, "oob_score": True, "max_features": 3}
    local = RandomForestClassifier(**params).fit(X, y)
    progress: list[FitProgress] = []
    fitted = RandomForestClassifier(**params).fit(
        da.from_array(X, chunks=(chunks, 3)), da.from_array(y, chunks=chunks),
        cluster=DaskCluster(client, local_subtree_rows=200), mode=mode,
        on_progress=progress.append)
    assert_same_forest(local, fitted)
    assert fitted.oob_score_ == local.oob_score_
    assert not hasattr(fitted, "feature_names_in_")  # an unnamed array, as locally
    assert sorted(p.index for p in progress) == list(range(6))
    assert [p.done for p in progress] == list(range(1, 7))
    if mode == "data":
        assert fitted.dask_stats_["rounds"] > 0  # histograms summed, not one subtree each


def test_regression_in_both_modes_is_the_local_fit(client: Any) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1500, 5))
    y = X[:, 0] * 3.5 + np.sin(X[:, 1]) + rng.normal(scale=0.1, size=1500)
    local = RandomForestRegressor(5, random_state=4, oob_score=True).fit(X, y)
    for mode in ("model", "data"):
        fitted = RandomForestRegressor(5, random_state=4, oob_score=True).fit(
            X, y, cluster=DaskCluster(client, partition_rows=400, local_subtree_rows=100),
            mode=mode)  # numpy inputs, scattered in 4 partitions
        assert_same_forest(local, fitted)
        assert fitted.oob_score_ == local.oob_score_


def test_a_dask_dataframe_with_a_categorical_column(client: Any) -> None:
    rng = np.random.default_rng(2)
    n = 1200
    colour = rng.choice(["red", "green", "blue", "ochre"], size=n)
    df = pd.DataFrame({
        "size": rng.normal(size=n),
        "colour": pd.Categorical(colour),
        "shape": rng.choice(["round", "square"], size=n).astype(object),
        "count": rng.integers(0, 9, size=n),
    })
    target = pd.Series(np.where((colour == "red") | (df["size"] > 0.5), "yes", "no"))
    local = RandomForestClassifier(5, random_state=5).fit(df, target)
    ddf = dd.from_pandas(df, npartitions=3)
    dy = dd.from_pandas(target, npartitions=3)
    for mode in ("model", "data"):
        fitted = RandomForestClassifier(5, random_state=5).fit(
            ddf, dy, cluster=DaskCluster(client, local_subtree_rows=100), mode=mode)
        assert_same_forest(local, fitted)
        assert fitted.features_ == local.features_
        assert list(fitted.feature_names_in_) == ["size", "colour", "shape", "count"]
        assert list(fitted.classes_) == ["no", "yes"]
    got = fitted.predict(ddf)
    assert isinstance(got, da.Array)
    np.testing.assert_array_equal(got.compute(), local.predict(df))


def test_partitions_that_each_miss_categories_and_classes(client: Any) -> None:
    # sorted by colour, so that no partition sees every colour or every class: the schema
    # and the classes are still the local fit's (unions, sorted)
    rng = np.random.default_rng(3)
    n = 900
    colour = np.sort(rng.choice(["red", "green", "blue"], size=n))
    df = pd.DataFrame({"x": rng.normal(size=n), "colour": colour.astype(object)})
    target = pd.Series(np.where(colour == "red", "r", np.where(df["x"] > 0, "p", "n")))
    weights = rng.integers(0, 3, size=n).astype(float)
    local = RandomForestClassifier(4, random_state=1).fit(df, target, sample_weight=weights)
    fitted = RandomForestClassifier(4, random_state=1).fit(
        dd.from_pandas(df, npartitions=4, sort=False),
        dd.from_pandas(target, npartitions=4, sort=False),
        sample_weight=dd.from_pandas(pd.Series(weights), npartitions=4, sort=False),
        cluster=client, mode="model")
    assert_same_forest(local, fitted)
    assert fitted.features_ == local.features_
    assert list(fitted.classes_) == ["n", "p", "r"]
    with pytest.raises(ValueError, match="sample_weight"):
        RandomForestClassifier(2).fit(df, target, sample_weight=weights, cluster=client,
                                      mode="data")


def test_prediction_on_a_dask_array_is_computed_on_the_workers(client: Any) -> None:
    X, y = _classification(seed=4)
    model = RandomForestClassifier(5, random_state=0).fit(X, y)
    dX = da.from_array(X, chunks=(500, 6))
    labels, proba = model.predict(dX), model.predict_proba(dX)
    assert isinstance(labels, da.Array) and isinstance(proba, da.Array)
    assert proba.shape == (X.shape[0], model.n_classes_)
    got_labels, got_proba = client.compute([labels, proba], sync=True)
    np.testing.assert_array_equal(got_labels, model.predict(X))
    np.testing.assert_array_equal(got_proba, model.predict_proba(X))
    reg = RandomForestRegressor(3, random_state=0).fit(X, y.astype(float))
    np.testing.assert_array_equal(reg.predict(dX).compute(), reg.predict(X))


def _busiest_worker(client: Any) -> str:
    processing = client.processing()
    has_data = client.has_what()
    return max(processing, key=lambda w: (len(processing[w]), len(has_data.get(w, ()))))


@pytest.mark.parametrize("mode", ["model", "data"])
def test_killing_a_worker_mid_fit_changes_nothing(client: Any, mode: str) -> None:
    X, y = _classification(n=3000, seed=6)
    params = {"n_estimators": 6, "random_state": 8, "max_features": 2}
    local = RandomForestClassifier(**params).fit(X, y)
    killed: list[str] = []

    def kill_once(progress: FitProgress) -> None:
        # after the first tree (data mode: the first batch of two) one worker dies with
        # its partitions and tasks; its nanny restarts it, dask recomputes what it held
        if not killed:
            killed.append(_busiest_worker(client))
            client.restart_workers(killed, timeout=60)

    fitted = RandomForestClassifier(**params).fit(
        da.from_array(X, chunks=(500, 6)), da.from_array(y, chunks=500),
        cluster=DaskCluster(client, trees_per_batch=2, local_subtree_rows=150), mode=mode,
        on_progress=kill_once)
    assert killed
    assert_same_forest(local, fitted)


@pytest.mark.asyncio
async def test_an_asynchronous_client_and_iter_fit_async(cluster: Any) -> None:
    X, y = _classification(seed=7)
    local = RandomForestClassifier(4, random_state=9).fit(X, y)
    async with distributed.Client(cluster.scheduler_address, asynchronous=True) as aclient:
        forest = RandomForestClassifier(4, random_state=9)
        seen = [p.done async for p in forest.iter_fit_async(
            da.from_array(X, chunks=800), da.from_array(y, chunks=800), cluster=aclient,
            mode="data")]
        assert seen == [1, 2, 3, 4]
        assert_same_forest(local, forest)
        with pytest.raises(TypeError, match="asynchronous"):
            RandomForestClassifier(2).fit(X, y, cluster=aclient)


def test_a_cluster_without_workers_fails_after_the_timeout() -> None:
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None,
                                  silence_logs=40) as empty, distributed.Client(empty) as c:
        X, y = _classification(n=200)
        with pytest.raises(DaskFitError, match=r"no progress for 0\.5 s"):
            RandomForestClassifier(2).fit(da.from_array(X, chunks=100),
                                          da.from_array(y, chunks=100),
                                          cluster=DaskCluster(c, timeout=0.5))


def test_bad_input_names_the_partition(client: Any) -> None:
    X, y = _classification(n=900)
    X[700, 2] = np.inf
    with pytest.raises(ValueError, match=r"partition 2: X contains infinity at row 100"):
        RandomForestClassifier(2).fit(da.from_array(X, chunks=300),
                                      da.from_array(y, chunks=300), cluster=client)
    with pytest.raises(ValueError, match="mode must be one of"):
        RandomForestClassifier(2).fit(X, y, cluster=client, mode="shards")


def test_a_stopped_fit_leaves_the_estimator_unfitted(client: Any) -> None:
    from aioforest.dask import fit_on_dask
    from aioforest.tree import FitCancelled

    X, y = _classification(n=600)
    stop = threading.Event()
    forest = RandomForestClassifier(8, random_state=0)

    def stop_now(progress: FitProgress) -> None:
        stop.set()

    with pytest.raises(FitCancelled):
        fit_on_dask(forest, X, y, None, cluster=DaskCluster(client, trees_per_batch=2),
                    mode="data", on_progress=stop_now, stop=stop)
    assert not hasattr(forest, "trees_")


def test_the_dask_backend_is_not_imported_until_used() -> None:
    import subprocess
    import sys

    code = ("import sys, aioforest, numpy as np; "
            "aioforest.RandomForestClassifier(2).fit(np.eye(4), [0, 1, 0, 1]); "
            "print('dask' in sys.modules, 'distributed' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.split() == ["False", "False"]

