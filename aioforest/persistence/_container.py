"""A small, versioned container of named arrays plus JSON metadata. No pickle.

Layout (all integers big-endian)::

    magic      8 bytes   b"AIOFMDL\\0"
    version    u32       FORMAT_VERSION
    meta_len   u64       length of the JSON metadata (padded with spaces, so that the data
                         starts on a 64-byte boundary)
    meta       meta_len  orjson: {"kind": ..., "meta": {...}, "arrays": [{name, dtype, shape,
                         offset, nbytes[, codec, stored]}, ...]}
    data       ...       the arrays' bytes, C order, each at its offset (a multiple of 64)
    digest     32 bytes  SHA-256 of everything above

An array with a ``codec`` holds ``stored`` bytes that decode to its ``nbytes``: ``zlib``,
or ``shuffle-zlib`` (the bytes of each item position grouped first, which lets the
exponents of floats compress). Arrays that do not compress stay raw, so :func:`read`
maps them from the file instead of copying them.

Reading checks the magic, the version, the digest and every array's dtype (allow-list),
shape and extent before touching the data, and decodes no more bytes than an array
declares, so a damaged or foreign file fails with a message that says what is wrong,
never with a crash, a silently wrong model or a memory blow-up.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import hashlib
import mmap
import os
import struct
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

__all__ = [
    "FORMAT_VERSION", "SAME_TREES_SINCE", "FormatError", "FormatVersionError", "dumps",
    "loads", "read", "write_atomic",
]

MAGIC = b"AIOFMDL\x00"
#: 2: trees from aioforest 0.3 on (per-row Poisson bootstrap, sampled binning). The
#: container layout is the same as version 1's, whose trees were grown from a global
#: bootstrap draw: old model files still load and predict; checkpoints refuse them.
#: 3: compressed arrays, 64-byte aligned data, and model files' compact tree encoding.
FORMAT_VERSION = 3
#: Files of version 2 hold the same trees in the older layout: they still load.
SAME_TREES_SINCE = 2
_ALIGN = 64
#: A codec is kept only where it saves at least this share of an array's bytes.
_WORTH_COMPRESSING = 0.9
#: zlib cannot expand data by more than about 1032:1; a file claiming more is damaged.
_MAX_RATIO = 1100
#: Compressed bytes from which a file's arrays are inflated in several threads.
_PARALLEL_INFLATE = 4 << 20
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


def dumps(
    kind: str, meta: dict[str, Any], arrays: dict[str, np.ndarray[Any, Any]], *,
    compress: bool = False,
) -> bytes:
    """The container's bytes; with ``compress``, each array that shrinks is compressed."""
    directory = []
    blobs: list[bytes] = []
    offset = 0
    for name, arr in arrays.items():
        a = np.ascontiguousarray(arr)
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        a = a.astype(dt, copy=False)
        if dt.str not in ALLOWED_DTYPES:
            raise TypeError(f"array {name!r} has dtype {a.dtype}, which the format does not store")
        raw = a.tobytes()
        entry: dict[str, Any] = {"name": name, "dtype": dt.str, "shape": list(a.shape),
                                 "offset": offset, "nbytes": len(raw)}
        if compress and raw:
            codec = "shuffle-zlib" if dt.itemsize > 1 else "zlib"
            packed = zlib.compress(_shuffle(raw, dt.itemsize) if dt.itemsize > 1 else raw, 6)
            if len(packed) <= _WORTH_COMPRESSING * len(raw):
                raw = packed
                entry.update(codec=codec, stored=len(packed))
        directory.append(entry)
        pad = -len(raw) % _ALIGN
        blobs.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    header = orjson.dumps({"kind": kind, "meta": meta, "arrays": directory},
                          option=orjson.OPT_SERIALIZE_NUMPY)
    header += b" " * (-(_HEAD.size + len(header)) % _ALIGN)  # data on a 64-byte boundary
    body = _HEAD.pack(MAGIC, FORMAT_VERSION, len(header)) + header + b"".join(blobs)
    return body + hashlib.sha256(body).digest()


def _shuffle(raw: bytes, itemsize: int) -> bytes:
    """Byte ``i`` of every item, for each ``i`` in turn."""
    return np.frombuffer(raw, np.uint8).reshape(-1, itemsize).T.tobytes()


def _unshuffle(raw: bytes, itemsize: int) -> bytes:
    return np.frombuffer(raw, np.uint8).reshape(itemsize, -1).T.tobytes()


def loads(
    data: bytes | memoryview | mmap.mmap, *, source: str = "<bytes>", kind: str | None = None,
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
    coded: list[tuple[str, Callable[[], bytes], str, int, tuple[int, ...]]] = []
    coded_bytes = 0
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
        stored = int(entry.get("stored", nbytes))
        if nbytes != expected or offset < 0 or stored < 0 or offset + stored > data_len:
            raise FormatError(f"{source}: array {name!r} does not fit its declared extent")
        start_at = data_start + offset
        count = expected // np.dtype(dtype).itemsize
        if "codec" in entry:
            coded_bytes += stored
            coded.append((name, functools.partial(
                _decode, entry["codec"], body[start_at : start_at + stored], expected,
                np.dtype(dtype).itemsize, f"{source}: array {name!r}"), dtype, count, shape))
        else:
            arrays[name] = np.frombuffer(body, dtype=dtype, count=count,
                                         offset=start_at).reshape(shape)
    # zlib lets go of the GIL: big files inflate their arrays side by side.
    workers = min(len(coded), os.cpu_count() or 1, 4)
    if workers > 1 and coded_bytes > _PARALLEL_INFLATE:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            raws = list(pool.map(lambda c: c[1](), coded))
    else:
        raws = [c[1]() for c in coded]
    for (name, _, dtype, count, shape), raw in zip(coded, raws, strict=True):
        arrays[name] = np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)
    return file_kind, meta, {e["name"]: arrays[e["name"]] for e in directory}  # file order


def _decode(codec: Any, stored: memoryview, nbytes: int, itemsize: int, where: str) -> bytes:
    """An array's raw bytes, decoding never more than the ``nbytes`` it declares."""
    if codec not in ("zlib", "shuffle-zlib"):
        raise FormatError(f"{where} uses an unknown codec {codec!r}")
    if nbytes > _MAX_RATIO * len(stored) + _ALIGN:
        raise FormatError(f"{where} claims {nbytes} bytes from {len(stored)}: not zlib data")
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(stored, nbytes)
    except zlib.error as exc:
        raise FormatError(f"{where} does not decompress: {exc}") from None
    if len(raw) != nbytes or not inflate.eof or inflate.unconsumed_tail:
        raise FormatError(f"{where} decompresses to other than its {nbytes} bytes")
    return _unshuffle(raw, itemsize) if codec == "shuffle-zlib" else raw


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
    """Parse the file at ``path``; raw arrays are read-only views of a map of the file.

    Mapping instead of reading means the arrays stored raw cost no copy: their pages are
    the page cache's. ``write_atomic`` replaces files by renaming, so a mapped file is
    never rewritten under its readers.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                return loads(b"", source=str(p), kind=kind, oldest=oldest)
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such model file: {p}") from None
    return loads(data, source=str(p), kind=kind, oldest=oldest)
