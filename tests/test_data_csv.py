"""read_csv: inference from all rows, missing values, quoting, and precise DataError locations."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioforest import datasets
from aioforest.data import DataError, Dataset, Feature, read_csv

GOLEARN = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "golearn"


def golearn(name: str) -> Path:
    path = GOLEARN / name
    if not path.is_file():
        # CI lays shared/ beside the clone; a checkout elsewhere may lack it.
        if os.environ.get("CI"):
            pytest.fail(f"GoLearn dataset copy missing in CI: {path}")
        pytest.skip(f"GoLearn dataset copy not present at {path}")
    return path


def read_text(text: str, **kwargs: object) -> Dataset:
    return read_csv(io.StringIO(text), **kwargs)  # type: ignore[arg-type]


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


# --------------------------------------------------------------------------- real files


def test_iris_with_header_strips_names_and_keeps_labels() -> None:
    ds = read_csv(datasets.path("iris_headers.csv"))
    assert ds.feature_names == ["Sepal length", "Sepal width", "Petal length", "Petal width"]
    assert ds.target_name == "Species"
    assert ds.n_samples == len(ds) == 150
    assert ds.n_features == 4
    assert all(f.kind == "numeric" for f in ds.features)
    assert ds.X.dtype == np.float64
    assert ds.X[0].tolist() == [5.1, 3.5, 1.4, 0.2]
    assert ds.y is not None and ds.y.dtype == object
    assert ds.y[0] == "Iris-setosa" and ds.y[-1] == "Iris-virginica"
    assert ds.classes == ("Iris-setosa", "Iris-versicolor", "Iris-virginica")
    assert ds.task == "classification"
    assert ds.source == str(datasets.path("iris_headers.csv"))


def test_iris_without_header_gets_generated_names() -> None:
    ds = read_csv(golearn("iris.csv"), header=False)
    assert ds.feature_names == ["x0", "x1", "x2", "x3"]
    assert ds.target_name == "y"
    assert ds.n_samples == 150
    reference = read_csv(datasets.path("iris_headers.csv"))
    np.testing.assert_array_equal(ds.encoded(), reference.encoded())
    assert reference.y is not None and ds.y is not None
    assert ds.y.tolist() == reference.y.tolist()


def test_titanic_crlf_no_header_no_final_newline() -> None:
    ds = read_csv(golearn("titanic.csv"), header=False)
    assert ds.n_samples == 889
    assert ds.feature_names == ["x0", "x1", "x2"]
    assert ds.classes == ("0", "1")
    assert ds.X[0].tolist() == [3.0, 1.0, 2.0]


def test_mnist_label_in_first_column() -> None:
    ds = read_csv(golearn("mnist_test.csv"), target=0)
    assert ds.target_name == "label"
    assert ds.n_samples == 500
    assert ds.n_features == 784
    assert ds.feature_names[:2] == ["pixel0", "pixel1"]
    assert ds.X.dtype == np.float64
    assert set(ds.classes) == {str(d) for d in range(10)}


def test_tennis_is_all_categorical_with_sorted_categories() -> None:
    ds = read_csv(datasets.path("tennis.csv"))
    assert ds.features == (
        Feature("outlook", "categorical", ("overcast", "rainy", "sunny")),
        Feature("temp", "categorical", ("cool", "hot", "mild")),
        Feature("humidity", "categorical", ("high", "normal")),
        Feature("windy", "categorical", ("false", "true")),
    )
    assert ds.X.dtype == object
    assert ds.X[0].tolist() == ["sunny", "hot", "high", "false"]
    assert ds.encoded()[0].tolist() == [2.0, 1.0, 0.0, 0.0]
    assert ds.classes == ("no", "yes")


def test_c45_mixed_kinds() -> None:
    ds = read_csv(datasets.path("c45-numeric.csv"))
    assert [f.kind for f in ds.features] == ["categorical", "numeric", "categorical"]
    assert ds.X[0].tolist() == ["A", 70.0, "T"]
    assert type(ds.X[0, 1]) is float


def test_house_votes_class_counts_and_forced_categorical() -> None:
    ds = read_csv(datasets.path("house-votes-84.csv"))
    assert ds.y is not None
    labels, counts = np.unique(ds.y, return_counts=True)
    assert dict(zip(labels.tolist(), counts.tolist(), strict=True)) == {
        "democrat": 267, "republican": 168}
    forced = read_csv(datasets.path("house-votes-84.csv"), categorical=["v1", 0])
    assert forced.features[0] == Feature("v16", "categorical", ("-1", "1"))
    assert forced.features[1] == Feature("v1", "categorical", ("-1", "1"))
    assert forced.features[2].kind == "numeric"
    # codes: "-1" -> 0, "1" -> 1
    np.testing.assert_array_equal(forced.encoded()[:, 0], (ds.encoded()[:, 0] + 1) / 2)


# --------------------------------------------------------------------------- inference


def test_kind_is_inferred_from_all_rows_not_the_first() -> None:
    rows = [f"{i},{i * 0.5},c{i % 2}" for i in range(8)]
    rows[6] = "6,abc,c0"  # a text cell long after the first row
    ds = read_text("n,late,label\n" + "\n".join(rows) + "\n")
    assert ds.features[0].kind == "numeric"
    late = ds.features[1]
    assert late.kind == "categorical"
    # verbatim text, sorted as strings
    assert late.categories == ("0.0", "0.5", "1.0", "1.5", "2.0", "2.5", "3.5", "abc")
    assert ds.X[6, 1] == "abc" and ds.X[1, 1] == "0.5"


def test_missing_values_become_nan_or_none() -> None:
    text = "num,cat,label\n1.5,red,a\n,blue,b\nNA,,a\n?,?,b\n 2 , NA ,a\n"
    ds = read_text(text)
    assert [f.kind for f in ds.features] == ["numeric", "categorical"]
    assert ds.features[1].categories == ("blue", "red")
    num = ds.X[:, 0].tolist()
    assert num[0] == 1.5 and num[4] == 2.0
    assert all(math.isnan(v) for v in num[1:4])
    assert ds.X[:, 1].tolist() == ["red", "blue", None, None, None]
    enc = ds.encoded()
    assert enc[:, 1].tolist()[:2] == [1.0, 0.0]
    assert np.isnan(enc[2:, 1]).all()


def test_custom_numeric_na_value() -> None:
    ds = read_text("a,label\n1,x\n-999,y\n3,x\n", na_values=("-999",))
    assert ds.features[0].kind == "numeric"
    values = ds.X[:, 0]
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2] == 3.0


def test_all_missing_column_is_numeric_nan() -> None:
    ds = read_text("a,b,label\n,1,x\n,2,y\n")
    assert ds.features[0].kind == "numeric"
    assert np.isnan(ds.X[:, 0]).all()


def test_quoted_fields_with_delimiters_quotes_and_newlines() -> None:
    text = ('name,score,quote,label\n'
            '"Smith, John",1.5,"say ""hi""",yes\n'
            '"multi\nline",2,plain,no\n'
            'Jo,"3",x,yes\n')
    ds = read_text(text)
    assert ds.X[:, 0].tolist() == ["Smith, John", "multi\nline", "Jo"]
    assert ds.features[1].kind == "numeric"
    assert ds.X[:, 1].tolist() == [1.5, 2.0, 3.0]
    assert ds.X[0, 2] == 'say "hi"'


def test_blank_lines_are_ignored_and_line_numbers_stay_physical(tmp_path: Path) -> None:
    ds = read_text("a,label\n\n1,x\n\n2,y\n\n\n   \n")
    assert ds.n_samples == 2
    path = write(tmp_path, "a,b,label\n\n1,2,x\n\n3,y\n")
    with pytest.raises(DataError) as info:
        read_csv(path)
    assert (info.value.line, info.value.column) == (5, 3)


def test_other_delimiter_and_target_by_name_and_position() -> None:
    text = "label;a;b\nx;1;2\ny;3;4\n"
    ds = read_text(text, delimiter=";", target="label")
    assert ds.feature_names == ["a", "b"]
    assert ds.y is not None and ds.y.tolist() == ["x", "y"]
    same = read_text(text, delimiter=";", target=-3)
    np.testing.assert_array_equal(same.encoded(), ds.encoded())


def test_target_in_the_middle_without_header() -> None:
    ds = read_text("1,a,2\n3,b,4\n", header=False, target=1)
    assert ds.feature_names == ["x0", "x1"]
    assert ds.target_name == "y"
    assert ds.X.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_regression_target_is_float() -> None:
    ds = read_text("a,price\nx,1.5\ny,2\nx,2\n", task="regression")
    assert ds.task == "regression"
    assert ds.y is not None and ds.y.dtype == np.float64
    assert ds.y.tolist() == [1.5, 2.0, 2.0]
    assert ds.classes == ()
    one_value = read_text("a,price\nx,1\ny,1\n", task="regression")  # no one-class check
    assert one_value.n_samples == 2


def test_unlabelled_file() -> None:
    ds = read_text("a,b\n1,2\n3,4\n", target=None)
    assert ds.y is None and ds.n_features == 2 and ds.classes == ()


def test_categorical_target_listed_in_categorical_is_ignored() -> None:
    ds = read_text("a,label\n1,x\n2,y\n", categorical=["a", "label"])
    assert ds.features == (Feature("a", "categorical", ("1", "2")),)


def test_binary_stream_with_bom_and_stream_name() -> None:
    raw = io.BytesIO("\ufeffa,label\n1,x\n2,y\n".encode())
    ds = read_csv(raw)
    assert ds.feature_names == ["a"]
    assert ds.source is None
    assert not raw.closed


def test_arrays_are_read_only() -> None:
    ds = read_text("a,b,label\n1,u,x\n2,v,y\n")
    for arr in (ds.X, ds.encoded(), ds.y):
        assert arr is not None
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = arr[1]


# --------------------------------------------------------------------------- errors


def test_ragged_row_message_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b,petal_width,label\n1,2,3,x\n4,5,y\n", name="iris.csv")
    with pytest.raises(DataError) as info:
        read_csv(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.path, err.line, err.column, err.column_name) == (str(path), 3, 4, "label")
    assert str(err) == f"{path}:3:4 (column 'label'): expected 4 fields, found 3"


def test_ragged_row_with_too_many_fields() -> None:
    with pytest.raises(DataError) as info:
        read_text("a,b,label\n1,2,x\n1,2,3,x\n")
    err = info.value
    assert (err.path, err.line, err.column, err.column_name) == ("<stream>", 3, 4, None)
    assert str(err) == "<stream>:3:4: expected 3 fields, found 4"


def test_ragged_row_after_a_multiline_record() -> None:
    with pytest.raises(DataError) as info:
        read_text('a,b,label\n1,"two\nlines",x\n3,y\n')
    assert (info.value.line, info.value.column) == (4, 3)


def test_ragged_without_header_uses_generated_names() -> None:
    with pytest.raises(DataError) as info:
        read_text("1,2,x\n3,y\n", header=False)
    assert (info.value.line, info.value.column, info.value.column_name) == (2, 3, "y")


@pytest.mark.parametrize(("text", "reason"), [
    ("", "no data rows (the file is empty)"),
    ("\n\n   \n", "no data rows (the file is empty)"),
    ("a,b,label\n", "no data rows (only a header)"),
    ("a,b,label\n\n\n", "no data rows (only a header)"),
])
def test_no_data_rows(text: str, reason: str) -> None:
    with pytest.raises(DataError) as info:
        read_text(text)
    assert info.value.reason == reason
    assert info.value.line is None
    assert str(info.value) == f"<stream>: {reason}"


def test_no_data_rows_headerless() -> None:
    with pytest.raises(DataError, match="no data rows"):
        read_text("", header=False)


def test_unknown_target_name() -> None:
    with pytest.raises(DataError) as info:
        read_text("a,b\n1,x\n2,y\n", target="species")
    err = info.value
    assert (err.line, err.column) == (1, None)
    assert str(err) == "<stream>:1: target column 'species' not found; columns are 'a', 'b'"


@pytest.mark.parametrize("target", [2, -3, 10])
def test_target_index_out_of_range(target: int) -> None:
    with pytest.raises(DataError) as info:
        read_text("a,b\n1,x\n2,y\n", target=target)
    assert info.value.line == 1
    assert info.value.reason == (f"target column index {target} is out of range for 2 "
                                 f"columns")


def test_target_index_out_of_range_headerless_points_at_first_row() -> None:
    with pytest.raises(DataError) as info:
        read_text("\n1,x\n2,y\n", header=False, target=5)
    assert info.value.line == 2


def test_target_by_name_without_header() -> None:
    with pytest.raises(DataError, match="no header"):
        read_text("1,x\n2,y\n", header=False, target="y")


def test_single_class_target() -> None:
    with pytest.raises(DataError) as info:
        read_text("a,label\n1,x\n2,x\n3,x\n")
    err = info.value
    assert (err.line, err.column, err.column_name) == (None, 2, "label")
    assert str(err) == ("<stream> (column 2 'label'): the target has a single class 'x'; "
                        "classification needs at least two")


@pytest.mark.parametrize("cell", ["", "NA", "?", " ? "])
def test_missing_target_value(cell: str) -> None:
    with pytest.raises(DataError) as info:
        read_text(f"a,label\n1,x\n\n2,{cell}\n3,y\n")
    err = info.value
    assert (err.line, err.column, err.column_name) == (4, 2, "label")
    assert err.reason == f"missing target value {cell!r}"


def test_regression_target_not_a_number() -> None:
    with pytest.raises(DataError) as info:
        read_text("a,price\n1,2.5\n2,cheap\n", task="regression")
    assert (info.value.line, info.value.column, info.value.column_name) == (3, 2, "price")
    with pytest.raises(DataError) as info:
        read_text("a,price\n1,2.5\n2,nan\n", task="regression")
    assert "missing target value" in info.value.reason


@pytest.mark.parametrize("ref", ["colour", 3, -4])
def test_unknown_categorical_column(ref: str | int) -> None:
    with pytest.raises(DataError) as info:
        read_text("a,b,label\n1,2,x\n3,4,y\n", categorical=[ref])
    assert info.value.line == 1
    assert "categorical column" in info.value.reason


def test_categorical_target_for_regression_is_rejected() -> None:
    with pytest.raises(DataError) as info:
        read_text("a,price\n1,2\n3,4\n", task="regression", categorical=["price"])
    assert (info.value.column, info.value.column_name) == (2, "price")


def test_malformed_quoting() -> None:
    with pytest.raises(DataError) as info:
        read_text('a,label\n1,x\n2,"y"z\n')
    assert info.value.line == 3
    assert info.value.reason.startswith("malformed CSV")
    with pytest.raises(DataError) as info:
        read_text('a,label\n1,x\n2,"unterminated\n3,y\n')
    assert info.value.line == 3


def test_header_problems() -> None:
    with pytest.raises(DataError) as info:
        read_text("a,b,a\n1,2,x\n")
    assert (info.value.line, info.value.column, info.value.column_name) == (1, 3, "a")
    assert "duplicate column name 'a'" in info.value.reason
    with pytest.raises(DataError) as info:
        read_text("a, ,label\n1,2,x\n")
    assert (info.value.line, info.value.column) == (1, 2)


def test_only_a_target_column() -> None:
    with pytest.raises(DataError, match="no feature columns"):
        read_text("label\nx\ny\n")


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"a,label\n1,\xff\n")
    with pytest.raises(DataError) as info:
        read_csv(path)
    assert info.value.path == str(path)
    assert "UTF-8" in info.value.reason


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="na_values"):
        read_text("a,b\n1,x\n", na_values="NA")
    with pytest.raises(ValueError, match="delimiter"):
        read_text("a,b\n1,x\n", delimiter=";;")
    with pytest.raises(ValueError, match="task"):
        read_text("a,b\n1,x\n", task="clustering")
    with pytest.raises(TypeError):
        read_text("a,b\n1,x\n", target=1.5)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_csv(tmp_path / "nope.csv")


# --------------------------------------------------------------------------- round trip

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def numeric_tables(draw: st.DrawFn) -> tuple[list[list[float | None]], list[str]]:
    n = draw(st.integers(2, 25))
    d = draw(st.integers(1, 5))
    cell = st.one_of(finite, st.none()) if draw(st.booleans()) else finite
    rows = [[draw(cell) for _ in range(d)] for _ in range(n)]
    labels = ["a", "b", *draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n - 2,
                                       max_size=n - 2))]
    return rows, labels


@settings(max_examples=60, deadline=None)
@given(numeric_tables(), st.sampled_from([",", ";", "\t"]))
def test_round_trip_of_random_numeric_tables(
    table: tuple[list[list[float | None]], list[str]], delimiter: str
) -> None:
    rows, labels = table
    d = len(rows[0])
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow([f"f{j}" for j in range(d)] + ["label"])
    for row, label in zip(rows, labels, strict=True):
        writer.writerow(["" if v is None else repr(v) for v in row] + [label])
    buffer.seek(0)
    ds = read_csv(buffer, delimiter=delimiter)
    expected = np.array([[math.nan if v is None else v for v in row] for row in rows],
                        dtype=np.float64)
    assert ds.feature_names == [f"f{j}" for j in range(d)]
    assert all(f.kind == "numeric" for f in ds.features)
    assert ds.X.dtype == np.float64
    np.testing.assert_array_equal(ds.encoded(), expected)  # NaN == NaN here; exact floats
    assert ds.y is not None and ds.y.tolist() == labels
    assert ds.encoded().flags.c_contiguous
