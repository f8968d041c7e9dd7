"""One encoder for estimator parameters, in model files and checkpoint specs alike.

Values become JSON that decodes to an equal value and that compares exactly after a JSON
round trip (a checkpoint compares the spec it stored with the spec of the job resuming it):
None, bools, strings, 64-bit integers and finite floats stay as they are (NumPy scalars
become their Python twins); lists, tuples and arrays become ``{"list": [...]}``, dicts
``{"dict": [[key, value], ...]}`` (keys need not be strings), non-finite floats
``{"float": "nan"}`` and larger integers ``{"int": "<digits>"}``. Anything else is refused
with an error naming the parameter: a value the file cannot rebuild must not be written as
if it could.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._container import FormatError

__all__ = ["decode_params", "decode_value", "encode_params", "encode_value"]

_INT64 = range(-(2**63), 2**64)


def encode_value(value: Any, where: str) -> Any:
    """``value`` as tagged JSON; ``where`` names it in the error for an unencodable value."""
    if value is None or isinstance(value, bool | np.bool_):
        return None if value is None else bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int | np.integer):
        v = int(value)
        return v if v in _INT64 else {"int": str(v)}
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else {"float": repr(f)}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return {"list": [encode_value(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, dict):
        return {"dict": [
            [encode_value(k, f"{where} (a key)"), encode_value(v, f"{where}[{k!r}]")]
            for k, v in value.items()
        ]}
    raise TypeError(
        f"cannot encode {where}: {value!r} of type {type(value).__name__} (model files and "
        "checkpoints hold None, bools, numbers, strings, and lists, tuples, arrays and "
        "dicts of them)"
    )


def decode_value(value: Any) -> Any:
    """The value :func:`encode_value` encoded (tuples and arrays come back as lists)."""
    if isinstance(value, list):  # only inside a tag
        raise FormatError(f"untagged list {value!r} in encoded parameters")
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise FormatError(f"unknown encoded value {value!r}")
    (tag, body), = value.items()
    try:
        if tag == "list":
            return [decode_value(v) for v in body]
        if tag == "dict":
            return {decode_value(k): decode_value(v) for k, v in body}
        if tag == "float":
            return float(body)
        if tag == "int":
            return int(body)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"bad encoded value {value!r}: {exc}") from None
    raise FormatError(f"unknown encoded value {value!r}")


def encode_params(params: Mapping[str, Any]) -> Any:
    """``get_params()`` as tagged JSON; an unencodable value names its parameter."""
    return {"dict": [[str(k), encode_value(v, f"parameter {k!r}")] for k, v in params.items()]}


def decode_params(value: Any) -> dict[str, Any]:
    """The parameters :func:`encode_params` encoded."""
    params = decode_value(value)
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise FormatError(f"encoded parameters are not a dict with string keys: {value!r}")
    return params
