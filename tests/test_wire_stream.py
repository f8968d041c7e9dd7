"""Asyncio adapter tests on real loopback sockets (127.0.0.1, ephemeral ports)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import ssl
import struct
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from tls_certs import write_pki

from aioforest.wire import (
    DEFAULT_CONFIG,
    HANDSHAKE_CONFIG,
    MAGIC,
    NEED_DATA,
    AuthenticationError,
    BadMagic,
    ClientHandshake,
    Connection,
    ConnectionClosed,
    Decoder,
    Encoder,
    FrameTooLarge,
    HandshakeError,
    HandshakeTimeout,
    Message,
    TruncatedFrame,
    WireConfig,
    accept,
    client_ssl_context,
    open_connection,
    server_ssl_context,
)

TOKEN = b"loopback test token"
MiB = 1024 * 1024
HOST = "127.0.0.1"


class Acceptor:
    """``asyncio.start_server`` callback: runs :func:`accept` and reports the outcome."""

    def __init__(
        self, token: bytes | None, *, timeout: float = 5.0, config: WireConfig = DEFAULT_CONFIG
    ) -> None:
        self.token = token
        self.timeout = timeout
        self.config = config
        self.results: asyncio.Queue[Connection | Exception] = asyncio.Queue()
        self.connections: list[Connection] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            conn = await accept(
                reader, writer, token=self.token, timeout=self.timeout, config=self.config
            )
        except Exception as exc:
            self.results.put_nowait(exc)
            return
        self.connections.append(conn)
        self.results.put_nowait(conn)

    async def next_result(self) -> Connection | Exception:
        # A generous guard against hangs, not a synchronisation device.
        return await asyncio.wait_for(self.results.get(), 30)

    async def connection(self) -> Connection:
        result = await self.next_result()
        if isinstance(result, Exception):
            raise result
        return result


@contextlib.asynccontextmanager
async def serve(acceptor: Acceptor, ssl_ctx: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    server = await asyncio.start_server(acceptor, HOST, 0, ssl=ssl_ctx)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for conn in acceptor.connections:
            await conn.aclose(flush=False)
        await server.wait_closed()


@contextlib.asynccontextmanager
async def raw_client(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def local_peer(writer: asyncio.StreamWriter) -> str:
    host, port = writer.get_extra_info("sockname")[:2]
    return f"{host}:{port}"


def handshake_messages(data: bytes) -> list[Message]:
    dec = Decoder(HANDSHAKE_CONFIG)
    dec.receive_data(data)
    out = []
    while (ev := dec.next_event()) is not NEED_DATA:
        assert isinstance(ev, Message)
        out.append(ev)
    return out


def random_bytes(n: int, seed: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Incompressible payload, so every chunk really crosses the socket."""
    words = np.random.default_rng(seed).integers(0, 2**63, size=n // 8, dtype=np.uint64)
    return words.view(np.uint8)


async def wait_for_frames_sent(conn: Connection, n: int) -> None:
    """Step the loop until the writer task has written ``n`` frames (bounded)."""
    for _ in range(1000):
        if conn.stats.sent.frames >= n:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"writer did not write {n} frames")


# ----------------------------------------------------------------------------- happy paths


@pytest.mark.asyncio
async def test_round_trip_with_authentication_and_stats() -> None:
    acc = Acceptor(TOKEN)
    async with serve(acc) as port:
        client = await open_connection(HOST, port, token=TOKEN)
        async with client:
            server = await acc.connection()
            assert client.handshake is not None and client.handshake.authenticated
            assert server.handshake is not None and server.handshake.authenticated
            assert client.peer == f"{HOST}:{port}"
            assert re.fullmatch(r"127\.0\.0\.1:\d+", server.peer)

            task = Message("task", {"tree": 3}, [np.zeros((300, 100)), np.arange(10, dtype="<i4")])
            await client.send(task)
            got = await server.recv()
            assert got.type == "task" and got.fields == {"tree": 3}
            np.testing.assert_array_equal(got.arrays[0], np.zeros((300, 100)))
            np.testing.assert_array_equal(got.arrays[1], np.arange(10))

            await server.send(Message("result", {"tree": 3, "ok": True}))
            reply = await client.recv()
            assert reply.type == "result" and reply.fields == {"tree": 3, "ok": True}

            sent, received = client.stats.sent, server.stats.received
            assert sent.frames == received.frames == 1
            assert sent.messages == received.messages == 1
            assert sent.wire_bytes == received.wire_bytes
            assert sent.raw_bytes == received.raw_bytes > 240_000 > 10 * sent.wire_bytes
        assert client.closed


@pytest.mark.asyncio
async def test_unauthenticated_mode_on_loopback() -> None:
    acc = Acceptor(None)
    async with serve(acc) as port:
        client = await open_connection(HOST, port, token=None)
        async with client:
            server = await acc.connection()
            assert client.handshake is not None and not client.handshake.authenticated
            await server.send(Message("hello", {"n": 1}))
            assert (await client.recv()).fields == {"n": 1}


@pytest.mark.asyncio
async def test_small_message_overtakes_a_large_transfer() -> None:
    acc = Acceptor(TOKEN)
    async with serve(acc) as port:
        client = await open_connection(HOST, port, token=TOKEN)
        async with client:
            server = await acc.connection()
            # Incompressible, so all 50 chunks really cross the socket.
            payload = random_bytes(50 * MiB, seed=7)
            big = asyncio.create_task(client.send(Message("dataset", {"id": 1}, [payload])))
            await wait_for_frames_sent(client, 1)  # the transfer has started
            small = asyncio.create_task(client.send(Message("heartbeat", {"n": 1})))

            first = await server.recv()
            assert first.type == "heartbeat"
            assert not big.done()
            # At most a few chunks (what the socket buffers hold) went ahead of it.
            assert server.stats.received.frames < 26

            second = await server.recv()
            assert second.type == "dataset" and second.fields == {"id": 1}
            assert np.array_equal(second.arrays[0], payload)
            await asyncio.gather(big, small)
            assert client.stats.sent.frames == 51
            assert client.stats.sent.messages == 2


@pytest.mark.asyncio
async def test_recv_timeout_leaves_the_connection_usable() -> None:
    acc = Acceptor(TOKEN)
    async with serve(acc) as port:
        client = await open_connection(HOST, port, token=TOKEN)
        async with client:
            server = await acc.connection()
            with pytest.raises(TimeoutError):
                await server.recv(timeout=0.05)
            await client.send(Message("late"))
            assert (await server.recv(timeout=10)).type == "late"


@pytest.mark.asyncio
async def test_big_frames_are_decoded_in_a_thread_and_a_cancelled_recv_loses_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_loop: list[bool] = []
    entered, release = threading.Event(), threading.Event()
    real = Decoder.next_event

    def spy(self: Decoder) -> Any:
        on_loop.append(threading.current_thread() is threading.main_thread())
        if not on_loop[-1] and not release.is_set():
            entered.set()
            release.wait(30)  # held until the recv that started this decode is cancelled
        return real(self)

    monkeypatch.setattr(Decoder, "next_event", spy)
    payload = random_bytes(3 * MiB, seed=5)
    acc = Acceptor(TOKEN)
    async with serve(acc) as port:
        client = await open_connection(HOST, port, token=TOKEN)
        async with client:
            server = await acc.connection()
            await client.send(Message("small"))
            assert (await server.recv(timeout=10)).type == "small"
            assert on_loop and all(on_loop)  # a small frame never leaves the loop
            send = asyncio.ensure_future(client.send(Message("big", {}, [payload])))
            recv = asyncio.ensure_future(server.recv())
            assert await asyncio.to_thread(entered.wait, 30)
            recv.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recv
            release.set()
            big = await server.recv(timeout=30)
            await send
    assert big.type == "big" and np.array_equal(big.arrays[0], payload)
    assert not all(on_loop)


@pytest.mark.asyncio
async def test_clean_close_and_graceful_flush() -> None:
    acc = Acceptor(TOKEN)
    async with serve(acc) as port:
        client = await open_connection(HOST, port, token=TOKEN)
        server = await acc.connection()
        sends = [asyncio.create_task(client.send(Message("m", {"i": i}))) for i in range(3)]
        await asyncio.sleep(0)  # the send tasks enqueue their messages
        await client.aclose()  # flushes the outbox before closing
        await asyncio.gather(*sends)
        assert [(await server.recv()).fields["i"] for _ in range(3)] == [0, 1, 2]
        with pytest.raises(ConnectionClosed, match=r"peer 127\.0\.0\.1:\d+ closed the connection"):
            await server.recv()
        with pytest.raises(ConnectionClosed):
            await server.recv()
        with pytest.raises(ConnectionClosed, match="is closed"):
            await client.send(Message("after close"))


@pytest.mark.asyncio
async def test_close_fails_pending_sends_and_peer_sees_truncation() -> None:
    acc = Acceptor(TOKEN)
    async with serve(acc) as port:
        client = await open_connection(HOST, port, token=TOKEN)
        server = await acc.connection()
        payload = random_bytes(30 * MiB, seed=3)
        pending = asyncio.create_task(client.send(Message("big", {}, [payload])))
        await wait_for_frames_sent(client, 1)
        client.close()  # drops the rest; what the transport already holds is flushed
        with pytest.raises(ConnectionClosed, match="was closed"):
            await pending
        with pytest.raises(TruncatedFrame, match=r"^peer 127\.0\.0\.1:\d+: .*stream\(s\) 1 "):
            while True:
                await server.recv()
        await client.aclose()
        assert server.closed


@pytest.mark.asyncio
async def test_aclose_gives_up_flushing_to_a_peer_that_does_not_read() -> None:
    acc = Acceptor(TOKEN)
    async with serve(acc) as port:
        client = await open_connection(HOST, port, token=TOKEN)
        await acc.connection()  # never reads
        payload = random_bytes(30 * MiB, seed=5)
        pending = asyncio.create_task(client.send(Message("big", {}, [payload])))
        await wait_for_frames_sent(client, 1)
        await client.aclose(timeout=0.1)
        assert client.closed
        with pytest.raises(ConnectionClosed):
            await pending


@pytest.mark.asyncio
async def test_concurrent_recv_is_refused() -> None:
    acc = Acceptor(TOKEN)
    async with serve(acc) as port:
        client = await open_connection(HOST, port, token=TOKEN)
        async with client:
            server = await acc.connection()
            first = asyncio.create_task(server.recv())
            await asyncio.sleep(0)
            with pytest.raises(RuntimeError, match="already being awaited"):
                await server.recv()
            await client.send(Message("x"))
            assert (await first).type == "x"


# ----------------------------------------------------------------------------- refusals


@pytest.mark.asyncio
async def test_wrong_token_is_refused_on_both_sides() -> None:
    acc = Acceptor(TOKEN)
    async with serve(acc) as port:
        with pytest.raises(AuthenticationError) as info:
            await open_connection(HOST, port, token=b"not the token")
        assert str(info.value) == f"peer {HOST}:{port} rejected our authentication: wrong token"
        err = await acc.next_result()
        assert isinstance(err, AuthenticationError)
        assert re.fullmatch(r"peer 127\.0\.0\.1:\d+ failed authentication: wrong token", str(err))
        assert acc.connections == []


@pytest.mark.asyncio
async def test_silent_client_times_out() -> None:
    acc = Acceptor(TOKEN, timeout=0.2)
    async with serve(acc) as port, raw_client(port) as (reader, writer):
        err = await acc.next_result()
        assert isinstance(err, HandshakeTimeout)
        assert str(err) == f"peer {local_peer(writer)}: handshake did not complete within 0.2 s"
        data = await reader.read()  # the hello, then EOF: the server hung up
        assert [m.type for m in handshake_messages(data)] == ["hello"]


@pytest.mark.asyncio
async def test_silent_server_times_out_the_client() -> None:
    mute_writers: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mute_writers.append(writer)

    server = await asyncio.start_server(mute, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(HandshakeTimeout, match=f"peer {HOST}:{port}: handshake did not"):
            await open_connection(HOST, port, token=TOKEN, timeout=0.2)
    finally:
        for w in mute_writers:
            w.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("payload", "error", "match"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", BadMagic, "bad magic b'GET '"),
        (struct.pack("!4sBBHIIQ", MAGIC, 1, 0, 0, 10, 2**32 - 1, 2**32 - 1), FrameTooLarge, "max_"),
        (Encoder().encode(Message("task", {"id": 1}))[0], HandshakeError, "expected a 'auth'"),
    ],
)
@pytest.mark.asyncio
async def test_bytes_before_the_handshake_are_refused(
    payload: bytes, error: type[Exception], match: str
) -> None:
    acc = Acceptor(TOKEN)
    async with serve(acc) as port, raw_client(port) as (reader, writer):
        writer.write(payload)
        err = await acc.next_result()
        assert isinstance(err, error)
        assert re.search(match, str(err))
        assert str(err).startswith(f"peer {local_peer(writer)}")
        data = await reader.read()
        assert [m.type for m in handshake_messages(data)] == ["hello", "reject"]
        assert acc.connections == []


@pytest.mark.asyncio
async def test_garbage_after_the_handshake_raises_naming_peer_and_frame() -> None:
    acc = Acceptor(TOKEN)
    async with serve(acc) as port, raw_client(port) as (reader, writer):
        hs = ClientHandshake(TOKEN)
        while not hs.complete:
            hs.receive_data(await reader.read(4096))
            writer.write(hs.data_to_send())
        server = await acc.connection()
        ok = Encoder().encode(Message("ok"))[0]
        writer.write(ok + b"garbage!" * 4)
        assert (await server.recv()).type == "ok"
        with pytest.raises(BadMagic) as info:
            await server.recv()
        assert str(info.value).startswith(
            f"peer {local_peer(writer)}, frame 1 (stream byte {len(ok)}): bad magic b'garb'"
        )
        assert server.closed
        with pytest.raises(ConnectionClosed):
            await server.recv()
        assert await reader.read() == b""  # the server hung up


# ----------------------------------------------------------------------------- TLS



@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    """Test-only CA, server (SAN 127.0.0.1) and client certificates, valid until 2126."""
    return write_pki(tmp_path)


@pytest.mark.asyncio
async def test_mutual_tls_round_trip(pki: dict[str, str]) -> None:
    server_ctx = server_ssl_context(pki["server_cert"], pki["server_key"], ca=pki["ca"])
    client_ctx = client_ssl_context(pki["ca"], pki["client_cert"], pki["client_key"])
    acc = Acceptor(TOKEN)
    async with serve(acc, server_ctx) as port:
        client = await open_connection(HOST, port, token=TOKEN, ssl=client_ctx)
        async with client:
            server = await acc.connection()
            assert client.get_extra_info("ssl_object") is not None
            peercert = server.get_extra_info("peercert")
            assert isinstance(peercert, dict)
            assert peercert["subject"] == ((("commonName", "aioforest test client"),),)
            payload = np.arange(400_000, dtype=np.float64)  # 3.2 MB: chunked over TLS
            await client.send(Message("data", {}, [payload]))
            got = await server.recv()
            np.testing.assert_array_equal(got.arrays[0], payload)


@pytest.mark.asyncio
async def test_tls_client_refuses_a_server_from_an_untrusted_ca(pki: dict[str, str]) -> None:
    server_ctx = server_ssl_context(pki["server_cert"], pki["server_key"])
    acc = Acceptor(TOKEN)
    async with serve(acc, server_ctx) as port:
        with pytest.raises(ssl.SSLCertVerificationError):
            await open_connection(HOST, port, token=TOKEN, ssl=client_ssl_context(pki["other_ca"]))
        assert acc.connections == []


@pytest.mark.asyncio
async def test_tls_server_requiring_client_certificates_refuses_a_client_without_one(
    pki: dict[str, str],
) -> None:
    server_ctx = server_ssl_context(pki["server_cert"], pki["server_key"], ca=pki["ca"])
    acc = Acceptor(TOKEN)
    async with serve(acc, server_ctx) as port:
        # With TLS 1.3 the client learns of the refusal only when it next reads, during
        # the aioforest handshake: as an SSL alert (OSError) or the server hanging up
        # (HandshakeError); with TLS 1.2 the TLS handshake itself fails (SSLError).
        with pytest.raises((OSError, HandshakeError)):
            await open_connection(HOST, port, token=TOKEN, ssl=client_ssl_context(pki["ca"]))
        assert acc.connections == []


# ----------------------------------------------------------------------------- outbox scheduling
# A fake writer whose drain() blocks until the test opens a gate makes the writer
# task's choices fully deterministic.


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


class FakeWriter:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.closed = False
        self.transport = FakeTransport()

    def write(self, data: bytes) -> None:
        self.frames.append(bytes(data))

    async def drain(self) -> None:
        await self.gate.wait()

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        return None

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("10.0.0.1", 4242) if name == "peername" else default

    def labels(self) -> list[str]:
        """``type`` or ``type/seq`` of every written frame."""
        out = []
        for f in self.frames:
            (hl,) = struct.unpack_from("!I", f, 8)
            header = orjson.loads(f[24 : 24 + hl])
            if header["type"] == "chunk":
                name = (
                    header["message"]["type"] if header["seq"] == 0 else f"s{header['stream_id']}"
                )
                out.append(f"{name}/{header['seq']}")
            else:
                out.append(header["type"])
        return out


SCHED = WireConfig(chunk_size=1024, max_header_size=1024, max_frame_size=4096,
                   max_decompressed_size=4096, compression=False)  # fmt: skip


def fake_connection(config: WireConfig = SCHED) -> tuple[Connection, FakeWriter]:
    writer = FakeWriter()
    conn = Connection(asyncio.StreamReader(), writer, config=config)  # type: ignore[arg-type]
    assert conn.peer == "10.0.0.1:4242"
    return conn, writer


def big(name: str, chunks: int) -> Message:
    return Message(name, {}, [bytes(1024 * chunks)])


@pytest.mark.asyncio
async def test_control_frames_go_first_and_streams_alternate() -> None:
    conn, writer = fake_connection()
    writer.gate.clear()
    a = asyncio.create_task(conn.send(big("A", 3)))
    await wait_for_frames_sent(conn, 1)  # A/0 written, the writer waits in drain()
    b = asyncio.create_task(conn.send(big("B", 3)))
    c = asyncio.create_task(conn.send(Message("C")))
    await asyncio.sleep(0)
    writer.gate.set()
    await asyncio.gather(a, b, c)
    assert writer.labels() == ["A/0", "C", "s1/1", "B/0", "s1/2", "s2/1", "s2/2"]
    await conn.aclose()


@pytest.mark.asyncio
async def test_max_active_streams_serialises_streams() -> None:
    conn, writer = fake_connection(dataclasses.replace(SCHED, max_active_streams=1))
    writer.gate.clear()
    a = asyncio.create_task(conn.send(big("A", 2)))
    await wait_for_frames_sent(conn, 1)
    b = asyncio.create_task(conn.send(big("B", 2)))
    await asyncio.sleep(0)
    writer.gate.set()
    await asyncio.gather(a, b)
    assert writer.labels() == ["A/0", "s1/1", "B/0", "s2/1"]
    await conn.aclose()


@pytest.mark.asyncio
async def test_cancelled_queued_send_is_dropped() -> None:
    conn, writer = fake_connection()
    writer.gate.clear()
    a = asyncio.create_task(conn.send(big("A", 2)))
    await wait_for_frames_sent(conn, 1)
    c = asyncio.create_task(conn.send(Message("C")))
    await asyncio.sleep(0)
    c.cancel()
    writer.gate.set()
    await a
    assert writer.labels() == ["A/0", "s1/1"]
    await conn.aclose()


@pytest.mark.asyncio
async def test_close_fails_the_message_whose_frame_is_draining() -> None:
    conn, writer = fake_connection()
    writer.gate.clear()
    c = asyncio.create_task(conn.send(Message("C")))
    await wait_for_frames_sent(conn, 1)  # C written, drain() blocked
    conn.close()
    async with asyncio.timeout(10):  # guard: this used to hang
        with pytest.raises(ConnectionClosed, match=r"peer 10\.0\.0\.1:4242 was closed"):
            await c
    assert writer.closed
    await conn.aclose()


@pytest.mark.asyncio
async def test_transport_failure_fails_every_pending_send() -> None:
    conn, writer = fake_connection()
    writer.gate.clear()

    async def broken_drain() -> None:
        await writer.gate.wait()
        raise ConnectionResetError("Connection lost")

    writer.drain = broken_drain  # type: ignore[method-assign]
    a = asyncio.create_task(conn.send(big("A", 3)))
    await wait_for_frames_sent(conn, 1)
    c = asyncio.create_task(conn.send(Message("C")))
    await asyncio.sleep(0)
    writer.gate.set()
    for task in (a, c):
        with pytest.raises(ConnectionClosed, match="failed while sending: Connection lost"):
            await task
    with pytest.raises(ConnectionClosed, match="failed: Connection lost"):
        await conn.send(Message("D"))
    await conn.aclose()
