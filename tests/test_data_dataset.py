"""Dataset, Feature, from_arrays/encode_features round trips, as_dataset and DataError text."""

from __future__ import annotations

import copy
import io
import math
from typing import Any

import numpy as np
import pytest

from aioforest import datasets
from aioforest.data import (
    DataError,
    Dataset,
    Feature,
    as_dataset,
    encode_features,
    infer_features,
    read_csv,
)

MIXED_ROWS: list[list[Any]] = [[1.5, "red", True], [None, "blue", False], [2.0, None, True]]


def nan_equal(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    return bool(np.array_equal(a, b, equal_nan=True))


# --------------------------------------------------------------------------- Feature


def test_feature_validation() -> None:
    assert Feature("a", "numeric").categories == ()
    assert Feature("c", "categorical", ("x", "y")).is_categorical
    assert Feature("c", "categorical", ["x"]).categories == ("x",)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        Feature("a", "ordinal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot have categories"):
        Feature("a", "numeric", ("x",))
    with pytest.raises(ValueError, match="duplicate"):
        Feature("c", "categorical", ("x", "x"))
    with pytest.raises(TypeError):
        Feature("c", "categorical", (1,))  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        Feature("a", "numeric").name = "b"  # type: ignore[misc]


# --------------------------------------------------------------------------- from_arrays


def test_from_arrays_numeric() -> None:
    X = np.arange(12, dtype=np.int32).reshape(4, 3)
    ds = Dataset.from_arrays(X, ["a", "b", "a", "b"])
    assert ds.feature_names == ["x0", "x1", "x2"]
    assert ds.target_name == "target"
    assert ds.X.dtype == np.float64 and ds.X.shape == (4, 3)
    assert ds.encoded() is ds.X  # all-numeric: one matrix, no copy
    assert ds.encoded().flags.c_contiguous and not ds.encoded().flags.writeable
    assert not np.shares_memory(ds.X, X)  # the dataset owns its data
    assert ds.classes == ("a", "b")
    assert ds.task == "classification"
    assert ds.source is None


def test_from_arrays_mixed_object_rows() -> None:
    ds = Dataset.from_arrays(MIXED_ROWS, [0, 1, 0], feature_names=["size", "colour", "flag"])
    assert ds.features == (
        Feature("size", "numeric"),
        Feature("colour", "categorical", ("blue", "red")),
        Feature("flag", "categorical", ("False", "True")),  # bool columns are categorical
    )
    assert ds.X.dtype == object
    assert ds.X[0].tolist() == [1.5, "red", "True"]
    assert type(ds.X[0, 0]) is float and math.isnan(ds.X[1, 0])
    assert ds.X[2, 1] is None
    assert nan_equal(ds.encoded(), np.array([[1.5, 1, 1], [math.nan, 0, 0], [2.0, math.nan, 1]]))
    assert ds.classes == (0, 1)


def test_object_column_of_numbers_and_numeric_strings_is_numeric() -> None:
    X = np.array([[1, "2.5"], [np.float32(3), None], [float("nan"), "4"]], dtype=object)
    ds = Dataset.from_arrays(X, None)
    assert [f.kind for f in ds.features] == ["numeric", "numeric"]
    assert nan_equal(ds.X, np.array([[1, 2.5], [3, math.nan], [math.nan, 4]]))
    assert ds.y is None and ds.classes == ()


def test_string_array_columns() -> None:
    X = np.array([["a", "1"], ["b", "2"]])
    ds = Dataset.from_arrays(X, ["u", "v"])
    assert [f.kind for f in ds.features] == ["categorical", "numeric"]


def test_forced_categorical_from_numbers_uses_canonical_text() -> None:
    X = np.array([[1.0, 10.0], [2.0, 2.0], [np.nan, 1.0], [10.0, 2.5]])
    ds = Dataset.from_arrays(X, None, feature_names=["a", "b"], categorical=["a", 1])
    assert ds.features[0].categories == ("1", "10", "2")  # text, sorted as strings
    assert ds.features[1].categories == ("1", "10", "2", "2.5")
    assert nan_equal(ds.encoded()[:, 0], np.array([0, 2, math.nan, 1]))
    assert ds.X[:, 0].tolist() == ["1", "2", None, "10"]


def test_from_arrays_errors() -> None:
    with pytest.raises(DataError, match="2-D") as info:
        Dataset.from_arrays([1.0, 2.0], None)
    assert "[row]" in str(info.value)
    with pytest.raises(DataError, match="different lengths"):
        Dataset.from_arrays([[1.0, 2.0], [3.0]], None)
    with pytest.raises(DataError, match="3 feature names for 2 columns"):
        Dataset.from_arrays([[1, 2]], None, feature_names=["a", "b", "c"])
    with pytest.raises(DataError, match="duplicate feature name 'a'"):
        Dataset.from_arrays([[1, 2]], None, feature_names=["a", "a"])
    with pytest.raises(DataError, match="categorical column 'z' not found"):
        Dataset.from_arrays([[1, 2]], None, categorical=["z"])
    with pytest.raises(DataError, match="out of range"):
        Dataset.from_arrays([[1, 2]], None, categorical=[2])
    with pytest.raises(DataError, match="no feature columns"):
        Dataset.from_arrays(np.empty((3, 0)), None)
    with pytest.raises(DataError, match="unsupported dtype"):
        Dataset.from_arrays(np.zeros((2, 2), dtype=complex), None)


def test_label_validation() -> None:
    X = np.zeros((3, 1))
    with pytest.raises(DataError) as info:
        Dataset.from_arrays(X, ["a", None, "b"])
    assert (info.value.row, str(info.value)) == (1, "y[1]: missing label")
    with pytest.raises(DataError, match="2 labels for 3 rows"):
        Dataset.from_arrays(X, ["a", "b"])
    with pytest.raises(DataError, match="1-D"):
        Dataset.from_arrays(X, [["a"], ["b"], ["c"]])
    with pytest.raises(DataError, match="NaN"):
        Dataset.from_arrays(X, [1.0, math.nan, 2.0])
    ds = Dataset.from_arrays(X, np.array(["a", "b", "a"]))
    assert ds.y is not None and ds.y.dtype == object and type(ds.y[0]) is str
    reg = Dataset.from_arrays(X, [1.0, 2.0, 3.5])
    assert reg.task == "regression" and reg.classes == ()
    forced = Dataset.from_arrays(X, ["1", "2", "3"], task="regression")
    assert forced.y is not None and forced.y.dtype == np.float64


# --------------------------------------------------------------------------- encode


def test_encode_round_trip_for_mixed_and_numeric() -> None:
    for ds in (Dataset.from_arrays(MIXED_ROWS, None),
               datasets.load_weather(), datasets.load_iris(), datasets.load_tennis()):
        encoded = encode_features(ds.X, ds.features)
        assert encoded.dtype == np.float64 and encoded.flags.c_contiguous
        assert nan_equal(encoded, ds.encoded())
        assert nan_equal(encode_features(ds.X.tolist(), ds.features), ds.encoded())
        rebuilt = Dataset(ds.X, ds.y, ds.features, target_name=ds.target_name)
        assert nan_equal(rebuilt.encoded(), ds.encoded())
        assert rebuilt.features == ds.features


def test_unseen_category_is_missing() -> None:
    ds = Dataset.from_arrays(MIXED_ROWS, None)
    encoded = encode_features([[3.0, "green", True], [1.0, "red", "maybe"]], ds.features)
    assert nan_equal(encoded, np.array([[3.0, math.nan, 1.0], [1.0, 1.0, math.nan]]))


def test_numbers_match_categories_by_value() -> None:
    ds = read_csv(io.StringIO("code,label\n1,a\n10,b\n2,a\n"), categorical=["code"])
    feats = ds.features
    assert feats[0].categories == ("1", "10", "2")
    expected = np.array([[1.0], [0.0], [math.nan], [2.0]])
    assert nan_equal(encode_features(np.array([[10], [1], [7], [2]]), feats), expected)
    assert nan_equal(encode_features(np.array([[10.0], [1.0], [7.0], [2.0]]), feats), expected)
    assert nan_equal(encode_features([[10], [1.0], ["7"], [np.int64(2)]], feats), expected)


def test_dataset_with_other_category_order_is_remapped_by_value() -> None:
    # GoLearn #153: a test file parsed separately has different categories and order.
    train = datasets.load_tennis()
    test = read_csv(io.StringIO("outlook,temp,humidity,windy,play\n"
                                "sunny,mild,normal,true,yes\nfoggy,hot,high,false,no\n"))
    assert test.features != train.features
    encoded = encode_features(test, train.features)
    assert nan_equal(encoded, np.array([[2, 2, 1, 1], [math.nan, 1, 0, 0]], dtype=float))
    assert encode_features(train, train.features) is train.encoded()


def test_datasets_are_matched_by_column_name() -> None:
    train = datasets.load_tennis()
    reordered = read_csv(io.StringIO("windy,play,humidity,outlook,temp\n"
                                     "true,no,high,sunny,hot\nfalse,yes,normal,rainy,mild\n"),
                         target="play")
    expected = encode_features([["sunny", "hot", "high", "true"],
                                ["rainy", "mild", "normal", "false"]], train.features)
    assert nan_equal(encode_features(reordered, train.features), expected)
    assert expected.tolist() == [[2, 1, 0, 1], [1, 2, 1, 0]]
    unnamed = Dataset.from_arrays(reordered.X[:, [2, 3, 1, 0]], None)  # names x0..x3
    assert nan_equal(encode_features(unnamed, train.features), expected)  # by position
    partial = Dataset.from_arrays(reordered.X[:, [2, 3, 1, 0]], None,
                                  feature_names=["outlook", "temp", "humid", "wind"])
    with pytest.raises(DataError, match="Dataset lacks feature columns 'humidity', 'windy'"):
        encode_features(partial, train.features)


def test_encode_errors() -> None:
    ds = Dataset.from_arrays(MIXED_ROWS, None, feature_names=["size", "colour", "flag"])
    with pytest.raises(DataError) as info:
        encode_features([[1.0, "red"]], ds.features)
    assert str(info.value) == "expected 3 columns ('size', 'colour', 'flag'), got 2"
    with pytest.raises(DataError) as info:
        encode_features([[1.0, "red", True], ["big", "red", True]], ds.features)
    err = info.value
    assert (err.row, err.column, err.column_name) == (1, 1, "size")
    assert str(err) == "X[1, 0] (column 'size'): expected a number, got 'big'"


def test_strict_constructor_rejects_unknown_categories() -> None:
    feats = (Feature("c", "categorical", ("x", "y")),)
    with pytest.raises(DataError) as info:
        Dataset([["x"], ["z"]], ["a", "b"], feats)
    assert (info.value.row, info.value.column) == (1, 1)
    assert "'z' is not one of the categories ('x', 'y')" in str(info.value)
    with pytest.raises(DataError, match="is not one of"):
        Dataset(np.array([[0.0], [1.0]]), None, feats)  # codes are not values
    with pytest.raises(TypeError):
        Dataset([[1.0]], None, ["a"])  # type: ignore[list-item]
    with pytest.raises(DataError, match="duplicate feature name"):
        Dataset([[1.0, 2.0]], None, (Feature("a", "numeric"), Feature("a", "numeric")))


def test_infer_features() -> None:
    feats = infer_features(MIXED_ROWS, ["s", "c", "f"], categorical=["s"])
    assert feats == (Feature("s", "categorical", ("1.5", "2")),
                     Feature("c", "categorical", ("blue", "red")),
                     Feature("f", "categorical", ("False", "True")))


# --------------------------------------------------------------------------- take / labels


def test_take_rows() -> None:
    ds = datasets.load_weather()
    head = ds.take(slice(0, 5))
    assert len(head) == 5 and head.features == ds.features
    assert np.shares_memory(head.encoded(), ds.encoded())  # a slice is a view
    picked = ds.take([13, 0, 0])
    assert nan_equal(picked.encoded(), ds.encoded()[[13, 0, 0]])
    assert picked.y is not None and ds.y is not None
    assert picked.y.tolist() == [ds.y[13], ds.y[0], ds.y[0]]
    assert picked.X.tolist() == ds.X[[13, 0, 0]].tolist()
    mask = np.zeros(len(ds), dtype=bool)
    mask[[1, 3]] = True
    assert ds.take(mask).X.tolist() == ds.X[[1, 3]].tolist()
    assert len(ds.take([])) == 0
    assert ds.take(slice(None, None, 2)).encoded().flags.c_contiguous
    assert picked.source == ds.source and picked.target_name == ds.target_name
    with pytest.raises(IndexError):
        ds.take([14])
    with pytest.raises(IndexError):
        ds.take(mask[:3])
    with pytest.raises(IndexError):
        ds.take([0.5])  # type: ignore[list-item]


def test_with_labels_and_repr() -> None:
    ds = datasets.load_iris()
    numbers = ds.with_labels(np.arange(150) % 2)
    assert numbers.classes == (0, 1)
    assert np.shares_memory(numbers.encoded(), ds.encoded())
    assert repr(ds).startswith("Dataset(n_samples=150, n_features=4, target='Species', "
                               "n_classes=3, source=")


# --------------------------------------------------------------------------- as_dataset


def test_as_dataset_variants() -> None:
    ds = datasets.load_iris()
    assert as_dataset(ds) is ds
    relabelled = as_dataset(ds, np.zeros(150) + 1.5)
    assert relabelled.task == "regression" and relabelled.features == ds.features
    from_list = as_dataset([[1, "a"], [2, "b"]], ["u", "v"], feature_names=["n", "c"])
    assert from_list.feature_names == ["n", "c"]
    assert [f.kind for f in from_list.features] == ["numeric", "categorical"]
    unlabelled = as_dataset(np.ones((2, 2)))
    assert unlabelled.y is None
    with pytest.raises(TypeError):
        as_dataset(ds, feature_names=["a"])


# --------------------------------------------------------------------------- DataError


def test_data_error_rendering() -> None:
    assert str(DataError("bad", path="f.csv", line=3, column=2, column_name="a")) == (
        "f.csv:3:2 (column 'a'): bad")
    assert str(DataError("bad", path="f.csv", line=3)) == "f.csv:3: bad"
    assert str(DataError("bad", path="f.csv", column=2, column_name="a")) == (
        "f.csv (column 2 'a'): bad")
    assert str(DataError("bad", path="f.csv")) == "f.csv: bad"
    assert str(DataError("bad", row=4, column=1)) == "X[4, 0]: bad"
    assert str(DataError("bad", column=2, column_name="b")) == "X[:, 1] (column 'b'): bad"
    assert str(DataError("bad", row=0, array="y")) == "y[0]: bad"
    assert str(DataError("bad")) == "bad"
    err = DataError("bad", path="f.csv", line=3, column=2, column_name="a")
    clone = copy.deepcopy(err)
    assert (str(clone), clone.line, clone.column) == (str(err), 3, 2)
    assert isinstance(err, ValueError)


# --------------------------------------------------------------------------- pandas


def test_from_dataframe() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({
        "size": [1.5, None, 2.0, 3.0],
        "count": pd.array([1, 2, None, 4], dtype="Int64"),
        "colour": pd.Categorical(["red", "blue", None, "red"]),
        "flag": [True, False, True, True],
        "name": ["a", "b", "c", None],
        "label": ["x", "y", "x", "y"],
    })
    ds = Dataset.from_dataframe(df, target="label")
    assert ds.feature_names == ["size", "count", "colour", "flag", "name"]
    assert [f.kind for f in ds.features] == ["numeric", "numeric", "categorical",
                                             "categorical", "categorical"]
    assert ds.features[2].categories == ("blue", "red")
    assert ds.features[3].categories == ("False", "True")
    assert ds.X[2].tolist()[2:] == [None, "True", "c"]
    assert math.isnan(ds.X[1, 0]) and math.isnan(ds.X[2, 1])
    assert ds.y is not None and ds.y.tolist() == ["x", "y", "x", "y"]
    assert ds.target_name == "label"
    # Predict-time frames are matched by column name; order and extra columns don't matter.
    shuffled = df[["label", "name", "flag", "colour", "count", "size"]]
    assert nan_equal(encode_features(shuffled, ds.features), ds.encoded())
    with pytest.raises(DataError, match="lacks feature columns 'name'"):
        encode_features(df.drop(columns=["name"]), ds.features)
    unnamed = df.drop(columns=["label"]).set_axis(["a", "b", "c", "d", "e"], axis=1)
    assert nan_equal(encode_features(unnamed, ds.features), ds.encoded())  # by position
    via = as_dataset(df.drop(columns=["label"]), df["label"])
    assert nan_equal(via.encoded(), ds.encoded())
    assert via.y is not None and via.y.tolist() == ["x", "y", "x", "y"]
