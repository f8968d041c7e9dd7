"""Model files: exact round trips, loud failures on damaged or foreign files, never pickle."""

from __future__ import annotations

import ast
import hashlib
import mmap
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import orjson
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


def _rewritten(tmp_path: Path, path: Path, name: str, **changes: Any) -> Path:
    """The model at ``path`` with some arrays changed (``None`` drops one), resealed."""
    kind, meta, arrays = container.read(path)
    out = {k: np.array(v) for k, v in arrays.items()}
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            del out[key]
        else:
            out[key] = value
    return _write(tmp_path, container.dumps(kind, meta, out), name)


def test_consistent_checksum_but_broken_trees_is_rejected(
    tmp_path: Path, saved: tuple[Path, bytes]
) -> None:
    path, _ = saved
    _, meta, arrays = container.read(path)
    n = int(arrays["trees.node_counts"].sum())
    model = aioforest.load(path)
    mask = np.unpackbits(arrays["trees.split"], count=n)
    leaf = int(np.flatnonzero(mask == 0)[0])
    mask[leaf] = 1  # a leaf turned into a split has no children in its tree
    cases = {
        "mask": (dict(trees__split=np.packbits(mask)), "split mask is not a tree"),
        "feature": (dict(trees__split_feature=np.full_like(arrays["trees.split_feature"], 99)),
                    "feature that does not exist"),
        "bin": (dict(trees__split_bin=np.full_like(arrays["trees.split_bin"], 250)),
                "bin its feature does not have"),
        "short": (dict(trees__split_bin=arrays["trees.split_bin"][:-1]), "one entry per split"),
        "lost": (dict(trees__impurity=None), "lacks tree array 'trees.impurity'"),
        "links": (dict(trees__left=np.zeros(n, np.int32), trees__right=np.zeros(n, np.int32)),
                  "child link points outside"),
        "one link": (dict(trees__left=np.zeros(n, np.int32)), "one entry per node"),
        # A tree, but the prediction table finds the right child after the left one.
        "swapped": (dict(trees__left=np.concatenate([t.right for t in model.trees_]),
                         trees__right=np.concatenate([t.left for t in model.trees_])),
                    "right child must be the node after its left child"),
    }
    for name, (changes, message) in cases.items():
        with pytest.raises(FormatError, match=message):
            aioforest.load(_rewritten(tmp_path, path, f"{name}.aiof", **changes))
    bad_meta = dict(meta, estimator="os.system")
    with pytest.raises(FormatError, match="malformed"):
        aioforest.load(_write(tmp_path, container.dumps("aioforest.model", bad_meta, arrays),
                              "m.aiof"))
    with pytest.raises(FormatError, match="unknown tree encoding"):
        aioforest.load(_write(tmp_path, container.dumps(
            "aioforest.model", dict(meta, trees_encoding="compact-9"), arrays), "e.aiof"))


# --- the compact encoding and compression -------------------------------------------------------
def _legacy_file(model: Any) -> bytes:
    """The same model in the layout of format 2: every tree array whole, nothing derived."""
    from aioforest.persistence import trees_to_arrays

    _, meta, arrays = container.loads(save_bytes(model))
    meta = {k: v for k, v in meta.items() if k != "trees_encoding"}
    bins = {k: v for k, v in arrays.items() if k.startswith("bins.")}
    data = bytearray(container.dumps("aioforest.model", meta,
                                     {**bins, **trees_to_arrays(model.trees_)}))
    struct.pack_into(">I", data, 8, 2)
    body = bytes(data[:-32])
    return body + hashlib.sha256(body).digest()


def test_a_format_2_file_still_loads_the_same_model(tmp_path: Path) -> None:
    ds, X = _mixed_dataset(seed=3)
    forest = RandomForestClassifier(n_estimators=4, random_state=3, n_jobs=1).fit(ds)
    path = _write(tmp_path, _legacy_file(forest), "v2.aiof")
    assert aioforest.persistence.file_version(path) == 2
    _assert_same_model(forest, aioforest.load(path), X)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_the_compact_file_is_a_fraction_of_the_whole_arrays(kind: str) -> None:
    if kind == "classifier":
        X, y = classification_data(n=3000, d=8, seed=5)
        model: Any = RandomForestClassifier(n_estimators=6, random_state=5, n_jobs=1)
    else:
        X, y = regression_data(n=3000, d=8, seed=5)
        model = RandomForestRegressor(n_estimators=6, random_state=5, n_jobs=1)
    model.fit(X, y)
    compact, legacy = save_bytes(model), _legacy_file(model)
    # Whole arrays take 67 bytes a node plus the values; the compact file keeps the
    # regression values, the impurities and the improvements, compressed.
    assert len(compact) < (0.18 if kind == "classifier" else 0.3) * len(legacy)
    _, _, arrays = container.loads(compact)
    derived = {"trees.left", "trees.right", "trees.threshold", "trees.n_node_samples",
               "trees.weighted_n_node_samples", "trees.cat_index"}
    if kind == "classifier":
        derived.add("trees.value")
    assert not derived & set(arrays)


def test_what_a_rule_cannot_rebuild_is_stored_whole(tmp_path: Path) -> None:
    X, y = classification_data(n=400, d=5, seed=6)
    weights = np.random.default_rng(6).uniform(0.5, 2.0, y.size)
    forest = RandomForestClassifier(n_estimators=4, random_state=6, n_jobs=1,
                                    class_weight="balanced").fit(X, y, sample_weight=weights)
    data = save_bytes(forest)
    _, _, arrays = container.loads(data)
    assert {"trees.value", "trees.weighted_n_node_samples"} <= set(arrays)
    assert "trees.leaf_counts" not in arrays and "trees.n_node_samples" not in arrays
    _assert_same_model(forest, load_bytes(data), X)


def test_trees_not_in_level_order_keep_their_links(tmp_path: Path) -> None:
    X, y = classification_data(n=200, d=4, seed=8)
    forest = RandomForestClassifier(n_estimators=2, random_state=8, n_jobs=1).fit(X, y)
    tree = forest.trees_[0]
    assert (tree.feature[:3] >= 0).all() and tree.left[1] == 3 and tree.left[2] == 5
    # The same tree with the grandchildren's pairs traded: node 1's children become 5 and
    # 6, node 2's 3 and 4. Children still come in pairs after their parent, but not in
    # the order the compact encoding rebuilds.
    swap = np.arange(tree.node_count)
    swap[[3, 4, 5, 6]] = [5, 6, 3, 4]
    parts = {k: v[swap] if k != "cat_left" else v for k, v in tree.arrays().items()}
    for side in ("left", "right"):
        links = parts[side]
        parts[side] = np.where(links >= 0, swap[np.maximum(links, 0)], -1).astype(np.int32)
    forest.trees_ = [type(tree).from_arrays(parts), *forest.trees_[1:]]
    data = save_bytes(forest)
    _, _, arrays = container.loads(data)
    assert "trees.left" in arrays and "trees.right" in arrays
    _assert_same_model(forest, load_bytes(data), X)


def test_compressed_arrays_are_checked_before_they_are_inflated(tmp_path: Path) -> None:
    raw = np.zeros(100_000)
    data = container.dumps("aioforest.model", {}, {"x": raw}, compress=True)
    _, _, arrays = container.loads(data)
    assert _bits(arrays["x"]) == _bits(raw)
    header_len = struct.unpack_from(">Q", data, 12)[0]
    header = orjson.loads(data[20 : 20 + header_len])
    assert header["arrays"][0]["codec"] == "shuffle-zlib"
    assert header["arrays"][0]["stored"] < 2000

    def resealed(entry: dict[str, Any], blob: bytes | None = None) -> bytes:
        head = orjson.dumps({**header, "arrays": [entry]})
        head += b" " * (-(20 + len(head)) % 64)
        stored = blob if blob is not None else data[20 + header_len : -32]
        body = data[:12] + struct.pack(">Q", len(head)) + head + stored
        return body + hashlib.sha256(body).digest()

    entry = header["arrays"][0]
    bomb = dict(entry, shape=[10**10], nbytes=8 * 10**10)
    with pytest.raises(FormatError, match="not zlib data"):
        container.loads(resealed(bomb))
    with pytest.raises(FormatError, match="unknown codec"):
        container.loads(resealed(dict(entry, codec="lz4")))
    garbage = b"\x01" * 4096
    with pytest.raises(FormatError, match="does not decompress"):
        container.loads(resealed(dict(entry, stored=len(garbage)), garbage))
    short = dict(entry, shape=[50_000], nbytes=400_000)  # the stream holds more
    with pytest.raises(FormatError, match="other than its 400000 bytes"):
        container.loads(resealed(short))


def test_raw_arrays_are_read_from_a_map_of_the_file(tmp_path: Path) -> None:
    # Random bit patterns do not compress, so they stay raw.
    noise = np.frombuffer(np.random.default_rng(0).bytes(400_000), dtype=np.float64)
    path = _write(tmp_path, container.dumps("k", {}, {"noise": noise}, compress=True))
    _, _, arrays = container.read(path)
    got = arrays["noise"]
    assert _bits(got) == _bits(noise) and not got.flags.writeable
    assert got.ctypes.data % 64 == 0  # aligned in the file, hence in the map
    base: Any = got
    while getattr(base, "base", None) is not None and not isinstance(base, memoryview):
        base = base.base
    assert isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)


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
