"""Prediction on dask collections, computed on the workers (dask-ml's ``ParallelPostFit``).

The model travels once, as the bytes of our model file (no pickle): scattered to every
worker when a distributed client is about (else one key of the graph); each worker loads
it once and keeps it (``_LOADED``). Every block is predicted by the loaded
model's own ``predict`` / ``predict_proba``, so the answers are the local model's.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from ..persistence import load_bytes, save_bytes
from ._inputs import row_blocks

__all__ = ["predict_collection"]

#: Models a worker keeps loaded, by the SHA-256 of their bytes.
_LOADED: OrderedDict[str, Any] = OrderedDict()
_LOADED_LOCK = threading.Lock()
KEEP_LOADED = 4


def _model(digest: str, payload: bytes) -> Any:
    with _LOADED_LOCK:
        model = _LOADED.get(digest)
        if model is None:
            model = load_bytes(payload)
            _LOADED[digest] = model
            while len(_LOADED) > KEEP_LOADED:
                _LOADED.popitem(last=False)
        else:
            _LOADED.move_to_end(digest)  # least recently used goes first, not oldest
        return model


def predict_block(model: tuple[str, bytes], block: Any, method: str) -> Any:
    """One block's predictions, by the model ``(digest, bytes)``."""
    return np.asarray(getattr(_model(*model), method)(block))


def _shipped(model: tuple[str, bytes]) -> Any:
    """The model as the graph's input: with a distributed client, scattered to every
    worker once (the graph then holds a small reference, not the bytes); otherwise a
    single key of the graph."""
    import dask

    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):  # no distributed, or no client: a local scheduler
        return dask.delayed(model, pure=True)
    (future,) = client.scatter([model], broadcast=True, hash=False)
    return future


def predict_collection(estimator: Any, X: Any, method: str) -> Any:
    """``estimator.<method>(X)`` for a dask array or DataFrame, as a dask array."""
    import dask
    import dask.array as da

    payload = save_bytes(estimator)
    model = _shipped((hashlib.sha256(payload).hexdigest(), payload))
    proba = method == "predict_proba"
    if proba:
        dtype: Any = np.float64
    elif hasattr(estimator, "classes_"):
        dtype = np.asarray(estimator.classes_).dtype
    else:
        dtype = np.float64
    k = len(estimator.classes_) if proba else 0
    blocks, counts = row_blocks(X)
    sizes = [n if math.isnan(n) else int(n) for n in counts]  # NaN: unknown to dask
    parts = [
        da.from_delayed(dask.delayed(predict_block, pure=True)(model, b, method),
                        shape=(n, k) if proba else (n,), dtype=dtype)
        for b, n in zip(blocks, sizes, strict=True)
    ]
    return da.concatenate(parts, axis=0)
