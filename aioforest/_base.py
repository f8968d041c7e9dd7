"""scikit-learn's estimator conventions, without depending on scikit-learn.

Parameters are the keyword arguments of ``__init__``, stored as given; learned state has a
trailing underscore. ``get_params``/``set_params``/``clone`` follow scikit-learn's contract
so that these estimators work inside its ``Pipeline`` and ``GridSearchCV``.
"""

from __future__ import annotations

import copy
import inspect
import sys
from typing import Any, TypeVar

__all__ = ["BaseEstimator", "NotFittedError", "clone"]

E = TypeVar("E", bound="BaseEstimator")
T = TypeVar("T")


class NotFittedError(ValueError, AttributeError):
    """Raised when an estimator is used before ``fit``."""


_sklearn_not_fitted: type[NotFittedError] | None = None


def not_fitted_error(estimator: object) -> NotFittedError:
    """The error for an unfitted estimator; also a scikit-learn ``NotFittedError`` when
    scikit-learn is loaded, so its tooling recognises it."""
    global _sklearn_not_fitted
    cls: type[NotFittedError] = NotFittedError
    if "sklearn.exceptions" in sys.modules:
        if _sklearn_not_fitted is None:
            base = sys.modules["sklearn.exceptions"].NotFittedError
            _sklearn_not_fitted = type("NotFittedError", (NotFittedError, base), {})
        cls = _sklearn_not_fitted
    return cls(f"this {type(estimator).__name__} instance is not fitted yet; call 'fit' first")


class BaseEstimator:
    """Parameter handling shared by every estimator."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(
            name
            for name, p in sig.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters; with ``deep``, also those of nested estimators."""
        out: dict[str, Any] = {}
        for name in self._param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                for sub, sub_value in value.get_params().items():
                    out[f"{name}__{sub}"] = sub_value
            out[name] = value
        return out

    def set_params(self: E, **params: Any) -> E:
        """Set parameters (``name`` or ``nested__name``); returns self."""
        valid = set(self._param_names())
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for {type(self).__name__}; "
                    f"valid parameters: {sorted(valid)}"
                )
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        defaults = {
            name: p.default
            for name, p in inspect.signature(type(self).__init__).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        shown = []
        for name in self._param_names():
            value = getattr(self, name, None)
            if name in defaults and _same(defaults[name], value):
                continue
            shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's estimator tags (only called when scikit-learn is installed)."""
        from sklearn.utils import ClassifierTags, InputTags, RegressorTags, Tags, TargetTags

        kind = getattr(self, "_estimator_type", None)
        return Tags(
            estimator_type=kind,
            target_tags=TargetTags(required=True),
            transformer_tags=None,
            classifier_tags=ClassifierTags() if kind == "classifier" else None,
            regressor_tags=RegressorTags() if kind == "regressor" else None,
            input_tags=InputTags(allow_nan=True),
        )

    def __sklearn_is_fitted__(self) -> bool:
        return any(name.endswith("_") and not name.startswith("_") for name in vars(self))


def _same(a: object, b: object) -> bool:
    try:
        return bool(a is b or (type(a) is type(b) and a == b))
    except Exception:  # arrays and other things without a plain truth value
        return False


def clone(estimator: T) -> T:
    """A fresh, unfitted copy of ``estimator``: the one clone of aioforest.

    With ``get_params()``: ``type(estimator)(**params)`` from ``get_params(deep=False)`` (plain
    ``get_params()`` when it takes no ``deep``), as scikit-learn's ``clone`` does: nested
    estimators are cloned, other parameters deep-copied so that clones never share mutable
    state such as a ``numpy`` Generator. A parameter that cannot be deep-copied (a lock, a
    socket, a cluster client) is shared as is. Without ``get_params()``: a deep copy.
    """
    get_params = getattr(estimator, "get_params", None)
    if not callable(get_params) or isinstance(estimator, type):
        return copy.deepcopy(estimator)
    try:
        takes_deep = "deep" in inspect.signature(get_params).parameters
    except (TypeError, ValueError):  # builtins without a signature
        takes_deep = False
    params = get_params(deep=False) if takes_deep else get_params()
    if not isinstance(params, dict):
        raise TypeError(
            f"{type(estimator).__name__}.get_params() returned {type(params).__name__}, "
            "expected a dict of constructor arguments"
        )
    try:
        return type(estimator)(**{k: _clone_param(v) for k, v in params.items()})
    except TypeError as exc:
        raise TypeError(
            f"cannot clone {type(estimator).__name__}: its constructor rejected the parameters "
            f"from get_params() ({sorted(params)}): {exc}"
        ) from exc


def _clone_param(value: object) -> object:
    if callable(getattr(value, "get_params", None)) and not isinstance(value, type):
        return clone(value)  # a nested estimator starts unfitted too
    try:
        return copy.deepcopy(value)
    except (TypeError, copy.Error):
        # Handles to shared resources refuse to be copied; every clone then uses the same one.
        return value
