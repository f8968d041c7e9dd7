"""What a forest's trees depend on, as plain data, and the pure function that fits them.

``fit_trees(plan, bins, codes, y, sample_weight, indices)`` returns trees ``indices`` of the
forest that ``plan`` describes. Tree ``i`` depends only on (bins and codes, labels, weights,
plan, i): its bootstrap sample, its feature subspace and every feature draw at its nodes
derive from ``tree_key(plan.seed, i)``. That is what lets local processes, remote workers,
retries and resumed jobs all produce the same forest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .._exact import exact_sum, squared_deviations
from ..data import Bins
from ._arrays import TreeArrays
from ._bootstrap import poisson_counts, row_keys, total_weight_bound
from ._builder import (
    Arithmetic,
    GrowParams,
    TreeJob,
    TreeSpec,
    fixed_point_targets,
    grow_trees,
)
from ._criterion import CRITERIA
from ._hashing import tree_key
from ._histogram import CodeTable
from ._rows import LocalRows

if TYPE_CHECKING:
    from ._predict import FlatForest
from ._splitter import INCREMENTAL_MIN_CLASSES

__all__ = [
    "GROWTH_VERSION", "ForestPlan", "arithmetic", "fit_trees", "in_bag_counts",
    "in_bag_weights", "out_of_bag_votes", "partition_oob_sums", "partition_rows",
    "target_max", "tree_job", "tree_spec",
]

#: Which rules draw a seed's trees: 3 since aioforest 0.3 (per-row Poisson bootstrap keyed
#: by global row id, sampled binning above ``BIN_SAMPLE_ROWS``, feature draws keyed by a
#: node's path, fixed-point regression targets); 1 before (one global bootstrap draw).
#: Trees of different versions never join one forest.
GROWTH_VERSION = 3

#: Task sizing: a task (pool or cluster) holds trees of at most this many (tree, row) draws in
#: all, enough to amortise its round trip on small data; also a cap on a pass's rows.
BATCH_INSTANCES = 1 << 18
#: Trees grown together in one vectorised pass hold at most this many (instance, drawn
#: feature) elements (no tree depends on its pass: see ``arithmetic``). Batching only
#: amortises the per-level Python overhead on small data, while the per-instance arrays of a
#: pass grow with it. Larger trees grow alone, which is no slower (their arrays stay closer
#: to cache).
BATCH_ELEMENTS = 1 << 18


@dataclass(frozen=True)
class ForestPlan:
    """A forest's resolved parameters: everything that determines its trees but the data."""

    criterion: str
    n_classes: int  # 0 for regression
    max_depth: int
    min_samples_split: int
    min_samples_leaf: int
    min_weight_fraction_leaf: float
    min_impurity_decrease: float
    max_features: int
    bootstrap: bool
    n_draws: int  # bootstrap sample size
    feature_subspace: int | None  # per-tree random feature subset size (GoLearn's)
    class_weight: tuple[float, ...] | None
    seed: int

    def grow_params(self) -> GrowParams:
        return GrowParams(
            criterion=self.criterion,
            n_classes=self.n_classes,
            max_depth=self.max_depth,
            min_samples_split=self.min_samples_split,
            min_samples_leaf=self.min_samples_leaf,
            min_weight_fraction_leaf=self.min_weight_fraction_leaf,
            min_impurity_decrease=self.min_impurity_decrease,
            max_features=self.max_features,
        )

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON values: the one codec of files, checkpoints and the wire.

        The seed is a decimal string, since it may exceed 64 bits.
        """
        data = asdict(self)
        data["seed"] = str(self.seed)
        if self.class_weight is not None:
            data["class_weight"] = list(self.class_weight)
        return data

    @classmethod
    def from_json(cls, data: object) -> ForestPlan:
        """The plan that :meth:`to_json` wrote, every field checked.

        Raises ``ValueError`` naming the field (``plan.max_depth: must be an integer >= 1,
        got -3``). A seed may also be an integer, as model files of 0.2.0 wrote it.
        """
        if not isinstance(data, dict):
            raise ValueError(f"plan: must be an object, got {type(data).__name__}")
        keys = set(data)
        if keys != _PLAN_FIELDS:
            missing, extra = sorted(_PLAN_FIELDS - keys), sorted(keys - _PLAN_FIELDS)
            raise ValueError(f"plan: keys are wrong (missing {missing}, unexpected {extra})")
        fields = dict(data)
        for key, low in _PLAN_INTS:
            _check(data, key, _is_int(data[key]) and data[key] >= low,
                   f"must be an integer >= {low}")
        for key in _PLAN_FLOATS:
            v = data[key]
            _check(data, key, _is_number(v) and bool(np.isfinite(v)) and v >= 0,
                   "must be a finite number >= 0")
            fields[key] = float(v)
        _check(data, "criterion", data["criterion"] in CRITERIA, f"must be one of {CRITERIA}")
        _check(data, "bootstrap", isinstance(data["bootstrap"], bool), "must be a boolean")
        sub = data["feature_subspace"]
        _check(data, "feature_subspace", sub is None or (_is_int(sub) and sub >= 1),
               "must be null or an integer >= 1")
        cw = data["class_weight"]
        _check(data, "class_weight", cw is None or (
            isinstance(cw, list | tuple) and all(_is_number(v) for v in cw)
        ), "must be null or an array of numbers")
        if cw is not None:
            fields["class_weight"] = tuple(float(v) for v in cw)
        seed = data["seed"]
        _check(data, "seed", (_is_int(seed) and seed >= 0) or (
            isinstance(seed, str) and seed.isdigit() and len(seed) <= 100
        ), "must be a decimal string")
        fields["seed"] = int(seed)
        return cls(**fields)


_PLAN_FIELDS = frozenset(ForestPlan.__dataclass_fields__)
_PLAN_INTS = (("n_classes", 0), ("max_depth", 1), ("min_samples_split", 1),
              ("min_samples_leaf", 1), ("max_features", 1), ("n_draws", 1))
_PLAN_FLOATS = ("min_weight_fraction_leaf", "min_impurity_decrease")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check(data: dict[str, Any], key: str, ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"plan.{key}: {what}, got {data[key]!r:.60}")


def in_bag_counts(
    plan: ForestPlan, index: int, keys: npt.NDArray[np.uint64], n_samples: int
) -> npt.NDArray[np.int64]:
    """How often each row is drawn into tree ``index``'s bootstrap sample.

    ``keys`` are the rows' :func:`row_keys` (of their global row ids) and ``n_samples`` the
    number of rows of the whole dataset: a row's count depends on nothing else.
    """
    if not plan.bootstrap:
        return np.ones(keys.size, dtype=np.int64)
    return poisson_counts(tree_key(plan.seed, index), keys, plan.n_draws / n_samples)


def out_of_bag_votes(
    plan: ForestPlan, leaf_values: npt.NDArray[np.float64], leaves: npt.NDArray[Any],
    keys: npt.NDArray[np.uint64], n_samples: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Per row, the sum of the leaf values of the trees it is out of bag for, and how many
    trees those are. ``leaves[r, t]`` is row ``r``'s leaf in tree ``t`` (an index into
    ``leaf_values``); ``keys`` and ``n_samples`` are :func:`in_bag_counts`'. Summed in tree
    order, so rows anywhere (one process, a worker's partition) get the same floats."""
    n = keys.size
    acc = np.zeros((n, leaf_values.shape[1]))
    seen = np.zeros(n, dtype=np.int64)
    for t in range(leaves.shape[1]):
        oob = in_bag_counts(plan, t, keys, n_samples) == 0
        acc[oob] += leaf_values[leaves[oob, t]]
        seen[oob] += 1
    return acc, seen


def tree_spec(plan: ForestPlan, index: int, n_features: int) -> TreeSpec:
    """Tree ``index``'s key and feature subspace: what the driver needs of it."""
    key = tree_key(plan.seed, index)
    allowed = None
    if plan.feature_subspace is not None and plan.feature_subspace < n_features:
        # A separate stream from the bootstrap's, so turning one option on never changes
        # what the other draws.
        rng = np.random.default_rng([key, 1])
        allowed = np.zeros(n_features, dtype=bool)
        allowed[rng.choice(n_features, size=plan.feature_subspace, replace=False)] = True
    return TreeSpec(key, allowed)


def in_bag_weights(
    plan: ForestPlan, index: int, keys: npt.NDArray[np.uint64], n_samples: int,
    sample_weight: npt.NDArray[np.float64] | None,
) -> npt.NDArray[np.float64]:
    """Each row's weight in tree ``index``: its in-bag count times its sample weight."""
    weight = in_bag_counts(plan, index, keys, n_samples).astype(np.float64)
    if sample_weight is not None:
        weight *= sample_weight
    return weight


def partition_rows(
    plan: ForestPlan, trees: Sequence[int], table: CodeTable, y: npt.NDArray[Any],
    offset: int, n_total: int, target_shift: int,
) -> LocalRows:
    """One partition's share of a batch of ``trees``: its rows (global ids ``offset`` on, of
    ``n_total``; their codes in ``table``) in each tree's bag, every instance at its tree's
    root. Regression targets become the job's fixed-point integers, so that every sum over
    any cut of the rows is exact (the data-parallel backends all start a batch here)."""
    keys = row_keys(offset + np.arange(y.shape[0]))
    row_sets = []
    for i in trees:
        w = in_bag_weights(plan, i, keys, n_total, None)
        rows = np.flatnonzero(w > 0)
        row_sets.append((rows, w[rows]))
    targets = y if plan.n_classes else fixed_point_targets(y, target_shift)
    return LocalRows.of_trees(table, row_sets, targets, plan.n_classes > 0)


def partition_oob_sums(
    plan: ForestPlan, flat: FlatForest, table: CodeTable, y: npt.NDArray[Any], offset: int,
    n_total: int, mean: float | None,
) -> tuple[int, int, int, int, int]:
    """One partition's share of the out-of-bag score: ``(rows with an estimate, correct,
    sum_y, ss_res, ss_tot)``, the last three exact sums (``aioforest._exact``) of
    regression. ``mean`` is None in the first pass (``sum_y`` and ``ss_res``) and the mean
    of every partition's targets in the second (``ss_tot``), so the score of rows cut any
    way equals a local fit's bit for bit."""
    n = y.shape[0]
    leaves = flat.leaves_of_codes(table.codes.reshape(n, table.n_features))
    acc, seen = out_of_bag_votes(plan, flat.value, leaves, row_keys(offset + np.arange(n)),
                                 n_total)
    has = seen > 0
    truth, pred = y[has], acc[has] / seen[has, None]
    correct = sum_y = ss_res = ss_tot = 0
    if plan.n_classes:
        correct = int(np.count_nonzero(np.argmax(pred, axis=1) == truth))
    elif mean is None:
        sum_y, ss_res = exact_sum(truth), squared_deviations(truth, pred[:, 0])
    else:
        ss_tot = squared_deviations(truth, mean)
    return int(truth.size), correct, sum_y, ss_res, ss_tot


def tree_job(
    plan: ForestPlan,
    index: int,
    keys: npt.NDArray[np.uint64],
    n_features: int,
    sample_weight: npt.NDArray[np.float64] | None,
) -> TreeJob:
    """Tree ``index`` with its in-bag rows, all ``keys.size`` rows being in this process."""
    spec = tree_spec(plan, index, n_features)
    weight = in_bag_weights(plan, index, keys, keys.size, sample_weight)
    rows = np.flatnonzero(weight > 0)
    return TreeJob(key=spec.key, rows=rows, weight=weight[rows],
                   allowed_features=spec.allowed_features)


def _batch_cap(plan: ForestPlan, n_features: int) -> int:
    """The most in-bag rows of the trees grown together in one vectorised pass."""
    per_row = max(min(plan.max_features, n_features), 1)
    return min(BATCH_INSTANCES, max(BATCH_ELEMENTS // per_row, 1))


def arithmetic(
    plan: ForestPlan, n_samples: int, sample_weight: npt.NDArray[np.float64] | None,
    target_max: float = 0.0,
) -> Arithmetic:
    """How a job's split statistics are summed and scored: decided once for the whole job.

    These choices must not depend on which trees share a pass (a local fit, a pool fit and
    a cluster cut their tasks differently), so they depend on the plan, the weights and
    (regression) the largest absolute target ``target_max`` only.

    * ``integral``: every weight is an integer (bootstrap counts times integer sample
      weights) and a tree's total stays exact in float64, so every histogram sum is exact
      whatever its order, and trees may share passes. Regression targets then become
      fixed-point integers with as many bits as keep every weighted sum below 2**52
      (at most 31, so that squares fit 62 bits; 31 bits for 1M rows, 21 for 1G).
    * ``single``: scores in float32. Its prefix sums stay exact while a tree's total weight
      stays below 2**24. Gini with many classes is scored in float64 instead, because the
      incremental scan used on some levels (see ``INCREMENTAL_MIN_CLASSES``) is float64 and
      the two formulas then agree bit for bit.
    """
    max_weight = 1.0 if sample_weight is None else float(np.max(sample_weight, initial=0.0))
    whole = sample_weight is None or bool(np.all(sample_weight == np.floor(sample_weight)))
    # a bound on any tree's total weight
    bound = max_weight * (total_weight_bound(plan.n_draws) if plan.bootstrap else n_samples)
    if plan.n_classes == 0:
        return _regression_arithmetic(whole, bound, target_max)
    integral = whole and bound < 2.0**53
    single = (
        integral
        and plan.class_weight is None
        and bound < 2.0**24
        and not (plan.criterion == "gini" and plan.n_classes >= INCREMENTAL_MIN_CLASSES)
    )
    return Arithmetic(integral=integral, single=single)


def _regression_arithmetic(whole: bool, bound: float, target_max: float) -> Arithmetic:
    if not (whole and np.isfinite(target_max)):
        return Arithmetic(integral=False, single=False)
    if bound >= 2.0**31:  # the 21-bit limbs of q**2 would no longer sum exactly
        return Arithmetic(integral=False, single=False)
    # sum of w * |q| <= bound * 2**bits < 2**52 (so at least 21 bits)
    bits = min(31, 52 - int(np.ceil(np.log2(max(bound, 1.0) + 1.0))))
    exponent = int(np.frexp(target_max)[1]) if target_max > 0 else 0  # |y| < 2**exponent
    return Arithmetic(integral=True, single=False, target_shift=bits - exponent)


def target_max(y: npt.NDArray[Any], n_classes: int) -> float:
    """The largest absolute regression target (0 for classification): ``arithmetic``'s."""
    if n_classes or not y.size:
        return 0.0
    return float(np.max(np.abs(y)))


def _batches(jobs: Iterable[TreeJob], integral: bool, cap: int) -> Iterable[Sequence[TreeJob]]:
    """Consecutive runs of ``jobs`` grown in one pass, of at most ``cap`` rows in all."""
    if not integral:
        # Non-integer sums depend on which trees share a pass; grow such trees alone.
        for job in jobs:
            yield [job]
        return
    batch: list[TreeJob] = []
    size = 0
    for job in jobs:
        if batch and size + job.rows.size > cap:
            yield batch
            batch, size = [], 0
        batch.append(job)
        size += job.rows.size
    if batch:
        yield batch


def fit_trees(
    plan: ForestPlan,
    bins: Bins,
    codes: npt.NDArray[np.uint8],
    y: npt.NDArray[np.int64] | npt.NDArray[np.float64],
    sample_weight: npt.NDArray[np.float64] | None,
    indices: Sequence[int],
    should_stop: Callable[[], bool] | None = None,
) -> list[TreeArrays]:
    """Trees ``indices`` of the forest, in the order given.

    ``should_stop`` is polled once per level (see :func:`grow_trees`).
    """
    n_features, n_samples = codes.shape
    # drawn lazily: a batch's jobs exist only while it grows
    keys = row_keys(np.arange(n_samples))
    jobs = (tree_job(plan, i, keys, n_features, sample_weight) for i in indices)
    exact = arithmetic(plan, n_samples, sample_weight, target_max(y, plan.n_classes))
    class_weight = (
        np.asarray(plan.class_weight, dtype=np.float64) if plan.class_weight is not None else None
    )
    out: list[TreeArrays] = []
    cap = _batch_cap(plan, n_features)
    for batch in _batches(jobs, exact.integral, cap):
        out.extend(
            grow_trees(bins, codes, y, batch, plan.grow_params(), exact, class_weight, should_stop)
        )
    return out
