"""Connection handshake: version check and mutual HMAC-SHA256 challenge-response (sans-IO).

Exchange (each line is one small frame, at most ``HANDSHAKE_CONFIG.max_frame_size`` bytes)::

    server -> client  hello    protocol="aioforest", version, auth="hmac-sha256" or "none", nonce=Ns
    client -> server  auth     version, nonce=Nc, proof=HMAC(token, "aioforest-v1 client" + Ns + Nc)
    server -> client  welcome  proof=HMAC(token, "aioforest-v1 server" + Nc + Ns)

Either side may instead send ``reject {code, reason}`` and close.  Nonces are 32
random bytes, hex-encoded.  Properties:

- *Mutual*: the client proves the token first; the server only answers with its own
  proof after checking the client's, so an unauthenticated client never obtains a
  server proof for a nonce of its choice.
- *Replay*: a recorded client proof is useless against a new connection because the
  server nonce is fresh.
- *Reflection*: the role label inside the MAC differs per direction, so a proof
  computed by one side can never be replayed as the other side's proof.
- Proofs are compared with :func:`hmac.compare_digest`.

Both sides also derive ``session_key = HMAC(token, "aioforest-v1 session" + Ns + Nc)``
(available in :class:`HandshakeResult` for a future per-frame MAC; unused for now).

Without a token on *both* sides the handshake only exchanges versions.  That
unauthenticated mode is meant for loopback only (the master enforces it).  A client
that holds a token refuses a server that does not authenticate, and vice versa.

The handshake authenticates but does not encrypt; use TLS for confidentiality.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ._chunk import CLOSED, NEED_DATA, Decoder, Encoder
from ._errors import (
    AuthenticationError,
    HandshakeError,
    ProtocolError,
    VersionMismatch,
)
from ._frame import Message, WireConfig

__all__ = [
    "HANDSHAKE_CONFIG",
    "PROTOCOL_VERSION",
    "ClientHandshake",
    "HandshakeResult",
    "ServerHandshake",
    "load_token",
]

#: Version of the aioforest cluster protocol exchanged in the handshake.
PROTOCOL_VERSION: Final = 1
NONCE_SIZE: Final = 32
_AUTH_HMAC: Final = "hmac-sha256"
_AUTH_NONE: Final = "none"
_CLIENT_LABEL: Final = b"aioforest-v1 client"
_SERVER_LABEL: Final = b"aioforest-v1 server"
_SESSION_LABEL: Final = b"aioforest-v1 session"
_MAX_REASON: Final = 200

#: Limits while the peer is not yet authenticated: tiny frames, no chunking, no compression.
HANDSHAKE_CONFIG: Final = WireConfig(
    max_header_size=1000,
    max_frame_size=1024,
    max_decompressed_size=1024,
    max_message_size=1024,
    max_streams=0,
    chunk_size=24,
    compression=False,
)


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """Outcome of a successful handshake."""

    peer_version: int
    authenticated: bool
    session_key: bytes | None = field(default=None, repr=False)


def load_token(
    token_file: str | os.PathLike[str] | None = None, env: str | None = "AIOFOREST_TOKEN"
) -> bytes | None:
    """Load the shared cluster token.

    ``token_file`` wins if given: its content with surrounding whitespace stripped.
    Otherwise the environment variable ``env`` (if set).  Returns ``None`` when
    neither is configured.  An empty file or empty variable is an error rather than
    a silent fallback to unauthenticated mode.
    """
    if token_file is not None:
        data = Path(token_file).read_bytes().strip()
        if not data:
            raise ValueError(f"token file {os.fspath(token_file)!r} is empty")
        return data
    if env is None:
        return None
    value = os.environ.get(env)
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise ValueError(f"environment variable {env} is set but empty")
    return value.encode()


def _mac(token: bytes, label: bytes, first: bytes, second: bytes) -> bytes:
    return hmac.new(token, label + first + second, hashlib.sha256).digest()


class _State(enum.Enum):
    AWAIT_HELLO = "await hello"
    AWAIT_AUTH = "await auth"
    AWAIT_WELCOME = "await welcome"
    DONE = "done"


class _Handshake:
    """Shared machinery: a size-capped decoder, an outbox, and error bookkeeping."""

    _role = "peer"

    def __init__(self, token: bytes | None, *, version: int, nonce: bytes | None) -> None:
        if token is not None and (not isinstance(token, bytes) or not token):
            raise TypeError("token must be non-empty bytes or None")
        if nonce is None:
            nonce = secrets.token_bytes(NONCE_SIZE)
        elif len(nonce) != NONCE_SIZE:
            raise ValueError(f"nonce must be {NONCE_SIZE} bytes")
        self._token = token
        self._version = version
        self._nonce = nonce
        self._decoder = Decoder(HANDSHAKE_CONFIG)
        self._encoder = Encoder(HANDSHAKE_CONFIG)
        self._out = bytearray()
        self._state = _State.DONE
        self._result: HandshakeResult | None = None
        self._error: ProtocolError | None = None

    @property
    def complete(self) -> bool:
        """Whether the handshake succeeded (see :attr:`result`)."""
        return self._result is not None

    @property
    def result(self) -> HandshakeResult:
        """The result; raises ``RuntimeError`` before completion."""
        if self._result is None:
            raise RuntimeError("handshake is not complete")
        return self._result

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after the last handshake frame; they belong to the connection."""
        return self._decoder.trailing_data

    def data_to_send(self) -> bytes:
        """Bytes to write to the peer (drained by this call)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the peer (``b""`` for EOF); raises on any handshake failure.

        On failure a ``reject`` frame may be queued: send :meth:`data_to_send`
        best-effort, then close the connection.
        """
        if self._error is not None:
            raise ProtocolError(f"handshake already failed: {self._error}") from self._error
        if self._result is not None:
            raise RuntimeError("handshake is complete; feed further data to the connection")
        try:
            try:
                self._decoder.receive_data(data)
                while self._result is None:
                    event = self._decoder.next_event()
                    if event is NEED_DATA:
                        return
                    if event is CLOSED:
                        raise HandshakeError(
                            f"peer closed the connection during the handshake ({self._state.value})"
                        )
                    assert isinstance(event, Message)
                    self._handle(event)
            except ProtocolError as exc:
                if not self._out and not isinstance(exc, HandshakeError):
                    # Framing garbage: tell a confused peer why before closing.
                    self._reject("protocol", f"invalid handshake frame: {exc.detail}")
                raise
        except ProtocolError as exc:
            self._error = exc
            raise

    def _handle(self, message: Message) -> None:
        raise NotImplementedError

    def _send(self, msg_type: str, **fields: Any) -> None:
        for frame in self._encoder.encode(Message(msg_type, fields)):
            self._out += frame

    def _reject(self, code: str, reason: str) -> None:
        self._out.clear()
        self._send("reject", code=code, reason=reason[:_MAX_REASON])

    def _expect(self, message: Message, expected: str) -> None:
        if message.type == "reject":
            raise self._peer_rejected(message)
        if message.type != expected:
            self._reject("protocol", f"expected a {expected!r} message, got {message.type!r}")
            raise HandshakeError(
                f"expected a {expected!r} handshake message, got {message.type!r:.40}"
            )
        if message.arrays:
            self._reject("protocol", f"{expected!r} message must not carry arrays")
            raise HandshakeError(f"{expected!r} handshake message must not carry arrays")

    def _peer_rejected(self, message: Message) -> ProtocolError:
        code = message.fields.get("code")
        reason = message.fields.get("reason")
        if not isinstance(reason, str):
            reason = "(no reason given)"
        reason = reason[:_MAX_REASON]
        if code == "auth":
            return AuthenticationError(reason, rejected_by_peer=True)
        if code == "version":
            return VersionMismatch(f"peer rejected our protocol version {self._version}: {reason}")
        return HandshakeError(f"peer rejected the handshake: {reason}")

    def _field_int(self, message: Message, key: str) -> int:
        value = message.fields.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            self._reject("protocol", f"{message.type!r} needs an int {key!r}")
            raise HandshakeError(
                f"{message.type!r} message needs an int {key!r}, got {value!r:.40}"
            )
        return value

    def _field_bytes(self, message: Message, key: str, *, optional: bool = False) -> bytes | None:
        value = message.fields.get(key)
        if value is None and optional:
            return None
        try:
            if not isinstance(value, str) or len(value) != 2 * NONCE_SIZE:
                raise ValueError
            return bytes.fromhex(value)
        except ValueError:
            self._reject("protocol", f"{message.type!r} needs a {NONCE_SIZE}-byte hex {key!r}")
            raise HandshakeError(
                f"{message.type!r} message needs {key!r} as {2 * NONCE_SIZE} hex digits, "
                f"got {value!r:.80}"
            ) from None

    def _check_version(self, peer_version: int) -> None:
        if peer_version != self._version:
            self._reject(
                "version",
                f"this {self._role} speaks protocol version {self._version}, not {peer_version}",
            )
            raise VersionMismatch(
                f"peer speaks protocol version {peer_version}, this side speaks {self._version}"
            )


class ServerHandshake(_Handshake):
    """Server side: queues ``hello`` at construction, then verifies the client's ``auth``.

    Usage: send :meth:`data_to_send`, feed received bytes to :meth:`receive_data`
    until :attr:`complete`, send :meth:`data_to_send` again (the ``welcome``).
    """

    _role = "server"

    def __init__(
        self, token: bytes | None, *, version: int = PROTOCOL_VERSION, nonce: bytes | None = None
    ) -> None:
        super().__init__(token, version=version, nonce=nonce)
        self._state = _State.AWAIT_AUTH
        self._send(
            "hello",
            protocol="aioforest",
            version=version,
            auth=_AUTH_HMAC if token is not None else _AUTH_NONE,
            nonce=self._nonce.hex(),
        )

    def _handle(self, message: Message) -> None:
        self._expect(message, "auth")
        self._check_version(self._field_int(message, "version"))
        client_nonce = self._field_bytes(message, "nonce")
        assert client_nonce is not None
        if hmac.compare_digest(client_nonce, self._nonce):
            self._reject("protocol", "client nonce equals the server nonce")
            raise HandshakeError("client echoed the server nonce as its own nonce")
        proof = self._field_bytes(message, "proof", optional=True)
        if self._token is None:
            if proof is not None:
                self._reject("auth", "this server has no token configured")
                raise AuthenticationError(
                    "client sent a token proof but this server has no token configured"
                )
            self._send("welcome", proof=None)
            self._result = HandshakeResult(self._version, authenticated=False)
        else:
            if proof is None:
                self._reject("auth", "this server requires a token")
                raise AuthenticationError("client sent no token proof (no token configured?)")
            expected = _mac(self._token, _CLIENT_LABEL, self._nonce, client_nonce)
            if not hmac.compare_digest(proof, expected):
                self._reject("auth", "wrong token")
                raise AuthenticationError("wrong token")
            self._send(
                "welcome", proof=_mac(self._token, _SERVER_LABEL, client_nonce, self._nonce).hex()
            )
            self._result = HandshakeResult(
                self._version,
                authenticated=True,
                session_key=_mac(self._token, _SESSION_LABEL, self._nonce, client_nonce),
            )
        self._state = _State.DONE


class ClientHandshake(_Handshake):
    """Client side: answers the server's ``hello`` and verifies its ``welcome``.

    Usage: feed received bytes to :meth:`receive_data` and send
    :meth:`data_to_send` after each call, until :attr:`complete`.
    """

    _role = "client"

    def __init__(
        self, token: bytes | None, *, version: int = PROTOCOL_VERSION, nonce: bytes | None = None
    ) -> None:
        super().__init__(token, version=version, nonce=nonce)
        self._state = _State.AWAIT_HELLO
        self._server_nonce = b""

    def _handle(self, message: Message) -> None:
        if self._state is _State.AWAIT_HELLO:
            self._on_hello(message)
        else:
            self._on_welcome(message)

    def _on_hello(self, message: Message) -> None:
        self._expect(message, "hello")
        if message.fields.get("protocol") != "aioforest":
            self._reject("protocol", "this client speaks the aioforest protocol")
            raise HandshakeError(
                f"peer is not an aioforest server (protocol {message.fields.get('protocol')!r:.40})"
            )
        self._check_version(self._field_int(message, "version"))
        auth = message.fields.get("auth")
        server_nonce = self._field_bytes(message, "nonce")
        assert server_nonce is not None
        self._server_nonce = server_nonce
        if auth == _AUTH_NONE:
            if self._token is not None:
                self._reject("auth", "this client requires an authenticated server")
                raise AuthenticationError(
                    "server does not authenticate (no token configured on the server) but this "
                    "client has a token; refusing to talk to an unauthenticated server"
                )
            self._send("auth", version=self._version, nonce=self._nonce.hex(), proof=None)
        elif auth == _AUTH_HMAC:
            if self._token is None:
                self._reject("auth", "this client has no token configured")
                raise AuthenticationError(
                    "server requires a token but none is configured on this client",
                    rejected_by_peer=True,
                )
            proof = _mac(self._token, _CLIENT_LABEL, server_nonce, self._nonce)
            self._send("auth", version=self._version, nonce=self._nonce.hex(), proof=proof.hex())
        else:
            self._reject("protocol", f"unsupported auth method {auth!r:.40}")
            raise HandshakeError(f"server offers unsupported auth method {auth!r:.40}")
        self._state = _State.AWAIT_WELCOME

    def _on_welcome(self, message: Message) -> None:
        self._expect(message, "welcome")
        proof = self._field_bytes(message, "proof", optional=True)
        if self._token is None:
            if proof is not None:
                raise AuthenticationError("unauthenticated server unexpectedly sent a proof")
            self._result = HandshakeResult(self._version, authenticated=False)
        else:
            expected = _mac(self._token, _SERVER_LABEL, self._nonce, self._server_nonce)
            if proof is None or not hmac.compare_digest(proof, expected):
                raise AuthenticationError(
                    "server proof does not match: the server holds a different token or is "
                    "an impostor"
                )
            self._result = HandshakeResult(
                self._version,
                authenticated=True,
                session_key=_mac(self._token, _SESSION_LABEL, self._server_nonce, self._nonce),
            )
        self._state = _State.DONE
