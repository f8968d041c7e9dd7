"""Exceptions raised by the wire codec, the handshake and the stream adapter.

Every decoding failure is a :class:`ProtocolError`.  Its message says what was wrong
and where: the frame (a 0-based counter of frames on the connection), the byte
offset of that frame in the stream, the field, and — once the asyncio adapter has
seen it — the peer address.  A connection that raised a ``ProtocolError`` must not
be reused: the decoder stays broken and the adapter closes the transport.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BadCompression",
    "BadMagic",
    "BadSegment",
    "ChunkError",
    "ConnectionClosed",
    "DecompressionBomb",
    "FrameTooLarge",
    "HandshakeError",
    "HandshakeTimeout",
    "MalformedFrame",
    "MalformedHeader",
    "ProtocolError",
    "TruncatedFrame",
    "UnsupportedVersion",
    "VersionMismatch",
]


class ProtocolError(Exception):
    """The peer sent bytes that violate the aioforest wire protocol.

    Attributes:
        detail: what was wrong (without the location prefix).
        frame: 0-based index of the offending frame on this connection, if known.
        offset: byte offset of the start of that frame in the received stream.
        peer: ``"host:port"`` of the peer, filled in by the asyncio adapter.
    """

    def __init__(
        self,
        detail: str,
        *,
        frame: int | None = None,
        offset: int | None = None,
        peer: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.frame = frame
        self.offset = offset
        self.peer = peer

    def with_peer(self, peer: str) -> ProtocolError:
        """Record the peer address (if not set yet) and return ``self`` for re-raising."""
        if self.peer is None:
            self.peer = peer
        return self

    def _location(self) -> str:
        if self.frame is None:
            return ""
        where = f"frame {self.frame}"
        if self.offset is not None:
            where += f" (stream byte {self.offset})"
        return where

    def __str__(self) -> str:
        parts = [p for p in (f"peer {self.peer}" if self.peer else "", self._location()) if p]
        return f"{', '.join(parts)}: {self.detail}" if parts else self.detail

    def __reduce__(self) -> tuple[object, ...]:
        # Keep keyword-only attributes when an error is copied (e.g. by pytest or
        # concurrent.futures); the default reduce would only pass ``detail``.
        return (_rebuild_error, (type(self), self.detail, self.__dict__.copy()))


def _rebuild_error(
    cls: type[ProtocolError], detail: str, state: dict[str, object]
) -> ProtocolError:
    err = cls.__new__(cls)
    Exception.__init__(err, detail)
    err.__dict__.update(state)
    return err


class FrameTooLarge(ProtocolError):
    """A declared length (header, frame or reassembled message) exceeds a configured cap.

    Raised from the fixed prefix (or the first chunk of a chunked message) before
    any buffer for the payload is allocated.
    """


class BadMagic(ProtocolError):
    """The stream does not start a frame with the aioforest magic bytes."""


class UnsupportedVersion(ProtocolError):
    """The frame declares a wire-format version this decoder does not speak."""


class VersionMismatch(UnsupportedVersion):
    """The two peers announced different protocol versions during the handshake."""


class MalformedFrame(ProtocolError):
    """The fixed prefix is inconsistent (reserved bits or fields set, bad lengths)."""


class MalformedHeader(ProtocolError):
    """The JSON header is not valid JSON, not an object, or misses required keys."""


class BadSegment(ProtocolError):
    """An array segment descriptor is invalid or disagrees with the body length."""


class DecompressionBomb(ProtocolError):
    """A compressed body inflates beyond its declared size or the decompression cap."""


class BadCompression(ProtocolError):
    """A compressed body is not a single well-formed gzip stream."""


class TruncatedFrame(ProtocolError):
    """The stream ended in the middle of a frame or of a chunked message."""


class ChunkError(ProtocolError):
    """Chunk reassembly failed: gap, duplicate, unknown stream or too many streams."""


class HandshakeError(ProtocolError):
    """The connection handshake failed (unexpected message, peer refusal, early close)."""


class AuthenticationError(HandshakeError):
    """The shared-token challenge-response failed.

    ``rejected_by_peer`` is true when the *peer* refused our proof (we hold a
    different token, or none); false when the peer failed to prove itself to us.
    """

    def __init__(
        self,
        detail: str,
        *,
        rejected_by_peer: bool = False,
        frame: int | None = None,
        offset: int | None = None,
        peer: str | None = None,
    ) -> None:
        super().__init__(detail, frame=frame, offset=offset, peer=peer)
        self.rejected_by_peer = rejected_by_peer

    def __str__(self) -> str:
        who = f"peer {self.peer}" if self.peer else "peer"
        if self.rejected_by_peer:
            return f"{who} rejected our authentication: {self.detail}"
        return f"{who} failed authentication: {self.detail}"


class HandshakeTimeout(HandshakeError, TimeoutError):
    """The peer did not complete the handshake within the allowed time."""


class ConnectionClosed(ConnectionError):
    """The connection is closed: the peer closed it cleanly, it was lost, or we closed it."""
