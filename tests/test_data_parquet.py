"""Parquet partitions (the parquet extra): the same schema and forest as the CSV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cluster_helpers import in_process_cluster
from forest_helpers import assert_same_tree
from test_data_partitions import _lines, _write

from aioforest import Partitions, RandomForestClassifier
from aioforest.data import DataError

N_ROWS = 600
CUT = [100, 0, 350, 150]


def _write_parquet(directory: Path, lines: list[str], cuts: list[int]) -> None:
    """The CSV rows as Parquet files: f1 float, color string, mixed int64 in files that
    hold only numbers there and string in the others, f4 float with nulls for "?"."""
    directory.mkdir(parents=True, exist_ok=True)
    start = 0
    for k, size in enumerate(cuts):
        rows = [line.split(",") for line in lines[start:start + size]]
        start += size
        mixed = [r[2] for r in rows]
        numbers_only = all(m.isdigit() for m in mixed)
        table = pa.table({
            "f1": pa.array([float(r[0]) for r in rows], pa.float64()),
            "color": pa.array([r[1] for r in rows], pa.string()),
            "mixed": (pa.array([int(m) for m in mixed], pa.int64()) if numbers_only
                      else pa.array(mixed, pa.string())),
            "f4": pa.array([None if r[3] == "?" else float(r[3]) for r in rows],
                           pa.float64()),
            "label": pa.array([r[4] for r in rows], pa.string()),
        })
        pq.write_table(table, directory / f"part-{k:03d}.parquet")


def _forest() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=4, random_state=3, max_features=2)


def _assert_same(a: RandomForestClassifier, b: RandomForestClassifier) -> None:
    assert a.bins_.equals(b.bins_) and a.features_ == b.features_
    assert list(a.classes_) == list(b.classes_)
    for i, (s, t) in enumerate(zip(a.trees_, b.trees_, strict=True)):
        assert_same_tree(s, t, where=f"tree {i}: ")


@pytest.fixture
def both(tmp_path: Path) -> tuple[Partitions, Partitions]:
    lines = _lines(N_ROWS)
    _write(tmp_path / "csv", lines, CUT)
    _write_parquet(tmp_path / "parquet", lines, CUT)
    return (Partitions(str(tmp_path / "csv" / "part-*.csv")),
            Partitions(str(tmp_path / "parquet" / "part-*.parquet")))


def test_parquet_partitions_read_and_fit_as_the_same_rows_in_csv(
    both: tuple[Partitions, Partitions]
) -> None:
    csv, parquet = both
    a, b = csv.read(), parquet.read()
    assert a.features == b.features  # "mixed" is categorical with the same categories
    assert np.array_equal(np.asarray(a.X, dtype=str), np.asarray(b.X, dtype=str))
    assert np.array_equal(a.y, b.y)
    _assert_same(_forest().fit(parquet), _forest().fit(csv))


@pytest.mark.asyncio
async def test_a_data_parallel_fit_of_parquet_partitions_equals_the_local_fit(
    both: tuple[Partitions, Partitions]
) -> None:
    csv, parquet = both
    async with in_process_cluster(2) as (master, _):
        remote = await master.fit(_forest(), parquet, mode="data")
    _assert_same(remote, _forest().fit(csv))


def test_a_broken_parquet_file_or_a_missing_column_is_a_clear_error(tmp_path: Path) -> None:
    _write_parquet(tmp_path, _lines(20), [20])
    (tmp_path / "part-001.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=r"part-001\.parquet.*cannot read the Parquet file"):
        Partitions(str(tmp_path / "part-*.parquet")).read()
    with pytest.raises(DataError, match=r"part-000\.parquet.*target column 'nope' not found"):
        Partitions([str(tmp_path / "part-000.parquet")], target="nope").read()
