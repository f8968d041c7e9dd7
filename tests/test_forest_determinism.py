"""Determinism: a fixed random_state gives bit-identical trees however the forest is fitted.

Tree ``i`` depends only on (data, parameters, random_state, i), so neither ``n_jobs``, nor the
sync/async entry point, nor warm starts, nor the fit-to-fit state may change a single bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from forest_helpers import (
    assert_same_forest,
    assert_same_tree,
    classification_data,
    regression_data,
    same_forest,
    same_tree,
    split_features,
)

from aioforest import FitProgress, RandomForestClassifier, RandomForestRegressor

N_TREES = 8


def _data(kind: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[Any], type[Any]]:
    if kind == "classifier":
        X, y = classification_data(n=300, d=6, seed=1)
        return X, y, RandomForestClassifier
    # Regression trees are grown one at a time (float sums): keep them small.
    Xr, yr = regression_data(n=160, d=5, seed=1)
    return Xr, yr, RandomForestRegressor


def _weights(n: int) -> npt.NDArray[np.float64]:
    # Non-integer weights take the one-tree-at-a-time path; some zeros drop rows entirely.
    w = np.random.default_rng(11).uniform(0.2, 3.0, n)
    w[::17] = 0.0
    return w


KINDS = ["classifier", "regressor"]


@pytest.mark.parametrize("kind", KINDS)
def test_two_separate_fits_give_identical_trees(kind: str) -> None:
    X, y, cls = _data(kind)
    a = cls(n_estimators=N_TREES, random_state=5, n_jobs=1).fit(X, y)
    b = cls(n_estimators=N_TREES, random_state=5, n_jobs=1).fit(X, y)
    assert_same_forest(a, b)
    # Refitting the same estimator object gives the same trees again.
    trees = list(a.trees_)
    a.fit(X, y)
    assert all(same_tree(t, u) for t, u in zip(trees, a.trees_, strict=True))
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


@pytest.mark.parametrize("kind", KINDS)
def test_different_random_state_gives_a_different_forest(kind: str) -> None:
    X, y, cls = _data(kind)
    a = cls(n_estimators=N_TREES, random_state=5, n_jobs=1).fit(X, y)
    b = cls(n_estimators=N_TREES, random_state=6, n_jobs=1).fit(X, y)
    assert not same_forest(a, b)
    # Not just the order: no tree of one forest appears in the other.
    for t in a.trees_:
        assert not any(same_tree(t, u) for u in b.trees_)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("kind", KINDS)
def test_n_jobs_does_not_change_the_forest(kind: str, weighted: bool) -> None:
    X, y, cls = _data(kind)
    sw = _weights(len(y)) if weighted else None
    one = cls(n_estimators=N_TREES, random_state=3, n_jobs=1).fit(X, y, sample_weight=sw)
    two = cls(n_estimators=N_TREES, random_state=3, n_jobs=2).fit(X, y, sample_weight=sw)
    assert_same_forest(one, two)
    if weighted:
        unweighted = cls(n_estimators=N_TREES, random_state=3, n_jobs=1).fit(X, y)
        assert not same_forest(one, unweighted)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("kind", KINDS)
def test_warm_start_five_then_ten_equals_ten_at_once(kind: str, weighted: bool) -> None:
    X, y, cls = _data(kind)
    sw = _weights(len(y)) if weighted else None
    at_once = cls(n_estimators=N_TREES, random_state=4, n_jobs=1).fit(X, y, sample_weight=sw)
    warm = cls(n_estimators=5, random_state=4, n_jobs=1, warm_start=True)
    warm.fit(X, y, sample_weight=sw)
    first_five = list(warm.trees_)
    warm.set_params(n_estimators=N_TREES)
    warm.fit(X, y, sample_weight=sw)
    assert len(warm.trees_) == N_TREES
    assert warm.trees_[:5] == first_five  # the first trees are kept, not refitted
    assert_same_forest(warm, at_once)


def test_warm_start_in_the_pool_matches_and_rejects_changes() -> None:
    X, y, cls = _data("classifier")
    at_once = cls(n_estimators=N_TREES, random_state=4, n_jobs=1).fit(X, y)
    warm = cls(n_estimators=4, random_state=4, n_jobs=2, warm_start=True).fit(X, y)
    warm.set_params(n_estimators=N_TREES).fit(X, y)
    assert_same_forest(warm, at_once)
    with pytest.warns(UserWarning, match="fits no new tree"):
        warm.fit(X, y)
    assert_same_forest(warm, at_once)
    with pytest.raises(ValueError, match="n_estimators"):
        warm.set_params(n_estimators=3).fit(X, y)
    with pytest.raises(ValueError, match="warm_start"):
        warm.set_params(n_estimators=12, max_depth=3).fit(X, y)


@pytest.mark.asyncio
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("kind", KINDS)
async def test_fit_async_gives_the_same_forest_as_fit(kind: str, weighted: bool) -> None:
    X, y, cls = _data(kind)
    sw = _weights(len(y)) if weighted else None
    sync = cls(n_estimators=N_TREES, random_state=8, n_jobs=1).fit(X, y, sample_weight=sw)
    forest = cls(n_estimators=N_TREES, random_state=8, n_jobs=2)
    result = await forest.fit_async(X, y, sample_weight=sw)
    assert result is forest
    assert_same_forest(forest, sync)


@pytest.mark.asyncio
async def test_iter_fit_async_and_async_warm_start_give_the_same_forest() -> None:
    X, y, cls = _data("classifier")
    sync = cls(n_estimators=N_TREES, random_state=9, n_jobs=1).fit(X, y)
    forest = cls(n_estimators=N_TREES, random_state=9, n_jobs=1)
    progress = [p async for p in forest.iter_fit_async(X, y)]
    assert all(isinstance(p, FitProgress) for p in progress)
    assert sorted(p.index for p in progress) == list(range(N_TREES))
    assert_same_forest(forest, sync)
    warm = cls(n_estimators=6, random_state=9, n_jobs=2, warm_start=True)
    await warm.fit_async(X, y)
    warm.set_params(n_estimators=N_TREES)
    more = [p async for p in warm.iter_fit_async(X, y)]
    assert sorted(p.index for p in more) == list(range(6, N_TREES))
    assert [p.total for p in more] == [N_TREES - 6] * (N_TREES - 6)
    assert_same_forest(warm, sync)


def test_integer_weights_equal_repeated_rows_for_an_unbagged_tree_forest() -> None:
    """With bootstrap off, weight 2 is the same as the row appearing twice."""
    X, y = classification_data(n=120, d=4, seed=2)
    w = np.random.default_rng(0).integers(0, 3, len(y)).astype(np.float64)
    kw: dict[str, Any] = {
        "n_estimators": 3, "bootstrap": False, "max_features": None, "random_state": 0,
        "n_jobs": 1,
    }
    weighted = RandomForestClassifier(**kw).fit(X, y, sample_weight=w)
    rows = np.repeat(np.arange(len(y)), w.astype(np.int64))
    repeated = RandomForestClassifier(**kw).fit(X[rows], y[rows])
    for a, b in zip(weighted.trees_, repeated.trees_, strict=True):
        np.testing.assert_array_equal(a.feature, b.feature)
        np.testing.assert_array_equal(a.threshold, b.threshold)
        np.testing.assert_array_equal(a.value, b.value)
        np.testing.assert_array_equal(a.weighted_n_node_samples, b.weighted_n_node_samples)
    np.testing.assert_array_equal(weighted.predict_proba(X), repeated.predict_proba(X))


@pytest.mark.parametrize("kind", KINDS)
def test_feature_subspace_is_deterministic_and_limits_each_tree(kind: str) -> None:
    X, y, cls = _data(kind)
    d = X.shape[1]
    k = 2
    kw: dict[str, Any] = {
        "n_estimators": N_TREES, "feature_subspace": k, "max_features": None,
        "random_state": 12,
    }
    one = cls(n_jobs=1, **kw).fit(X, y)
    two = cls(n_jobs=2, **kw).fit(X, y)
    assert_same_forest(one, two)
    used = [split_features(t) for t in one.trees_]
    # Each fully grown tree sees exactly its k features (all of them carry signal) ...
    assert all(len(u) <= k for u in used), used
    assert max(len(u) for u in used) == k
    # ... and the subsets vary between trees.
    assert len({frozenset(u) for u in used}) > 1
    assert set().union(*used) <= set(range(d))
    # The subspace draw does not disturb the bootstrap draws: a forest whose subspace is the
    # whole feature set is the plain forest.
    full = cls(n_estimators=N_TREES, feature_subspace=d, random_state=12, n_jobs=1).fit(X, y)
    plain = cls(n_estimators=N_TREES, random_state=12, n_jobs=1).fit(X, y)
    assert_same_forest(full, plain)


def test_feature_subspace_members_predict_with_their_features_only() -> None:
    X, y, cls = _data("classifier")
    forest = cls(
        n_estimators=6, feature_subspace=3, max_features=None, random_state=1, n_jobs=1
    ).fit(X, y)
    for est in forest.estimators_:
        used = sorted(split_features(est.tree_))
        unused = [f for f in range(X.shape[1]) if f not in used]
        scrambled = X.copy()
        scrambled[:, unused] = np.random.default_rng(0).normal(size=(len(X), len(unused)))
        np.testing.assert_array_equal(est.predict_proba(scrambled), est.predict_proba(X))


@pytest.mark.parametrize(
    "params",
    [{}, {"criterion": "entropy"}, {"class_weight": "balanced"}],
    ids=["gini", "entropy", "class_weight"],
)
def test_a_tree_does_not_depend_on_the_trees_sharing_its_pass(params: dict[str, Any]) -> None:
    # A task's trees grow together in one vectorised pass, and a local fit, a pool fit and
    # a cluster fit cut tasks differently. Ten classes make channel sums long enough that
    # NumPy's summation order (pairwise or sequential, chosen from the array's layout) would
    # change last bits: this pinned down a bug where entropy and class_weight trees did.
    from sklearn.datasets import load_digits

    from aioforest.tree._plan import fit_trees

    X, y = load_digits(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=12, random_state=0, n_jobs=1, **params)
    forest.fit(X, y)  # one pass for all twelve trees
    job = forest.fit_job(X, y)
    bins, codes = job.bin()
    for i in range(12):
        (alone,) = fit_trees(job.plan, bins, codes, job.y, job.sample_weight, [i])
        assert_same_tree(forest.trees_[i], alone, where=f"tree {i} grown alone: ")
    pairs = [t for i in range(0, 12, 3)
             for t in fit_trees(job.plan, bins, codes, job.y, job.sample_weight,
                                [i, i + 1, i + 2])]
    for i, tree in enumerate(pairs):
        assert_same_tree(forest.trees_[i], tree, where=f"tree {i} grown in threes: ")


@pytest.mark.parametrize("params", [{}, {"criterion": "entropy"}], ids=["gini", "entropy"])
def test_both_histogram_paths_give_the_same_trees(
    params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A level's histograms are built dense (bincount) or sorted, chosen per pass from its
    # size, so the trees sharing a pass sway the choice; ten classes send gini's sorted
    # levels through the incremental scan. The scores must not depend on the path.
    from sklearn.datasets import load_digits

    import aioforest.tree._rows as rows

    X, y = load_digits(return_X_y=True)
    forests = []
    for dense_cells in (0, 1 << 30):  # never dense, always dense
        monkeypatch.setattr(rows, "DENSE_CELLS_PER_ELEMENT", dense_cells)
        forests.append(
            RandomForestClassifier(n_estimators=6, random_state=3, n_jobs=1, **params).fit(X, y)
        )
    for i, (a, b) in enumerate(zip(forests[0].trees_, forests[1].trees_, strict=True)):
        assert_same_tree(a, b, where=f"tree {i}, sorted against dense histograms: ")


@pytest.mark.parametrize("incremental", [False, True], ids=["per-class", "incremental"])
def test_both_histogram_paths_agree_on_a_near_tie(
    incremental: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Four classes, one feature of three values, large integer weights: the two thresholds
    # score within float32's resolution, ranked one way in float32 and the other in
    # float64. Dense levels must not score in float32 while sorted ones take the
    # (float64) incremental gini scan, used from INCREMENTAL_MIN_CLASSES classes on.
    import aioforest.tree._plan as plan
    import aioforest.tree._rows as rows
    import aioforest.tree._splitter as splitter

    if incremental:
        monkeypatch.setattr(splitter, "INCREMENTAL_MIN_CLASSES", 4)
        monkeypatch.setattr(plan, "INCREMENTAL_MIN_CLASSES", 4)

    counts = np.array([[971485, 787857, 614449, 195034], [247161, 898689, 315526, 321637],
                       [336869, 644275, 559782, 1009347]])
    X = np.repeat(np.arange(3.0), 4)[:, None]
    y = np.tile(np.arange(4), 3)
    w = counts.reshape(-1).astype(np.float64)
    trees = []
    for dense_cells in (0, 1 << 30):
        monkeypatch.setattr(rows, "DENSE_CELLS_PER_ELEMENT", dense_cells)
        forest = RandomForestClassifier(
            n_estimators=1, bootstrap=False, max_features=None, max_depth=1, random_state=0,
            n_jobs=1,
        )
        trees.append(forest.fit(X, y, sample_weight=w).trees_[0])
    assert_same_tree(trees[0], trees[1], where="sorted against dense histograms: ")


def test_large_integer_weights_do_not_tie_a_tree_to_its_pass() -> None:
    # One feature of three values, two classes, weights as counts: its two thresholds score
    # within float32's resolution of each other, and float32 and float64 rank them
    # differently. A tree's total weight is below 2**24, twelve trees' together are not:
    # float32 scoring must be the job's choice, not the pass's.
    from aioforest.tree._plan import fit_trees

    counts = np.array([[2123753, 1349821], [690753, 442504], [1457378, 941535]])
    # each count spread over three rows, so that no weight reaches 2**20
    X = np.repeat(np.arange(3.0), 6)[:, None]
    y = np.tile(np.repeat([0, 1], 3), 3)
    w = np.repeat(counts.reshape(-1) // 3, 3).astype(np.float64)
    w[2::3] += counts.reshape(-1) % 3
    assert w.max() < 2**20 and w.sum() == counts.sum()
    forest = RandomForestClassifier(
        n_estimators=12, bootstrap=False, max_features=None, max_depth=1, random_state=0,
        n_jobs=1,
    )
    job = forest.fit_job(X, y, w)
    bins, codes = job.bin()
    together = fit_trees(job.plan, bins, codes, job.y, job.sample_weight, list(range(12)))
    for i in range(12):
        (alone,) = fit_trees(job.plan, bins, codes, job.y, job.sample_weight, [i])
        assert_same_tree(together[i], alone, where=f"tree {i} grown alone: ")
