"""The data layer: datasets, file readers, splits and (see ``_binning``) feature binning.

* :class:`Dataset` holds features, labels and their schema (:class:`Feature`); its
  :meth:`~Dataset.encoded` matrix is what models train on.
* :func:`read_csv` and :func:`read_arff` read files; :meth:`Dataset.from_arrays`,
  :meth:`Dataset.from_dataframe` and :func:`as_dataset` wrap in-memory data.
* :func:`encode_features` maps raw rows to the encoded matrix at predict time (unseen
  categories become NaN, i.e. missing).
* :class:`Binner` learns a :class:`Bins` (the fitted binning a model keeps), from all rows
  or from per-part :class:`BinSummary` objects that merge exactly;
  :meth:`Bins.transform` turns rows into ``uint8`` codes.
* :func:`train_test_split`, :class:`KFold`, :class:`StratifiedKFold` and :func:`split_rows`
  split rows deterministically for a given ``random_state``.
* :class:`Partitions` is a dataset cut into files that are read where they are
  (:func:`read_partition`, :func:`merge_scans`, :func:`encode_partition`), with the schema
  a single read of their concatenation would infer.
* Every bad input raises :class:`DataError`, which names the file, line and column.
"""

from ._arff import read_arff
from ._binning import BIN_SAMPLE_ROWS, MAX_BINS, Binner, Bins, BinSummary, in_bin_sample
from ._csv import read_csv
from ._dataset import (
    ColumnRef,
    Dataset,
    Feature,
    FeatureKind,
    Task,
    as_dataset,
    as_target,
    encode_features,
    infer_features,
    is_dataframe,
)
from ._errors import DataError
from ._partitions import (
    CsvOptions,
    Partitions,
    PartitionScan,
    PartitionTable,
    Schema,
    columns_to_reread,
    encode_partition,
    merge_scans,
    read_partition,
)
from ._split import (
    IndexArray,
    KFold,
    RandomState,
    StratifiedKFold,
    split_rows,
    train_test_split,
)

__all__ = [
    "BIN_SAMPLE_ROWS",
    "MAX_BINS",
    "BinSummary",
    "Binner",
    "Bins",
    "ColumnRef",
    "CsvOptions",
    "DataError",
    "Dataset",
    "Feature",
    "FeatureKind",
    "IndexArray",
    "KFold",
    "PartitionScan",
    "PartitionTable",
    "Partitions",
    "RandomState",
    "Schema",
    "StratifiedKFold",
    "Task",
    "as_dataset",
    "as_target",
    "columns_to_reread",
    "encode_features",
    "encode_partition",
    "in_bin_sample",
    "infer_features",
    "is_dataframe",
    "merge_scans",
    "read_arff",
    "read_csv",
    "read_partition",
    "split_rows",
    "train_test_split",
]
