"""The growth driver: levels of three stages, and the cut data-parallel growth makes."""

from __future__ import annotations

import numpy as np
import pytest
from tree_stage_helpers import random_level

from aioforest.data import Binner, Bins
from aioforest.tree import ForestPlan, arithmetic
from aioforest.tree._builder import (
    FitCancelled,
    GrowParams,
    TreeJob,
    fixed_point_targets,
    grow,
    grow_trees,
)
from aioforest.tree._criterion import Gini
from aioforest.tree._histogram import (
    CodeTable,
    DrawnFeatures,
    Histograms,
    build_histograms,
    node_totals,
    sum_histograms,
)
from aioforest.tree._routing import NodeSplits, route_rows
from aioforest.tree._rows import LocalRows, SummedRows
from aioforest.tree._splitter import Arithmetic
from aioforest.tree._splitting import Candidates, SplitRules, choose_splits

PARAMS = GrowParams("gini", 2, 10**9, 2, 1, 0.0, 0.0, 2)


def _hist(table, rows, drawn):
    h = build_histograms(table, rows, drawn, n_channels=3, classification=True, integral=True,
                         with_counts=False, prefer_dense=lambda *_: False)
    assert isinstance(h, Histograms)
    return h


def test_a_level_cut_over_row_partitions_chooses_and_routes_as_one_machine() -> None:
    # Histograms where rows live, summed; split choice on the sums; routing where rows
    # live: the same splits and the same children as with all rows in one place.
    table, rows, drawn = random_level(8, n_rows=400)
    n_nodes = drawn.features.shape[0]
    rules = SplitRules(Gini(), table.n_bins, table.is_categorical, None, 1, False)
    parts = [rows.take(np.flatnonzero(rows.row % 3 == p)) for p in range(3)]
    totals = sum(node_totals(p, n_nodes, 3, True, None) for p in parts)
    assert np.array_equal(totals, node_totals(rows, n_nodes, 3, True, None))
    cand = Candidates(drawn, np.full(n_nodes, 99), np.ascontiguousarray(totals.T), None)
    whole = choose_splits(_hist(table, rows, drawn), cand, rules)
    cut = choose_splits(sum_histograms([_hist(table, p, drawn) for p in parts]), cand, rules)
    for name in ("feature", "threshold_bin", "missing_left", "improvement", "lut"):
        assert np.array_equal(getattr(whole, name), getattr(cut, name)), name
    splits = NodeSplits(whole.feature, whole.threshold_bin, whole.missing_left,
                        whole.improvement, whole.lut)
    routed = route_rows(table, rows, splits)
    child = dict(zip(routed.row.tolist(), routed.node.tolist(), strict=True))
    for p in parts:
        out = route_rows(table, p, splits)
        assert all(child[r] == c for r, c in zip(out.row.tolist(), out.node.tolist(),
                                                   strict=True))


def _stairs() -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(40, dtype=np.float64)
    return np.column_stack([x, np.zeros_like(x)]), (x // 10 % 2).astype(np.int64)


def test_grown_trees_separate_separable_classes_into_pure_leaves() -> None:
    X, y = _stairs()
    bins, codes = Binner().fit_transform(X)
    job = TreeJob(key=1, rows=np.arange(40), weight=np.ones(40))
    (tree,) = grow_trees(bins, codes, y, [job], PARAMS, Arithmetic(True, True))
    leaves = tree.feature < 0
    assert set(np.unique(tree.value[leaves].max(axis=1))) == {1.0}  # pure
    assert set(tree.feature[~leaves].tolist()) == {0}  # the constant feature never splits
    assert tree.n_node_samples[0] == 40 and tree.n_leaves == 4


def test_growth_stops_with_fit_cancelled_when_asked_between_levels() -> None:
    X, y = _stairs()
    bins, codes = Binner().fit_transform(X)
    job = TreeJob(key=1, rows=np.arange(40), weight=np.ones(40))
    levels = []

    def stop_at_second_level() -> bool:
        levels.append(1)
        return len(levels) == 2

    with pytest.raises(FitCancelled, match="depth 1"):
        grow_trees(bins, codes, y, [job], PARAMS, Arithmetic(True, True),
                   should_stop=stop_at_second_level)


def test_a_tree_grows_the_same_alone_and_in_a_batch() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    bins, codes = Binner().fit_transform(X)
    jobs = [TreeJob(key=k, rows=np.arange(300), weight=rng.integers(0, 3, 300).astype(float))
            for k in range(3)]
    batch = grow_trees(bins, codes, y, jobs, PARAMS, Arithmetic(True, True))
    alone = grow_trees(bins, codes, y, [jobs[1]], PARAMS, Arithmetic(True, True))
    for name, value in alone[0].arrays().items():
        assert np.array_equal(value, batch[1].arrays()[name], equal_nan=True), name


def test_a_regression_tree_grows_the_same_alone_and_in_a_batch() -> None:
    # Fixed-point targets make regression sums exact, so regression trees batch too; the
    # targets' awkward decimals would make float sums depend on the trees sharing a pass.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 4))
    y = X[:, 0] * 1e3 / 7 + np.sin(X[:, 1]) * 0.1 + rng.normal(size=400) / 3
    bins, codes = Binner().fit_transform(X)
    jobs = [TreeJob(key=k, rows=np.arange(400), weight=rng.integers(0, 3, 400).astype(float))
            for k in range(4)]
    exact = arithmetic(_regression_plan(), 400, None, float(np.abs(y).max()))
    assert exact.integral and exact.target_shift > 0
    params = GrowParams("squared_error", 0, 10**9, 2, 1, 0.0, 0.0, 2)
    batch = grow_trees(bins, codes, y, jobs, params, exact)
    for t in (0, 2):
        (alone,) = grow_trees(bins, codes, y, [jobs[t]], params, exact)
        for name, value in alone.arrays().items():
            assert np.array_equal(value, batch[t].arrays()[name], equal_nan=True), name
    # the leaves hold the targets' means, to the fixed point's resolution
    tree = batch[0]
    leaves = tree.feature < 0
    assert np.abs(tree.value[leaves, 0]).max() <= np.abs(y).max() + 1e-6
    assert tree.value[0, 0] == pytest.approx(np.average(y, weights=jobs[0].weight), abs=1e-6)


def _regression_plan() -> ForestPlan:
    return ForestPlan("squared_error", 0, 10**9, 2, 1, 0.0, 0.0, 2, True, 400, None, None, 0)


def _cut_rows(table, jobs, y, n_parts, assign, classification=True):
    """The jobs' rows cut into parts by ``assign(row) -> part``, each a LocalRows."""
    parts = []
    for p in range(n_parts):
        sets = []
        for job in jobs:
            mine = assign(job.rows) == p
            sets.append((job.rows[mine], job.weight[mine]))
        parts.append(LocalRows.of_trees(table, sets, y, classification))
    return SummedRows(parts)


@pytest.mark.parametrize(
    ("n_classes", "params"),
    [(2, PARAMS), (3, GrowParams("entropy", 3, 10**9, 2, 3, 0.0, 0.0, 2)),
     (20, GrowParams("gini", 20, 10**9, 2, 1, 0.0, 0.0, 3)),
     (0, GrowParams("squared_error", 0, 10**9, 2, 2, 0.0, 0.0, 2))],
    ids=["gini", "entropy-min-leaf", "many-classes", "regression"],
)
def test_trees_grown_on_cut_rows_with_summed_answers_equal_one_machine(
    n_classes: int, params: GrowParams
) -> None:
    # The driver sees rows only through a RowSource: cutting them into parts (uneven, one
    # part empty) and summing the parts' answers must give the same trees bit for bit.
    rng = np.random.default_rng(5)
    n = 500
    X = rng.normal(size=(n, 5))
    X[rng.random((n, 5)) < 0.05] = np.nan
    X[:, 4] = rng.integers(0, 6, n)
    signal = np.nan_to_num(X[:, 0]) + X[:, 4] * 0.3
    y = np.clip((signal * n_classes / 3).astype(np.int64) - 1, 0, max(n_classes - 1, 0))
    if not n_classes:
        y = signal / 3 + rng.normal(size=n) * 0.01
    is_cat = np.array([False, False, False, False, True])
    bins, codes = Binner().fit_transform(X, is_cat, np.array([0, 0, 0, 0, 6]))
    jobs = [TreeJob(key=k, rows=np.arange(n), weight=rng.integers(0, 3, n).astype(float))
            for k in range(4)]
    exact = Arithmetic(True, n_classes < 18)
    part_y = y
    if not n_classes:
        exact = arithmetic(_regression_plan(), n, None, float(np.abs(y).max()))
        part_y = fixed_point_targets(y, exact.target_shift)  # as each worker holds them
    one = grow_trees(bins, codes, y, jobs, params, exact)
    table = CodeTable(np.ascontiguousarray(codes.T).reshape(-1), codes.shape[0],
                      bins.n_bins, bins.is_categorical)
    specs = [j.spec for j in jobs]
    for n_parts, assign in [(3, lambda r: r % 3), (4, lambda r: np.minimum(r // 150, 2))]:
        parts = _cut_rows(table, jobs, part_y, n_parts, assign, n_classes > 0)
        cut = grow(bins, specs, parts, params, exact)
        for t, (a, b) in enumerate(zip(one, cut, strict=True)):
            for name, value in a.arrays().items():
                assert np.array_equal(value, b.arrays()[name], equal_nan=True), (t, name)


def test_rounds_cut_into_node_groups_grow_the_same_trees(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    # Spark's memory budget per round: a level's candidates are scored in groups; each
    # node's split reads only its own cells, so the groups never change a tree.
    import aioforest.tree._splitter as splitter

    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 6))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.int64)
    bins, codes = Binner().fit_transform(X)
    jobs = [TreeJob(key=k, rows=np.arange(400), weight=rng.integers(0, 3, 400).astype(float))
            for k in range(3)]
    whole = grow_trees(bins, codes, y, jobs, PARAMS, Arithmetic(True, True))
    monkeypatch.setattr(splitter, "ROUND_CELLS", 64)  # class histograms take these groups
    assert len(splitter.node_groups(np.full(10, 50.0), np.full(10, 2), 255, 64)) > 1
    grouped = grow_trees(bins, codes, y, jobs, PARAMS, Arithmetic(True, True))
    for a, b in zip(whole, grouped, strict=True):
        for name, value in a.arrays().items():
            assert np.array_equal(value, b.arrays()[name], equal_nan=True), name


def _mixed_features(rng: np.random.Generator, n: int, n_classes: int
                    ) -> tuple[Bins, np.ndarray, np.ndarray]:
    """Binned numeric features with missing values and one categorical, and a target
    (classes, or a regression target when ``n_classes`` is 0)."""
    X = rng.normal(size=(n, 5))
    X[rng.random((n, 5)) < 0.05] = np.nan
    X[:, 4] = rng.integers(0, 6, n)
    signal = np.nan_to_num(X[:, 0]) + X[:, 4] * 0.3 + np.nan_to_num(X[:, 1]) ** 2
    y = np.clip((signal * 1.2).astype(np.int64), 0, 2) if n_classes else signal / 7
    bins, codes = Binner().fit_transform(X, np.array([False] * 4 + [True]),
                                         np.array([0, 0, 0, 0, 6]))
    return bins, codes, y


@pytest.mark.parametrize(
    ("n_classes", "params", "integral"),
    [(3, GrowParams("gini", 3, 10**9, 2, 1, 0.0, 0.0, 3), True),
     (3, GrowParams("entropy", 3, 10**9, 4, 2, 0.0, 0.0, 5), False),
     (0, GrowParams("squared_error", 0, 10**9, 2, 1, 0.0, 0.0, 5), True),
     (0, GrowParams("squared_error", 0, 10**9, 2, 3, 0.0, 0.0, 5), False)],
    ids=["gini", "entropy-leaf-rule-float-weights", "regression", "regression-float"],
)
def test_stages_run_in_chunks_of_nodes_and_grow_the_same_trees(
    monkeypatch: pytest.MonkeyPatch, n_classes: int, params: GrowParams, integral: bool
) -> None:
    # Histograms are built, and splits chosen, over chunks of whole nodes, to keep the
    # temporaries small: a node's cells come from its own rows in their order, and with
    # exact sums its choice reads only them, so the chunks change no tree. Float prefix
    # sums carry rounding from node to node: those rounds are never cut.
    import aioforest.tree._histogram as histogram
    import aioforest.tree._splitting as splitting

    rng = np.random.default_rng(5)
    n = 500
    bins, codes, y = _mixed_features(rng, n, n_classes)
    weight = (rng.integers(0, 3, n) * (1.0 if integral else 0.37)).astype(float)
    jobs = [TreeJob(key=k, rows=np.arange(n), weight=np.roll(weight, k)) for k in range(3)]
    exact = Arithmetic(integral, False)
    if not n_classes and integral:
        exact = arithmetic(_regression_plan(), n, None, float(np.abs(y).max()))
    whole = grow_trees(bins, codes, y, jobs, params, exact)
    calls = {"build": 0, "chunk": 0, "choose": 0, "scored": 0}

    def counted(name: str, fn):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(histogram, "CHUNK_ELEMENTS", 200)
    monkeypatch.setattr(LocalRows, "round_cells", 400)  # node groups, too
    monkeypatch.setattr(splitting, "CHUNK_CELLS", 150)
    monkeypatch.setattr(histogram, "_build_chunk", counted("chunk", histogram._build_chunk))
    monkeypatch.setattr(splitting, "_choose_chunk", counted("scored", splitting._choose_chunk))
    import aioforest.tree._rows as rows_module
    import aioforest.tree._splitter as splitter
    monkeypatch.setattr(rows_module, "build_histograms",
                        counted("build", histogram.build_histograms))
    monkeypatch.setattr(splitter, "choose_splits", counted("choose", splitting.choose_splits))
    chunked = grow_trees(bins, codes, y, jobs, params, exact)
    # stage 1 cuts exact regression rounds only (class histograms sort packed keys, which
    # measured faster whole); stage 2 cuts every exact round
    if integral and not n_classes:
        assert calls["chunk"] > calls["build"] > 0
    else:
        assert calls["chunk"] == calls["build"] > 0
    if integral:
        assert calls["scored"] > calls["choose"] > 0
    else:
        assert calls["scored"] == calls["choose"] > 0
    for t, (a, b) in enumerate(zip(whole, chunked, strict=True)):
        assert a.feature.size > 20
        for name, value in a.arrays().items():
            assert np.array_equal(value, b.arrays()[name], equal_nan=True), (t, name)


@pytest.mark.parametrize("subtree_rows", [8, 20, 60, 10**9], ids=lambda n: f"at{n}")
@pytest.mark.parametrize(
    ("n_classes", "params"),
    [(3, GrowParams("gini", 3, 10**9, 2, 1, 0.0, 0.0, 2)),
     (3, GrowParams("entropy", 3, 7, 4, 2, 0.005, 0.001, 3)),
     (0, GrowParams("squared_error", 0, 10**9, 2, 1, 0.0, 0.0, 2))],
    ids=["gini", "entropy-rules", "regression"],
)
def test_small_nodes_finish_their_subtrees_in_one_place_and_the_trees_do_not_change(
    subtree_rows: int, n_classes: int, params: GrowParams
) -> None:
    # PLANET's in-memory build: once a node holds few instances they meet in one place
    # (here: taken out of three parts) and its subtree grows there, by the same driver.
    # Node ids are put back in level order and draws are keyed by path: the same trees.
    rng = np.random.default_rng(11)
    n = 400
    bins, codes, y = _mixed_features(rng, n, n_classes)
    jobs = [TreeJob(key=k, rows=np.arange(n), weight=rng.integers(0, 3, n).astype(float))
            for k in range(3)]
    exact = Arithmetic(True, False)
    part_y = y
    if not n_classes:
        exact = arithmetic(_regression_plan(), n, None, float(np.abs(y).max()))
        part_y = fixed_point_targets(y, exact.target_shift)
    level_wise = grow_trees(bins, codes, y, jobs, params, exact)
    table = CodeTable(np.ascontiguousarray(codes.T).reshape(-1), codes.shape[0],
                      bins.n_bins, bins.is_categorical)
    specs = [j.spec for j in jobs]
    parts = _cut_rows(table, jobs, part_y, 3, lambda r: r % 3, n_classes > 0)
    seen: list[int] = []

    class Counting(SummedRows):
        def grow_subtrees(self, start, grow_here):  # type: ignore[no-untyped-def]
            seen.append(start.size)
            return super().grow_subtrees(start, grow_here)

    mixed = grow(bins, specs, Counting(parts.parts), params, exact, subtree_rows=subtree_rows)
    assert sum(seen) > 0  # some subtrees did grow in one place
    for t, (a, b) in enumerate(zip(level_wise, mixed, strict=True)):
        assert a.feature.size > 3
        for name, value in a.arrays().items():
            assert np.array_equal(value, b.arrays()[name], equal_nan=True), (t, name)


def test_growth_continued_from_a_saved_level_gives_the_same_trees() -> None:
    # A checkpoint between levels: the state goes through plain arrays, rows are brought
    # to the same level (here: grown again to there), and the growth goes on.
    from aioforest.tree._builder import GrowthState

    rng = np.random.default_rng(4)
    n = 300
    X = rng.normal(size=(n, 4))
    X[:, 3] = rng.integers(0, 5, n)
    y = ((X[:, 0] + X[:, 3] * 0.4) > 0.8).astype(np.int64) + (X[:, 1] > 1)
    bins, codes = Binner().fit_transform(X, np.array([False, False, False, True]),
                                         np.array([0, 0, 0, 5]))
    jobs = [TreeJob(key=k, rows=np.arange(n), weight=rng.integers(0, 3, n).astype(float))
            for k in range(2)]
    params = GrowParams("gini", 3, 10**9, 2, 1, 0.0, 0.0, 2)
    table = CodeTable(np.ascontiguousarray(codes.T).reshape(-1), codes.shape[0],
                      bins.n_bins, bins.is_categorical)
    specs = [j.spec for j in jobs]
    whole = grow_trees(bins, codes, y, jobs, params, Arithmetic(True, True))
    for stop_at in (1, 3, 6):
        saved: list[tuple[dict, dict]] = []

        class Stop(Exception):
            pass

        def at_level(depth, make_state, stop_at=stop_at, saved=saved):  # type: ignore[no-untyped-def]
            if depth == stop_at:
                saved.append(make_state().to_arrays())
                raise Stop

        rows = _cut_rows(table, jobs, y, 2, lambda r: r % 2)
        with pytest.raises(Stop):
            grow(bins, specs, rows, params, Arithmetic(True, True), subtree_rows=20,
                 on_level=at_level)
        state = GrowthState.from_arrays(*saved[0])
        assert state.depth == stop_at
        # the rows as the saved level saw them: the cut the stopped run had reached
        resumed = grow(bins, specs, rows, params, Arithmetic(True, True), subtree_rows=20,
                       resume=state)
        for a, b in zip(whole, resumed, strict=True):
            for name, value in a.arrays().items():
                assert np.array_equal(value, b.arrays()[name], equal_nan=True), (stop_at, name)


@pytest.mark.parametrize("d", [1, 2, 7, 64])
def test_feature_draws_are_in_the_order_of_a_stable_sort_of_their_keys(d: int) -> None:
    # Draws sort each node's feature keys with a fast unstable sort; excluded features
    # tie at the largest key and must still come out in feature order, as a stable sort
    # leaves them, so that the drawn slots (and so every forest) are unchanged.
    from aioforest._hashing import mix64
    from aioforest.tree._splitter import draw_features

    rng = np.random.default_rng(d)
    for share in (0.0, 0.3, 0.9, 1.0):
        n = 300
        excluded = rng.random((n, d)) < share
        keys = rng.integers(0, 2**63, n).astype(np.uint64)
        paths = mix64(rng.integers(0, 2**63, n).astype(np.uint64))
        rounds = rng.integers(0, 3, n)
        feats, valid = draw_features(keys, paths, rounds, excluded, d)
        assert np.array_equal(valid, np.sort(~excluded, axis=1)[:, ::-1])
        assert (np.sort(feats, axis=1) == np.arange(d)).all()  # a permutation per node
        tail = np.where(~valid, feats, -1)  # the excluded ones, last, in feature order
        for row, ex in zip(tail, excluded, strict=True):
            assert row[row >= 0].tolist() == np.flatnonzero(ex).tolist()


def test_local_rows_refuse_candidates_out_of_order() -> None:
    # A group's rows are found as a slice of node buckets: that needs ascending nodes.
    from aioforest.tree._rows import HistogramRequest

    table, rows, drawn = random_level(12, n_rows=300, n_nodes=6)
    local = LocalRows(table, rows)
    request = HistogramRequest(np.array([3, 1]), 6, False, DrawnFeatures(
        drawn.features[:2], drawn.valid[:2]), 3, True, True, False)
    with pytest.raises(ValueError, match="ascending"):
        local.histograms(request)
    ordered = HistogramRequest(np.array([1, 3]), 6, False, DrawnFeatures(
        drawn.features[:2], drawn.valid[:2]), 3, True, True, False)
    hist = local.histograms(ordered)
    assert isinstance(hist, Histograms) and hist.cells.size > 0
