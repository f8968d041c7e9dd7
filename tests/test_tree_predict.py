"""Vectorised forest prediction (``FlatForest``) against a plain per-row tree walk.

The reference walks each tree row by row on the raw feature values and float thresholds:
``x <= threshold`` at numeric splits, membership in the left category set at categorical
ones, ``missing_left`` for missing values (and for category codes that are not categories).
Leaves must match exactly, and ``mean_value`` bit for bit, whatever the block size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from aioforest import Dataset, RandomForestClassifier, RandomForestRegressor
from aioforest.data import Binner, Bins
from aioforest.tree import TreeArrays, _predict
from aioforest.tree._predict import FlatForest, _GridBinner

F64 = npt.NDArray[np.float64]

# (rows per block, pairs per descent, fewest rows for the top-level lookup): the defaults,
# tiny blocks of one tree each with the top-level lookup always on, and every tree at once
# without it.
CONFIGS = {
    "default": (_predict.BLOCK_ROWS, _predict._GROUP_PAIRS, _predict._TOP_MIN_ROWS),
    "tiny-blocks": (7, 1, 1),
    "all-trees": (64, 10**9, 10**9),
}


@pytest.fixture(params=list(CONFIGS))
def config(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    block, pairs, top = CONFIGS[request.param]
    monkeypatch.setattr(_predict, "BLOCK_ROWS", block)
    monkeypatch.setattr(_predict, "_GROUP_PAIRS", pairs)
    monkeypatch.setattr(_predict, "_TOP_MIN_ROWS", top)
    yield request.param


# --- the reference ---------------------------------------------------------------------------
def reference_leaves(trees: list[TreeArrays], bins: Bins, X: F64) -> npt.NDArray[np.int64]:
    """Global leaf index per (row, tree), one row at a time."""
    out = np.empty((X.shape[0], len(trees)), dtype=np.int64)
    root = 0
    for t, tree in enumerate(trees):
        feature = tree.feature.tolist()
        threshold = tree.threshold.tolist()
        missing_left = tree.missing_left.tolist()
        left, right = tree.left.tolist(), tree.right.tolist()
        cat_index = tree.cat_index.tolist()
        for i, row in enumerate(X.tolist()):
            node = 0
            while feature[node] >= 0:
                f = feature[node]
                v = row[f]
                if cat_index[node] >= 0:
                    k = int(bins.n_bins[f])
                    if math.isnan(v) or not (0 <= v < k) or v != math.floor(v):
                        go_left = missing_left[node]  # missing or not a known category
                    else:
                        go_left = bool(tree.cat_left[cat_index[node], int(v)])
                elif math.isnan(v):
                    go_left = missing_left[node]
                else:
                    go_left = v <= threshold[node]
                node = left[node] if go_left else right[node]
            out[i, t] = root + node
        root += tree.node_count
    return out


def reference_mean(flat: FlatForest, leaves: npt.NDArray[np.int64]) -> F64:
    """The mean leaf value over trees, summed as ``value[leaves].sum(axis=1)`` does."""
    assert leaves.shape[0] >= 2  # numpy sums a lone row's single output in another order
    out: F64 = flat.value[leaves].sum(axis=1) / flat.n_trees
    return out


def assert_bits_equal(a: F64, b: F64) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype
    assert a.tobytes() == b.tobytes(), "results differ in their bits"


# --- data --------------------------------------------------------------------------------------
def mixed_rows(rng: np.random.Generator, n: int, holes: float) -> npt.NDArray[np.object_]:
    """Two categorical columns (one with many categories) and three numeric ones, of which
    one has few distinct values; a fraction ``holes`` of the cells is missing."""
    X = np.empty((n, 5), dtype=object)
    X[:, 0] = np.array(list("abcde"))[rng.integers(0, 5, n)]
    X[:, 1] = rng.normal(size=n)
    X[:, 2] = [f"c{j}" for j in rng.integers(0, 40, n)]
    X[:, 3] = rng.integers(0, 4, n).astype(float)
    X[:, 4] = rng.exponential(size=n)
    X[rng.random((n, 5)) < holes] = None
    return X


def mixed_target(X: npt.NDArray[np.object_], rng: np.random.Generator) -> F64:
    num = np.array([0.0 if v is None else float(v) for v in X[:, 1]])
    cat = np.array([v in ("a", "c", None) for v in X[:, 0]], dtype=float)
    many = np.array([v is not None and int(v[1:]) % 3 == 0 for v in X[:, 2]], dtype=float)
    out: F64 = num + 2 * cat + many + 0.3 * rng.normal(size=X.shape[0])
    return out


def predict_rows(ds: Dataset, rng: np.random.Generator, n: int) -> F64:
    """Encoded rows to predict: fresh values, missing cells, exact thresholds, values that
    are not categories (negative, too large, fractional) and infinities."""
    Xe = ds.encoded()
    rows = Xe[rng.integers(0, Xe.shape[0], n)].copy()
    rows[:, 1] += rng.normal(scale=0.2, size=n)
    rows[rng.random(rows.shape) < 0.15] = np.nan
    weird_cat = rng.random(n) < 0.1
    rows[weird_cat, 0] = rng.choice([-1.0, 5.0, 2.5, 1e9, np.inf], size=int(weird_cat.sum()))
    rows[rng.random(n) < 0.05, 1] = np.inf
    rows[rng.random(n) < 0.05, 4] = -np.inf
    return rows


def fitted(kind: str, seed: int = 0) -> tuple[Any, Dataset]:
    rng = np.random.default_rng(seed)
    X = mixed_rows(rng, 400, holes=0.1)
    y: Any = mixed_target(X, rng)
    if kind == "classification":
        y = np.digitize(y, [0.5, 2.0]).astype(np.int64)
        ds = Dataset.from_arrays(X, y, categorical=[0, 2])
        model: Any = RandomForestClassifier(n_estimators=6, random_state=seed, n_jobs=1)
    else:
        ds = Dataset.from_arrays(X, y, categorical=[0, 2], task="regression")
        model = RandomForestRegressor(
            n_estimators=6, max_features=0.6, random_state=seed, n_jobs=1
        )
    return model.fit(ds), ds


@pytest.fixture(scope="module", params=["classification", "regression"])
def forest(request: pytest.FixtureRequest) -> tuple[Any, Dataset]:
    return fitted(request.param)


# --- tests ---------------------------------------------------------------------------------------
def test_the_test_forests_exercise_every_kind_of_split(forest: tuple[Any, Dataset]) -> None:
    model, _ = forest
    top, deep = set(), set()
    for tree in model.trees_:
        depth = np.zeros(tree.node_count, dtype=np.int64)
        for i in range(tree.node_count):
            if tree.feature[i] >= 0:
                depth[tree.left[i]] = depth[tree.right[i]] = depth[i] + 1
        split = tree.feature >= 0
        for kind, nodes in (
            ("categorical", split & (tree.cat_index >= 0)),
            ("numeric", split & (tree.cat_index < 0)),
            ("missing-left", split & tree.missing_left),
            ("missing-right", split & ~tree.missing_left),
        ):
            top |= {kind} if np.any(nodes & (depth < 3)) else set()
            deep |= {kind} if np.any(nodes & (depth >= 3)) else set()
    every = {"categorical", "numeric", "missing-left", "missing-right"}
    assert top == every and deep == every


def test_leaves_and_mean_value_match_the_reference(
    forest: tuple[Any, Dataset], config: str
) -> None:
    model, ds = forest
    rows = predict_rows(ds, np.random.default_rng(1), 150)
    flat = FlatForest(model.trees_, model.bins_)
    expected = reference_leaves(model.trees_, model.bins_, rows)
    np.testing.assert_array_equal(flat.leaves(rows), expected)
    assert_bits_equal(flat.mean_value(rows), reference_mean(flat, expected))


def test_rows_without_missing_values_match_the_reference(
    forest: tuple[Any, Dataset], config: str
) -> None:
    model, ds = forest
    rows = ds.encoded()[:120]
    rows = rows[~np.isnan(rows).any(axis=1)]
    flat = FlatForest(model.trees_, model.bins_)
    expected = reference_leaves(model.trees_, model.bins_, rows)
    np.testing.assert_array_equal(flat.leaves(rows), expected)
    assert_bits_equal(flat.mean_value(rows), reference_mean(flat, expected))


def test_estimator_predictions_use_the_same_leaves(forest: tuple[Any, Dataset]) -> None:
    model, ds = forest
    raw, encoded = ds.X[:60], ds.encoded()[:60]
    expected = reference_leaves(model.trees_, model.bins_, encoded)
    roots = np.cumsum([0] + [t.node_count for t in model.trees_[:-1]])
    np.testing.assert_array_equal(model.apply(raw), expected - roots)
    flat = FlatForest(model.trees_, model.bins_)
    mean = reference_mean(flat, expected)
    if isinstance(model, RandomForestClassifier):
        assert_bits_equal(model.predict_proba(raw), mean)
    else:
        assert_bits_equal(model.predict(raw), mean[:, 0])


def test_one_row_at_a_time_gives_the_same_bits(forest: tuple[Any, Dataset]) -> None:
    model, ds = forest
    rows = predict_rows(ds, np.random.default_rng(3), 40)
    flat = FlatForest(model.trees_, model.bins_)
    whole = flat.mean_value(rows)
    for i in range(rows.shape[0]):
        assert_bits_equal(flat.mean_value(rows[i : i + 1]), whole[i : i + 1])


def test_many_trees_single_output_is_summed_pairwise(config: str) -> None:
    """With more than eight trees numpy's pairwise sum differs from a running sum; the
    result must still be value[leaves].sum(axis=1), whatever the blocks, also row by row."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 3))
    y = X[:, 0] * 1e6 + rng.normal(size=300) * 1e-3
    model = RandomForestRegressor(n_estimators=20, max_depth=4, random_state=0, n_jobs=1)
    model.fit(X, y)
    flat = FlatForest(model.trees_, model.bins_)
    rows = X[:50]
    leaves = reference_leaves(model.trees_, model.bins_, rows)
    expected = reference_mean(flat, leaves)
    running = np.zeros_like(expected)
    for t in range(flat.n_trees):
        running += flat.value[leaves[:, t]]
    assert (running / flat.n_trees).tobytes() != expected.tobytes()  # the order shows
    whole = flat.mean_value(rows)
    assert_bits_equal(whole, expected)
    for i in range(0, 50, 7):
        assert_bits_equal(flat.mean_value(rows[i : i + 1]), whole[i : i + 1])


def test_parts_rebuild_the_same_forest(forest: tuple[Any, Dataset]) -> None:
    model, ds = forest
    rows = predict_rows(ds, np.random.default_rng(5), 80)
    flat = FlatForest(model.trees_, model.bins_)
    parts = flat.parts()
    assert set(parts) == set(FlatForest.PARTS)
    copy = FlatForest.from_parts(model.bins_, {k: v.copy() for k, v in parts.items()})
    np.testing.assert_array_equal(copy.leaves(rows), flat.leaves(rows))
    assert_bits_equal(copy.mean_value(rows), flat.mean_value(rows))


def single_leaf(value: list[float]) -> TreeArrays:
    one = np.zeros(1)
    return TreeArrays(
        feature=np.array([-1], dtype=np.int32), threshold=np.array([np.nan]),
        threshold_bin=np.zeros(1, dtype=np.int16), missing_left=np.zeros(1, dtype=bool),
        left=np.array([-1], dtype=np.int32), right=np.array([-1], dtype=np.int32),
        value=np.array([value]), impurity=one, n_node_samples=np.ones(1, dtype=np.int64),
        weighted_n_node_samples=one, improvement=one, cat_index=np.array([-1], dtype=np.int32),
        cat_left=np.zeros((0, 256), dtype=bool),
    )


def test_a_tree_that_is_one_leaf(forest: tuple[Any, Dataset], config: str) -> None:
    model, ds = forest
    k = model.trees_[0].value.shape[1]
    trees = [single_leaf([0.5] * k), *model.trees_, single_leaf([0.25] * k)]
    rows = predict_rows(ds, np.random.default_rng(6), 30)
    flat = FlatForest(trees, model.bins_)
    leaves = flat.leaves(rows)
    np.testing.assert_array_equal(leaves, reference_leaves(trees, model.bins_, rows))
    assert (leaves[:, 0] == 0).all() and (leaves[:, -1] == flat.roots[-1]).all()
    assert_bits_equal(flat.mean_value(rows), reference_mean(flat, leaves))


def test_no_rows(forest: tuple[Any, Dataset]) -> None:
    model, _ = forest
    flat = FlatForest(model.trees_, model.bins_)
    empty = np.empty((0, 5))
    assert flat.leaves(empty).shape == (0, len(model.trees_))
    assert flat.mean_value(empty).shape == (0, flat.value.shape[1])


def test_bad_input_is_rejected(forest: tuple[Any, Dataset]) -> None:
    model, _ = forest
    flat = FlatForest(model.trees_, model.bins_)
    with pytest.raises(ValueError, match=r"expected \(n_samples, 5\) features"):
        flat.mean_value(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"expected \(n_samples, 5\) features"):
        flat.leaves(np.zeros(5))
    with pytest.raises(ValueError, match="at least one tree"):
        FlatForest([], model.bins_)
    tree = model.trees_[0]
    node = int(np.flatnonzero((tree.feature >= 0) & (tree.cat_index < 0))[0])
    broken = TreeArrays.from_arrays(tree.arrays())
    broken.threshold_bin = broken.threshold_bin.copy()
    broken.threshold_bin[node] = model.bins_.n_bins[tree.feature[node]]
    with pytest.raises(ValueError, match=f"node {node} .* threshold_bin"):
        FlatForest([broken], model.bins_)


# --- binning -------------------------------------------------------------------------------------
def tricky_columns(rng: np.random.Generator, n: int) -> F64:
    # 200 values 1e-9 apart and one far away: one bin each, and the 199 edges between the
    # close values share one cell of any grid over the whole range.
    tiny_cluster = np.resize(np.append(np.arange(200) * 1e-9, 1e9), n)
    columns = [
        rng.normal(size=n),  # quantile bins
        rng.lognormal(sigma=3.0, size=n),  # heavy tail: edges bunch up near 0
        rng.integers(0, 7, n).astype(float),  # few distinct values
        np.full(n, 2.5),  # one value: no edge
        np.where(rng.random(n) < 0.5, np.nan, rng.normal(size=n)),  # half missing
        np.full(n, np.nan),  # all missing
        tiny_cluster,  # most edges in one cell of any grid: binned by searchsorted
        np.where(rng.random(n) < 0.1, -np.inf, rng.uniform(-1e300, 1e300, n)),  # -inf edge
        rng.uniform(0, 5e-324 * 50, n),  # subnormal values
    ]
    return np.column_stack(columns)


def test_grid_binning_gives_the_codes_of_transform() -> None:
    rng = np.random.default_rng(7)
    train = tricky_columns(rng, 3000)
    bins = Binner(max_bins=255).fit(train)
    binner = _GridBinner(bins)
    # Bunched-up edges (heavy tail, tight cluster), a -inf edge and a subnormal range (too
    # narrow to scale) take the searchsorted path; the other features the grid.
    assert binner.slow.tolist() == [1, 6, 7, 8]
    probes = [train, tricky_columns(np.random.default_rng(8), 500)]
    for f, edges in enumerate(bins.edges):  # every edge and its two neighbouring floats
        col = np.full((3 * edges.size, train.shape[1]), np.nan)
        col[:, f] = np.concatenate(
            [edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)]
        )
        probes.append(col)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e308, -1e308, 5e-324, -5e-324])
    probes.append(np.repeat(specials[:, None], train.shape[1], axis=1))
    for X in probes:
        out = np.empty(X.shape, dtype=np.uint8)
        binner.codes(X, out)
        np.testing.assert_array_equal(out, bins.transform(X).T)


def test_grid_binning_of_categorical_features() -> None:
    rng = np.random.default_rng(9)
    train = np.column_stack([rng.integers(0, 6, 200).astype(float), rng.normal(size=200)])
    bins = Binner().fit(train, is_categorical=[True, False], n_categories=[6, 0])
    X = np.column_stack([
        np.array([0, 5, 6, -1, 2.5, np.nan, np.inf, -np.inf, 1e9, 3] * 3, dtype=float),
        rng.normal(size=30),
    ])
    out = np.empty(X.shape, dtype=np.uint8)
    _GridBinner(bins).codes(X, out)
    np.testing.assert_array_equal(out, bins.transform(X).T)


def test_grid_binning_within_a_cell_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the budget of grid cells, the remaining features are binned by searchsorted."""
    rng = np.random.default_rng(10)
    train = rng.normal(size=(2000, 6))
    bins = Binner().fit(train)
    monkeypatch.setattr(_predict, "_MAX_CELLS", 10_000)  # room for two features
    binner = _GridBinner(bins)
    assert binner.slow.tolist() == [2, 3, 4, 5]
    X = np.vstack([rng.normal(size=(300, 6)), np.full((1, 6), np.nan)])
    out = np.empty(X.shape, dtype=np.uint8)
    binner.codes(X, out)
    np.testing.assert_array_equal(out, bins.transform(X).T)
