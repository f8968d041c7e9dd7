"""scikit-learn's estimator conventions, without depending on scikit-learn.

Parameters are the keyword arguments of ``__init__``, stored as given; learned state has a
trailing underscore. ``get_params``/``set_params``/``clone`` follow scikit-learn's contract
so that these estimators work inside its ``Pipeline`` and ``GridSearchCV``.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any, TypeVar

__all__ = ["BaseEstimator", "NotFittedError", "clone"]

E = TypeVar("E", bound="BaseEstimator")


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

    def _check_fitted(self, attribute: str) -> None:
        if not hasattr(self, attribute):
            raise NotFittedError(
                f"this {type(self).__name__} instance is not fitted yet; call 'fit' first"
            )


def _same(a: object, b: object) -> bool:
    try:
        return bool(a is b or (type(a) is type(b) and a == b))
    except Exception:  # arrays and other things without a plain truth value
        return False


def clone(estimator: E) -> E:
    """A new unfitted estimator with the same parameters (nested estimators cloned too)."""
    params = estimator.get_params(deep=False)
    for name, value in params.items():
        if isinstance(value, BaseEstimator):
            params[name] = clone(value)
    return type(estimator)(**params)
