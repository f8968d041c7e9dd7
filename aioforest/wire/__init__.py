"""aioforest cluster wire protocol: a sans-IO frame codec plus a thin asyncio adapter.

- :class:`Encoder` / :class:`Decoder`: :class:`Message` objects (a type, JSON fields and
  numpy arrays) to and from bytes, with compression, chunking of large messages and
  strict limits (see :class:`WireConfig`).  No I/O, no pickle.
- :class:`ServerHandshake` / :class:`ClientHandshake`: version check and mutual
  HMAC-SHA256 challenge-response over a shared token (:func:`load_token`).
- :func:`open_connection` / :func:`accept` / :class:`Connection`: the asyncio adapter
  with fair interleaving of small messages between chunks, and optional TLS;
  :func:`format_peer` and :func:`is_loopback` for addresses in messages and checks.
  A frame costing :data:`OFF_LOOP_FRAME_BYTES` or more is decoded in a thread.

Every decoding failure raises a :class:`ProtocolError` subclass naming the frame,
field and (in the adapter) the peer.
"""

from ._chunk import CLOSED, NEED_DATA, Decoder, EncodedFrame, Encoder, Sentinel, WireStats
from ._errors import (
    AuthenticationError,
    BadCompression,
    BadMagic,
    BadSegment,
    ChunkError,
    ConnectionClosed,
    DecompressionBomb,
    FrameTooLarge,
    HandshakeError,
    HandshakeTimeout,
    MalformedFrame,
    MalformedHeader,
    ProtocolError,
    TruncatedFrame,
    UnsupportedVersion,
    VersionMismatch,
)
from ._frame import (
    ALLOWED_DTYPES,
    DEFAULT_CONFIG,
    MAGIC,
    PREFIX_SIZE,
    WIRE_VERSION,
    Message,
    WireConfig,
    json_type,
)
from ._handshake import (
    HANDSHAKE_CONFIG,
    PROTOCOL_VERSION,
    ClientHandshake,
    HandshakeResult,
    ServerHandshake,
    load_token,
)
from ._stream import (
    OFF_LOOP_FRAME_BYTES,
    Connection,
    ConnectionStats,
    accept,
    check_tls_pair,
    client_ssl_context,
    format_peer,
    is_loopback,
    open_connection,
    server_ssl_context,
)

__all__ = [
    "ALLOWED_DTYPES",
    "CLOSED",
    "DEFAULT_CONFIG",
    "HANDSHAKE_CONFIG",
    "MAGIC",
    "NEED_DATA",
    "OFF_LOOP_FRAME_BYTES",
    "PREFIX_SIZE",
    "PROTOCOL_VERSION",
    "WIRE_VERSION",
    "AuthenticationError",
    "BadCompression",
    "BadMagic",
    "BadSegment",
    "ChunkError",
    "ClientHandshake",
    "Connection",
    "ConnectionClosed",
    "ConnectionStats",
    "Decoder",
    "DecompressionBomb",
    "EncodedFrame",
    "Encoder",
    "FrameTooLarge",
    "HandshakeError",
    "HandshakeResult",
    "HandshakeTimeout",
    "MalformedFrame",
    "MalformedHeader",
    "Message",
    "ProtocolError",
    "Sentinel",
    "ServerHandshake",
    "TruncatedFrame",
    "UnsupportedVersion",
    "VersionMismatch",
    "WireConfig",
    "WireStats",
    "accept",
    "check_tls_pair",
    "client_ssl_context",
    "format_peer",
    "is_loopback",
    "json_type",
    "load_token",
    "open_connection",
    "server_ssl_context",
]
