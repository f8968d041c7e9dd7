"""Async fitting and prediction: same results as sync, progress per tree, a free event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any, cast

import numpy as np
import pytest
from forest_helpers import assert_same_forest, classification_data, regression_data

from aioforest import FitProgress, RandomForestClassifier, RandomForestRegressor

N_TREES = 12


@pytest.mark.asyncio
async def test_fit_async_gives_the_same_forest_and_reports_progress() -> None:
    X, y = classification_data(n=400, d=6, seed=31)
    sync = RandomForestClassifier(n_estimators=N_TREES, random_state=2, n_jobs=1).fit(X, y)
    seen: list[FitProgress] = []
    forest = RandomForestClassifier(n_estimators=N_TREES, random_state=2, n_jobs=2)
    assert await forest.fit_async(X, y, on_progress=seen.append) is forest
    assert_same_forest(forest, sync)
    assert [p.done for p in seen] == list(range(1, N_TREES + 1))
    np.testing.assert_array_equal(forest.predict_proba(X), sync.predict_proba(X))


@pytest.mark.asyncio
@pytest.mark.parametrize("n_jobs", [1, 2])
async def test_iter_fit_async_yields_one_progress_per_tree(n_jobs: int) -> None:
    X, y = classification_data(n=300, d=5, seed=32)
    forest = RandomForestClassifier(n_estimators=N_TREES, random_state=3, n_jobs=n_jobs)
    progress = [p async for p in forest.iter_fit_async(X, y)]
    assert len(progress) == N_TREES
    assert [p.done for p in progress] == list(range(1, N_TREES + 1))
    assert {p.total for p in progress} == {N_TREES}
    assert sorted(p.index for p in progress) == list(range(N_TREES))
    elapsed = [p.elapsed for p in progress]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 0
    assert all(p.trees_per_second > 0 for p in progress)
    assert progress[-1].eta == 0
    # The forest is complete once the iterator is exhausted.
    assert len(forest.trees_) == N_TREES
    sync = RandomForestClassifier(n_estimators=N_TREES, random_state=3, n_jobs=1).fit(X, y)
    assert_same_forest(forest, sync)


@pytest.mark.asyncio
async def test_the_event_loop_keeps_running_while_fit_async_runs() -> None:
    X, y = classification_data(n=1500, d=8, seed=33)
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    ticks_at_progress: list[int] = []
    forest = RandomForestClassifier(n_estimators=N_TREES, random_state=4, n_jobs=2)
    try:
        # The ticker has not run yet: it only gets the loop when fitting awaits.
        async for _ in forest.iter_fit_async(X, y):
            ticks_at_progress.append(ticks)
    finally:
        stop.set()
        await task
    assert ticks_at_progress[0] > 0, "the loop was blocked until the first tree was fitted"
    assert len(forest.trees_) == N_TREES


@pytest.mark.asyncio
async def test_fit_async_regressor_and_predict_async() -> None:
    X, y = regression_data(n=200, d=4, seed=34)
    sync = RandomForestRegressor(n_estimators=6, random_state=5, n_jobs=1).fit(X, y)
    forest = RandomForestRegressor(n_estimators=6, random_state=5, n_jobs=2)
    await forest.fit_async(X, y)
    assert_same_forest(forest, sync)
    big = np.random.default_rng(0).uniform(-2, 2, size=(5000, 4))  # > 2048: goes to the pool
    pred = await forest.predict_async(big)
    assert pred.tobytes() == sync.predict(big).tobytes()
    small = await forest.predict_async(X[:10])
    assert small.tobytes() == sync.predict(X[:10]).tobytes()


@pytest.mark.asyncio
async def test_predict_async_equals_predict_on_a_large_input() -> None:
    X, y = classification_data(n=300, d=6, seed=35)
    labels = np.array(["x", "y", "z"], dtype=object)[y]
    forest = RandomForestClassifier(n_estimators=8, random_state=6, n_jobs=2).fit(X, labels)
    big = np.random.default_rng(1).normal(size=(20000, 6))  # more than one 16384-row block
    proba = await forest.predict_proba_async(big)
    assert proba.tobytes() == forest.predict_proba(big).tobytes()
    pred = await forest.predict_async(big)
    assert pred.tolist() == forest.predict(big).tolist()
    # Twice in a row (the shared model is reused) and after a refit (it is replaced).
    again = await forest.predict_proba_async(big)
    assert again.tobytes() == proba.tobytes()
    forest.set_params(random_state=7).fit(X, labels)
    refit = await forest.predict_proba_async(big)
    assert refit.tobytes() == forest.predict_proba(big).tobytes()
    assert refit.tobytes() != proba.tobytes()


@pytest.mark.asyncio
@pytest.mark.parametrize("n_rows", [20000, 1000])  # the pool path, the thread path
async def test_predict_async_leaves_o_rows_and_o_model_work_off_the_event_loop(
        monkeypatch: pytest.MonkeyPatch, n_rows: int) -> None:
    import threading

    import aioforest.ensemble._forest as forest_module
    from aioforest.tree._model import TreeModel

    X, y = classification_data(n=300, d=6, seed=36)
    forest = RandomForestClassifier(n_estimators=6, random_state=1, n_jobs=2).fit(X, y)
    big = np.random.default_rng(2).normal(size=(n_rows, 6))
    where: dict[str, list[str]] = {}

    def spy(name: str, fn: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            where.setdefault(name, []).append(threading.current_thread().name)
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(TreeModel, "_encode", spy("encode", TreeModel._encode))
    monkeypatch.setattr(TreeModel, "_flat_forest", spy("flatten", TreeModel._flat_forest))
    monkeypatch.setattr(forest_module.np, "concatenate",
                        spy("concatenate", forest_module.np.concatenate))
    loop_thread = threading.current_thread().name
    proba = await forest.predict_proba_async(big)
    assert where["encode"] and where["flatten"]
    assert loop_thread not in {t for calls in where.values() for t in calls}, where
    assert proba.tobytes() == forest.predict_proba(big).tobytes()
    # a few rows of an already flattened model: on the loop (cheaper than a hand-off)
    where.clear()
    few = await forest.predict_proba_async(big[:3])
    assert where["encode"] == [loop_thread]
    assert few.tobytes() == forest.predict_proba(big[:3]).tobytes()


@pytest.mark.asyncio
async def test_closing_iter_fit_async_early_leaves_the_estimator_unchanged() -> None:
    X, y = classification_data(n=300, d=5, seed=36)
    forest = RandomForestClassifier(n_estimators=N_TREES, random_state=8, n_jobs=2)
    # iter_fit_async is an async generator; closing it early abandons the fit.
    agen = cast(AsyncGenerator[FitProgress, None], forest.iter_fit_async(X, y))
    first = await agen.__anext__()
    assert first.done == 1
    await agen.aclose()
    assert not hasattr(forest, "trees_")
    # Refitting a fitted forest and abandoning it keeps the old trees.
    await forest.fit_async(X, y)
    old = list(forest.trees_)
    forest.set_params(random_state=9)
    agen = cast(AsyncGenerator[FitProgress, None], forest.iter_fit_async(X, y))
    await agen.__anext__()
    await agen.aclose()
    assert forest.trees_ == old


@pytest.mark.asyncio
async def test_cancelling_fit_async_leaves_the_pool_usable() -> None:
    X, y = classification_data(n=300, d=5, seed=37)
    forest = RandomForestClassifier(n_estimators=N_TREES, random_state=10, n_jobs=2)
    task: asyncio.Task[Any] = asyncio.create_task(forest.fit_async(X, y))
    await asyncio.sleep(0)  # let it start and submit its work
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not hasattr(forest, "trees_")
    await forest.fit_async(X, y)
    sync = RandomForestClassifier(n_estimators=N_TREES, random_state=10, n_jobs=1).fit(X, y)
    assert_same_forest(forest, sync)
