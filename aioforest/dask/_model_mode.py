"""``mode="model"`` on Dask: whole trees on the whole binned dataset, batches of trees as
tasks.

The partitions are binned where dask holds them; one task joins their codes into the
dataset (uint8 codes, an eighth of the float rows), and dask copies that to each worker
the first time a task there needs it: once per worker. Each task fits a batch of trees
(:class:`~aioforest.ensemble.FitTask`'s plan and indices) and returns their arrays; the
client installs them in tree-index order, so the forest is a local fit's, bit for bit.
A worker lost mid-task has its task rerun elsewhere, and dask recomputes the data it
held from the partitions' lineage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..ensemble import FitProgress
from ..tree import TreeArrays
from . import _tasks as tasks
from ._inputs import DaskData
from ._session import DaskSession

__all__ = ["fit_trees_on_dask"]


def fit_trees_on_dask(
    session: DaskSession, job: Any, data: DaskData,
    on_progress: Callable[[FitProgress], object] | None,
) -> dict[int, TreeArrays]:
    """Every tree of ``job`` fitted on the cluster (see the module docstring)."""
    assert data.binned is not None
    dataset = session.submit(tasks.concat_parts, *data.binned)
    plan, bins = job.plan.to_json(), tasks.bins_to_arrays(job.bins)
    batches = job.tasks(n_runners=session.threads())
    futures = {session.submit(tasks.fit_batch, dataset, plan, bins, list(t.indices)): t
               for t in batches}
    t0 = time.perf_counter()
    trees: dict[int, TreeArrays] = {}
    n_trees = len(job.indices)
    for future in session.completed(list(futures), "fitting trees"):
        arrays = future.result()
        for i, tree in zip(futures[future].indices, arrays, strict=True):
            trees[i] = tasks.tree_from_arrays(tree)
            if on_progress is not None:
                on_progress(FitProgress(i, len(trees), n_trees, time.perf_counter() - t0,
                                        trees[i]))
        future.release()
    return trees
