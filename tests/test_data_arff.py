"""read_arff: declared nominal order, mixed types, quoting, missing values and errors."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest

from aioforest import datasets
from aioforest.data import DataError, Dataset, Feature, read_arff, read_csv

HEADER = """% a comment line
@RELATION test

@ATTRIBUTE 'petal width' REAL
@attribute\tcolour {red, 'dark blue', green}
@attribute class {a,b}

@data
"""


def read_text(text: str, **kwargs: object) -> Dataset:
    return read_arff(io.StringIO(text), **kwargs)  # type: ignore[arg-type]


def test_weather_mixed_nominal_and_numeric() -> None:
    ds = read_arff(datasets.path("weather.arff"))
    assert ds.features == (
        Feature("outlook", "categorical", ("sunny", "overcast", "rainy")),  # declared order
        Feature("temperature", "numeric"),
        Feature("humidity", "numeric"),
        Feature("windy", "categorical", ("TRUE", "FALSE")),
    )
    assert ds.target_name == "play"
    assert ds.n_samples == 14
    assert ds.X[0].tolist() == ["sunny", 85.0, 85.0, "FALSE"]
    assert ds.encoded()[0].tolist() == [0.0, 85.0, 85.0, 1.0]
    assert ds.encoded()[2].tolist() == [1.0, 83.0, 86.0, 1.0]
    assert ds.classes == ("no", "yes")  # classes are sorted, unlike declared categories
    assert ds.y is not None and ds.y[:3].tolist() == ["no", "no", "yes"]
    assert ds.task == "classification"


def test_iris_arff_matches_iris_csv() -> None:
    arff = read_arff(datasets.path("iris.arff"))
    csv = read_csv(datasets.path("iris_headers.csv"))
    assert arff.feature_names == ["sepallength", "sepalwidth", "petallength", "petalwidth"]
    assert arff.target_name == "class"
    np.testing.assert_array_equal(arff.encoded(), csv.encoded())
    assert arff.y is not None and csv.y is not None
    assert arff.y.tolist() == csv.y.tolist()


def test_quoted_names_values_and_missing() -> None:
    ds = read_text(HEADER + "1.5,red,a\n?,'dark blue',b\n% comment in data\n\n2,?,a\n")
    assert ds.feature_names == ["petal width", "colour"]
    assert ds.features[1].categories == ("red", "dark blue", "green")
    assert ds.X[0].tolist() == [1.5, "red"]
    assert math.isnan(ds.X[1, 0]) and ds.X[1, 1] == "dark blue"
    assert ds.X[2, 1] is None
    assert ds.encoded()[1, 1] == 1.0 and np.isnan(ds.encoded()[2, 1])


def test_quoted_value_with_comma_and_escapes() -> None:
    text = ("@relation r\n@attribute s string\n@attribute \"c\" {x,y}\n@data\n"
            "'a, b',x\n\"it\\'s\",y\n'?',x\n")
    ds = read_text(text)
    assert ds.features[0].kind == "categorical"
    assert ds.X[:, 0].tolist() == ["a, b", "it's", "?"]  # a quoted ? is a value
    assert ds.features[0].categories == ("?", "a, b", "it's")  # string: sorted observed


def test_numeric_target_is_regression_and_target_by_name() -> None:
    ds = read_text(HEADER + "1,red,a\n2.5,green,b\n", target="petal width")
    assert ds.task == "regression"
    assert ds.y is not None and ds.y.dtype == np.float64
    assert ds.y.tolist() == [1.0, 2.5]
    assert ds.feature_names == ["colour", "class"]


def test_unlabelled() -> None:
    ds = read_text(HEADER + "1,red,a\n", target=None)
    assert ds.y is None and ds.n_features == 3


def test_integer_and_case_insensitive_keywords() -> None:
    ds = read_text("@RELATION r\n@ATTRIBUTE n INTEGER\n@Attribute c {p,q}\n@DATA\n1,p\n2,q\n")
    assert ds.features == (Feature("n", "numeric"),)
    assert ds.classes == ("p", "q")


# --------------------------------------------------------------------------- errors


def located(text: str, **kwargs: object) -> DataError:
    with pytest.raises(DataError) as info:
        read_text(text, **kwargs)
    return info.value


def test_value_not_a_number() -> None:
    err = located(HEADER + "1.5,red,a\nx,green,b\n")
    assert (err.path, err.line, err.column, err.column_name) == ("<stream>", 10, 1,
                                                                  "petal width")
    assert str(err) == "<stream>:10:1 (column 'petal width'): value 'x' is not a number"


def test_value_not_declared() -> None:
    err = located(HEADER + "1.5,red,a\n1,purple,b\n")
    assert (err.line, err.column, err.column_name) == (10, 2, "colour")
    assert "'purple' is not declared" in err.reason


def test_undeclared_label() -> None:
    err = located(HEADER + "1.5,red,a\n1,red,c\n")
    assert (err.line, err.column, err.column_name) == (10, 3, "class")


def test_wrong_value_count() -> None:
    err = located(HEADER + "1.5,red,a\n1,red\n")
    assert (err.line, err.column, err.column_name) == (10, 3, "class")
    assert err.reason == "expected 3 values, found 2"
    err = located(HEADER + "1.5,red,a,b\n")
    assert (err.line, err.column, err.column_name) == (9, 4, None)


def test_missing_target() -> None:
    err = located(HEADER + "1.5,red,a\n1,red,?\n")
    assert (err.line, err.column) == (10, 3)
    assert "missing target" in err.reason


def test_single_class() -> None:
    err = located(HEADER + "1.5,red,a\n1,red,a\n")
    assert (err.line, err.column, err.column_name) == (None, 3, "class")


def test_header_errors() -> None:
    err = located(HEADER.replace("REAL", "date 'yyyy'") + "1,red,a\n")
    assert err.line == 4 and "unsupported type" in err.reason
    err = located("@relation r\n@attribute a real\n@attribute a real\n@data\n1,2\n")
    assert err.line == 3 and "duplicate attribute" in err.reason
    err = located("@relation r\n@attribute c {x,x}\n@data\nx\n")
    assert err.line == 2 and "declared twice" in err.reason
    err = located("@relation r\n@attribute c {x,y\n@data\nx\n")
    assert err.line == 2
    err = located("@relation r\n@attribute c\n@data\nx\n")
    assert err.line == 2 and "no type" in err.reason
    err = located("@relation r\nhello\n")
    assert err.line == 2
    err = located("@relation r\n@frobnicate x\n")
    assert err.line == 2 and "@frobnicate" in err.reason


def test_structure_errors() -> None:
    assert located("@relation r\n@attribute a real\n").reason == "no @data section"
    assert located("@relation r\n@data\n").reason == "@data before any @attribute"
    assert located("% nothing\n").reason == "no @attribute declarations"
    assert located(HEADER).reason == "no data rows after @data"


def test_sparse_rows_are_rejected() -> None:
    err = located(HEADER + "{0 1.5, 2 a}\n")
    assert (err.line, err.column) == (9, 1)


def test_unterminated_quote() -> None:
    err = located(HEADER + "1,'red,a\n")
    assert (err.line, err.column) == (9, 2)


def test_target_errors() -> None:
    assert "not found" in located(HEADER + "1,red,a\n1,red,b\n", target="zz").reason
    assert "out of range" in located(HEADER + "1,red,a\n1,red,b\n", target=3).reason
    err = located(HEADER + "1,red,a\n1,red,b\n", target="colour", task="regression")
    assert err.line == 5 and "must be numeric" in err.reason


def test_file_path_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.arff"
    path.write_text(HEADER + "1,red,a\nz,red,b\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_arff(path)
    assert str(info.value).startswith(f"{path}:10:1 (column 'petal width'): ")
