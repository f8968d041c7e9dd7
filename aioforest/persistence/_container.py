"""A small, versioned container of named arrays plus JSON metadata. No pickle.

Layout (all integers big-endian)::

    magic      8 bytes   b"AIOFMDL\\0"
    version    u32       FORMAT_VERSION
    meta_len   u64       length of the JSON metadata
    meta       meta_len  orjson: {"kind": ..., "meta": {...}, "arrays": [{name, dtype, shape,
                         offset, nbytes}, ...]}
    data       ...       the arrays' bytes, C order, each at its offset
    digest     32 bytes  SHA-256 of everything above

Reading checks the magic, the version, the digest and every array's dtype (allow-list),
shape and extent before touching the data, so a damaged or foreign file fails with a message
that says what is wrong, never with a crash or a silently wrong model.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson

__all__ = [
    "FORMAT_VERSION", "FormatError", "FormatVersionError", "dumps", "loads", "read",
    "write_atomic",
]

MAGIC = b"AIOFMDL\x00"
#: 2: trees from aioforest 0.3 on (per-row Poisson bootstrap, sampled binning). The
#: container layout is the same as version 1's, whose trees were grown from a global
#: bootstrap draw: old model files still load and predict; checkpoints refuse them.
FORMAT_VERSION = 2
_HEAD = struct.Struct(">8sIQ")
_DIGEST = 32
ALLOWED_DTYPES = frozenset(
    ["|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f4", "<f8"]
)


class FormatError(ValueError):
    """The bytes are not a valid aioforest file of a version this code reads."""


class FormatVersionError(FormatError):
    """A well-formed file of a format version the caller does not read (``version``)."""

    def __init__(self, message: str, version: int) -> None:
        super().__init__(message)
        self.version = version


def dumps(kind: str, meta: dict[str, Any], arrays: dict[str, np.ndarray[Any, Any]]) -> bytes:
    directory = []
    blobs = []
    offset = 0
    for name, arr in arrays.items():
        a = np.ascontiguousarray(arr)
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        a = a.astype(dt, copy=False)
        if dt.str not in ALLOWED_DTYPES:
            raise TypeError(f"array {name!r} has dtype {a.dtype}, which the format does not store")
        raw = a.tobytes()
        directory.append(
            {"name": name, "dtype": dt.str, "shape": list(a.shape), "offset": offset,
             "nbytes": len(raw)}
        )
        blobs.append(raw)
        offset += len(raw)
    header = orjson.dumps({"kind": kind, "meta": meta, "arrays": directory},
                          option=orjson.OPT_SERIALIZE_NUMPY)
    body = _HEAD.pack(MAGIC, FORMAT_VERSION, len(header)) + header + b"".join(blobs)
    return body + hashlib.sha256(body).digest()


def loads(
    data: bytes | memoryview, *, source: str = "<bytes>", kind: str | None = None,
    oldest: int = FORMAT_VERSION,
) -> tuple[str, dict[str, Any], dict[str, np.ndarray[Any, Any]]]:
    """Parse a container; returns (kind, meta, arrays). Arrays are read-only views.

    Versions from ``oldest`` to ``FORMAT_VERSION`` are read; others raise
    :class:`FormatVersionError`.
    """
    buf = memoryview(data)
    if len(buf) < _HEAD.size + _DIGEST:
        raise FormatError(f"{source}: too short to be an aioforest file ({len(buf)} bytes)")
    magic, version, meta_len = _HEAD.unpack_from(buf, 0)
    if magic != MAGIC:
        raise FormatError(f"{source}: not an aioforest file (bad magic {bytes(magic)!r})")
    if not oldest <= version <= FORMAT_VERSION:
        reads = (f"version {FORMAT_VERSION}" if oldest == FORMAT_VERSION
                 else f"versions {oldest} to {FORMAT_VERSION}")
        raise FormatVersionError(
            f"{source}: file format version {version}, but this aioforest reads {reads}; "
            "re-save it with a matching aioforest", version,
        )
    body, digest = buf[:-_DIGEST], bytes(buf[-_DIGEST:])
    if hashlib.sha256(body).digest() != digest:
        raise FormatError(f"{source}: checksum mismatch: the file is damaged or truncated")
    start = _HEAD.size
    if start + meta_len > len(body):
        raise FormatError(f"{source}: metadata length {meta_len} runs past the end of the file")
    try:
        header = orjson.loads(bytes(body[start : start + meta_len]))
        file_kind = header["kind"]
        meta = header["meta"]
        directory = header["arrays"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise FormatError(f"{source}: malformed metadata: {exc}") from None
    if kind is not None and file_kind != kind:
        raise FormatError(f"{source}: holds a {file_kind!r}, expected a {kind!r}")
    data_start = start + meta_len
    data_len = len(body) - data_start
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for entry in directory:
        try:
            name, dtype, shape = entry["name"], entry["dtype"], tuple(entry["shape"])
            offset, nbytes = int(entry["offset"]), int(entry["nbytes"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"{source}: malformed array entry {entry!r}: {exc}") from None
        if dtype not in ALLOWED_DTYPES:
            raise FormatError(f"{source}: array {name!r} has disallowed dtype {dtype!r}")
        if any(not isinstance(s, int) or s < 0 for s in shape):
            raise FormatError(f"{source}: array {name!r} has a bad shape {list(shape)}")
        expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if nbytes != expected or offset < 0 or offset + nbytes > data_len:
            raise FormatError(f"{source}: array {name!r} does not fit its declared extent")
        arr = np.frombuffer(body, dtype=dtype, count=expected // np.dtype(dtype).itemsize,
                            offset=data_start + offset).reshape(shape)
        arrays[name] = arr
    return file_kind, meta, arrays


def write_atomic(path: str | os.PathLike[str], payload: bytes, *, sync_dir: bool = True) -> None:
    """Write via a temporary file, fsync, rename: readers see the old or the new file only.

    With ``sync_dir`` the directory is fsynced too, so the rename itself is durable; a
    caller writing many files may pass False and call :func:`fsync_dir` once at the end.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(target.parent)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make renames and new entries in ``directory`` durable."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # a platform that cannot open directories (Windows): nothing to sync
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


Arrays = dict[str, np.ndarray[Any, Any]]


def file_version(path: str | os.PathLike[str]) -> int:
    """The format version in an aioforest file's header (``FormatError`` if it has none)."""
    with open(path, "rb") as f:
        head = f.read(_HEAD.size)
    if len(head) < _HEAD.size or head[:8] != MAGIC:
        raise FormatError(f"{path}: not an aioforest file")
    return int(_HEAD.unpack(head)[1])


def read(
    path: str | os.PathLike[str], *, kind: str | None = None, oldest: int = FORMAT_VERSION
) -> tuple[str, dict[str, Any], Arrays]:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"no such model file: {p}") from None
    return loads(data, source=str(p), kind=kind, oldest=oldest)
