"""Partitioned CSV datasets: the schema and rows of a single read of the concatenation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import aioforest
from aioforest.data import (
    DataError,
    Partitions,
    PartitionScan,
    Schema,
    columns_to_reread,
    merge_scans,
    read_csv,
    read_partition,
)

HEADER = "f1,color,mixed,f4,label"


def _lines(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        mixed = str(i % 5) if i < n * 2 // 3 else "x"  # numbers in early files only
        f4 = "?" if i % 17 == 0 else f"{rng.normal():.2f}"
        label = "a" if rng.random() < 0.5 else ("b" if i % 7 else "c")
        out.append(f"{rng.normal():.4f},{'red' if i % 3 else 'blue'},{mixed},{f4},{label}")
    return out


def _write(directory: Path, lines: list[str], cuts: list[int]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths, start = [], 0
    for k, size in enumerate(cuts):
        path = directory / f"part-{k:03d}.csv"
        path.write_text(HEADER + "\n" + "".join(s + "\n" for s in lines[start:start + size]))
        paths.append(path)
        start += size
    return paths


CUTS = {"1 file": [300], "3 uneven": [5, 250, 45], "7 with a header-only one": [40] * 3 + [0]
        + [60, 60, 60]}


@pytest.mark.parametrize("cut", list(CUTS), ids=list(CUTS))
def test_partitions_read_as_the_concatenated_file(tmp_path: Path, cut: str) -> None:
    lines = _lines(300)
    whole = tmp_path / "all.csv"
    whole.write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    _write(tmp_path / "parts", lines, CUTS[cut])
    a = read_csv(whole)
    b = Partitions(str(tmp_path / "parts" / "part-*.csv")).read()
    assert a.features == b.features
    assert a.features[2].is_categorical  # numeric in some files, text in others
    assert np.array_equal(a.encoded(), b.encoded(), equal_nan=True)
    assert np.array_equal(a.y, b.y) and a.classes == b.classes


def test_a_forest_fits_partitions_as_the_concatenation(tmp_path: Path) -> None:
    lines = _lines(300)
    whole = tmp_path / "all.csv"
    whole.write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    paths = _write(tmp_path / "parts", lines, [100, 0, 200])
    a = aioforest.RandomForestClassifier(n_estimators=4, random_state=1).fit(read_csv(whole))
    b = aioforest.RandomForestClassifier(n_estimators=4, random_state=1).fit(Partitions(paths))
    for s, t in zip(a.trees_, b.trees_, strict=True):
        for name, value in s.arrays().items():
            assert np.array_equal(value, t.arrays()[name], equal_nan=True), name


def test_a_glob_is_sorted_and_a_list_keeps_its_order(tmp_path: Path) -> None:
    paths = _write(tmp_path, _lines(30), [10, 10, 10])
    assert Partitions(str(tmp_path / "*.csv")).paths == tuple(str(p) for p in paths)
    given = [paths[2], paths[0]]
    assert Partitions(given).paths == tuple(str(p) for p in given)
    assert Partitions(given).root == str(tmp_path)
    with pytest.raises(DataError, match="no file matches"):
        Partitions(str(tmp_path / "nothing-*.csv"))


def test_a_different_header_names_the_file_line_and_column(tmp_path: Path) -> None:
    paths = _write(tmp_path, _lines(30), [10, 20])
    text = paths[1].read_text().replace("mixed,", "other,", 1)
    paths[1].write_text(text)
    with pytest.raises(DataError) as info:
        Partitions(paths).read()
    assert info.value.path == str(paths[1]) and info.value.line == 1
    assert info.value.column == 3 and "header differs" in str(info.value)


def test_a_ragged_row_names_its_file_line_and_column(tmp_path: Path) -> None:
    paths = _write(tmp_path, _lines(30), [10, 20])
    rows = paths[1].read_text().splitlines()
    rows[4] = rows[4].rsplit(",", 1)[0]
    paths[1].write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match="expected 5 fields, found 4") as info:
        Partitions(paths).read()
    assert (info.value.path, info.value.line, info.value.column) == (str(paths[1]), 5, 5)


def test_a_missing_or_empty_file_is_named(tmp_path: Path) -> None:
    paths = _write(tmp_path, _lines(30), [10, 20])
    options = Partitions(paths).options()
    with pytest.raises(DataError, match="no such file") as info:
        read_partition(str(tmp_path / "gone.csv"), options)
    assert info.value.path == str(tmp_path / "gone.csv")
    paths[0].write_text("")
    with pytest.raises(DataError, match="no header"):
        Partitions(paths).read()


def test_a_single_class_file_is_fine_but_a_single_class_dataset_is_not(tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    b = tmp_path / "b.csv"
    a.write_text("x,label\n1,yes\n2,yes\n")
    b.write_text("x,label\n3,no\n")
    assert Partitions([a, b]).read().classes == ("no", "yes")
    with pytest.raises(DataError, match="single class 'yes' in all files"):
        Partitions([a]).read()


def test_regression_targets_and_bad_targets(tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text("x,y\n1,0.5\n2,1.5\n")
    ds = Partitions([a], task="regression").read()
    assert ds.y.tolist() == [0.5, 1.5]
    a.write_text("x,y\n1,0.5\n2,lots\n")
    with pytest.raises(DataError, match="'lots' is not a number") as info:
        Partitions([a], task="regression").read()
    assert (info.value.line, info.value.column) == (3, 2)


def test_scans_and_schemas_round_trip_through_json_and_refuse_damage(tmp_path: Path) -> None:
    paths = _write(tmp_path, _lines(60), [20, 40])
    options = Partitions(paths).options()
    scans = [read_partition(str(p), options).scan for p in paths]
    assert [PartitionScan.from_json(s.to_json()) for s in scans] == scans
    with pytest.raises(ValueError, match="needs the texts"):
        merge_scans(scans, options)  # file 0 read 'mixed' as numbers; file 1 has text
    assert columns_to_reread(scans) == {0: [2]}
    texts = {0: {2: read_partition(str(paths[0]), options, as_text=[2]).texts_of[2]}}
    schema = merge_scans(scans, options, texts)
    assert Schema.from_json(schema.to_json()) == schema
    bad = scans[0].to_json()
    bad["n_rows"] = -1
    with pytest.raises(ValueError, match="malformed"):
        PartitionScan.from_json(bad)
    with pytest.raises(ValueError, match="expected keys"):
        Schema.from_json({"features": []})


def test_numbers_of_a_column_that_is_text_elsewhere_become_categories(tmp_path: Path) -> None:
    # The numbers appear only in the file where every cell is a number: they are
    # categories of the merged column all the same, as in a single read.
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("x,label\n1.5,p\n2,q\n")
    b.write_text("x,label\nred,p\n")
    whole = tmp_path / "all.csv"
    whole.write_text("x,label\n1.5,p\n2,q\nred,p\n")
    ds = Partitions([a, b]).read()
    assert ds.features == read_csv(whole).features
    assert ds.features[0].categories == ("1.5", "2", "red")
    assert np.array_equal(ds.encoded(), read_csv(whole).encoded())


@pytest.mark.parametrize("text", [
    "a,b,label\n1.5,2,x\n-3e2,  4 ,y\n\n5,\"6\",x\n",      # spaces, a blank line, quotes
    "a,b,label\n1_000,2,x\n3,4,y\n",                        # Python's float only: careful
    "a,b,label\n1,,x\n3,4,y\n",                             # missing: careful
    "a,b,label\n1,2,x\n3,4\n",                              # ragged: careful, with its error
    "a,b,label\nnan,inf,x\n-inf,1e400,y\n",
], ids=["spaces", "underscore", "missing", "ragged", "specials"])
def test_the_fast_numeric_reader_reads_what_the_careful_one_reads(
    tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aioforest.data._partitions as partitions

    path = tmp_path / "p.csv"
    path.write_text(text)
    options = Partitions([path], target="label").options()

    def read() -> object:
        try:
            return read_partition(str(path), options)
        except DataError as exc:
            return str(exc)

    fast = read()
    monkeypatch.setattr(partitions, "_read_numeric_fast", lambda *_: None)
    careful = read()
    if isinstance(careful, str):
        assert fast == careful
        return
    assert fast.scan == careful.scan  # type: ignore[union-attr]
    for a, b in zip(fast.columns, careful.columns, strict=True):  # type: ignore[union-attr]
        assert a.tobytes() == b.tobytes()
    assert fast.target.tolist() == careful.target.tolist()  # type: ignore[union-attr]


def test_c_nan_spellings_are_read_as_python_reads_them(tmp_path: Path) -> None:
    # The C parsers (numpy's, pyarrow's) read "nan(abc)" as NaN; Python's float refuses it,
    # so the careful reader keeps the column as text. Every worker must agree.
    from aioforest.data import CsvOptions, read_partition

    path = tmp_path / "f.csv"
    path.write_text("a,b,label\n1,NaN(abc),x\n3,4,y\n")
    table = read_partition(str(path), CsvOptions("label", (), ("?",), ",", "classification"))
    assert table.scan.numeric == (True, False)
    assert table.scan.texts[1] == ("4", "NaN(abc)")
