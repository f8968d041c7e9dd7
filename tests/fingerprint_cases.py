"""Forests whose trees were fingerprinted before the engine refactor (issue 10).

Each case fits a small forest; its fingerprint is a SHA-256 over every array of every tree
(dtype, shape and bytes), in tree order. ``tests/data/tree_fingerprints.json`` holds the
fingerprints computed by aioforest 0.3.0 (rewritten once, when the bootstrap became a
per-row draw); the test in ``test_tree_fingerprints.py`` refits every case and compares.

Run ``python tests/fingerprint_cases.py --write`` only when a change is *meant* to change
trees (and then bump the version, so that old checkpoints are refused).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FINGERPRINTS = Path(__file__).parent / "data" / "tree_fingerprints.json"
#: Model files saved by aioforest 0.2.0 before the refactor; they must keep loading.
SAVED_MODELS = Path(__file__).parent / "data" / "models"


def forest_fingerprint(trees: list[Any]) -> str:
    """SHA-256 over every array of every tree, in order."""
    h = hashlib.sha256()
    for tree in trees:
        for name, value in sorted(tree.arrays().items()):
            arr = np.ascontiguousarray(value)
            h.update(f"{name}:{arr.dtype.str}:{arr.shape};".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def _classes(n: int, d: int, n_classes: int, seed: int) -> tuple[npt.NDArray[Any], Any]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    score = X @ np.linspace(1.0, 0.2, d) + 0.5 * rng.normal(size=n)
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1]))
    return X, y.astype(np.int64)


def _with_missing(X: npt.NDArray[Any], share: float, seed: int) -> npt.NDArray[Any]:
    rng = np.random.default_rng(seed)
    X = X.copy()
    X[rng.random(X.shape) < share] = np.nan
    return X


def _cases() -> dict[str, Callable[[], list[Any]]]:
    from sklearn.datasets import load_diabetes, load_digits, load_iris

    import aioforest

    clf, reg = aioforest.RandomForestClassifier, aioforest.RandomForestRegressor
    X3, y3 = _classes(800, 8, 3, 0)
    X2, y2 = _classes(1500, 10, 2, 1)
    X20, y20 = _classes(2000, 6, 20, 2)
    Xm = _with_missing(X3, 0.1, 4)
    digits = load_digits()
    iris = load_iris()
    diabetes = load_diabetes()
    rng = np.random.default_rng(5)
    sw_int = rng.integers(0, 4, size=X3.shape[0]).astype(np.float64)
    sw_float = rng.uniform(0.2, 2.0, size=X3.shape[0])

    def fit(est: Any, X: Any, y: Any, **kw: Any) -> list[Any]:
        return list(est.fit(X, y, **kw).trees_)

    cases: dict[str, Callable[[], list[Any]]] = {
        "gini-3class": lambda: fit(clf(n_estimators=8, random_state=0), X3, y3),
        "gini-3class-njobs2": lambda: fit(clf(n_estimators=8, random_state=0, n_jobs=2), X3, y3),
        "entropy-2class": lambda: fit(
            clf(n_estimators=6, criterion="entropy", random_state=1), X2, y2),
        "gini-20class-incremental": lambda: fit(clf(n_estimators=4, random_state=2), X20, y20),
        "entropy-20class": lambda: fit(
            clf(n_estimators=3, criterion="entropy", random_state=2), X20, y20),
        "gini-missing": lambda: fit(clf(n_estimators=6, random_state=3), Xm, y3),
        "gini-missing-leaf5": lambda: fit(
            clf(n_estimators=4, random_state=3, min_samples_leaf=5), Xm, y3),
        "gini-depth4-split10": lambda: fit(
            clf(n_estimators=5, max_depth=4, min_samples_split=10, random_state=4), X3, y3),
        "gini-min-weight-fraction": lambda: fit(
            clf(n_estimators=4, min_weight_fraction_leaf=0.02, random_state=4), X3, y3),
        "gini-min-impurity-decrease": lambda: fit(
            clf(n_estimators=4, min_impurity_decrease=0.001, random_state=4), X3, y3),
        "gini-balanced": lambda: fit(
            clf(n_estimators=4, class_weight="balanced", random_state=6), X3, y3),
        "gini-int-sample-weight": lambda: fit(
            clf(n_estimators=4, random_state=7), X3, y3, sample_weight=sw_int),
        "gini-float-sample-weight": lambda: fit(
            clf(n_estimators=3, random_state=7), X3, y3, sample_weight=sw_float),
        "gini-max-samples-subspace": lambda: fit(
            clf(n_estimators=5, max_samples=0.5, feature_subspace=4, max_features=2,
                random_state=8), X3, y3),
        "gini-no-bootstrap-all-features": lambda: fit(
            clf(n_estimators=2, bootstrap=False, max_features=None, random_state=9), X3, y3),
        "gini-max-bins-16": lambda: fit(
            clf(n_estimators=4, max_bins=16, random_state=10), X2, y2),
        "digits-gini": lambda: fit(clf(n_estimators=10, random_state=11), digits.data,
                                   digits.target),
        "digits-gini-njobs2": lambda: fit(
            clf(n_estimators=10, random_state=11, n_jobs=2), digits.data, digits.target),
        "digits-entropy-max-samples": lambda: fit(
            clf(n_estimators=6, criterion="entropy", max_samples=0.7, random_state=12),
            digits.data, digits.target),
        "iris-gini": lambda: fit(clf(n_estimators=10, random_state=13), iris.data, iris.target),
        "regression-diabetes": lambda: fit(reg(n_estimators=5, random_state=14), diabetes.data,
                                           diabetes.target),
        "regression-diabetes-njobs2": lambda: fit(
            reg(n_estimators=5, random_state=14, n_jobs=2), diabetes.data, diabetes.target),
        "regression-missing-leaf3": lambda: fit(
            reg(n_estimators=3, random_state=15, min_samples_leaf=3),
            _with_missing(diabetes.data, 0.05, 6), diabetes.target),
        "regression-sample-weight": lambda: fit(
            reg(n_estimators=3, random_state=16), diabetes.data, diabetes.target,
            sample_weight=np.random.default_rng(6).uniform(0.5, 2, diabetes.target.size)),
        "tree-classifier-entropy": lambda: fit(
            aioforest.DecisionTreeClassifier(criterion="entropy", max_features=None,
                                             random_state=0), X3, y3),
        "tree-regressor": lambda: fit(
            aioforest.DecisionTreeRegressor(random_state=0), diabetes.data, diabetes.target),
    }
    cases["categorical"] = _categorical_case
    return cases


def _categorical_case() -> list[Any]:
    import pandas as pd

    import aioforest

    rng = np.random.default_rng(3)
    n = 800
    X_num = rng.normal(size=(n, 3))
    cat = rng.integers(0, 7, size=n)
    y = ((X_num[:, 0] + (cat % 3 == 0) * 1.5 + 0.3 * rng.normal(size=n)) > 0.5).astype(int)
    color = pd.Series([f"c{v}" for v in cat], dtype="object")
    color[rng.random(n) < 0.05] = None
    frame = pd.DataFrame({"a": X_num[:, 0], "b": X_num[:, 1], "c": X_num[:, 2],
                          "color": pd.Categorical(color)})
    forest = aioforest.RandomForestClassifier(n_estimators=6, random_state=17)
    return list(forest.fit(frame, y).trees_)


def saved_model_inputs() -> dict[str, tuple[Any, Any]]:
    """Each saved model's name, with the estimator to fit and its test rows."""
    import aioforest

    X, y = _classes(600, 5, 3, 20)
    Xm = _with_missing(X, 0.05, 21)
    Xr = X[:, 1:]
    yr = X[:, 0] * 2 + np.sin(X[:, 1])
    return {
        "classifier-0.2.0": (
            lambda: aioforest.RandomForestClassifier(n_estimators=5, random_state=3).fit(
                Xm[:400], y[:400]), Xm[400:]),
        "regressor-0.2.0": (
            lambda: aioforest.RandomForestRegressor(n_estimators=4, random_state=4).fit(
                Xr[:400], yr[:400]), Xr[400:]),
    }


def predictions_fingerprint(model: Any, X: Any) -> str:
    out = model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)
    return hashlib.sha256(np.ascontiguousarray(out, dtype=np.float64).tobytes()).hexdigest()


def write_saved_models() -> dict[str, str]:
    SAVED_MODELS.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (make, X) in saved_model_inputs().items():
        model = make()
        model.save(SAVED_MODELS / f"{name}.aiof")
        out[f"saved:{name}"] = predictions_fingerprint(model, X)
    return out


def fingerprints() -> dict[str, str]:
    return {name: forest_fingerprint(make()) for name, make in _cases().items()}


def case_names() -> list[str]:
    return list(_cases())


def fingerprint_of(name: str) -> str:
    return forest_fingerprint(_cases()[name]())


if __name__ == "__main__":
    if "--write" not in sys.argv:
        raise SystemExit("usage: python tests/fingerprint_cases.py --write")
    FINGERPRINTS.parent.mkdir(exist_ok=True)
    prints = fingerprints()
    if "--models" in sys.argv:  # only ever once: these files stand for old releases
        prints |= write_saved_models()
    else:
        old = json.loads(FINGERPRINTS.read_text()) if FINGERPRINTS.exists() else {}
        prints |= {k: v for k, v in old.items() if k.startswith("saved:")}
    FINGERPRINTS.write_text(json.dumps(prints, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FINGERPRINTS}")
