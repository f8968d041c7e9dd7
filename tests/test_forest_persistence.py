"""Model files: exact round trips, loud failures on damaged or foreign files, never pickle."""

from __future__ import annotations

import ast
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from forest_helpers import assert_same_forest, classification_data, regression_data

import aioforest
from aioforest import (
    BaggingClassifier,
    Dataset,
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    FormatError,
    RandomForestClassifier,
    RandomForestRegressor,
)
from aioforest import datasets as bundled
from aioforest.persistence import FORMAT_VERSION, load_bytes, save_bytes
from aioforest.persistence import _container as container


def _mixed_dataset(seed: int = 0) -> tuple[Dataset, np.ndarray[Any, Any]]:
    """Categorical + numeric features with missing cells, string labels."""
    rng = np.random.default_rng(seed)
    n = 160
    X = np.empty((n, 3), dtype=object)
    X[:, 0] = np.array(["red", "green", "blue", "cyan"])[rng.integers(0, 4, n)]
    X[:, 1] = rng.normal(size=n)
    X[:, 2] = rng.uniform(0, 10, n)
    X[rng.random(n) < 0.1, 0] = None
    X[rng.random(n) < 0.1, 1] = np.nan
    score = np.isin(X[:, 0], ["red", "cyan"]) + np.nan_to_num(X[:, 1].astype(float)) * 0.8
    y = np.where(score > 0.5, "spam", np.where(score > -0.5, "ham", "eggs"))
    ds = Dataset.from_arrays(X, y, feature_names=["colour", "z", "u"])
    return ds, X


def _bits(a: np.ndarray[Any, Any]) -> bytes:
    return np.ascontiguousarray(a).tobytes()


def _assert_same_model(a: Any, b: Any, X: Any) -> None:
    assert type(a) is type(b)
    assert a.get_params() == b.get_params()
    assert_same_forest(a, b)
    assert a.features_ == b.features_
    assert a.n_features_in_ == b.n_features_in_
    assert hasattr(a, "feature_names_in_") == hasattr(b, "feature_names_in_")
    if hasattr(a, "feature_names_in_"):
        assert list(a.feature_names_in_) == list(b.feature_names_in_)
    if hasattr(a, "classes_"):
        assert a.classes_.tolist() == b.classes_.tolist()
        assert _bits(a.predict_proba(X)) == _bits(b.predict_proba(X))
    assert a.predict(X).tolist() == b.predict(X).tolist()
    if a.predict(X).dtype.kind == "f":
        assert _bits(a.predict(X)) == _bits(b.predict(X))


def test_forest_classifier_with_categories_and_string_labels_round_trips(tmp_path: Path) -> None:
    ds, X = _mixed_dataset()
    forest = RandomForestClassifier(
        n_estimators=20, oob_score=True, random_state=1, n_jobs=1
    ).fit(ds)
    path = tmp_path / "forest.aiof"
    forest.save(str(path))
    loaded = aioforest.load(path)
    _assert_same_model(forest, loaded, X)
    assert loaded.oob_score_ == forest.oob_score_
    assert loaded.classes_.tolist() == ["eggs", "ham", "spam"]
    unseen = np.array([["purple", 0.3, 1.0], [None, np.nan, 5.0]], dtype=object)
    assert _bits(loaded.predict_proba(unseen)) == _bits(forest.predict_proba(unseen))
    assert list(tmp_path.iterdir()) == [path]  # the atomic write left no temporary file


def test_forest_regressor_round_trips(tmp_path: Path) -> None:
    X, y = regression_data(n=150, d=4, seed=2)
    forest = RandomForestRegressor(n_estimators=5, random_state=2, n_jobs=1).fit(X, y)
    path = tmp_path / "reg.aiof"
    forest.save(str(path))
    _assert_same_model(forest, aioforest.load(path), X)


@pytest.mark.parametrize("cls", [DecisionTreeClassifier, DecisionTreeRegressor])
def test_single_trees_round_trip(tmp_path: Path, cls: type[Any]) -> None:
    if cls is DecisionTreeClassifier:
        ds = bundled.load_tennis()
        tree = cls(criterion="entropy", random_state=0).fit(ds)
        X: Any = ds.X
    else:
        X, y = regression_data(n=100, d=3, seed=3)
        tree = cls(max_depth=5, random_state=0).fit(X, y)
    path = tmp_path / "tree.aiof"
    tree.save(str(path))
    loaded = aioforest.load(path)
    _assert_same_model(tree, loaded, X)
    assert loaded.get_depth() == tree.get_depth()
    assert aioforest.export_text(loaded) == aioforest.export_text(tree)


@pytest.mark.parametrize(
    "labels",
    [
        np.array([3, 7, 11]),
        np.array([False, True, True]),
        np.array([1.0, 2.0, 5.0]),
        np.array(["b", "a", "c"], dtype=object),
    ],
    ids=["int", "bool", "float", "str"],
)
def test_label_types_round_trip(labels: np.ndarray[Any, Any]) -> None:
    X, codes = classification_data(n=90, d=3, seed=4)
    y = labels[codes]
    forest = RandomForestClassifier(n_estimators=3, random_state=0, n_jobs=1).fit(X, y)
    loaded = load_bytes(save_bytes(forest))
    assert loaded.classes_.tolist() == forest.classes_.tolist()
    assert loaded.classes_.dtype.kind == forest.classes_.dtype.kind or (
        forest.classes_.dtype.kind in "OU" and loaded.classes_.dtype.kind in "OU"
    )
    assert loaded.predict(X).tolist() == forest.predict(X).tolist()


def test_loaded_forest_can_be_warm_started_to_the_same_forest(tmp_path: Path) -> None:
    X, y = classification_data(n=150, d=4, seed=5)
    at_once = RandomForestClassifier(n_estimators=8, random_state=6, n_jobs=1).fit(X, y)
    partial = RandomForestClassifier(n_estimators=4, random_state=6, n_jobs=1).fit(X, y)
    path = tmp_path / "checkpoint.aiof"
    partial.save(str(path))
    resumed = aioforest.load(path)
    resumed.set_params(warm_start=True, n_estimators=8)
    resumed.fit(X, y)
    assert_same_forest(resumed, at_once)


def test_save_overwrites_an_existing_file(tmp_path: Path) -> None:
    X, y = classification_data(n=60, d=3, seed=6)
    path = tmp_path / "m.aiof"
    DecisionTreeClassifier(max_depth=1).fit(X, y).save(str(path))
    deeper = DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y)
    deeper.save(str(path))
    assert aioforest.load(path).get_depth() == deeper.get_depth()


# --- damaged and foreign files ---------------------------------------------------------------
@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, bytes]:
    ds, _ = _mixed_dataset(seed=7)
    path = tmp_path / "good.aiof"
    RandomForestClassifier(n_estimators=3, random_state=0, n_jobs=1).fit(ds).save(str(path))
    return path, path.read_bytes()


def _write(tmp_path: Path, data: bytes, name: str = "bad.aiof") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_a_flipped_byte_anywhere_is_detected(tmp_path: Path, saved: tuple[Path, bytes]) -> None:
    _, data = saved
    positions = sorted({*range(0, len(data), max(1, len(data) // 60)), len(data) - 1, 12, 20})
    for pos in positions:
        damaged = bytearray(data)
        damaged[pos] ^= 0x5A
        path = _write(tmp_path, bytes(damaged))
        with pytest.raises(FormatError, match=str(path)):
            aioforest.load(path)


def test_a_damaged_body_reports_a_checksum_mismatch(
    tmp_path: Path, saved: tuple[Path, bytes]
) -> None:
    _, data = saved
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0xFF
    with pytest.raises(FormatError, match="checksum mismatch"):
        aioforest.load(_write(tmp_path, bytes(damaged)))


@pytest.mark.parametrize("keep", [0, 10, 30, -1, -33], ids=lambda k: f"keep{k}")
def test_a_truncated_file_is_rejected(
    tmp_path: Path, saved: tuple[Path, bytes], keep: int
) -> None:
    _, data = saved
    with pytest.raises(FormatError, match=r"too short|checksum|truncated"):
        aioforest.load(_write(tmp_path, data[:keep]))


def test_another_format_version_is_rejected_by_name(
    tmp_path: Path, saved: tuple[Path, bytes]
) -> None:
    _, data = saved
    magic, version, _ = struct.unpack_from(">8sIQ", data, 0)
    assert magic == b"AIOFMDL\x00" and version == FORMAT_VERSION
    newer = bytearray(data)
    struct.pack_into(">I", newer, 8, FORMAT_VERSION + 1)
    with pytest.raises(FormatError, match=f"version {FORMAT_VERSION + 1}"):
        aioforest.load(_write(tmp_path, bytes(newer)))
    # Even with a valid checksum over the patched header, the version decides.
    import hashlib

    body = bytes(newer[:-32])
    resealed = body + hashlib.sha256(body).digest()
    with pytest.raises(FormatError, match="version"):
        aioforest.load(_write(tmp_path, resealed, "resealed.aiof"))


@pytest.mark.parametrize(
    "content",
    [
        b"outlook,temp,humidity,windy,play\nsunny,hot,high,false,no\n" * 3,
        b"\x89PNG\r\n\x1a\n" + bytes(100),
        pickle.dumps({"not": "a model"}),
    ],
    ids=["csv", "png", "pickle"],
)
def test_a_non_model_file_is_rejected(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(FormatError, match=r"not an aioforest file|too short"):
        aioforest.load(_write(tmp_path, content))


def test_a_container_of_another_kind_is_rejected(tmp_path: Path) -> None:
    other = container.dumps("aioforest.checkpoint", {}, {"x": np.zeros(3)})
    with pytest.raises(FormatError, match=r"expected a 'aioforest\.model'"):
        aioforest.load(_write(tmp_path, other))


def test_consistent_checksum_but_broken_trees_is_rejected(
    tmp_path: Path, saved: tuple[Path, bytes]
) -> None:
    path, _ = saved
    kind, meta, arrays = container.read(path)
    broken = {k: np.array(v) for k, v in arrays.items()}
    broken["trees.left"][0] = 0  # the root becomes its own child
    with pytest.raises(FormatError, match="damaged"):
        aioforest.load(_write(tmp_path, container.dumps(kind, meta, broken)))
    bad_feature = {k: np.array(v) for k, v in arrays.items()}
    bad_feature["trees.feature"][0] = 99
    with pytest.raises(FormatError):
        aioforest.load(_write(tmp_path, container.dumps(kind, meta, bad_feature), "f.aiof"))
    bad_meta = dict(meta, estimator="os.system")
    with pytest.raises(FormatError, match="malformed"):
        aioforest.load(_write(tmp_path, container.dumps(kind, bad_meta, arrays), "m.aiof"))


def test_missing_file_and_unsavable_models() -> None:
    with pytest.raises(FileNotFoundError):
        aioforest.load("/nonexistent/dir/model.aiof")
    with pytest.raises(ValueError, match="not fitted"):
        save_bytes(RandomForestClassifier())
    X, y = classification_data(n=40, d=3, seed=0)
    with pytest.raises(TypeError, match="BaggingClassifier"):
        save_bytes(BaggingClassifier(n_estimators=2).fit(X, y))


# --- no pickle ---------------------------------------------------------------------------------
def test_persistence_modules_do_not_import_pickle() -> None:
    package = Path(aioforest.__file__).parent / "persistence"
    unsafe = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
    sources = sorted(package.glob("*.py"))
    assert sources
    for source in sources:
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in unsafe, f"{source.name} imports {name}"


def test_loading_never_unpickles(
    tmp_path: Path, saved: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, data = saved

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle was used to load a model")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    loaded = aioforest.load(path)
    assert len(loaded.trees_) == 3
    assert b"\x80\x04\x95" not in data[:64]  # not a pickle stream either
