"""``mode="data"`` on Dask: histogram aggregation, the rows staying where dask holds them.

The growth driver is the one every backend runs (:func:`aioforest.tree.grow`); here its
:class:`~aioforest.tree.RowSource` is :class:`DaskRows`, whose parts are the partitions'
level states, one future each. Per driver call, one task per partition: a query
(``node_totals``, ``histograms``, ``missing_in``) is summed here, exactly, in partition
order; an update (``keep_nodes``, ``route``) makes each partition's next state from its
last, without waiting. Nodes with few instances finish where their rows meet (PLANET's
local subtrees): each partition hands an owner task the rows of that owner's nodes, and
the owner grows them with the driver's own ``grow_subtrees_here``.

A worker lost mid-fit loses the states it held; dask recomputes them from their lineage
(the partition, its codes, the batch's updates so far), so the driver only waits longer,
and the sums, and the forest, do not change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from ..cluster import balanced_owners, local_subtree_rows, trees_per_batch
from ..ensemble import FitProgress
from ..tree import (
    ROUND_CELLS,
    Arithmetic,
    GrowHere,
    HistogramRequest,
    Histograms,
    NodeRecords,
    NodeSplits,
    SubtreeStart,
    TreeArrays,
    arithmetic,
    grow,
    tree_spec,
)
from . import _tasks as tasks
from ._inputs import DaskData
from ._session import DaskSession

__all__ = ["DaskRows", "grow_on_dask", "oob_score_on_dask"]

I64 = npt.NDArray[np.int64]

#: Tasks that grow a level's local subtrees, per worker thread (each takes a share of the
#: subtrees balanced by instances). 4 beat 1 (one per thread waits for the slowest) and
#: 16 (more rows taken, more tasks): 7.6 s against 9.5 s and 8.8 s at 100k rows. Growing
#: them while the level-wise growth goes on was slower too (8.4 s): the driver's next
#: histograms then wait behind a running subtree task on every worker.
SUBTREE_TASKS_PER_THREAD = 4


class DaskRows:
    """A :class:`~aioforest.tree.RowSource` whose parts are partitions on a Dask cluster
    (see the module docstring); the driver calls it from its own thread."""

    round_cells = ROUND_CELLS  # each histogram request is a round trip: few, large ones

    def __init__(self, session: DaskSession, data: DaskData, bins: dict[str, Any],
                 plan: dict[str, Any], batch: list[int], exact: Arithmetic) -> None:
        assert data.binned is not None
        self.session = session
        self.bins, self.plan, self.batch, self.exact = bins, plan, batch, exact
        # several owner tasks per thread: dask evens out the threads' work as they finish
        self.n_owners = SUBTREE_TASKS_PER_THREAD * session.threads()
        self.rounds = 0
        self.states = [
            session.submit(tasks.start_batch, binned, bins, plan, batch,
                           int(data.offsets[p]), data.n_total, exact.target_shift)
            for p, binned in enumerate(data.binned)
        ]

    def _ask(self, fn: Callable[..., Any], what: str, *args: Any) -> list[Any]:
        futures = [self.session.submit(fn, s, *args) for s in self.states]
        return self.session.results(futures, what)

    def _update(self, fn: Callable[..., Any], *args: Any) -> None:
        # no wait: the next query depends on these, and dask runs each where its state is
        self.states = [self.session.submit(fn, s, *args) for s in self.states]

    def missing_in(self, features: I64) -> npt.NDArray[np.bool_]:
        out = np.zeros(features.size, dtype=bool)
        for part in self._ask(tasks.missing_in, "finding missing values", features):
            out |= part
        return out

    def node_totals(self, n_nodes: int, n_channels: int, classification: bool
                    ) -> tuple[I64, npt.NDArray[Any]]:
        answers = self._ask(tasks.node_totals, "summing node totals", n_nodes, n_channels,
                            classification)
        counts = np.zeros(n_nodes, dtype=np.int64)
        total = np.zeros((n_nodes, n_channels), dtype=np.float64)
        for c, t in answers:
            counts += c
            total += t
        return counts, total

    def keep_nodes(self, keep: npt.NDArray[np.bool_]) -> None:
        self._update(tasks.keep_nodes, keep)

    def histograms(self, request: HistogramRequest) -> Histograms:
        args = {"n_nodes": request.n_nodes, "all_splittable": request.all_splittable,
                "n_channels": request.n_channels, "classification": request.classification,
                "integral": request.integral, "with_counts": request.with_counts}
        arrays = {"candidates": request.candidates, "features": request.drawn.features,
                  "valid": request.drawn.valid}
        # summed where the parts are (exact integers): the client holds one histogram
        parts = [self.session.submit(tasks.histograms, s, args, arrays) for s in self.states]
        total = self.session.submit(tasks.sum_histograms_of, *parts)
        (summed,) = self.session.results([total], "building histograms")
        self.rounds += 1
        return Histograms.from_arrays(summed)

    def route(self, splits: NodeSplits) -> None:
        self._update(tasks.route, {
            "feature": splits.feature, "threshold_bin": splits.threshold_bin,
            "missing_left": splits.missing_left, "improvement": splits.improvement,
            "lut": np.ascontiguousarray(splits.lut, dtype=bool)})

    def grow_subtrees(self, start: SubtreeStart, grow_here: GrowHere) -> NodeRecords:
        # The owners grow them with the same function the driver passes (grow_here is
        # grow_subtrees_here); the rows go partition to owner through dask, never here.
        owner_of = balanced_owners(start.instances, start.size, self.n_owners)
        exact = [self.exact.integral, self.exact.single, self.exact.target_shift]
        records = []
        for owner in range(self.n_owners):
            owned = np.flatnonzero(owner_of == owner).astype(np.int64)
            if not owned.size:
                continue
            pieces = [self.session.submit(tasks.take_subtrees, s, start.nodes[owned],
                                          start.n_nodes) for s in self.states]
            sub = {"subtrees": owned, "tree": start.tree[owned], "path": start.path[owned],
                   "constant": start.constant[owned],
                   "constant_rate": start.constant_rate[owned],
                   "root_weight": start.root_weight[owned]}
            records.append(self.session.submit(tasks.grow_owned, self.bins, self.plan,
                                               self.batch, exact, sub, start.depth, *pieces))
        self._update(tasks.drop_nodes, start.nodes, start.n_nodes)
        blocks = [NodeRecords.from_arrays(r)
                  for r in self.session.results(records, "growing local subtrees")]
        return NodeRecords(**{name: np.concatenate([getattr(b, name) for b in blocks])
                              for name in NodeRecords.__dataclass_fields__})

    def release(self) -> None:
        for state in self.states:
            state.release()
        self.states = []


def grow_on_dask(
    session: DaskSession, job: Any, data: DaskData,
    on_progress: Callable[[FitProgress], object] | None,
) -> tuple[dict[int, TreeArrays], dict[str, Any]]:
    """Every tree of ``job``, grown batch by batch by the driver on :class:`DaskRows`."""
    plan = job.plan
    exact = arithmetic(plan, data.n_total, None, data.target_max)
    if not exact.integral:  # only exact sums make the partitioning irrelevant
        raise ValueError(
            f"data mode needs exact sums, which {data.n_total} rows with "
            f"max_samples={plan.n_draws} exceed (a tree's weight must stay below 2**31)")
    bins = job.bins
    class_weight = (np.asarray(plan.class_weight, dtype=np.float64)
                    if plan.class_weight is not None else None)
    n_workers = session.workers()
    indices = list(job.indices)
    options = session.options
    per_batch = options.trees_per_batch or trees_per_batch(data.n_total, n_workers,
                                                           len(indices), bins.n_features)
    subtree_rows = (local_subtree_rows(data.n_total, n_workers)
                    if options.local_subtree_rows is None else options.local_subtree_rows)
    plan_json, bins_arrays = plan.to_json(), tasks.bins_to_arrays(bins)
    trees: dict[int, TreeArrays] = {}
    stats = {"batches": 0, "rounds": 0, "grow_seconds": 0.0}
    t0 = time.perf_counter()
    for lo in range(0, len(indices), per_batch):
        batch = indices[lo : lo + per_batch]
        rows = DaskRows(session, data, bins_arrays, plan_json, batch, exact)
        specs = [tree_spec(plan, i, bins.n_features) for i in batch]
        t1 = time.perf_counter()
        try:
            grown = grow(bins, specs, rows, plan.grow_params(), exact, class_weight,
                         session.stop.is_set, subtree_rows)
        finally:
            rows.release()
        stats["grow_seconds"] += time.perf_counter() - t1
        stats["batches"] += 1
        stats["rounds"] += rows.rounds
        for i, tree in zip(batch, grown, strict=True):
            trees[i] = tree
            if on_progress is not None:
                on_progress(FitProgress(i, len(trees), len(indices),
                                        time.perf_counter() - t0, tree))
    return trees, stats


def oob_score_on_dask(session: DaskSession, estimator: Any, data: DaskData) -> float:
    """``oob_score_`` from every partition's out-of-bag votes on its own rows, with the
    exact sums of a local fit (two passes for regression's R²)."""
    from .._exact import r2_from_sums, to_float

    assert data.binned is not None
    flat = {k: np.ascontiguousarray(v) for k, v in estimator._flat_forest().parts().items()}
    client = session.client
    forest = client.scatter(flat, broadcast=True, hash=False)  # the model goes to each worker once
    bins, plan = tasks.bins_to_arrays(estimator.bins_), estimator.plan_.to_json()

    def sums(mean: float | None) -> list[list[Any]]:
        return session.results(
            [session.submit(tasks.oob_sums, b, bins, plan, forest, int(data.offsets[p]),
                            data.n_total, mean) for p, b in enumerate(data.binned or [])],
            "scoring out of bag")

    first = sums(None)
    rows = sum(int(s[0]) for s in first)
    if rows < data.n_total:
        import warnings

        warnings.warn(
            f"{data.n_total - rows} samples were in-bag for every tree; their out-of-bag "
            "estimate is left out of oob_score_", UserWarning, stacklevel=4)
    if estimator._classification or not rows:
        return sum(int(s[1]) for s in first) / rows if rows else 0.0
    mean = to_float(sum(int(s[2]) for s in first), rows)
    ss_res = sum(int(s[3]) for s in first)
    ss_tot = sum(int(s[4]) for s in sums(mean))
    return r2_from_sums(ss_res, ss_tot)
