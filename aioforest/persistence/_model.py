"""Saving and loading fitted trees and forests in the versioned container format.

The file holds the estimator's class and parameters, its fitted schema (features, classes,
bin edges, the forest plan) as JSON, and all trees' arrays concatenated. Loading rebuilds an
estimator that predicts exactly as the saved one did.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .._version import __version__
from ..data import Bins, Feature
from ..tree import GROWTH_VERSION, ForestPlan, TreeArrays, model_classes
from ._compact import ENCODING, decode_trees, encode_trees
from ._container import FormatError, dumps, loads, read, write_atomic
from ._params import decode_params, encode_params

__all__ = ["load", "load_bytes", "save", "save_bytes", "trees_from_arrays", "trees_to_arrays"]

KIND = "aioforest.model"
#: Model files of format 1 (aioforest 0.2) still load and predict.
OLDEST_MODEL_VERSION = 1
_TREE_FIELDS = ("feature", "threshold", "threshold_bin", "missing_left", "left", "right",
                "value", "impurity", "n_node_samples", "weighted_n_node_samples",
                "improvement", "cat_index")


def _enc_labels(classes: np.ndarray[Any, Any]) -> dict[str, Any]:
    kind = classes.dtype.kind
    if kind == "b":
        return {"type": "bool", "values": [bool(v) for v in classes]}
    if kind in "iu":
        return {"type": "int", "values": [int(v) for v in classes]}
    if kind == "f":
        return {"type": "float", "values": [float(v) for v in classes]}
    values = classes.tolist()
    if all(isinstance(v, str) for v in values):
        return {"type": "str", "values": values}
    if all(isinstance(v, int | float | bool) for v in values):
        return {"type": "object", "values": values}
    raise TypeError("class labels must be strings or numbers to be saved")


def _dec_labels(spec: dict[str, Any]) -> np.ndarray[Any, Any]:
    t, values = spec["type"], spec["values"]
    if t == "bool":
        return np.array(values, dtype=bool)
    if t == "int":
        return np.array(values, dtype=np.int64)
    if t == "float":
        return np.array(values, dtype=np.float64)
    return np.array(values, dtype=object)


# --- trees <-> concatenated arrays -------------------------------------------------------
def trees_to_arrays(
    trees: list[TreeArrays], prefix: str = "trees."
) -> dict[str, np.ndarray[Any, Any]]:
    out: dict[str, np.ndarray[Any, Any]] = {
        prefix + "node_counts": np.array([t.node_count for t in trees], dtype=np.int64),
        prefix + "cat_counts": np.array([t.cat_left.shape[0] for t in trees], dtype=np.int64),
    }
    for field in _TREE_FIELDS:
        out[prefix + field] = np.concatenate([getattr(t, field) for t in trees])
    cat = np.concatenate([t.cat_left for t in trees]) if trees else np.zeros((0, 256), bool)
    out[prefix + "cat_left_bits"] = np.packbits(cat.astype(bool), axis=1)
    return out


def trees_from_arrays(
    arrays: dict[str, np.ndarray[Any, Any]], prefix: str = "trees."
) -> list[TreeArrays]:
    try:
        counts = arrays[prefix + "node_counts"].astype(np.int64)
        cat_counts = arrays[prefix + "cat_counts"].astype(np.int64)
        cols = {f: arrays[prefix + f] for f in _TREE_FIELDS}
        cat = np.unpackbits(arrays[prefix + "cat_left_bits"], axis=1, count=256).astype(bool)
    except KeyError as exc:
        raise FormatError(f"the file lacks tree array {exc}") from None
    if (counts < 1).any() or (cat_counts < 0).any():
        raise FormatError("negative or zero tree sizes")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    cbounds = np.concatenate([[0], np.cumsum(cat_counts)])
    total = int(bounds[-1])
    for f, col in cols.items():
        if col.shape[0] != total:
            raise FormatError(f"tree array {f!r} has {col.shape[0]} rows, expected {total}")
    if cat.shape[0] != int(cbounds[-1]):
        raise FormatError("categorical split sets do not match their counts")
    trees = []
    for t in range(counts.size):
        lo, hi = int(bounds[t]), int(bounds[t + 1])
        parts = {f: np.array(col[lo:hi]) for f, col in cols.items()}
        parts["cat_left"] = cat[int(cbounds[t]) : int(cbounds[t + 1])]
        try:
            trees.append(TreeArrays.from_arrays(parts))
        except ValueError as exc:
            raise FormatError(f"tree {t} is damaged: {exc}") from None
    return trees


def _bins_meta(bins: Bins) -> tuple[dict[str, Any], dict[str, np.ndarray[Any, Any]]]:
    return {}, {
        "bins.n_bins": bins.n_bins.astype(np.int32),
        "bins.is_categorical": bins.is_categorical.astype(bool),
        "bins.edge_counts": np.array([e.size for e in bins.edges], dtype=np.int64),
        "bins.edges": np.concatenate(bins.edges) if bins.edges else np.zeros(0),
    }


def _bins_from(arrays: dict[str, np.ndarray[Any, Any]]) -> Bins:
    counts = arrays["bins.edge_counts"].astype(np.int64)
    flat = np.array(arrays["bins.edges"], dtype=np.float64)
    if counts.sum() != flat.size or (counts < 0).any():
        raise FormatError("bin edges do not match their counts")
    edges = tuple(np.split(flat, np.cumsum(counts)[:-1])) if counts.size else ()
    n_bins = np.array(arrays["bins.n_bins"], dtype=np.int32)
    is_cat = np.array(arrays["bins.is_categorical"], dtype=bool)
    try:
        return Bins(n_bins, is_cat, edges)
    except ValueError as exc:
        raise FormatError(f"damaged bins: {exc}") from None


# --- estimators --------------------------------------------------------------------------
def save_bytes(estimator: Any) -> bytes:
    name = type(estimator).__name__
    if name not in model_classes():
        raise TypeError(f"cannot save a {name}; save works for aioforest trees and forests")
    if not hasattr(estimator, "trees_"):
        raise ValueError(f"this {name} is not fitted; nothing to save")
    meta: dict[str, Any] = {
        "estimator": name,
        "aioforest_version": __version__,
        "params": encode_params(estimator.get_params(deep=False)),
        "n_features_in": int(estimator.n_features_in_),
        "features": [
            {"name": f.name, "kind": f.kind, "categories": list(f.categories)}
            for f in estimator.features_
        ],
        "feature_names_in": (
            [str(v) for v in estimator.feature_names_in_]
            if hasattr(estimator, "feature_names_in_") else None
        ),
        "classes": _enc_labels(estimator.classes_) if hasattr(estimator, "classes_") else None,
        "plan": estimator.plan_.to_json() if hasattr(estimator, "plan_") else None,
        "oob_score": getattr(estimator, "oob_score_", None),
        "growth": getattr(estimator, "_growth_version_", GROWTH_VERSION),
        "trees_encoding": ENCODING,
    }
    _, bin_arrays = _bins_meta(estimator.bins_)
    trees = encode_trees(estimator.trees_, estimator.bins_, classifier=hasattr(estimator,
                                                                              "classes_"))
    return dumps(KIND, meta, {**bin_arrays, **trees}, compress=True)


def save(estimator: Any, path: str | os.PathLike[str]) -> None:
    """Write a fitted estimator to ``path`` (atomically)."""
    write_atomic(path, save_bytes(estimator))


def load_bytes(data: bytes, *, source: str = "<bytes>") -> Any:
    _, meta, arrays = loads(data, source=source, kind=KIND, oldest=OLDEST_MODEL_VERSION)
    return _rebuild(meta, arrays, source)


def load(path: str | os.PathLike[str]) -> Any:
    """Read a model saved by ``save``; raises ``FormatError`` for damaged or foreign files."""
    _, meta, arrays = read(path, kind=KIND, oldest=OLDEST_MODEL_VERSION)
    return _rebuild(meta, arrays, str(path))


def _rebuild(meta: dict[str, Any], arrays: dict[str, np.ndarray[Any, Any]], source: str) -> Any:
    classes = model_classes()
    try:
        cls = classes[meta["estimator"]]
        est = cls(**decode_params(meta["params"]))
        features = tuple(
            Feature(f["name"], f["kind"], tuple(f["categories"])) for f in meta["features"]
        )
        bins = _bins_from(arrays)
        if meta.get("trees_encoding") == ENCODING:
            trees = decode_trees(arrays, bins, classifier=meta.get("classes") is not None)
        elif "trees_encoding" in meta:
            raise FormatError(f"unknown tree encoding {meta['trees_encoding']!r}")
        else:  # files before format 3
            trees = trees_from_arrays(arrays)
        n_features = int(meta["n_features_in"])
    except FormatError as exc:
        raise FormatError(f"{source}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"{source}: malformed model metadata: {exc!r}") from None
    if len(features) != n_features or bins.n_features != n_features or not trees:
        raise FormatError(f"{source}: inconsistent feature counts or no trees")
    for t, tree in enumerate(trees):
        split = tree.feature >= 0
        if split.any() and tree.feature[split].max() >= n_features:
            raise FormatError(f"{source}: tree {t} splits on a feature that does not exist")
    for tree in trees:
        tree.compact(bins)  # keep only what the bins cannot rebuild, as a fitted forest does
    est.trees_ = trees
    est.bins_ = bins
    est.features_ = features
    est.n_features_in_ = n_features
    if meta.get("feature_names_in") is not None:
        est.feature_names_in_ = np.array(meta["feature_names_in"], dtype=object)
    if meta.get("classes") is not None:
        est.classes_ = _dec_labels(meta["classes"])
    if meta.get("plan") is not None:
        est.plan_ = ForestPlan.from_json(meta["plan"])
        est._seed_ = est.plan_.seed
    # Files before format 2 hold trees of the old bootstrap: they predict as they did, but
    # no new tree may join them (warm_start refuses).
    est._growth_version_ = int(meta.get("growth", 1))
    if meta.get("oob_score") is not None:
        est.oob_score_ = float(meta["oob_score"])
    if hasattr(cls, "get_depth"):
        est.tree_ = trees[0]
    return est
