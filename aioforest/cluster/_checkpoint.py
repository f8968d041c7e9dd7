"""Checkpoints of a cluster fit: every finished tree on disk at once, so a killed job resumes.

Tree ``i`` of a forest is a pure function of (binned data, labels, weights, plan, ``i``), so
a forest assembled from trees saved by an earlier, killed run and trees fitted now is
bit-identical to an uninterrupted fit -- provided the job is the same. A checkpoint
therefore stores, next to the trees, the job's *specification* (data hashes, plan,
parameters, tree indices, mode, shards, aioforest version; see :func:`job_spec`) and
refuses to resume a different job.

On-disk layout of a checkpoint directory ``D`` (every file is a
:mod:`~aioforest.persistence._container` file: magic, version, JSON metadata, arrays and a
SHA-256 checksum; never pickle)::

    D/job.aiof          kind "aioforest.checkpoint.job":  meta {"spec": {...}, "digest": hex}
    D/tree-000042.aiof  kind "aioforest.checkpoint.tree": meta {"job": digest, "index": 42},
                        arrays: the tree's TreeArrays fields
    D/.lock             held with flock(2) while a Checkpoint is open (holds the owner's pid)
    D/.<name>.*.tmp     a write in progress (or cut short by a kill; removed on open)

``digest`` is the SHA-256 of the spec serialised with sorted keys (:func:`spec_digest`).

Guarantees:

* Every file is written to a temporary file in ``D``, fsynced, renamed over its final name,
  and the directory is fsynced before the write returns. So after a kill -9 (or a power
  loss, on a file system that honours fsync) at any instant, a tree file is either complete
  and valid or absent, and a tree reported written is on disk. ``job.aiof`` is written
  before any tree file.
* Opening verifies everything it reads: the job file's checksum and digest, and for each tree
  file its checksum, kind, job digest, index (one of the job's trees, matching the file
  name) and arrays (dtypes and :meth:`TreeArrays.validate`). Anything damaged or foreign
  raises :class:`CheckpointError` naming the file; nothing is skipped or deleted silently.
* A directory that is neither empty nor a checkpoint is refused: trees are never written
  into an unrelated directory. Files other than the ones above in a checkpoint directory
  are left alone and never read.
* One process at a time: the lock is an advisory ``flock`` on ``D/.lock``, so a second
  master opening the same directory is refused while the first is running (the kernel
  drops the lock when a process dies, so a killed master leaves no stale lock). ``flock``
  is local to one machine: do not share a checkpoint directory between hosts over NFS.
  Without ``fcntl`` (Windows) there is no lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import numpy as np
import orjson

from .._version import __version__
from ..persistence import (
    FORMAT_VERSION,
    SAME_TREES_SINCE,
    FormatError,
    FormatVersionError,
    dumps,
    encode_value,
    fsync_dir,
    loads,
    write_atomic,
)
from ..tree import GROWTH_VERSION, TreeArrays
from ._errors import ClusterError

if sys.platform != "win32":
    import fcntl

__all__ = [
    "Checkpoint", "CheckpointError", "job_spec", "spec_digest", "tree_file_name",
]

JOB_FILE = "job.aiof"
LOCK_FILE = ".lock"
JOB_KIND = "aioforest.checkpoint.job"
TREE_KIND = "aioforest.checkpoint.tree"
#: A batch of trees part-grown (data mode): where its growth stood after some level.
ROUND_FILE = "round.aiof"
ROUND_KIND = "aioforest.checkpoint.round"
_TREE_NAME = re.compile(r"tree-(\d+)\.aiof")
# write_atomic's temporary names: "." + final name + random + ".tmp".
_TEMP_NAME = re.compile(r"\.(job\.aiof|round\.aiof|tree-\d+\.aiof)\..+\.tmp")
# Parameters that cannot change a tree (they only say how the local fit is run).
_NOT_IN_SPEC = frozenset({"n_jobs"})
# Each TreeArrays field's dtype and number of dimensions (as the wire checks them).
_TREE_DTYPES = {
    "feature": ("<i4", 1), "threshold": ("<f8", 1), "threshold_bin": ("<i2", 1),
    "missing_left": ("|b1", 1), "left": ("<i4", 1), "right": ("<i4", 1),
    "value": ("<f8", 2), "impurity": ("<f8", 1), "n_node_samples": ("<i8", 1),
    "weighted_n_node_samples": ("<f8", 1), "improvement": ("<f8", 1),
    "cat_index": ("<i4", 1), "cat_left": ("|b1", 2),
}
assert set(_TREE_DTYPES) == set(TreeArrays.FIELDS)
_MAX_DIFFERENCES = 8
_RESTART = "delete the directory to start over, or use another --checkpoint-dir"


class CheckpointError(ClusterError):
    """A checkpoint cannot be used: damaged, foreign, of another job, in use, or missing."""


# --- the job's specification -----------------------------------------------------------

def job_spec(
    *,
    data_hashes: list[str],
    plan: dict[str, Any],
    params: dict[str, Any],
    indices: Iterable[int],
    mode: str,
    n_shards: int | None,
) -> dict[str, Any]:
    """What identifies a job: two runs with equal specs fit bit-identical trees.

    ``data_hashes``: the content hashes of the job's datasets (one, or one per shard);
    ``plan``: ``ForestPlan.to_json()``; ``params``: the estimator's ``get_params()`` (each
    value in the model files' encoding, :func:`aioforest.persistence.encode_value`, so a
    value that cannot be encoded is refused naming its parameter; ``n_jobs`` is left out, it
    cannot change a tree); ``indices``: the
    job's tree indices; ``mode`` and ``n_shards`` as given to ``Master.fit``. The running
    aioforest version is recorded too: another version may grow other trees.
    """
    hashes = list(data_hashes)
    if not hashes or not all(isinstance(h, str) and h for h in hashes):
        raise ValueError(f"data_hashes must be a non-empty list of strings, got {data_hashes!r}")
    trees = [int(i) for i in indices]
    if len(set(trees)) != len(trees) or any(i < 0 for i in trees):
        raise ValueError("indices must be distinct tree indices >= 0")
    if not trees:
        raise ValueError("a job needs at least one tree")
    return {
        "aioforest": __version__,
        "growth": GROWTH_VERSION,  # the rules that draw a seed's trees
        "data": hashes,
        # Top levels stay plain dicts so a mismatch can name the field that differs.
        "plan": {str(k): encode_value(v, f"plan field {k!r}") for k, v in plan.items()},
        "params": {
            str(k): encode_value(v, f"parameter {k!r}")
            for k, v in params.items() if k not in _NOT_IN_SPEC
        },
        "trees": sorted(trees),
        "mode": str(mode),
        "n_shards": None if n_shards is None else int(n_shards),
    }


def spec_digest(spec: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the spec as JSON with sorted keys."""
    try:
        return hashlib.sha256(_canonical(dict(spec))).hexdigest()
    except TypeError as exc:
        raise ValueError(
            f"the job spec is not plain JSON data ({exc}); build it with job_spec"
        ) from None


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


# --- human-readable differences between two specs ---------------------------------------

def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _hashes(hashes: Any) -> str:
    if not isinstance(hashes, list):
        return _short(hashes)
    shown = ", ".join(str(h)[:12] + "..." for h in hashes[:3])
    if len(hashes) == 1:
        return shown
    return f"{len(hashes)} shards {shown}{', ...' if len(hashes) > 3 else ''}"


def tree_ranges(indices: Any) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"`` (a few ranges at most)."""
    if not isinstance(indices, list | tuple) or not all(isinstance(i, int) for i in indices):
        return _short(indices)
    runs: list[str] = []
    items = sorted(indices)
    start = 0
    for k in range(1, len(items) + 1):
        if k == len(items) or items[k] != items[k - 1] + 1:
            lo, hi = items[start], items[k - 1]
            runs.append(str(lo) if lo == hi else f"{lo}-{hi}")
            start = k
    if len(runs) > 4:
        return ", ".join(runs[:4]) + f", ... ({len(items)} trees)"
    return ", ".join(runs) if runs else "none"


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between the checkpoint's spec ``old`` and this job's ``new``."""
    absent = object()

    def same(a: Any, b: Any) -> bool:
        return a is b or (a is not absent and b is not absent and _canonical(a) == _canonical(b))

    out: list[str] = []
    if not same(old.get("data", absent), new.get("data", absent)):
        out.append(f"data: checkpoint was made on data {_hashes(old.get('data'))}, this job's "
                   f"data is {_hashes(new.get('data'))} (the data changed)")
    if not same(old.get("trees", absent), new.get("trees", absent)):
        out.append(f"trees: checkpoint covers trees {tree_ranges(old.get('trees'))}, this job "
                   f"{tree_ranges(new.get('trees'))}")
    for key in ("mode", "n_shards"):
        a, b = old.get(key, absent), new.get(key, absent)
        if not same(a, b):
            out.append(f"{key}: checkpoint {_show(a, absent)}, this job {_show(b, absent)}")
    for section, label in (("params", "parameter"), ("plan", "plan")):
        a_sec, b_sec = old.get(section), new.get(section)
        if not (isinstance(a_sec, dict) and isinstance(b_sec, dict)):
            if not same(a_sec, b_sec):
                out.append(f"{section}: checkpoint {_short(a_sec)}, this job {_short(b_sec)}")
            continue
        for key in sorted(set(a_sec) | set(b_sec)):
            a, b = a_sec.get(key, absent), b_sec.get(key, absent)
            if not same(a, b):
                line = f"{label} {key}: checkpoint {_show(a, absent)}, this job {_show(b, absent)}"
                if section == "plan" and key == "seed" and _random_state(old) is None:
                    line += (" (random_state=None draws a new seed for every fit: "
                             "set random_state to make a job resumable)")
                out.append(line)
    if not same(old.get("aioforest", absent), new.get("aioforest", absent)):
        out.append(f"aioforest version: checkpoint made by {_show(old.get('aioforest'), absent)},"
                   f" this is {_show(new.get('aioforest'), absent)} (versions may grow "
                   "different trees)")
    known = {"data", "trees", "mode", "n_shards", "params", "plan", "aioforest"}
    for key in sorted((set(old) | set(new)) - known):
        a, b = old.get(key, absent), new.get(key, absent)
        if not same(a, b):
            out.append(f"{key}: checkpoint {_show(a, absent)}, this job {_show(b, absent)}")
    return out


def _random_state(spec: dict[str, Any]) -> Any:
    """The spec's random_state parameter ("" when absent, so it is not None)."""
    params = spec.get("params")
    return params.get("random_state", "") if isinstance(params, dict) else ""


def _show(value: Any, absent: object) -> str:
    return "(not set)" if value is absent else _short(value)


# --- files ------------------------------------------------------------------------------

def tree_file_name(index: int) -> str:
    """The file name of tree ``index`` (zero-padded, so a listing sorts by index)."""
    return f"tree-{index:06d}.aiof"


def _check_dtypes(arrays: Mapping[str, np.ndarray[Any, Any]]) -> None:
    """Every TreeArrays field is present with its dtype and number of dimensions."""
    for name, (dtype, ndim) in _TREE_DTYPES.items():
        if name not in arrays:
            raise ValueError(f"tree array {name!r} is missing")
        arr = np.asarray(arrays[name])
        if arr.dtype.str != dtype or arr.ndim != ndim:
            raise ValueError(f"tree array {name!r} is {arr.dtype.str} with {arr.ndim} "
                             f"dimensions, expected {dtype} with {ndim}")


@dataclass
class _Listing:
    """What a directory holds, by our naming rules."""

    has_job: bool
    trees: dict[int, Path]  # index in the file name -> file
    temps: list[Path]
    others: list[str]

    @property
    def is_checkpoint(self) -> bool:
        return self.has_job or bool(self.trees)


def _list(directory: Path) -> _Listing:
    listing = _Listing(False, {}, [], [])
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        name = entry.name
        if name == JOB_FILE:
            listing.has_job = True
        elif name in (LOCK_FILE, ROUND_FILE):
            pass
        elif (m := _TREE_NAME.fullmatch(name)) is not None:
            listing.trees[int(m.group(1))] = directory / name
        elif _TEMP_NAME.fullmatch(name):
            listing.temps.append(directory / name)
        else:
            listing.others.append(name)
    return listing


def _refuse_unrelated(directory: Path, listing: _Listing) -> None:
    if listing.is_checkpoint or not listing.others:
        return
    names = ", ".join(listing.others[:3]) + (", ..." if len(listing.others) > 3 else "")
    raise CheckpointError(
        f"{directory} is not empty and not a checkpoint (it holds {names}): refusing to write "
        "trees into it; pass an empty or new directory as --checkpoint-dir"
    )


class _Lock:
    """An exclusive, non-blocking ``flock`` on ``D/.lock`` (POSIX only)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_FILE
        self.file: IO[str] | None = open(self.path, "a+", encoding="ascii")  # noqa: SIM115
        if sys.platform == "win32":
            return
        try:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            owner = self.file.read().strip()
            self.release()
            who = f"process {owner}" if owner.isdigit() else "another process"
            raise CheckpointError(
                f"checkpoint {directory} is in use by {who} (another master running this "
                "job?); wait for it to finish or stop it, or use another --checkpoint-dir"
            ) from None
        except BaseException:
            self.release()
            raise
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"{os.getpid()}\n")
        self.file.flush()

    def release(self) -> None:
        if self.file is not None:
            self.file.close()  # closing the file drops the flock
            self.file = None


# --- the checkpoint ---------------------------------------------------------------------

class Checkpoint:
    """An open checkpoint directory of one job (see the module docstring for the layout).

    Create it with :meth:`open`; use it as a context manager or call :meth:`close` to
    release the directory's lock. :meth:`write_tree` may be called from several threads.
    """

    def __init__(
        self,
        directory: Path,
        spec: dict[str, Any],
        digest: str,
        trees: dict[int, TreeArrays],
        resumed: bool,
        lock: _Lock,
    ) -> None:
        self.directory = directory
        self.spec = spec
        self.digest = digest
        self.resumed = resumed
        self._indices = frozenset(spec["trees"])
        self._trees = trees
        self._lock = lock
        self._mutex = threading.Condition()
        self._writers = 0  # writes in progress: close() waits for them
        self._closed = False

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        spec: dict[str, Any],
        *,
        resume: Literal["auto", "new", "require"] = "auto",
    ) -> Checkpoint:
        """Open (or create) in ``directory`` the checkpoint of the job ``spec`` (:func:`job_spec`).

        A missing or empty directory gets a new checkpoint (``job.aiof`` written durably);
        with ``resume="require"`` that is an error instead ("nothing to resume"). A directory
        holding a checkpoint is resumed if its spec equals ``spec`` and ``resume`` is not
        ``"new"``; its trees are loaded and verified. Blocking I/O: call it in a thread
        from async code. Raises :class:`CheckpointError` saying what is wrong and what to do.
        """
        if resume not in ("auto", "new", "require"):
            raise ValueError(f"resume must be 'auto', 'new' or 'require', got {resume!r}")
        if not isinstance(spec, dict) or not isinstance(spec.get("trees"), list):
            raise ValueError("spec must be a job spec dict (build it with job_spec)")
        digest = spec_digest(spec)
        path = Path(directory)
        if path.exists() and not path.is_dir():
            raise CheckpointError(f"checkpoint directory {path} exists and is not a directory")
        if not path.exists():
            if resume == "require":
                raise CheckpointError(
                    f"nothing to resume in {path}: the directory does not exist (drop --resume "
                    "to start a new job, or pass the directory of the killed job)"
                )
            path.mkdir(parents=True, exist_ok=True)
            fsync_dir(path.parent)
        # Look before locking, so that a refused directory does not even get a lock file.
        listing = _list(path)
        _refuse_unrelated(path, listing)
        if resume == "require" and not listing.is_checkpoint:
            raise _nothing_to_resume(path)
        lock = _Lock(path)
        try:
            return cls._open_locked(path, spec, digest, resume, lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _open_locked(
        cls, path: Path, spec: dict[str, Any], digest: str, resume: str, lock: _Lock
    ) -> Checkpoint:
        listing = _list(path)  # again: it may have changed before we held the lock
        _refuse_unrelated(path, listing)
        for temp in listing.temps:  # a write cut short by a kill (no writer is alive: we lock)
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        if listing.trees and not listing.has_job:
            raise CheckpointError(
                f"checkpoint {path} is damaged: it holds tree files but no {JOB_FILE} (which is "
                f"written before any tree); {_RESTART}"
            )
        if not listing.has_job:
            if resume == "require":
                raise _nothing_to_resume(path)
            write_atomic(path / JOB_FILE, dumps(JOB_KIND, {"spec": spec, "digest": digest}, {}))
            return cls(path, spec, digest, {}, False, lock)
        if resume == "new":
            raise CheckpointError(
                f"{path} already holds a checkpoint: pass --resume (resume='auto' or "
                "'require') to continue that job, or choose an empty --checkpoint-dir"
            )
        old, stored = _read_job(path / JOB_FILE)
        if stored != digest:
            diffs = _differences(old, spec) or [f"job digest {stored[:12]}... vs {digest[:12]}..."]
            more = len(diffs) - _MAX_DIFFERENCES
            shown = diffs[:_MAX_DIFFERENCES] + ([f"... and {more} more"] if more > 0 else [])
            raise CheckpointError(
                f"checkpoint {path} was made for another job:\n  - " + "\n  - ".join(shown)
                + f"\nRun the same job to resume it, or {_RESTART}"
            )
        indices = frozenset(spec["trees"])
        trees = {i: _read_tree(f, i, digest, indices) for i, f in sorted(listing.trees.items())}
        return cls(path, spec, digest, trees, True, lock)

    # --- state ---------------------------------------------------------------------------

    @property
    def trees(self) -> dict[int, TreeArrays]:
        """The trees saved so far, by index (a copy of the mapping)."""
        with self._mutex:
            return dict(self._trees)

    @property
    def missing(self) -> list[int]:
        """The job's tree indices not saved yet, sorted."""
        with self._mutex:
            return sorted(self._indices - self._trees.keys())

    # --- a batch in progress (data mode) ----------------------------------------------------

    def write_round(self, meta: dict[str, Any], arrays: dict[str, np.ndarray[Any, Any]]
                    ) -> None:
        """Save where the current batch's growth stands (replacing the last one), atomically."""
        with self._mutex:
            if self._closed:
                raise RuntimeError(f"the checkpoint {self.directory} is closed")
        write_atomic(self.directory / ROUND_FILE,
                     dumps(ROUND_KIND, {**meta, "job": self.digest}, arrays))

    def read_round(self) -> tuple[dict[str, Any], dict[str, np.ndarray[Any, Any]]] | None:
        """What :meth:`write_round` saved last, or None."""
        path = self.directory / ROUND_FILE
        if not path.exists():
            return None
        advice = f"delete {path} to grow its batch from the start"
        meta, arrays = _load(path, ROUND_KIND, advice)
        if meta.get("job") != self.digest:
            raise CheckpointError(f"checkpoint file {path} belongs to another job; {advice}")
        return meta, arrays

    def clear_round(self) -> None:
        """The batch is done (its trees are saved): forget its progress."""
        with contextlib.suppress(FileNotFoundError):
            (self.directory / ROUND_FILE).unlink()

    # --- writing -------------------------------------------------------------------------

    def write_tree(self, index: int, tree: TreeArrays) -> None:
        """Save tree ``index`` durably before returning (writing it again overwrites it)."""
        self.write_trees([(index, tree)])

    def write_trees(
        self, items: Mapping[int, TreeArrays] | Iterable[tuple[int, TreeArrays]]
    ) -> None:
        """Save several trees, each file atomically, with one directory fsync at the end.

        A kill part-way leaves some of them saved and the others absent, never half-written.
        Raises ValueError for an index outside the job or a malformed tree (nothing of the
        batch is written then).
        """
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        payloads = []
        for index, tree in pairs:
            if isinstance(index, bool) or not isinstance(index, int | np.integer):
                raise ValueError(f"tree index must be an integer, got {index!r}")
            if int(index) not in self._indices:
                raise ValueError(
                    f"tree {index} is not one of this job's trees "
                    f"({tree_ranges(self.spec['trees'])})"
                )
            arrays = tree.arrays()
            # A tree we could not read back must not be saved.
            _check_dtypes(arrays)
            tree.validate()
            meta = {"job": self.digest, "index": int(index)}
            payloads.append((int(index), tree, dumps(TREE_KIND, meta, arrays)))
        with self._mutex:
            if self._closed:
                raise RuntimeError(f"the checkpoint {self.directory} is closed")
            self._writers += 1
        try:
            # Concurrent writers are fine: each file has its own temporary name.
            for index, _, payload in payloads:
                write_atomic(self.directory / tree_file_name(index), payload, sync_dir=False)
            if payloads:
                fsync_dir(self.directory)
            with self._mutex:
                for index, tree, _ in payloads:
                    self._trees[index] = tree
        finally:
            with self._mutex:
                self._writers -= 1
                self._mutex.notify_all()

    # --- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Wait for writes in progress, then release the directory's lock (the files stay).

        Idempotent. Writing after ``close`` raises RuntimeError.
        """
        with self._mutex:
            self._closed = True
            self._mutex.wait_for(lambda: self._writers == 0)
            self._lock.release()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        done = len(self._trees)
        return f"<Checkpoint {self.directory} {done}/{len(self._indices)} trees>"


def _nothing_to_resume(path: Path) -> CheckpointError:
    return CheckpointError(
        f"nothing to resume in {path}: it holds no checkpoint (drop --resume to start a new "
        "job, or pass the directory of the killed job)"
    )


def _load(path: Path, kind: str, advice: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The metadata and arrays of one of our files, or CheckpointError naming the file."""
    try:
        data = path.read_bytes()
        _, meta, arrays = loads(data, source=str(path), kind=kind, oldest=SAME_TREES_SINCE)
    except FormatVersionError as exc:
        raise CheckpointError(
            f"checkpoint file {path} has format version {exc.version}, this aioforest "
            f"writes version {FORMAT_VERSION}: its trees were grown by other rules (another "
            "bootstrap), so the job cannot be continued; start it again without --resume, "
            "in a new or emptied checkpoint directory"
        ) from None
    except FormatError as exc:
        raise CheckpointError(f"damaged checkpoint file {exc}; {advice}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint file {path}: {exc}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"damaged checkpoint file {path}: malformed metadata; {advice}")
    return meta, arrays


def _read_job(path: Path) -> tuple[dict[str, Any], str]:
    """The checkpoint's job spec and its digest, verified against each other."""
    meta, _ = _load(path, JOB_KIND, _RESTART)
    spec, stored = meta.get("spec"), meta.get("digest")
    if not isinstance(spec, dict) or not isinstance(stored, str):
        raise CheckpointError(f"damaged checkpoint file {path}: malformed job metadata; {_RESTART}")
    if spec_digest(spec) != stored:
        raise CheckpointError(
            f"damaged checkpoint file {path}: its job spec does not match its digest; {_RESTART}"
        )
    return spec, stored


def _read_tree(path: Path, name_index: int, digest: str, indices: frozenset[int]) -> TreeArrays:
    advice = f"delete that file to refit its tree, or {_RESTART}"
    meta, arrays = _load(path, TREE_KIND, advice)
    job, index = meta.get("job"), meta.get("index")
    if not isinstance(job, str) or isinstance(index, bool) or not isinstance(index, int):
        raise CheckpointError(f"damaged checkpoint file {path}: malformed tree metadata; {advice}")
    if job != digest:
        raise CheckpointError(
            f"checkpoint file {path} belongs to another job (job {job[:12]}..., this checkpoint "
            f"is job {digest[:12]}...): it was copied here by mistake; {advice}"
        )
    if tree_file_name(index) != path.name or index != name_index:
        raise CheckpointError(
            f"checkpoint file {path} holds tree {index} but its name says tree {name_index} "
            f"(renamed?); {advice}"
        )
    if index not in indices:
        raise CheckpointError(
            f"checkpoint file {path} holds tree {index}, which is not one of this job's trees; "
            f"{advice}"
        )
    try:
        _check_dtypes(arrays)
        # Copies: the trees outlive the file's bytes and must be ordinary, writable arrays.
        return TreeArrays.from_arrays({name: np.array(arrays[name]) for name in _TREE_DTYPES})
    except ValueError as exc:
        raise CheckpointError(f"damaged checkpoint file {path}: {exc}; {advice}") from None


def checkpoint_spec(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The job spec of the checkpoint in ``directory``, or None if it holds none.

    Lets a resuming caller recover what the killed job used (say its ``random_state``)
    before building its own spec. Raises :class:`CheckpointError` if the job file is damaged.
    """
    path = Path(directory)
    if not path.is_dir() or not _list(path).is_checkpoint:
        return None
    spec, _ = _read_job(path / JOB_FILE)
    return spec
