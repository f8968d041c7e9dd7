"""The cluster's message vocabulary: typed dataclasses to and from :class:`aioforest.wire.Message`.

Every message is a wire ``Message`` (a type, JSON fields and numpy arrays); this module
gives each type a frozen dataclass and a *strict* decoder. Decoding checks every field's
presence, type and range and every array's dtype and shape, and rejects unknown fields:
a peer that sends anything else gets a :class:`MessageError` naming the message type and
the field. There is no pickle: arrays travel as raw little-endian buffers, everything else
as JSON.

Conversation (worker ``W``, master ``M``)::

    W -> M  register   name, slots, cached dataset hashes, protocol version
    M -> W  welcome    the name the master knows the worker by, heartbeat interval
    M -> W  dataset    content hash + binned codes (or raw features), labels, weights, bins
    M -> W  task       (job, task, attempt), dataset hash, plan, tree indices, row selector,
                       bins (for a raw dataset: the worker bins the selected rows itself)
    W -> M  result     (job, task, attempt) + the fitted trees' arrays
    W -> M  failed     (job, task, attempt) + why (error, missing dataset, cancelled, ...)
    W -> M  heartbeat  load: running, queued, free slots
    M -> W  cancel     a job (or some of its tasks) is no longer wanted
    M -> W  part       data-parallel growth: one operation on the partitions the worker
                       reads itself (session, seq, op, JSON args, arrays)
    W -> M  partreply  its answer (session, seq, error or JSON info and arrays)
    both    bye        the sender is leaving; the connection closes after it

Every ``task`` a worker receives is answered exactly once, by ``result`` or ``failed``,
unless the connection ends first; the master's credit accounting relies on it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from ..data import Bins
from ..persistence import FormatError, trees_from_arrays, trees_to_arrays
from ..tree import ForestPlan, TreeArrays
from ..wire import Message, ProtocolError, json_type

__all__ = [
    "CLUSTER_PROTOCOL_VERSION",
    "PART_OPS",
    "Bye",
    "Cancel",
    "ClusterMessage",
    "DatasetPayload",
    "Heartbeat",
    "MessageError",
    "PartReply",
    "PartRequest",
    "Register",
    "Result",
    "RowSelector",
    "Task",
    "TaskFailed",
    "Welcome",
    "bins_from_arrays",
    "bins_to_arrays",
    "dataset_hash",
    "decode",
]

#: Version of the message vocabulary, sent in ``register``; the master refuses others.
CLUSTER_PROTOCOL_VERSION: Final = 2

_HASH_RE: Final = re.compile(r"[0-9a-f]{64}")
_MAX_NAME: Final = 200
_MAX_TEXT: Final = 2000
_MAX_SLOTS: Final = 4096
_MAX_LIST: Final = 1_000_000
#: Why a task failed (``failed.reason``).
FAILURE_REASONS: Final = frozenset(
    {
        "error",  # the task itself raised: retrying elsewhere would fail the same way
        "worker-error",  # the worker broke (e.g. its process pool died): retry elsewhere
        "missing-dataset",  # the worker does not hold the task's dataset (evicted or lost)
        "cancelled",  # the master cancelled the task before it started
    }
)

IntArray: TypeAlias = npt.NDArray[np.int64]
#: Rows of a dataset a task trains on: all (``None``), ``(start, stop)``, or an index array.
RowSelector: TypeAlias = tuple[int, int] | IntArray | None


class MessageError(ProtocolError):
    """A well-framed message whose content violates the cluster protocol.

    ``msg_type`` and ``field`` say where; the message text says what was wrong.
    """

    def __init__(self, msg_type: str, field: str | None, detail: str) -> None:
        where = f"{msg_type!r:.60} message"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {detail}")
        self.msg_type = msg_type
        self.field = field


class _Reader:
    """Strict accessors over one received message's fields and named arrays."""

    def __init__(
        self,
        msg: Message,
        fields: Sequence[str],
        arrays: Sequence[str] = (),
        *,
        optional: Sequence[str] = (),
    ) -> None:
        self.msg = msg
        self.type = msg.type
        allowed = set(fields) | set(optional) | ({"arrays"} if arrays or msg.arrays else set())
        extra = sorted(set(msg.fields) - allowed)
        if extra:
            raise MessageError(self.type, extra[0], "unexpected field")
        for name in fields:
            if name not in msg.fields:
                raise MessageError(self.type, name, "missing")
        self.arrays = self._named_arrays()

    def error(self, name: str, detail: str) -> MessageError:
        return MessageError(self.type, name, detail)

    def _named_arrays(self) -> dict[str, np.ndarray[Any, Any]]:
        names = self.msg.fields.get("arrays", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise self.error("arrays", f"must be an array of names, got {json_type(names)}")
        if len(set(names)) != len(names):
            raise self.error("arrays", "names must be unique")
        if len(names) != len(self.msg.arrays):
            raise self.error(
                "arrays",
                f"names {len(names)} arrays but the message carries {len(self.msg.arrays)}",
            )
        return dict(zip(names, self.msg.arrays, strict=True))

    def require_arrays(self, required: Sequence[str], optional: Sequence[str] = ()) -> None:
        extra = sorted(set(self.arrays) - set(required) - set(optional))
        if extra:
            raise self.error(f"arrays[{extra[0]!r}]", "unexpected array")
        for name in required:
            if name not in self.arrays:
                raise self.error(f"arrays[{name!r}]", "missing")

    def array(
        self,
        name: str,
        dtypes: Sequence[str],
        ndim: int,
        shape: tuple[int | None, ...] | None = None,
    ) -> np.ndarray[Any, Any]:
        arr = self.arrays[name]
        where = f"arrays[{name!r}]"
        if arr.dtype.str not in dtypes:
            raise self.error(where, f"dtype must be {' or '.join(dtypes)}, got {arr.dtype.str}")
        if arr.ndim != ndim:
            raise self.error(where, f"must be {ndim}-dimensional, got shape {arr.shape}")
        if shape is not None:
            for axis, (want, got) in enumerate(zip(shape, arr.shape, strict=True)):
                if want is not None and want != got:
                    raise self.error(
                        where, f"axis {axis} has length {got}, expected {want} (shape {arr.shape})"
                    )
        return arr

    def get_int(self, name: str, low: int = 0, high: int | None = None) -> int:
        value = self.msg.fields[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"must be an integer, got {json_type(value)}")
        if value < low or (high is not None and value > high):
            bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise self.error(name, f"must be {bound}, got {value}")
        return value

    def get_str(self, name: str, max_len: int = _MAX_TEXT, *, empty: bool = True) -> str:
        value = self.msg.fields[name]
        if not isinstance(value, str):
            raise self.error(name, f"must be a string, got {json_type(value)}")
        if len(value) > max_len:
            raise self.error(name, f"is {len(value)} characters, more than {max_len}")
        if not empty and not value:
            raise self.error(name, "must not be empty")
        return value

    def get_hash(self, name: str) -> str:
        value = self.get_str(name, 64)
        if not _HASH_RE.fullmatch(value):
            raise self.error(name, f"must be 64 lowercase hex digits (sha256), got {value!r:.80}")
        return value

    def int_list(self, name: str, *, low: int = 0, nonempty: bool = True) -> tuple[int, ...]:
        value = self.msg.fields[name]
        if not isinstance(value, list):
            raise self.error(name, f"must be an array of integers, got {json_type(value)}")
        if nonempty and not value:
            raise self.error(name, "must not be empty")
        if len(value) > _MAX_LIST:
            raise self.error(name, f"has {len(value)} entries, more than {_MAX_LIST}")
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise self.error(name, f"entry {i} must be an integer >= {low}, got {v!r:.40}")
        return tuple(value)


def _message(
    msg_type: str, fields: dict[str, Any], arrays: Mapping[str, Any] | None = None
) -> Message:
    if arrays:
        fields = {**fields, "arrays": list(arrays)}
        return Message(msg_type, fields, list(arrays.values()))
    return Message(msg_type, fields)


# --------------------------------------------------------------------------- register / welcome


@dataclass(frozen=True, slots=True)
class Register:
    """Worker -> master, first message: who the worker is and what it already holds."""

    TYPE: ClassVar[str] = "register"
    name: str
    slots: int
    datasets: tuple[str, ...] = ()
    version: int = CLUSTER_PROTOCOL_VERSION
    #: Random per worker process, kept across reconnections: tells the master that a
    #: worker it lost is back (its process did not die). Optional on the wire.
    incarnation: str = ""

    def to_message(self) -> Message:
        fields: dict[str, Any] = {
            "name": self.name,
            "slots": self.slots,
            "datasets": list(self.datasets),
            "version": self.version,
        }
        if self.incarnation:
            fields["incarnation"] = self.incarnation
        return _message(self.TYPE, fields)

    @classmethod
    def from_message(cls, msg: Message) -> Register:
        r = _Reader(msg, ("name", "slots", "datasets", "version"), optional=("incarnation",))
        r.require_arrays(())
        datasets = msg.fields["datasets"]
        if not isinstance(datasets, list) or len(datasets) > _MAX_LIST:
            raise r.error("datasets", f"must be an array of hashes, got {json_type(datasets)}")
        for i, h in enumerate(datasets):
            if not isinstance(h, str) or not _HASH_RE.fullmatch(h):
                raise r.error("datasets", f"entry {i} is not a sha256 hex digest: {h!r:.80}")
        return cls(
            name=r.get_str("name", _MAX_NAME, empty=False),
            slots=r.get_int("slots", 1, _MAX_SLOTS),
            datasets=tuple(datasets),
            version=r.get_int("version"),
            incarnation=(
                r.get_str("incarnation", _MAX_NAME, empty=False)
                if "incarnation" in msg.fields else ""
            ),
        )


@dataclass(frozen=True, slots=True)
class Welcome:
    """Master -> worker, answer to ``register``: the worker's name here and the heartbeat pace.

    With ``heartbeat_timeout`` the master promises to send something (a heartbeat at least)
    every ``heartbeat_interval``: a worker that hears nothing for ``heartbeat_timeout``
    seconds treats the master as gone (frozen or cut off) and reconnects.
    """

    TYPE: ClassVar[str] = "welcome"
    name: str
    heartbeat_interval: float
    heartbeat_timeout: float | None = None

    def to_message(self) -> Message:
        fields: dict[str, Any] = {"name": self.name, "heartbeat_interval": self.heartbeat_interval}
        if self.heartbeat_timeout is not None:
            fields["heartbeat_timeout"] = self.heartbeat_timeout
        return _message(self.TYPE, fields)

    @classmethod
    def from_message(cls, msg: Message) -> Welcome:
        r = _Reader(msg, ("name", "heartbeat_interval"), optional=("heartbeat_timeout",))
        r.require_arrays(())
        interval = _seconds(r, "heartbeat_interval", 0.0)
        timeout = (
            _seconds(r, "heartbeat_timeout", interval)
            if "heartbeat_timeout" in msg.fields else None
        )
        name = r.get_str("name", _MAX_NAME, empty=False)
        return cls(name=name, heartbeat_interval=interval, heartbeat_timeout=timeout)


def _seconds(r: _Reader, name: str, above: float) -> float:
    value = r.msg.fields[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise r.error(name, f"must be a number, got {json_type(value)}")
    if not above < value <= 3600:
        raise r.error(name, f"must be in ({above:g}, 3600] seconds, got {value}")
    return float(value)


# --------------------------------------------------------------------------- dataset


def dataset_hash(
    codes: np.ndarray[Any, Any],
    y: np.ndarray[Any, Any],
    sample_weight: npt.NDArray[np.float64] | None,
    n_bins: npt.NDArray[np.int32],
    is_categorical: npt.NDArray[np.bool_],
    edges: Sequence[npt.NDArray[np.float64]],
) -> str:
    """The sha256 content hash that names a dataset on the cluster.

    It covers the codes, labels, weights and bin metadata with their dtypes and shapes, so
    two datasets share a hash only if a worker would fit exactly the same trees on them.
    """
    h = hashlib.sha256(b"aioforest-dataset-v1\0")

    def put(tag: str, arr: np.ndarray[Any, Any] | None) -> None:
        if arr is None:
            h.update(f"{tag}:none;".encode())
            return
        a = np.ascontiguousarray(arr)
        h.update(f"{tag}:{a.dtype.str}:{list(a.shape)};".encode())
        h.update(a.reshape(-1).view(np.uint8).data)

    put("codes", codes)
    put("y", y)
    put("sample_weight", sample_weight)
    put("n_bins", n_bins)
    put("is_categorical", is_categorical)
    for f, e in enumerate(edges):
        put(f"edges{f}", e)
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class DatasetPayload:
    """Master -> worker: one training set, named by its content hash.

    ``codes`` is feature-major ``(n_features, n_rows)`` uint8, as :meth:`Bins.transform`
    returns them, binned by :attr:`bins`; ``y`` int64 class codes or float64 targets;
    ``sample_weight`` float64 or ``None``.

    A *raw* dataset (:meth:`build_raw`, :attr:`is_raw`) carries the encoded float64 feature
    matrix in ``codes`` instead (still feature-major), with placeholder bins (one bin per
    feature, no edges): its tasks carry the bins and the worker bins the task's rows itself.
    Cross-validation uses it so that one dataset serves every fold, each fold binned on its
    own training rows exactly as a local fit on them would be.
    """

    TYPE: ClassVar[str] = "dataset"
    hash: str
    codes: np.ndarray[Any, Any]  # uint8 codes, or float64 features when raw
    y: np.ndarray[Any, Any]
    sample_weight: npt.NDArray[np.float64] | None
    n_bins: npt.NDArray[np.int32]
    is_categorical: npt.NDArray[np.bool_]
    edges: tuple[npt.NDArray[np.float64], ...]

    @classmethod
    def build(
        cls,
        bins: Bins,
        codes: npt.NDArray[np.uint8],
        y: np.ndarray[Any, Any],
        sample_weight: npt.NDArray[np.float64] | None,
    ) -> DatasetPayload:
        """A payload for ``codes`` (binned by ``bins``) and their labels, hashing the content."""
        return cls._build(bins, np.ascontiguousarray(codes, dtype=np.uint8), y, sample_weight)

    @classmethod
    def _build(
        cls,
        bins: Bins,
        codes: np.ndarray[Any, Any],
        y: np.ndarray[Any, Any],
        sample_weight: npt.NDArray[np.float64] | None,
    ) -> DatasetPayload:
        if codes.shape[0] != bins.n_features:
            raise ValueError(f"codes have {codes.shape[0]} features, the bins {bins.n_features}")
        y_arr = np.ascontiguousarray(y)
        sw = None if sample_weight is None else np.ascontiguousarray(sample_weight, np.float64)
        n_bins = np.ascontiguousarray(bins.n_bins, dtype=np.int32)
        is_cat = np.ascontiguousarray(bins.is_categorical, dtype=bool)
        edges = tuple(np.ascontiguousarray(e, dtype=np.float64) for e in bins.edges)
        digest = dataset_hash(codes, y_arr, sw, n_bins, is_cat, edges)
        return cls(digest, codes, y_arr, sw, n_bins, is_cat, edges)

    @classmethod
    def build_raw(
        cls,
        X: npt.NDArray[np.float64],
        y: np.ndarray[Any, Any],
        sample_weight: npt.NDArray[np.float64] | None,
        is_categorical: npt.NDArray[np.bool_],
    ) -> DatasetPayload:
        """A raw payload for the encoded float matrix ``X`` (rows, features) and its labels."""
        features = np.ascontiguousarray(np.asarray(X, dtype=np.float64).T)
        n_features = features.shape[0]
        placeholder = Bins(
            np.ones(n_features, dtype=np.int32),
            np.asarray(is_categorical, dtype=bool),
            tuple(np.zeros(0, dtype=np.float64) for _ in range(n_features)),
        )
        return cls._build(placeholder, features, y, sample_weight)

    @property
    def is_raw(self) -> bool:
        """Whether ``codes`` holds raw float64 features (binned per task) rather than codes."""
        return bool(self.codes.dtype == np.float64)

    @property
    def n_features(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n_rows(self) -> int:
        return int(self.codes.shape[1])

    @property
    def nbytes(self) -> int:
        """Raw array bytes of the payload (what the wire carries before compression)."""
        parts = [self.codes, self.y, self.n_bins, self.is_categorical, *self.edges]
        if self.sample_weight is not None:
            parts.append(self.sample_weight)
        return sum(int(p.nbytes) for p in parts)

    def computed_hash(self) -> str:
        """The hash of the content as received (compare with :attr:`hash`)."""
        return dataset_hash(
            self.codes, self.y, self.sample_weight, self.n_bins, self.is_categorical, self.edges
        )

    @property
    def bins(self) -> Bins:
        """The bins of :attr:`codes` (placeholders for a raw dataset)."""
        return Bins(self.n_bins, self.is_categorical, self.edges)

    def to_message(self) -> Message:
        arrays: dict[str, np.ndarray[Any, Any]] = {"codes": self.codes, "y": self.y}
        if self.sample_weight is not None:
            arrays["sample_weight"] = self.sample_weight
        arrays["n_bins"] = self.n_bins
        arrays["is_categorical"] = self.is_categorical
        arrays["edge_counts"] = np.array([e.size for e in self.edges], dtype=np.int64)
        arrays["edges"] = (
            np.concatenate(self.edges) if self.edges else np.zeros(0, dtype=np.float64)
        )
        return _message(self.TYPE, {"hash": self.hash}, arrays)

    @classmethod
    def from_message(cls, msg: Message) -> DatasetPayload:
        r = _Reader(msg, ("hash",))
        digest = r.get_hash("hash")
        r.require_arrays(
            ("codes", "y", "n_bins", "is_categorical", "edge_counts", "edges"), ("sample_weight",)
        )
        codes = r.array("codes", ("|u1", "<f8"), 2)
        raw = codes.dtype == np.float64
        n_features, n_rows = codes.shape
        if n_features < 1 or n_rows < 1:
            raise r.error(
                "arrays['codes']", f"needs at least one feature and row, got {codes.shape}"
            )
        y = r.array("y", ("<i8", "<f8"), 1, (n_rows,))
        sw = None
        if "sample_weight" in r.arrays:
            sw = r.array("sample_weight", ("<f8",), 1, (n_rows,))
            if not (np.isfinite(sw).all() and (sw >= 0).all()):
                raise r.error("arrays['sample_weight']", "must be finite and non-negative")
        n_bins = r.array("n_bins", ("<i4",), 1, (n_features,))
        if n_bins.min() < 1 or n_bins.max() > 255:
            raise r.error("arrays['n_bins']", "entries must be in [1, 255]")
        if raw and not (n_bins == 1).all():
            raise r.error(
                "arrays['n_bins']", "a raw (float64) dataset has one placeholder bin per feature"
            )
        is_cat = r.array("is_categorical", ("|b1",), 1, (n_features,))
        counts = r.array("edge_counts", ("<i8",), 1, (n_features,))
        if not np.array_equal(counts, n_bins.astype(np.int64) - 1):
            raise r.error("arrays['edge_counts']", "must equal n_bins - 1 for every feature")
        flat = r.array("edges", ("<f8",), 1, (int(counts.sum()),))
        if np.isnan(flat).any():
            raise r.error("arrays['edges']", "must not contain NaN")
        # A code above a feature's missing-value bin would index past its histograms.
        too_big = np.zeros(n_features, dtype=bool) if raw else codes.max(axis=1) > n_bins
        if too_big.any():
            f = int(np.flatnonzero(too_big)[0])
            raise r.error(
                "arrays['codes']",
                f"feature {f} has code {int(codes[f].max())} above its missing-value bin "
                f"{int(n_bins[f])}",
            )
        edges = tuple(np.split(flat, np.cumsum(counts)[:-1]))
        return cls(digest, codes, y, sw, n_bins, is_cat, edges)


# --------------------------------------------------------------------------- task


def plan_from_json(r: _Reader, name: str) -> ForestPlan:
    """The task's plan, checked by the one plan codec (``ForestPlan.from_json``)."""
    try:
        return ForestPlan.from_json(r.msg.fields[name])
    except ValueError as exc:
        field, _, what = str(exc).partition(": ")
        raise r.error(field.replace("plan", name, 1), what) from None


@dataclass(frozen=True, eq=False)
class Task:
    """Master -> worker: fit trees ``indices`` of the forest ``plan`` on a cached dataset.

    ``(job_id, task_id, attempt)`` names this try; the answer repeats it. ``rows`` restricts
    the dataset to a row range ``(start, stop)`` or an int64 index array (data-parallel
    shards, cross-validation folds); ``None`` uses every row. ``bins`` (only for a raw
    dataset, and required there) are the bins to apply to the selected rows.
    """

    TYPE: ClassVar[str] = "task"
    job_id: int
    task_id: int
    attempt: int
    dataset: str
    plan: ForestPlan
    indices: tuple[int, ...]
    rows: RowSelector = None
    bins: Bins | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.job_id, self.task_id)

    def _arrays(self) -> dict[str, np.ndarray[Any, Any]]:
        arrays: dict[str, np.ndarray[Any, Any]] = {}
        if isinstance(self.rows, np.ndarray):
            arrays["rows"] = np.asarray(self.rows, dtype=np.int64)
        if self.bins is not None:
            arrays.update(bins_to_arrays(self.bins))
        return arrays

    def to_message(self) -> Message:
        fields: dict[str, Any] = {
            "job_id": self.job_id,
            "task_id": self.task_id,
            "attempt": self.attempt,
            "dataset": self.dataset,
            "plan": self.plan.to_json(),
            "indices": list(self.indices),
            "bins": self.bins is not None,
        }
        if self.rows is None:
            fields["rows"] = None
        elif isinstance(self.rows, tuple):
            fields["rows"] = list(self.rows)
        else:
            fields["rows"] = "array"
        return _message(self.TYPE, fields, self._arrays())

    @classmethod
    def from_message(cls, msg: Message) -> Task:
        r = _Reader(
            msg, ("job_id", "task_id", "attempt", "dataset", "plan", "indices", "rows", "bins")
        )
        has_bins = msg.fields["bins"]
        if not isinstance(has_bins, bool):
            raise r.error("bins", f"must be a boolean, got {json_type(has_bins)}")
        bin_arrays = _BIN_ARRAYS if has_bins else ()
        raw = msg.fields["rows"]
        rows: RowSelector
        if raw is None:
            r.require_arrays(bin_arrays)
            rows = None
        elif raw == "array":
            r.require_arrays(("rows", *bin_arrays))
            rows = r.array("rows", ("<i8",), 1)
            if rows.size == 0 or rows.min() < 0:
                raise r.error("arrays['rows']", "must be non-empty and non-negative")
        elif isinstance(raw, list):
            r.require_arrays(bin_arrays)
            if (
                len(raw) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in raw)
                or not 0 <= raw[0] < raw[1]
            ):
                raise r.error(
                    "rows", f"must be [start, stop] with 0 <= start < stop, got {raw!r:.60}"
                )
            rows = (raw[0], raw[1])
        else:
            raise r.error("rows", f'must be null, [start, stop] or "array", got {raw!r:.60}')
        indices = r.int_list("indices")
        if len(set(indices)) != len(indices):
            raise r.error("indices", "must not repeat a tree index")
        return cls(
            job_id=r.get_int("job_id"),
            task_id=r.get_int("task_id"),
            attempt=r.get_int("attempt"),
            dataset=r.get_hash("dataset"),
            plan=plan_from_json(r, "plan"),
            indices=indices,
            rows=rows,
            bins=_read_bins(r) if has_bins else None,
        )


_BIN_ARRAYS: Final = ("bin_n_bins", "bin_is_categorical", "bin_edge_counts", "bin_edges")


def bins_to_arrays(bins: Bins) -> dict[str, np.ndarray[Any, Any]]:
    """The ``bin_*`` arrays that carry a :class:`Bins` in a message."""
    return {
        "bin_n_bins": np.ascontiguousarray(bins.n_bins, dtype=np.int32),
        "bin_is_categorical": np.ascontiguousarray(bins.is_categorical, dtype=bool),
        "bin_edge_counts": np.array([e.size for e in bins.edges], dtype=np.int64),
        "bin_edges": (
            np.concatenate(bins.edges).astype(np.float64, copy=False)
            if bins.edges else np.zeros(0, dtype=np.float64)
        ),
    }


def bins_from_arrays(msg_type: str, arrays: Mapping[str, np.ndarray[Any, Any]]) -> Bins:
    """The :class:`Bins` in the ``bin_*`` arrays of a ``msg_type`` message;
    :class:`MessageError` names a bad one."""
    r = _Reader.__new__(_Reader)
    r.msg, r.type, r.arrays = Message(msg_type, {}), msg_type, dict(arrays)
    for name in _BIN_ARRAYS:
        if name not in r.arrays:
            raise r.error(f"arrays[{name!r}]", "missing")
    return _read_bins(r)


def _read_bins(r: _Reader) -> Bins:
    """A task's bins (for a raw dataset), checked like a dataset's bin metadata."""
    n_bins = r.array("bin_n_bins", ("<i4",), 1)
    n_features = n_bins.size
    if n_features < 1 or n_bins.min() < 1 or n_bins.max() > 255:
        raise r.error("arrays['bin_n_bins']", "needs >= 1 feature, entries in [1, 255]")
    is_cat = r.array("bin_is_categorical", ("|b1",), 1, (n_features,))
    counts = r.array("bin_edge_counts", ("<i8",), 1, (n_features,))
    if not np.array_equal(counts, n_bins.astype(np.int64) - 1):
        raise r.error("arrays['bin_edge_counts']", "must equal n_bins - 1 for every feature")
    flat = r.array("bin_edges", ("<f8",), 1, (int(counts.sum()),))
    if np.isnan(flat).any():
        raise r.error("arrays['bin_edges']", "must not contain NaN")
    edges = tuple(np.split(flat, np.cumsum(counts)[:-1]))
    return Bins(n_bins, is_cat, edges)


# --------------------------------------------------------------------------- answers


_TREE_DTYPES: Final = {
    "node_counts": ("<i8", 1),
    "cat_counts": ("<i8", 1),
    "feature": ("<i4", 1),
    "threshold": ("<f8", 1),
    "threshold_bin": ("<i2", 1),
    "missing_left": ("|b1", 1),
    "left": ("<i4", 1),
    "right": ("<i4", 1),
    "value": ("<f8", 2),
    "impurity": ("<f8", 1),
    "n_node_samples": ("<i8", 1),
    "weighted_n_node_samples": ("<f8", 1),
    "improvement": ("<f8", 1),
    "cat_index": ("<i4", 1),
    "cat_left_bits": ("|u1", 2),
}


@dataclass(frozen=True, eq=False)
class Result:
    """Worker -> master: the trees a task fitted, in the task's index order."""

    TYPE: ClassVar[str] = "result"
    job_id: int
    task_id: int
    attempt: int
    trees: tuple[TreeArrays, ...]

    def to_message(self) -> Message:
        return _message(
            self.TYPE,
            {"job_id": self.job_id, "task_id": self.task_id, "attempt": self.attempt},
            trees_to_arrays(list(self.trees), prefix=""),
        )

    @classmethod
    def from_message(cls, msg: Message) -> Result:
        r = _Reader(msg, ("job_id", "task_id", "attempt"))
        r.require_arrays(tuple(_TREE_DTYPES))
        for name, (dtype, ndim) in _TREE_DTYPES.items():
            r.array(name, (dtype,), ndim)
        if r.arrays["node_counts"].size < 1:
            raise r.error("arrays['node_counts']", "a result needs at least one tree")
        try:
            trees = trees_from_arrays(r.arrays, prefix="")
        except FormatError as exc:
            raise r.error("arrays", f"the trees are malformed: {exc}") from None
        return cls(r.get_int("job_id"), r.get_int("task_id"), r.get_int("attempt"), tuple(trees))


@dataclass(frozen=True, slots=True)
class TaskFailed:
    """Worker -> master: a task will not produce a result (``reason`` in FAILURE_REASONS)."""

    TYPE: ClassVar[str] = "failed"
    job_id: int
    task_id: int
    attempt: int
    reason: str
    detail: str = ""

    def to_message(self) -> Message:
        return _message(
            self.TYPE,
            {
                "job_id": self.job_id,
                "task_id": self.task_id,
                "attempt": self.attempt,
                "reason": self.reason,
                "detail": self.detail[:_MAX_TEXT],
            },
        )

    @classmethod
    def from_message(cls, msg: Message) -> TaskFailed:
        r = _Reader(msg, ("job_id", "task_id", "attempt", "reason", "detail"))
        r.require_arrays(())
        reason = r.get_str("reason", 40)
        if reason not in FAILURE_REASONS:
            raise r.error("reason", f"must be one of {sorted(FAILURE_REASONS)}, got {reason!r}")
        job_id, task_id, attempt = r.get_int("job_id"), r.get_int("task_id"), r.get_int("attempt")
        return cls(job_id, task_id, attempt, reason, r.get_str("detail"))


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Worker -> master, every heartbeat interval: the worker's load."""

    TYPE: ClassVar[str] = "heartbeat"
    running: int
    queued: int
    free: int

    def to_message(self) -> Message:
        return _message(
            self.TYPE, {"running": self.running, "queued": self.queued, "free": self.free}
        )

    @classmethod
    def from_message(cls, msg: Message) -> Heartbeat:
        r = _Reader(msg, ("running", "queued", "free"))
        r.require_arrays(())
        return cls(r.get_int("running"), r.get_int("queued"), r.get_int("free"))


@dataclass(frozen=True, slots=True)
class Cancel:
    """Master -> worker: drop queued tasks of a job (``task_ids`` ``None``: all of them)."""

    TYPE: ClassVar[str] = "cancel"
    job_id: int
    task_ids: tuple[int, ...] | None = None

    def to_message(self) -> Message:
        ids = None if self.task_ids is None else list(self.task_ids)
        return _message(self.TYPE, {"job_id": self.job_id, "task_ids": ids})

    @classmethod
    def from_message(cls, msg: Message) -> Cancel:
        r = _Reader(msg, ("job_id", "task_ids"))
        r.require_arrays(())
        ids = None if msg.fields["task_ids"] is None else r.int_list("task_ids")
        return cls(r.get_int("job_id"), ids)


@dataclass(frozen=True, slots=True)
class Bye:
    """Either side: I am leaving; nothing follows on this connection."""

    TYPE: ClassVar[str] = "bye"
    reason: str = ""

    def to_message(self) -> Message:
        return _message(self.TYPE, {"reason": self.reason[:_MAX_TEXT]})

    @classmethod
    def from_message(cls, msg: Message) -> Bye:
        r = _Reader(msg, ("reason",))
        r.require_arrays(())
        return cls(r.get_str("reason"))


#: The operations of data-parallel growth (see ``aioforest.cluster._part_host``).
PART_OPS: Final = frozenset(
    {"scan", "texts", "load", "bins", "begin", "missing", "totals", "keep", "hist", "route", "end",
     "forget", "oob", "close", "peer", "ship", "subtrees"}
)
_MAX_ARRAYS: Final = 4096


def _json_object(r: _Reader, name: str) -> dict[str, Any]:
    value = r.msg.fields[name]
    if not isinstance(value, dict):
        raise r.error(name, f"must be an object, got {json_type(value)}")
    return value


@dataclass(frozen=True, slots=True)
class PartRequest:
    """Master -> worker: one operation of a data-parallel session on the worker's own
    partitions. ``args`` and ``arrays`` are checked by the operation's handler, which
    answers a bad one with an error naming the field."""

    TYPE: ClassVar[str] = "part"
    session: int
    seq: int
    op: str
    args: dict[str, Any]
    arrays: dict[str, np.ndarray[Any, Any]]

    def to_message(self) -> Message:
        fields = {"session": self.session, "seq": self.seq, "op": self.op, "args": self.args}
        return _message(self.TYPE, fields, self.arrays)

    @classmethod
    def from_message(cls, msg: Message) -> PartRequest:
        r = _Reader(msg, ("session", "seq", "op", "args"))
        op = r.get_str("op", 20)
        if op not in PART_OPS:
            raise r.error("op", f"unknown operation {op!r} (known: {sorted(PART_OPS)})")
        if len(r.arrays) > _MAX_ARRAYS:
            raise r.error("arrays", f"{len(r.arrays)} arrays, more than {_MAX_ARRAYS}")
        return cls(r.get_int("session", 1), r.get_int("seq", 0), op, _json_object(r, "args"),
                   dict(r.arrays))


@dataclass(frozen=True, slots=True)
class PartReply:
    """Worker -> master: the answer to the ``part`` request ``(session, seq)``: an
    ``error`` (empty when it worked), JSON ``info`` and arrays."""

    TYPE: ClassVar[str] = "partreply"
    session: int
    seq: int
    error: str
    info: dict[str, Any]
    arrays: dict[str, np.ndarray[Any, Any]]

    def to_message(self) -> Message:
        fields = {"session": self.session, "seq": self.seq, "error": self.error,
                  "info": self.info}
        return _message(self.TYPE, fields, self.arrays)

    @classmethod
    def from_message(cls, msg: Message) -> PartReply:
        r = _Reader(msg, ("session", "seq", "error", "info"))
        if len(r.arrays) > _MAX_ARRAYS:
            raise r.error("arrays", f"{len(r.arrays)} arrays, more than {_MAX_ARRAYS}")
        return cls(r.get_int("session", 1), r.get_int("seq", 0), r.get_str("error"),
                   _json_object(r, "info"), dict(r.arrays))


ClusterMessage: TypeAlias = (
    Register | Welcome | DatasetPayload | Task | Result | TaskFailed | Heartbeat | Cancel | Bye
    | PartRequest | PartReply
)

_DECODERS: Final[dict[str, Callable[[Message], ClusterMessage]]] = {
    cls.TYPE: cls.from_message
    for cls in (Register, Welcome, DatasetPayload, Task, Result, TaskFailed, Heartbeat, Cancel,
                Bye, PartRequest, PartReply)
}


def decode(msg: Message, *, expect: Sequence[str] | None = None) -> ClusterMessage:
    """The typed message for ``msg``; :class:`MessageError` if it breaks the protocol.

    ``expect`` lists the types acceptable here (e.g. what a master may receive); anything
    else is an error even if it is a known type.
    """
    decoder = _DECODERS.get(msg.type)
    if decoder is None:
        raise MessageError(msg.type, None, f"unknown message type (known: {sorted(_DECODERS)})")
    if expect is not None and msg.type not in expect:
        raise MessageError(msg.type, None, f"not expected here (expected one of {sorted(expect)})")
    return decoder(msg)
