"""Message-level codec: :class:`Encoder` and :class:`Decoder` (sans-IO, h11 style).

A message whose arrays total at most ``chunk_size`` bytes travels as one frame.  A
bigger one travels as a *stream* of ``chunk`` frames whose bodies are consecutive
slices of the message body::

    {"type": "chunk", "stream_id": 7, "seq": 0, "last": false, "message": {<message header>}}
    {"type": "chunk", "stream_id": 7, "seq": 1, "last": false}
    ...
    {"type": "chunk", "stream_id": 7, "seq": 49, "last": true}

Each chunk frame is compressed on its own, and other frames (heartbeats, other
streams) may be interleaved between them.  The :class:`Decoder` reassembles
streams into single :class:`Message` events, bounded by ``max_message_size`` and
``max_streams``, and rejects gaps, duplicates and overruns.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import numpy as np

from ._errors import (
    BadSegment,
    ChunkError,
    FrameTooLarge,
    MalformedHeader,
    ProtocolError,
    TruncatedFrame,
)
from ._frame import (
    CHUNK_TYPE,
    DEFAULT_CONFIG,
    PREFIX_SIZE,
    Message,
    Prefix,
    Segment,
    WireConfig,
    array_buffers,
    arrays_from_body,
    check_magic_start,
    check_type_field,
    dumps_header,
    inflate,
    loads_header,
    pack_frame,
    parse_prefix,
    parse_segments,
    segment_descriptors,
)

__all__ = ["CLOSED", "NEED_DATA", "Decoder", "EncodedFrame", "Encoder", "Sentinel", "WireStats"]


class Sentinel(enum.Enum):
    """Non-message results of :meth:`Decoder.next_event`."""

    NEED_DATA = "NEED_DATA"
    """More bytes are needed before the next message is complete."""
    CLOSED = "CLOSED"
    """The peer ended the stream cleanly (after :meth:`Decoder.receive_data` got ``b""``)."""


NEED_DATA: Final = Sentinel.NEED_DATA
CLOSED: Final = Sentinel.CLOSED

_CHUNK_KEYS: Final = frozenset({"type", "stream_id", "seq", "last", "message"})
_MAX_ID: Final = 2**63 - 1


@dataclass(slots=True)
class WireStats:
    """Counters for one direction of a connection.

    ``raw_bytes`` counts frames as they would be without compression (prefix +
    header + uncompressed body); ``wire_bytes`` counts the bytes actually on the wire.
    """

    frames: int = 0
    messages: int = 0
    raw_bytes: int = 0
    wire_bytes: int = 0

    def copy(self) -> WireStats:
        """A snapshot of the counters."""
        return WireStats(self.frames, self.messages, self.raw_bytes, self.wire_bytes)


class EncodedFrame(NamedTuple):
    """One encoded frame and the size it would have had without compression."""

    data: bytes
    raw_size: int


class Encoder:
    """Turns :class:`Message` objects into frames.

    ``encode`` returns all frames at once; ``iter_frames`` produces chunk frames
    lazily (each is compressed only when pulled), which is what the asyncio adapter
    uses to interleave streams.  Header problems (unserialisable fields, header over
    ``max_header_size``) raise ``TypeError``/``ValueError`` eagerly, before any frame.
    """

    def __init__(self, config: WireConfig = DEFAULT_CONFIG) -> None:
        self.config = config
        self.stats = WireStats()
        self._next_stream_id = 1

    def is_chunked(self, message: Message) -> bool:
        """Whether ``message`` is sent as a stream of chunk frames."""
        return message.nbytes > self.config.chunk_size

    def encode(self, message: Message) -> list[bytes]:
        """All frames of ``message``, in order."""
        return [f.data for f in self.iter_frames(message)]

    def iter_frames(self, message: Message) -> Iterator[EncodedFrame]:
        """Frames of ``message``; chunk frames are built one at a time as they are pulled."""
        header: dict[str, Any] = {"type": message.type, **message.fields}
        if message.arrays:
            header["segments"] = segment_descriptors(message.arrays)
        if not self.is_chunked(message):
            header_bytes = dumps_header(header, max_size=self.config.max_header_size)
            frame = self._pack(header_bytes, array_buffers(message.arrays))
            self.stats.messages += 1
            return iter((frame,))
        stream_id = self._next_stream_id
        self._next_stream_id += 1
        # Serialised now so a bad header fails in the caller, not halfway through a stream.
        first = dumps_header(
            {
                "type": CHUNK_TYPE,
                "stream_id": stream_id,
                "seq": 0,
                "last": False,
                "message": header,
            },
            max_size=self.config.max_header_size,
        )
        return self._chunk_frames(stream_id, first, message.arrays)

    def _chunk_frames(
        self, stream_id: int, first_header: bytes, arrays: Sequence[np.ndarray[Any, Any]]
    ) -> Iterator[EncodedFrame]:
        size = self.config.chunk_size
        total = sum(int(a.nbytes) for a in arrays)
        sent = 0
        seq = 0
        pieces: list[memoryview] = []
        filled = 0
        buffers = [b for b in array_buffers(arrays) if b.nbytes]
        for buf in buffers:
            pos = 0
            while pos < buf.nbytes:
                take = min(size - filled, buf.nbytes - pos)
                pieces.append(buf[pos : pos + take])
                pos += take
                filled += take
                if filled == size or sent + filled == total:
                    sent += filled
                    if seq == 0:
                        header_bytes = first_header
                    else:
                        header_bytes = dumps_header(
                            {
                                "type": CHUNK_TYPE,
                                "stream_id": stream_id,
                                "seq": seq,
                                "last": sent == total,
                            },
                            max_size=self.config.max_header_size,
                        )
                    frame = self._pack(header_bytes, pieces)
                    if sent == total:
                        self.stats.messages += 1
                    yield frame
                    seq += 1
                    pieces = []
                    filled = 0

    def _pack(self, header_bytes: bytes, body: Sequence[bytes | memoryview]) -> EncodedFrame:
        data, raw_size = pack_frame(header_bytes, body, self.config)
        self.stats.frames += 1
        self.stats.raw_bytes += raw_size
        self.stats.wire_bytes += len(data)
        return EncodedFrame(data, raw_size)


@dataclass(slots=True)
class _Reassembly:
    type: str
    fields: dict[str, Any]
    segments: list[Segment]
    total: int
    first_frame: int
    next_seq: int = 1
    body: bytearray = field(default_factory=bytearray)


class Decoder:
    """Sans-IO decoder: feed bytes with :meth:`receive_data`, pull :meth:`next_event`.

    ``next_event`` returns a :class:`Message`, :data:`NEED_DATA` or (after EOF)
    :data:`CLOSED`, or raises a :class:`ProtocolError`.  After an error the decoder
    is broken for good and every later call raises.  ``receive_data(b"")`` signals
    EOF; a frame or chunked message cut short by EOF raises :class:`TruncatedFrame`.

    Every size is validated against the :class:`WireConfig` limits from the 24-byte
    prefix (or a chunked message's first header) before the payload is buffered, and
    bodies are inflated with a hard output cap.  Buffering is linear: incoming bytes
    are appended to one ``bytearray`` and each complete body is copied out once.
    Arrays of decoded messages are writable views into that per-message copy.
    """

    def __init__(self, config: WireConfig = DEFAULT_CONFIG) -> None:
        self.config = config
        self.stats = WireStats()
        self._buf = bytearray()
        self._offset = 0  # stream offset of self._buf[0]
        self._frame_index = 0
        self._prefix: Prefix | None = None
        self._streams: dict[int, _Reassembly] = {}
        self._eof = False
        self._broken: ProtocolError | None = None

    @property
    def eof(self) -> bool:
        """Whether EOF has been signalled with ``receive_data(b"")``."""
        return self._eof

    @property
    def trailing_data(self) -> bytes:
        """Bytes received but not yet consumed by a complete frame."""
        return bytes(self._buf)

    @property
    def ready_frame_cost(self) -> int:
        """Bytes the next :meth:`next_event` will copy and inflate, if the frame whose
        prefix was read is all buffered; else 0. Lets a caller decode big frames off the
        event loop and small ones inline."""
        p = self._prefix
        if p is None or len(self._buf) < p.frame_length:
            return 0
        return p.frame_length + (p.raw_body_length if p.compressed else 0)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer received bytes; ``b""`` means the peer closed its side (EOF)."""
        self._raise_if_broken()
        if self._eof:
            raise RuntimeError("receive_data() called after EOF was signalled")
        if data:
            self._buf += data
        else:
            self._eof = True

    def next_event(self) -> Message | Sentinel:
        """The next complete message, :data:`NEED_DATA` or :data:`CLOSED`."""
        self._raise_if_broken()
        try:
            while True:
                frame = self._next_frame()
                if frame is None:
                    return self._at_eof() if self._eof else NEED_DATA
                message = self._dispatch(*frame)
                if message is not None:
                    self.stats.messages += 1
                    return message
        except ProtocolError as exc:
            self._broken = exc
            raise

    def _raise_if_broken(self) -> None:
        if self._broken is not None:
            raise ProtocolError(
                f"decoder is unusable after an earlier error: {self._broken}"
            ) from self._broken

    def _at_eof(self) -> Sentinel:
        if self._buf:
            need = self._prefix.frame_length if self._prefix is not None else PREFIX_SIZE
            raise TruncatedFrame(
                f"stream ended after {len(self._buf)} of the {need} bytes "
                f"{'of the frame' if self._prefix is not None else 'of the frame prefix'}",
                frame=self._frame_index,
                offset=self._offset,
            )
        if self._streams:
            ids = ", ".join(
                f"{sid} (started at frame {st.first_frame}, {len(st.body)} of {st.total} bytes)"
                for sid, st in sorted(self._streams.items())
            )
            raise TruncatedFrame(f"stream ended inside chunked message stream(s) {ids}")
        return CLOSED

    def _next_frame(self) -> tuple[dict[str, Any], bytearray, int, int] | None:
        buf = self._buf
        frame, offset = self._frame_index, self._offset
        if self._prefix is None:
            if len(buf) < PREFIX_SIZE:
                if buf:
                    check_magic_start(buf, frame=frame, offset=offset)
                return None
            self._prefix = parse_prefix(buf, self.config, frame=frame, offset=offset)
        prefix = self._prefix
        end = prefix.frame_length
        if len(buf) < end:
            return None
        body_start = PREFIX_SIZE + prefix.header_length
        header_bytes = buf[PREFIX_SIZE:body_start]
        body = buf[body_start:end]  # the one copy of the body; the message owns it
        del buf[:end]  # O(1) in CPython: bytearray advances its start pointer
        self._prefix = None
        self._frame_index += 1
        self._offset += end
        header = loads_header(header_bytes, frame=frame, offset=offset)
        if prefix.compressed:
            body = inflate(body, prefix.raw_body_length, frame=frame, offset=offset)
        self.stats.frames += 1
        self.stats.wire_bytes += end
        self.stats.raw_bytes += PREFIX_SIZE + prefix.header_length + prefix.raw_body_length
        return header, body, frame, offset

    def _dispatch(
        self, header: dict[str, Any], body: bytearray, frame: int, offset: int
    ) -> Message | None:
        msg_type: str = header.pop("type")
        if msg_type == CHUNK_TYPE:
            return self._on_chunk(header, body, frame, offset)
        segments = parse_segments(header.pop("segments", []), frame=frame, offset=offset)
        declared = sum(s.nbytes for s in segments)
        if declared != len(body):
            raise BadSegment(
                f"segments describe {declared} bytes but the body has {len(body)} bytes",
                frame=frame,
                offset=offset,
            )
        arrays = arrays_from_body(segments, body, frame=frame, offset=offset)
        return Message._from_wire(msg_type, header, arrays)

    def _on_chunk(
        self, header: dict[str, Any], body: bytearray, frame: int, offset: int
    ) -> Message | None:
        unknown = set(header) - _CHUNK_KEYS
        if unknown:
            raise MalformedHeader(
                f"chunk header has unexpected keys {sorted(unknown)!r:.120}",
                frame=frame,
                offset=offset,
            )
        stream_id = _chunk_int(header, "stream_id", frame, offset)
        seq = _chunk_int(header, "seq", frame, offset)
        last = header.get("last")
        if not isinstance(last, bool):
            raise MalformedHeader(
                f"chunk header of stream {stream_id} needs a boolean 'last', got {last!r:.40}",
                frame=frame,
                offset=offset,
            )
        if seq == 0:
            stream = self._open_stream(stream_id, header.get("message"), frame, offset)
        else:
            if "message" in header:
                raise MalformedHeader(
                    f"stream {stream_id} chunk seq {seq}: only the first chunk (seq 0) may "
                    "carry 'message'",
                    frame=frame,
                    offset=offset,
                )
            found = self._streams.get(stream_id)
            if found is None:
                raise ChunkError(
                    f"stream {stream_id} chunk seq {seq} arrived but the stream is not open "
                    "(its first chunk, seq 0, is missing or the stream already ended)",
                    frame=frame,
                    offset=offset,
                )
            stream = found
            if seq != stream.next_seq:
                kind = "gap: missing chunk(s)" if seq > stream.next_seq else "duplicate chunk"
                raise ChunkError(
                    f"stream {stream_id}: expected chunk seq {stream.next_seq}, got seq {seq} "
                    f"({kind})",
                    frame=frame,
                    offset=offset,
                )
        if len(stream.body) + len(body) > stream.total:
            raise ChunkError(
                f"stream {stream_id} chunk seq {seq}: {len(stream.body) + len(body)} bytes "
                f"received, more than the {stream.total} bytes its segments declare",
                frame=frame,
                offset=offset,
            )
        stream.body += body
        stream.next_seq = seq + 1
        if not last:
            return None
        del self._streams[stream_id]
        if len(stream.body) != stream.total:
            raise ChunkError(
                f"stream {stream_id}: last chunk (seq {seq}) ends the message after "
                f"{len(stream.body)} bytes but its segments declare {stream.total}",
                frame=frame,
                offset=offset,
            )
        arrays = arrays_from_body(stream.segments, stream.body, frame=frame, offset=offset)
        return Message._from_wire(stream.type, stream.fields, arrays)

    def _open_stream(self, stream_id: int, inner: object, frame: int, offset: int) -> _Reassembly:
        if stream_id in self._streams:
            raise ChunkError(
                f"stream {stream_id}: duplicate first chunk (seq 0) while the stream is open "
                f"(it started at frame {self._streams[stream_id].first_frame})",
                frame=frame,
                offset=offset,
            )
        if len(self._streams) >= self.config.max_streams:
            raise ChunkError(
                f"stream {stream_id}: too many chunked messages in progress "
                f"(max_streams {self.config.max_streams})",
                frame=frame,
                offset=offset,
            )
        if not isinstance(inner, dict):
            raise MalformedHeader(
                f"stream {stream_id}: first chunk needs a 'message' object, got {inner!r:.60}",
                frame=frame,
                offset=offset,
            )
        where = f"stream {stream_id} message header"
        msg_type = check_type_field(inner, frame=frame, offset=offset, where=where)
        if msg_type == CHUNK_TYPE:
            raise MalformedHeader(
                f"{where}: a chunked message cannot itself be of type {CHUNK_TYPE!r}",
                frame=frame,
                offset=offset,
            )
        fields = {k: v for k, v in inner.items() if k not in ("type", "segments")}
        segments = parse_segments(
            inner.get("segments", []), frame=frame, offset=offset, where=where
        )
        total = sum(s.nbytes for s in segments)
        if total > self.config.max_message_size:
            raise FrameTooLarge(
                f"stream {stream_id}: chunked message of {total} bytes exceeds "
                f"max_message_size {self.config.max_message_size}",
                frame=frame,
                offset=offset,
            )
        stream = _Reassembly(msg_type, fields, segments, total, first_frame=frame)
        self._streams[stream_id] = stream
        return stream


def _chunk_int(header: dict[str, Any], key: str, frame: int, offset: int) -> int:
    value = header.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_ID:
        raise MalformedHeader(
            f"chunk header needs a non-negative int {key!r}, got {value!r:.40}",
            frame=frame,
            offset=offset,
        )
    return value
