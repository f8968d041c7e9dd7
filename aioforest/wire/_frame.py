"""Frame layout, array segments and the low-level frame codec (sans-IO).

Wire layout of one frame (all integers in network byte order)::

    offset size field
    0      4    magic              b"AIOF"
    4      1    version            u8, currently 1
    5      1    flags              u8; bit 0 = body is gzip-compressed, bits 1-7 must be 0
    6      2    reserved           u16, must be 0
    8      4    header_length      u32, length of the JSON header
    12     4    body_length        u32, length of the body *on the wire* (compressed if bit 0)
    16     8    raw_body_length    u64, length of the body after decompression
    24     ...  header             orjson object, never compressed
    24+h   ...  body               segments, concatenated; gzip container if flag bit 0

``body_length`` is a u32 because one frame never exceeds ``max_frame_size``
(16 MiB by default): large messages travel as a series of chunk frames.
``raw_body_length`` is declared up front so the decoder can refuse a frame whose
inflated size exceeds ``max_decompressed_size`` before inflating anything, and
can stop inflating the moment the output overruns the declared size.

The header is a JSON object with at least ``"type"`` (a non-empty string).  A
message header may carry ``"segments"``: a list of ``{"dtype", "shape", "nbytes"}``
objects describing C-ordered little-endian numpy arrays laid end to end in the
body; every other key is an application field.  There is no pickle anywhere.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import orjson

from ._errors import (
    BadCompression,
    BadMagic,
    BadSegment,
    DecompressionBomb,
    FrameTooLarge,
    MalformedFrame,
    MalformedHeader,
    UnsupportedVersion,
)

__all__ = [
    "ALLOWED_DTYPES",
    "DEFAULT_CONFIG",
    "MAGIC",
    "PREFIX_SIZE",
    "WIRE_VERSION",
    "Message",
    "WireConfig",
    "json_type",
]

MAGIC: Final = b"AIOF"
WIRE_VERSION: Final = 1
FLAG_COMPRESSED: Final = 0x01
_KNOWN_FLAGS: Final = FLAG_COMPRESSED

_PREFIX: Final = struct.Struct("!4sBBHIIQ")
PREFIX_SIZE: Final = _PREFIX.size  # 24
_U32_MAX: Final = 2**32 - 1

#: Header keys owned by the protocol; they cannot be used as application fields.
RESERVED_FIELDS: Final = frozenset({"type", "segments"})
#: Message type used for chunk frames; applications cannot send messages of this type.
CHUNK_TYPE: Final = "chunk"

#: Wire dtype strings accepted in segment descriptors (numpy ``dtype.str``, little-endian).
ALLOWED_DTYPES: Final = frozenset(
    {"|b1", "|u1", "<u2", "<u4", "<u8", "|i1", "<i2", "<i4", "<i8", "<f4", "<f8"}
)
_DTYPES: Final = {s: np.dtype(s) for s in ALLOWED_DTYPES}
_MAX_NDIM: Final = 32
# numpy refuses shapes whose element count (zero dims counted as 1) times the item
# size overflows a signed 64-bit integer, even for empty arrays; stay well below.
_MAX_SHAPE_BYTES: Final = 2**62

KiB: Final = 1024
MiB: Final = 1024 * KiB
GiB: Final = 1024 * MiB


@dataclass(frozen=True, slots=True)
class WireConfig:
    """Limits and encoding settings for one connection (both directions).

    Decoder limits (a peer violating them gets a :class:`ProtocolError`):

    - ``max_header_size``: JSON header bytes of one frame.
    - ``max_frame_size``: header plus on-the-wire body of one frame.
    - ``max_decompressed_size``: body bytes of one frame after decompression.
    - ``max_message_size``: total array bytes of one reassembled chunked message.
    - ``max_streams``: chunked messages being reassembled at the same time (0 forbids chunking).

    Encoder settings:

    - ``chunk_size``: messages whose arrays total more bytes are sent as chunk frames of
      at most this many body bytes, so small frames can be interleaved between them.
      It must not exceed the *peer's* ``max_decompressed_size``.
    - ``compression``: try gzip on bodies of at least ``compression_threshold`` bytes and
      keep the result only if it is below ``compression_min_ratio`` of the original.
    - ``compression_level``: zlib level.  The default 1 is the fastest level; on array
      data it gets most of the size reduction of level 6 at several times the speed, and
      per-chunk compression runs on the event loop, so speed matters more than ratio.
    - ``max_active_streams``: chunked messages the sender interleaves at once (must not
      exceed the peer's ``max_streams``).
    """

    max_header_size: int = 64 * KiB
    max_frame_size: int = 16 * MiB
    max_decompressed_size: int = 16 * MiB
    max_message_size: int = 1 * GiB
    max_streams: int = 16
    chunk_size: int = 1 * MiB
    compression: bool = True
    compression_level: int = 1
    compression_threshold: int = 2 * KiB
    compression_min_ratio: float = 0.9
    max_active_streams: int = 4

    def __post_init__(self) -> None:
        for name in (
            "max_header_size",
            "max_frame_size",
            "max_decompressed_size",
            "max_message_size",
            "chunk_size",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"WireConfig.{name} must be a positive int, got {value!r}")
        if self.max_streams < 0:
            raise ValueError(f"WireConfig.max_streams must be >= 0, got {self.max_streams!r}")
        if self.max_active_streams < 1:
            raise ValueError(
                f"WireConfig.max_active_streams must be >= 1, got {self.max_active_streams!r}"
            )
        if self.max_header_size > _U32_MAX or self.max_frame_size > _U32_MAX:
            raise ValueError("WireConfig.max_header_size and max_frame_size must fit in a u32")
        if self.chunk_size > self.max_decompressed_size:
            raise ValueError(
                f"WireConfig.chunk_size ({self.chunk_size}) must not exceed "
                f"max_decompressed_size ({self.max_decompressed_size})"
            )
        if self.chunk_size + self.max_header_size > self.max_frame_size:
            raise ValueError(
                f"WireConfig.chunk_size + max_header_size ({self.chunk_size} + "
                f"{self.max_header_size}) must not exceed max_frame_size ({self.max_frame_size})"
            )
        if not -1 <= self.compression_level <= 9:
            raise ValueError(
                f"WireConfig.compression_level must be in -1..9, got {self.compression_level!r}"
            )
        if not 0.0 < self.compression_min_ratio <= 1.0:
            raise ValueError(
                "WireConfig.compression_min_ratio must be in (0, 1], "
                f"got {self.compression_min_ratio!r}"
            )


DEFAULT_CONFIG: Final = WireConfig()


# --------------------------------------------------------------------------- messages


def _as_wire_array(index: int, value: object) -> np.ndarray[Any, Any]:
    """Normalise one payload item to a C-contiguous little-endian array of an allowed dtype."""
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return np.frombuffer(value, dtype=np.uint8)
        except (ValueError, TypeError) as exc:
            raise TypeError(
                f"arrays[{index}]: bytes-like payload must be contiguous: {exc}"
            ) from exc
    if isinstance(value, np.generic):
        value = np.asarray(value)  # a numpy scalar travels as a 0-d array
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"arrays[{index}] has type {type(value).__name__}; expected numpy.ndarray or bytes"
        )
    dtype = value.dtype
    if dtype.byteorder == ">" or (dtype.byteorder == "=" and not _LITTLE_ENDIAN_HOST):
        dtype = dtype.newbyteorder("<")
    if dtype.str not in ALLOWED_DTYPES:
        raise TypeError(
            f"arrays[{index}] has dtype {value.dtype} which cannot be sent; allowed dtypes: "
            f"{', '.join(sorted(ALLOWED_DTYPES))}"
        )
    if dtype != value.dtype:
        value = value.astype(dtype)
    # Not np.ascontiguousarray: it would turn 0-d arrays into 1-d ones.
    return value if value.flags.c_contiguous else value.copy(order="C")


_LITTLE_ENDIAN_HOST: Final = np.dtype("=u2").str == "<u2"


class Message:
    """One application message: a type, JSON-serialisable fields, and numpy arrays.

    ``arrays`` accepts numpy arrays of an allowed dtype (bool, int8-64, uint8-64,
    float32/64), numpy scalars (sent as 0-d arrays) and bytes-like objects (sent as
    ``uint8`` arrays).  Big-endian arrays
    are converted to little-endian and non-contiguous arrays to C order, so the
    receiver gets equal values in a C-contiguous little-endian array.

    Arrays of a *received* message are views into one buffer owned by that message;
    they are writable and keep the whole received body alive while any of them is.
    """

    __slots__ = ("arrays", "fields", "type")

    type: str
    fields: dict[str, Any]
    arrays: tuple[np.ndarray[Any, Any], ...]

    def __init__(
        self,
        type: str,
        fields: Mapping[str, Any] | None = None,
        arrays: Iterable[
            np.ndarray[Any, Any] | np.generic[Any] | bytes | bytearray | memoryview
        ] = (),
    ) -> None:
        if not isinstance(type, str) or not type:
            raise ValueError(f"Message type must be a non-empty str, got {type!r}")
        if type == CHUNK_TYPE:
            raise ValueError(f"Message type {CHUNK_TYPE!r} is reserved for chunk frames")
        field_dict = dict(fields) if fields is not None else {}
        for key in field_dict:
            if not isinstance(key, str):
                raise TypeError(f"Message field names must be str, got {key!r}")
            if key in RESERVED_FIELDS:
                raise ValueError(f"Message field name {key!r} is reserved by the wire protocol")
        self.type = type
        self.fields = field_dict
        self.arrays = tuple(_as_wire_array(i, a) for i, a in enumerate(arrays))

    @classmethod
    def _from_wire(
        cls, type: str, fields: dict[str, Any], arrays: tuple[np.ndarray[Any, Any], ...]
    ) -> Message:
        """Build a message from already-validated decoded parts (no copies, no checks)."""
        msg = cls.__new__(cls)
        msg.type = type
        msg.fields = fields
        msg.arrays = arrays
        return msg

    @property
    def nbytes(self) -> int:
        """Total bytes of all arrays (the raw body size)."""
        return sum(int(a.nbytes) for a in self.arrays)

    def __repr__(self) -> str:
        arrays = ", ".join(f"{a.dtype}{list(a.shape)}" for a in self.arrays)
        return f"Message(type={self.type!r}, fields={self.fields!r}, arrays=[{arrays}])"


# --------------------------------------------------------------------------- segments


@dataclass(frozen=True, slots=True)
class Segment:
    """A validated segment descriptor: where one array lives in a body."""

    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    nbytes: int


def segment_descriptors(arrays: Sequence[np.ndarray[Any, Any]]) -> list[dict[str, Any]]:
    """JSON descriptors for already-normalised arrays (see :class:`Message`)."""
    return [{"dtype": a.dtype.str, "shape": list(a.shape), "nbytes": int(a.nbytes)} for a in arrays]


def array_buffers(arrays: Sequence[np.ndarray[Any, Any]]) -> list[memoryview]:
    """Zero-copy byte views of normalised arrays, in body order."""
    return [a.reshape(-1).view(np.uint8).data for a in arrays]


def parse_segments(raw: object, *, frame: int, offset: int, where: str = "header") -> list[Segment]:
    """Validate a ``segments`` list from a header (no allocation, no trust in sizes)."""

    def bad(i: int, what: str) -> BadSegment:
        return BadSegment(f"{where} segments[{i}]: {what}", frame=frame, offset=offset)

    if not isinstance(raw, list):
        raise BadSegment(
            f"{where} 'segments' must be a list, got {json_type(raw)}", frame=frame, offset=offset
        )
    segments: list[Segment] = []
    for i, desc in enumerate(raw):
        if not isinstance(desc, dict):
            raise bad(i, f"must be an object, got {json_type(desc)}")
        keys = set(desc)
        if keys != {"dtype", "shape", "nbytes"}:
            missing = sorted({"dtype", "shape", "nbytes"} - keys)
            extra = sorted(keys - {"dtype", "shape", "nbytes"})
            raise bad(
                i, f"keys must be dtype, shape, nbytes (missing {missing}, unexpected {extra})"
            )
        dtype_str = desc["dtype"]
        if not isinstance(dtype_str, str) or dtype_str not in _DTYPES:
            allowed = ", ".join(sorted(ALLOWED_DTYPES))
            raise bad(i, f"dtype {dtype_str!r:.40} is not allowed (allowed: {allowed})")
        dtype = _DTYPES[dtype_str]
        shape = desc["shape"]
        if not isinstance(shape, list) or len(shape) > _MAX_NDIM:
            raise bad(i, f"shape must be a list of at most {_MAX_NDIM} ints, got {shape!r:.80}")
        for d in shape:
            if isinstance(d, bool) or not isinstance(d, int) or d < 0:
                raise bad(i, f"shape {shape!r:.80} must contain non-negative ints only")
        nbytes = desc["nbytes"]
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise bad(i, f"nbytes must be a non-negative int, got {nbytes!r:.40}")
        if math.prod(max(d, 1) for d in shape) * dtype.itemsize > _MAX_SHAPE_BYTES:
            raise bad(i, f"shape {shape!r:.80} is too large for any array")
        expected = math.prod(shape) * dtype.itemsize
        if expected != nbytes:
            raise bad(
                i,
                f"nbytes {nbytes} does not match shape {shape} of dtype {dtype_str} "
                f"({expected} bytes)",
            )
        segments.append(Segment(dtype, tuple(shape), nbytes))
    return segments


def arrays_from_body(
    segments: Sequence[Segment], body: bytearray, *, frame: int, offset: int
) -> tuple[np.ndarray[Any, Any], ...]:
    """Views of ``body`` (which the caller owns and hands over) shaped per ``segments``.

    The caller has checked that the segment sizes add up to ``len(body)``.  A segment
    whose offset is not a multiple of its item size is copied so every array is aligned.
    Bool segments must hold only bytes 0 and 1 (numpy misbehaves on other values).
    """
    arrays: list[np.ndarray[Any, Any]] = []
    pos = 0
    for i, seg in enumerate(segments):
        count = seg.nbytes // seg.dtype.itemsize
        if seg.dtype == np.bool_ and count:
            raw = np.frombuffer(body, dtype=np.uint8, count=count, offset=pos)
            if int(raw.max()) > 1:
                raise BadSegment(
                    f"segments[{i}]: bool data contains bytes other than 0 and 1",
                    frame=frame,
                    offset=offset,
                )
        arr = np.frombuffer(body, dtype=seg.dtype, count=count, offset=pos).reshape(seg.shape)
        if pos % seg.dtype.itemsize:
            arr = arr.copy()
        arrays.append(arr)
        pos += seg.nbytes
    return tuple(arrays)


# --------------------------------------------------------------------------- headers


def dumps_header(header: Mapping[str, Any], *, max_size: int) -> bytes:
    """Serialise a header with orjson; ``TypeError``/``ValueError`` on the sender's mistakes."""
    try:
        data = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError as exc:
        raise TypeError(
            f"message {header.get('type')!r}: fields must be JSON-serialisable: {exc}"
        ) from exc
    if len(data) > max_size:
        raise ValueError(
            f"message {header.get('type')!r}: header is {len(data)} bytes, over max_header_size "
            f"{max_size}; put bulk data in arrays instead of fields"
        )
    return data


def loads_header(data: bytes | bytearray, *, frame: int, offset: int) -> dict[str, Any]:
    """Parse and minimally validate a frame header (JSON object with a string ``type``)."""
    try:
        header = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedHeader(
            f"header is not valid JSON: {exc}", frame=frame, offset=offset
        ) from None
    if not isinstance(header, dict):
        raise MalformedHeader(
            f"header must be a JSON object, got {json_type(header)}", frame=frame, offset=offset
        )
    check_type_field(header, frame=frame, offset=offset, where="header")
    return header


def check_type_field(header: dict[str, Any], *, frame: int, offset: int, where: str) -> str:
    """Return ``header["type"]`` after checking it is a non-empty string."""
    msg_type = header.get("type")
    if not isinstance(msg_type, str) or not msg_type:
        raise MalformedHeader(
            f"{where} needs a non-empty string 'type', got {msg_type!r:.60}",
            frame=frame,
            offset=offset,
        )
    return msg_type


_JSON_TYPES: dict[type, str] = {
    dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
}


def json_type(value: object) -> str:
    """The JSON (Schema) name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------- encoding


def pack_frame(
    header_bytes: bytes,
    body: Sequence[bytes | bytearray | memoryview],
    config: WireConfig,
) -> tuple[bytes, int]:
    """Build one frame from a serialised header; returns ``(frame_bytes, raw_frame_size)``.

    ``raw_frame_size`` is the size the frame would have had without compression
    (prefix + header + raw body), for the "bytes before compression" statistics.
    """
    raw_len = sum(len(b) if not isinstance(b, memoryview) else b.nbytes for b in body)
    flags = 0
    wire_body: Sequence[bytes | bytearray | memoryview] = body
    if config.compression and raw_len >= config.compression_threshold:
        compressed = _maybe_compress(body, raw_len, config)
        if compressed is not None:
            flags = FLAG_COMPRESSED
            wire_body = compressed
    wire_len = raw_len if flags == 0 else sum(len(b) for b in wire_body)
    if len(header_bytes) + wire_len > config.max_frame_size:
        raise ValueError(
            f"frame of {len(header_bytes) + wire_len} bytes exceeds max_frame_size "
            f"{config.max_frame_size}"
        )
    prefix = _PREFIX.pack(MAGIC, WIRE_VERSION, flags, 0, len(header_bytes), wire_len, raw_len)
    raw_size = PREFIX_SIZE + len(header_bytes) + raw_len
    return b"".join([prefix, header_bytes, *wire_body]), raw_size


_SAMPLE_PIECE: Final = 4 * KiB
_SAMPLE_COUNT: Final = 4
_SAMPLE_ABOVE: Final = 64 * KiB


def _maybe_compress(
    body: Sequence[bytes | bytearray | memoryview], raw_len: int, config: WireConfig
) -> list[bytes] | None:
    """gzip the body if that shrinks it below ``compression_min_ratio``; else ``None``.

    Bodies above 64 KiB are first judged on four 4 KiB samples spread over the body:
    zlib crawls through incompressible data (random-looking floats, already
    compressed bytes) at a few tens of MB/s, so compressing a whole 1 MiB chunk only
    to throw the result away would cost tens of milliseconds on the event loop.
    """
    if raw_len > _SAMPLE_ABOVE:
        step = raw_len // _SAMPLE_COUNT
        sample = b"".join(_read_at(body, i * step, _SAMPLE_PIECE) for i in range(_SAMPLE_COUNT))
        compressed_sample = zlib.compress(sample, config.compression_level, wbits=31)
        if len(compressed_sample) >= len(sample) * config.compression_min_ratio:
            return None
    comp = zlib.compressobj(config.compression_level, zlib.DEFLATED, 31)
    out = [comp.compress(piece) for piece in body]
    out.append(comp.flush())
    if sum(len(p) for p in out) >= raw_len * config.compression_min_ratio:
        return None
    return out


def _read_at(body: Sequence[bytes | bytearray | memoryview], start: int, n: int) -> bytes:
    """``n`` bytes from offset ``start`` of the concatenation of ``body`` (fewer at the end)."""
    out: list[bytes | bytearray | memoryview] = []
    pos = 0
    for piece in body:
        size = piece.nbytes if isinstance(piece, memoryview) else len(piece)
        if n > 0 and start < pos + size:
            lo = start - pos
            take = min(size - lo, n)
            out.append(piece[lo : lo + take])
            start += take
            n -= take
        pos += size
        if n <= 0:
            break
    return b"".join(out)


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True, slots=True)
class Prefix:
    """A validated fixed prefix."""

    compressed: bool
    header_length: int
    body_length: int
    raw_body_length: int

    @property
    def frame_length(self) -> int:
        return PREFIX_SIZE + self.header_length + self.body_length


def check_magic_start(data: bytes | bytearray, *, frame: int, offset: int) -> None:
    """Fail fast when the first bytes of a frame cannot be the magic (e.g. an HTTP request)."""
    n = min(len(data), len(MAGIC))
    if data[:n] != MAGIC[:n]:
        raise BadMagic(
            f"bad magic {bytes(data[: len(MAGIC)])!r} at prefix bytes 0-3 (expected {MAGIC!r}); "
            "the peer is not speaking the aioforest protocol",
            frame=frame,
            offset=offset,
        )


def parse_prefix(data: bytes | bytearray, config: WireConfig, *, frame: int, offset: int) -> Prefix:
    """Validate the fixed 24-byte prefix against ``config`` before anything is allocated."""
    magic, version, flags, reserved, header_len, body_len, raw_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        check_magic_start(magic, frame=frame, offset=offset)
    if version != WIRE_VERSION:
        raise UnsupportedVersion(
            f"wire version {version} at prefix byte 4 is not supported (this side speaks "
            f"version {WIRE_VERSION})",
            frame=frame,
            offset=offset,
        )
    if flags & ~_KNOWN_FLAGS:
        raise MalformedFrame(
            f"reserved flag bits 0x{flags & ~_KNOWN_FLAGS:02x} set in flags byte 0x{flags:02x} "
            "at prefix byte 5",
            frame=frame,
            offset=offset,
        )
    if reserved:
        raise MalformedFrame(
            f"reserved field at prefix bytes 6-7 must be 0, got {reserved}",
            frame=frame,
            offset=offset,
        )
    if header_len == 0:
        raise MalformedHeader(
            "header_length at prefix bytes 8-11 is 0; every frame needs a JSON header",
            frame=frame,
            offset=offset,
        )
    if header_len > config.max_header_size:
        raise FrameTooLarge(
            f"header_length {header_len} at prefix bytes 8-11 exceeds max_header_size "
            f"{config.max_header_size}",
            frame=frame,
            offset=offset,
        )
    if header_len + body_len > config.max_frame_size:
        raise FrameTooLarge(
            f"frame of {header_len + body_len} bytes (header_length {header_len} + body_length "
            f"{body_len} at prefix bytes 12-15) exceeds max_frame_size {config.max_frame_size}",
            frame=frame,
            offset=offset,
        )
    compressed = bool(flags & FLAG_COMPRESSED)
    if compressed:
        if raw_len > config.max_decompressed_size:
            raise DecompressionBomb(
                f"raw_body_length {raw_len} at prefix bytes 16-23 exceeds max_decompressed_size "
                f"{config.max_decompressed_size}",
                frame=frame,
                offset=offset,
            )
        if body_len == 0:
            raise MalformedFrame(
                "compressed flag set but body_length is 0", frame=frame, offset=offset
            )
    elif raw_len != body_len:
        raise MalformedFrame(
            f"uncompressed frame declares raw_body_length {raw_len} (prefix bytes 16-23) "
            f"!= body_length {body_len} (prefix bytes 12-15)",
            frame=frame,
            offset=offset,
        )
    return Prefix(compressed, header_len, body_len, raw_len)


_INFLATE_STEP: Final = 256 * KiB


def inflate(data: bytes | bytearray, raw_len: int, *, frame: int, offset: int) -> bytearray:
    """Decompress one gzip body, never producing more than ``raw_len + 1`` bytes.

    Inflates in bounded steps over ``unconsumed_tail`` so a body that expands past
    its declared size (a decompression bomb lying about its size) is stopped after
    at most one step beyond the declaration.
    """
    d = zlib.decompressobj(wbits=31)
    out = bytearray()
    pending: bytes | bytearray = data
    try:
        while not d.eof:
            room = raw_len + 1 - len(out)  # always >= 1 (0 would mean "unlimited")
            piece = d.decompress(pending, min(room, _INFLATE_STEP))
            out += piece
            if len(out) > raw_len:
                raise DecompressionBomb(
                    f"compressed body inflates beyond its declared raw_body_length {raw_len}; "
                    "stopped decompressing",
                    frame=frame,
                    offset=offset,
                )
            tail = d.unconsumed_tail
            if not piece and len(tail) == len(pending):
                break  # no progress: the input is exhausted before the end of the stream
            pending = tail
    except zlib.error as exc:
        raise BadCompression(
            f"body is not a valid gzip stream: {exc}", frame=frame, offset=offset
        ) from None
    if not d.eof:
        raise BadCompression(
            "gzip stream is truncated (no end-of-stream marker)", frame=frame, offset=offset
        )
    if d.unused_data:
        raise BadCompression(
            f"{len(d.unused_data)} bytes of trailing data after the gzip stream",
            frame=frame,
            offset=offset,
        )
    if len(out) != raw_len:
        raise BadCompression(
            f"body inflates to {len(out)} bytes but raw_body_length declares {raw_len}",
            frame=frame,
            offset=offset,
        )
    return out
