"""Thin asyncio adapter: a :class:`Connection` over ``StreamReader``/``StreamWriter``.

All protocol logic lives in the sans-IO :class:`Encoder`, :class:`Decoder` and
handshake state machines; this module only moves bytes.

Sending.  ``await conn.send(msg)`` puts the message in an outbox that one writer
task drains.  Single-frame ("control") messages go first, in FIFO order; chunked
messages are interleaved one chunk at a time, round-robin over at most
``WireConfig.max_active_streams`` streams, so a heartbeat waits for at most one
chunk (1 MiB by default) rather than a whole multi-megabyte transfer.  ``send``
returns once the message's last frame has been handed to the transport and
``drain()`` allowed it (backpressure): after that the caller may reuse the arrays.
Each chunk is compressed in the writer task, on the event loop: zlib level 1 takes a
few milliseconds per MiB, which is acceptable per chunk and is why chunks are small.

Receiving.  ``await conn.recv()`` returns the next complete :class:`Message`.  It
raises :class:`ConnectionClosed` when the peer closed cleanly (or the connection was
lost or closed locally) and a :class:`ProtocolError` naming the peer on garbage, after
which the connection is closed: a stream is never reused after a protocol error.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import ssl as ssl_module
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from ._chunk import CLOSED, Decoder, EncodedFrame, Encoder, Sentinel, WireStats
from ._errors import ConnectionClosed, HandshakeTimeout, ProtocolError
from ._frame import DEFAULT_CONFIG, Message, WireConfig
from ._handshake import ClientHandshake, HandshakeResult, ServerHandshake

__all__ = [
    "Connection",
    "ConnectionStats",
    "accept",
    "check_tls_pair",
    "client_ssl_context",
    "format_peer",
    "is_loopback",
    "open_connection",
    "server_ssl_context",
]

_READ_SIZE: Final = 256 * 1024
#: A frame costing at least this many bytes to copy and inflate is decoded in a thread:
#: about 0.1 ms of work inline, so heartbeats and small replies do not pay a thread hop.
OFF_LOOP_FRAME_BYTES: Final = 256 * 1024
_HANDSHAKE_READ_SIZE: Final = 4096
#: Control frames written back to back before a pending chunk gets its turn.
_CONTROL_BURST: Final = 32


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    """Snapshot of a connection's counters (see :class:`WireStats`)."""

    sent: WireStats
    received: WireStats


class _Outgoing:
    __slots__ = ("frames", "frames_left", "future")

    def __init__(
        self, frames: Iterator[EncodedFrame], frames_left: int, future: asyncio.Future[None]
    ) -> None:
        self.frames = frames
        self.frames_left = frames_left
        self.future = future


def format_peer(peername: object) -> str:
    """``"host:port"`` (``"[v6]:port"``) from ``get_extra_info("peername")``."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    if isinstance(peername, str) and peername:
        return peername
    return "unknown peer"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (an IP literal in 127/8 or ::1, or localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Connection:
    """A framed, authenticated message connection (see the module docstring).

    Usually created by :func:`open_connection` or :func:`accept`.  ``initial_data``
    are bytes already read from ``reader`` (e.g. after the handshake's last frame).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        config: WireConfig = DEFAULT_CONFIG,
        peer: str | None = None,
        handshake: HandshakeResult | None = None,
        initial_data: bytes = b"",
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.config = config
        self.peer = peer if peer is not None else format_peer(writer.get_extra_info("peername"))
        self.handshake = handshake
        self._encoder = Encoder(config)
        self._decoder = Decoder(config)
        if initial_data:
            self._decoder.receive_data(initial_data)
        self._control: deque[_Outgoing] = deque()
        self._waiting: deque[_Outgoing] = deque()
        self._active: deque[_Outgoing] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer_task: asyncio.Task[None] | None = None
        self._in_flight: _Outgoing | None = None
        self._sent = WireStats()
        self._closed = False
        self._failure: BaseException | None = None
        self._receiving = False
        self._decoding: asyncio.Future[Message | Sentinel] | None = None
        self._burst = 0  # control frames written since the last chunk

    # ------------------------------------------------------------------ state

    @property
    def local_address(self) -> tuple[str, int] | None:
        """This end's (host, port), or None when the transport does not say."""
        name = self._writer.get_extra_info("sockname")
        if isinstance(name, tuple) and len(name) >= 2:
            return str(name[0]), int(name[1])
        return None

    @property
    def closed(self) -> bool:
        """Whether the connection was closed (locally or after an error)."""
        return self._closed

    @property
    def stats(self) -> ConnectionStats:
        """Frames, messages and bytes sent and received so far (raw and on the wire)."""
        return ConnectionStats(self._sent.copy(), self._decoder.stats.copy())

    def get_extra_info(self, name: str, default: object = None) -> object:
        """Transport information, as ``StreamWriter.get_extra_info`` (e.g. ``"peercert"``)."""
        return self._writer.get_extra_info(name, default)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Connection peer={self.peer} {state}>"

    # ------------------------------------------------------------------ sending

    async def send(self, message: Message) -> None:
        """Send ``message``; returns when its last frame has been written and drained.

        Raises ``TypeError``/``ValueError`` immediately for an unencodable message and
        :class:`ConnectionClosed` if the connection is or becomes unusable.  If the
        caller is cancelled before the message started going out, it is dropped; once
        a chunked message has started, its remaining chunks are still sent (the peer
        would otherwise hold a half-received message) so its arrays must stay unchanged.
        """
        self._check_sendable()
        frames = self._encoder.iter_frames(message)
        chunked = self._encoder.is_chunked(message)
        count = math.ceil(message.nbytes / self.config.chunk_size) if chunked else 1
        item = _Outgoing(frames, count, asyncio.get_running_loop().create_future())
        (self._waiting if chunked else self._control).append(item)
        self._idle.clear()
        if self._writer_task is None:
            self._writer_task = asyncio.get_running_loop().create_task(
                self._write_loop(), name=f"aioforest-wire-writer-{self.peer}"
            )
        self._wakeup.set()
        await item.future

    def _check_sendable(self) -> None:
        if self._failure is not None:
            raise ConnectionClosed(
                f"connection to peer {self.peer} failed: {self._failure}"
            ) from self._failure
        if self._closed:
            raise ConnectionClosed(f"connection to peer {self.peer} is closed")

    def _next_item(self) -> _Outgoing | None:
        """Pick what to write next: control frames first, then one chunk round-robin."""
        while self._control and (self._burst < _CONTROL_BURST or not self._has_streams()):
            item = self._control.popleft()
            if not item.future.cancelled():
                self._burst += 1
                return item
        while self._waiting and len(self._active) < self.config.max_active_streams:
            waiting = self._waiting.popleft()
            if not waiting.future.cancelled():
                self._active.append(waiting)
        if self._active:
            self._burst = 0
            return self._active.popleft()
        return None

    def _has_streams(self) -> bool:
        return bool(self._active) or any(not w.future.cancelled() for w in self._waiting)

    async def _write_loop(self) -> None:
        try:
            while True:
                item = self._next_item()
                if item is None:
                    self._idle.set()
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                frame = next(item.frames)
                item.frames_left -= 1
                if item.frames_left > 0:
                    self._active.append(item)  # back of the round-robin queue
                else:
                    self._in_flight = item  # in no queue while its last frame drains
                self._writer.write(frame.data)
                self._sent.frames += 1
                self._sent.raw_bytes += frame.raw_size
                self._sent.wire_bytes += len(frame.data)
                await self._writer.drain()
                if item.frames_left == 0:
                    self._in_flight = None
                    self._sent.messages += 1
                    if not item.future.done():
                        item.future.set_result(None)
        except Exception as exc:  # transport failure or an encoder bug: the stream is unusable
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None and not self._closed:
            self._failure = exc
        self._fail_pending(
            ConnectionClosed(f"connection to peer {self.peer} failed while sending: {exc}")
        )
        self._closed = True
        self._writer.close()

    def _fail_pending(self, error: ConnectionClosed) -> None:
        items = [*self._control, *self._active, *self._waiting]
        if self._in_flight is not None:
            items.append(self._in_flight)
        self._control.clear()
        self._active.clear()
        self._waiting.clear()
        self._in_flight = None
        for item in items:
            if not item.future.done():
                item.future.set_exception(error)
        self._idle.set()

    # ------------------------------------------------------------------ receiving

    # A per-call timeout is part of the API (ASYNC109): recv must stay usable afterwards.
    async def recv(self, timeout: float | None = None) -> Message:  # noqa: ASYNC109
        """The next message from the peer.

        ``timeout`` (seconds) raises the builtin ``TimeoutError`` and leaves the
        connection usable: no bytes are lost.  Only one task may await ``recv`` at
        a time.
        """
        if self._receiving:
            raise RuntimeError("recv() is already being awaited by another task")
        self._receiving = True
        try:
            async with asyncio.timeout(timeout):
                return await self._recv()
        finally:
            self._receiving = False

    async def _next_event(self) -> Message | Sentinel:
        """The decoder's next event; a big frame is copied and inflated in a thread.

        The thread's work is shielded: a ``recv`` cancelled (or timed out) meanwhile
        leaves it running, and the next ``recv`` takes its event, so nothing is lost.
        """
        if self._decoding is None:
            if self._decoder.ready_frame_cost < OFF_LOOP_FRAME_BYTES:
                return self._decoder.next_event()
            self._decoding = asyncio.ensure_future(asyncio.to_thread(self._decoder.next_event))
        decoding = self._decoding
        try:
            return await asyncio.shield(decoding)
        finally:
            if decoding.done():
                self._decoding = None

    async def _recv(self) -> Message:
        while True:
            try:
                event = await self._next_event()
            except ProtocolError as exc:
                if self._closed:
                    raise ConnectionClosed(f"connection to peer {self.peer} is closed") from exc
                self.close()
                raise exc.with_peer(self.peer) from None
            if isinstance(event, Message):
                return event
            if event is CLOSED:
                if self._closed:
                    raise ConnectionClosed(f"connection to peer {self.peer} is closed")
                raise ConnectionClosed(f"peer {self.peer} closed the connection")
            if self._closed:
                raise ConnectionClosed(f"connection to peer {self.peer} is closed")
            try:
                data = await self._reader.read(_READ_SIZE)
            except OSError as exc:
                self.close()
                raise ConnectionClosed(f"connection to peer {self.peer} lost: {exc}") from exc
            self._decoder.receive_data(data)

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Close now without waiting.

        Queued messages are dropped (their senders get :class:`ConnectionClosed`);
        bytes already handed to the transport are still flushed in the background.
        """
        if self._closed:
            return
        self._closed = True
        if self._decoding is not None:  # a decode no recv will take: drop its outcome
            self._decoding.add_done_callback(_consume)
        if self._writer_task is not None:
            self._writer_task.cancel()
        self._fail_pending(ConnectionClosed(f"connection to peer {self.peer} was closed"))
        self._writer.close()

    def abort(self) -> None:
        """Close immediately, discarding even the bytes buffered in the transport."""
        self.close()
        self._writer.transport.abort()

    # ``timeout`` bounds the graceful part only; the close always happens (noqa ASYNC109).
    async def aclose(self, *, flush: bool = True, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Close and wait until the transport is closed.

        With ``flush`` (the default), first wait until every queued message is
        written and the transport has flushed it to the kernel; if that takes longer
        than ``timeout`` seconds (a peer that stopped reading), abort instead.
        Without ``flush``, abort at once.
        """
        if not flush:
            self.abort()
        else:
            try:
                async with asyncio.timeout(timeout):
                    if not self._closed:
                        await self._idle.wait()
                    self.close()
                    with contextlib.suppress(OSError):
                        await self._writer.wait_closed()
            except TimeoutError:
                self.abort()
        task = self._writer_task
        if task is not None:
            await asyncio.wait([task])
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose(flush=exc is None)


# ---------------------------------------------------------------------- handshake helpers


async def _run_handshake(
    hs: ClientHandshake | ServerHandshake,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    peer: str,
    deadline: float,
    timeout: float,  # noqa: ASYNC109 - only used in the error message; deadline applies
) -> tuple[HandshakeResult, bytes]:
    try:
        async with asyncio.timeout_at(deadline):
            while True:
                out = hs.data_to_send()
                if out:
                    writer.write(out)
                    await writer.drain()
                if hs.complete:
                    return hs.result, hs.trailing_data
                hs.receive_data(await reader.read(_HANDSHAKE_READ_SIZE))
    except ProtocolError as exc:
        out = hs.data_to_send()
        if out:  # best effort: tell the peer why; close() flushes it
            with contextlib.suppress(Exception):
                writer.write(out)
        writer.close()
        raise exc.with_peer(peer) from None
    except TimeoutError:
        writer.close()
        raise HandshakeTimeout(
            f"handshake did not complete within {timeout:g} s", peer=peer
        ) from None
    except OSError as exc:
        writer.close()
        raise ConnectionClosed(
            f"connection to peer {peer} lost during the handshake: {exc}"
        ) from exc
    except BaseException:
        writer.close()
        raise


async def open_connection(
    host: str,
    port: int,
    *,
    token: bytes | None,
    ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109 - one deadline for connect + handshake
    config: WireConfig = DEFAULT_CONFIG,
) -> Connection:
    """Connect to a server and run the client handshake; ``timeout`` covers both.

    Raises ``TimeoutError`` if the TCP (and TLS) connection is not established in
    time, :class:`HandshakeTimeout` if the handshake then stalls, and a
    :class:`ProtocolError` (e.g. :class:`AuthenticationError`) if it fails.
    """
    hs = ClientHandshake(token)  # validates the token before connecting
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        async with asyncio.timeout_at(deadline):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=ssl, server_hostname=server_hostname if ssl else None
            )
    except TimeoutError:
        raise TimeoutError(f"connecting to {host}:{port} timed out after {timeout:g} s") from None
    peer = format_peer(writer.get_extra_info("peername"))
    result, trailing = await _run_handshake(hs, reader, writer, peer, deadline, timeout)
    return Connection(
        reader, writer, config=config, peer=peer, handshake=result, initial_data=trailing
    )


async def accept(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    token: bytes | None,
    timeout: float = 10.0,  # noqa: ASYNC109 - one deadline for connect + handshake
    config: WireConfig = DEFAULT_CONFIG,
) -> Connection:
    """Run the server handshake on a freshly accepted connection.

    Call it from an ``asyncio.start_server`` callback.  On failure the writer is
    closed and the error (naming the peer) is raised; the caller only logs it.
    """
    peer = format_peer(writer.get_extra_info("peername"))
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        hs = ServerHandshake(token)
    except BaseException:
        writer.close()
        raise
    result, trailing = await _run_handshake(hs, reader, writer, peer, deadline, timeout)
    return Connection(
        reader, writer, config=config, peer=peer, handshake=result, initial_data=trailing
    )


# ---------------------------------------------------------------------- TLS helpers


def check_tls_pair(
    cert: str | None, key: str | None, names: tuple[str, str] = ("cert", "key")
) -> None:
    """A certificate and its private key: both or neither (``names`` name them in the error)."""
    if (cert is None) != (key is None):
        raise ValueError(f"{names[0]} and {names[1]} go together")


def server_ssl_context(cert: str, key: str, ca: str | None = None) -> ssl_module.SSLContext:
    """TLS >= 1.2 server context; with ``ca``, clients must present a certificate it signed."""
    ctx = ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl_module.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if ca is not None:
        ctx.load_verify_locations(cafile=ca)
        ctx.verify_mode = ssl_module.CERT_REQUIRED
    return ctx


def client_ssl_context(
    ca: str,
    cert: str | None = None,
    key: str | None = None,
    *,
    check_hostname: bool = True,
) -> ssl_module.SSLContext:
    """TLS >= 1.2 client context trusting ``ca``; ``cert``/``key`` for mutual TLS.

    Hostname checking is on by default (certificates need the server's DNS name or IP
    address as a subject alternative name); turn it off only for private CAs whose
    every certificate is a cluster member.
    """
    check_tls_pair(cert, key)
    ctx = ssl_module.create_default_context(ssl_module.Purpose.SERVER_AUTH, cafile=ca)
    ctx.minimum_version = ssl_module.TLSVersion.TLSv1_2
    ctx.check_hostname = check_hostname
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def _consume(future: asyncio.Future[Message | Sentinel]) -> None:
    if not future.cancelled():
        future.exception()
