"""Histogram decision trees grown level by level, and the arrays that hold them.

Where to start reading: ``_builder.grow_trees`` (the growth driver) and ``grow_level``,
which runs one level in three stages, each a module with its own data types:

* ``_histogram``: stage 1, the integer histograms of the rows in the open nodes
  (``Histograms``, summable across machines with ``sum_histograms``);
* ``_splitting``: stage 2, each node's best split from the summed histograms
  (``choose_splits`` with a ``Criterion`` object from ``_criterion``);
* ``_routing``: stage 3, every row to its child (``route_rows``).

The driver never touches rows: it asks a ``_rows.RowSource`` for sums and tells it where
rows go, so the same driver grows trees on rows in this process (``LocalRows``), cut into
parts (``SummedRows``) or spread over a cluster's workers. Small nodes can leave the
level-wise growth and finish where their rows meet (``RowSource.grow_subtrees``,
``grow_subtrees_here``); feature draws are keyed by a node's path and ids are put back in
level order, so the trees do not change. Regression targets are fixed-point integers
(``Arithmetic.target_shift``), so every sum is exact and any cut of the rows gives the
same trees.

``_splitter`` runs stages 1 and 2 over the rounds of feature draws of a level; ``_plan``
holds ``ForestPlan`` (what a forest's trees depend on) and ``fit_trees``; ``_arrays`` the
fitted ``TreeArrays``; ``_predict`` the flattened forest; ``_classes`` the estimators.
"""

from ._arrays import TreeArrays, split_thresholds
from ._bootstrap import row_keys
from ._builder import (
    Arithmetic,
    FitCancelled,
    GrowParams,
    GrowthState,
    TreeSpec,
    code_table,
    fixed_point_targets,
    grow,
    grow_subtrees_here,
)
from ._classes import DecisionTreeClassifier, DecisionTreeRegressor, plan_for
from ._criterion import class_probabilities
from ._export import export_text
from ._hashing import tree_key
from ._histogram import CodeTable, DrawnFeatures, Histograms, LevelRows, sum_histograms
from ._model import (
    ClassifierMixin,
    RegressorMixin,
    TreeModel,
    model_classes,
    register_model,
    set_collection_predictor,
    set_model_writer,
)
from ._plan import (
    BATCH_INSTANCES,
    GROWTH_VERSION,
    ForestPlan,
    arithmetic,
    fit_trees,
    in_bag_counts,
    in_bag_weights,
    out_of_bag_votes,
    partition_oob_sums,
    partition_rows,
    target_max,
    tree_spec,
)
from ._predict import Allocate, FlatForest
from ._routing import NodeSplits
from ._rows import (
    ROUND_CELLS,
    GrowHere,
    HistogramRequest,
    LocalRows,
    NodeRecords,
    RowSource,
    SubtreeRows,
    SubtreeStart,
    SummedRows,
)

__all__ = [
    "BATCH_INSTANCES",
    "GROWTH_VERSION",
    "ROUND_CELLS",
    "Allocate",
    "Arithmetic",
    "ClassifierMixin",
    "CodeTable",
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "DrawnFeatures",
    "FitCancelled",
    "FlatForest",
    "ForestPlan",
    "GrowHere",
    "GrowParams",
    "GrowthState",
    "HistogramRequest",
    "Histograms",
    "LevelRows",
    "LocalRows",
    "NodeRecords",
    "NodeSplits",
    "RegressorMixin",
    "RowSource",
    "SubtreeRows",
    "SubtreeStart",
    "SummedRows",
    "TreeArrays",
    "TreeModel",
    "TreeSpec",
    "arithmetic",
    "class_probabilities",
    "code_table",
    "export_text",
    "fit_trees",
    "fixed_point_targets",
    "grow",
    "grow_subtrees_here",
    "in_bag_counts",
    "in_bag_weights",
    "model_classes",
    "out_of_bag_votes",
    "partition_oob_sums",
    "partition_rows",
    "plan_for",
    "register_model",
    "row_keys",
    "set_collection_predictor",
    "set_model_writer",
    "split_thresholds",
    "sum_histograms",
    "target_max",
    "tree_key",
    "tree_spec",
]
