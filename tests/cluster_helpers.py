"""Helpers for the cluster tests: scripted peers speaking the protocol by hand, subprocesses.

``ScriptedMaster`` accepts worker connections and lets a test read and write protocol
messages itself; ``FakeWorker`` does the same from the worker side. Both make the order of
events explicit, so the tests need no sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from aioforest.cluster._protocol import (
    Heartbeat,
    Register,
    Welcome,
    decode,
)
from aioforest.wire import Connection, ConnectionClosed, Message, accept, open_connection

HOST = "127.0.0.1"
TOKEN = b"cluster test token"
#: Every test that touches sockets or processes runs under this bound.
TEST_TIMEOUT = 30.0
REPO = Path(__file__).resolve().parent.parent


class ScriptedMaster:
    """A listening socket whose accepted (authenticated) connections a test drives by hand."""

    def __init__(self, token: bytes | None = TOKEN, port: int = 0) -> None:
        self.token = token
        self.requested_port = port
        self.connections: asyncio.Queue[Connection | Exception] = asyncio.Queue()
        self._open: list[Connection] = []
        self._server: asyncio.Server | None = None

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            conn = await accept(reader, writer, token=self.token, timeout=5.0)
        except Exception as exc:
            self.connections.put_nowait(exc)
            return
        self._open.append(conn)
        self.connections.put_nowait(conn)

    async def __aenter__(self) -> ScriptedMaster:
        self._server = await asyncio.start_server(self._on_connect, HOST, self.requested_port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for conn in self._open:
            await conn.aclose(flush=False)
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def connection(self) -> Connection:
        result = await self.connections.get()
        if isinstance(result, Exception):
            raise result
        return result

    async def registered(self, heartbeat_interval: float = 30.0) -> tuple[Connection, Register]:
        """The next worker connection, after reading its register and welcoming it."""
        conn = await self.connection()
        reg = decode(await conn.recv(), expect=("register",))
        assert isinstance(reg, Register)
        await conn.send(Welcome(reg.name, heartbeat_interval).to_message())
        return conn, reg


async def step_until(predicate: Callable[[], bool]) -> None:
    """Step the event loop until ``predicate()`` holds (the caller bounds the time)."""
    while not predicate():  # noqa: ASYNC110 - stepping the loop is the point
        await asyncio.sleep(0)


async def recv_skipping(conn: Connection, *skip: str) -> Any:
    """The next decoded message whose type is not in ``skip`` (e.g. heartbeats)."""
    while True:
        msg = decode(await conn.recv())
        if type(msg).TYPE not in skip:
            return msg


class FakeWorker:
    """A hand-driven worker: registers, then the test reads tasks and answers them."""

    def __init__(
        self,
        port: int,
        name: str,
        slots: int = 1,
        *,
        token: bytes | None = TOKEN,
        datasets: tuple[str, ...] = (),
    ) -> None:
        self.port = port
        self.name = name
        self.slots = slots
        self.token = token
        self.datasets = datasets
        self.conn: Connection | None = None
        self.welcome: Welcome | None = None

    async def __aenter__(self) -> FakeWorker:
        self.conn = await open_connection(HOST, self.port, token=self.token, timeout=5.0)
        await self.conn.send(Register(self.name, self.slots, self.datasets).to_message())
        welcome = decode(await self.conn.recv(), expect=("welcome",))
        assert isinstance(welcome, Welcome)
        self.welcome = welcome
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.conn is not None:
            await self.conn.aclose(flush=False)

    async def recv(self) -> Any:
        """The next message from the master, skipping its heartbeats (liveness pings)."""
        assert self.conn is not None
        while True:
            msg = decode(await self.conn.recv())
            if not isinstance(msg, Heartbeat):
                return msg

    async def send(self, msg: Any) -> None:
        assert self.conn is not None
        await self.conn.send(msg.to_message() if not isinstance(msg, Message) else msg)

    async def closed(self) -> bool:
        """Wait until the master closes the connection (True) or sends something (False)."""
        assert self.conn is not None
        try:
            await self.recv()
        except ConnectionClosed:
            return True
        return False


class GatedExecutor(ThreadPoolExecutor):
    """Runs tasks in threads, but only once :attr:`gate` is set: tests decide when work ends."""

    def __init__(self, workers: int = 2) -> None:
        super().__init__(workers)
        self.gate = threading.Event()
        self.started = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        def gated() -> Any:
            self.gate.wait(TEST_TIMEOUT)
            return fn(*args, **kwargs)

        self.started += 1
        return super().submit(gated)


class SteppedExecutor(ThreadPoolExecutor):
    """Runs tasks in threads, each only once the test has allowed one more (:meth:`allow`):
    a fit advances exactly as far as the test says. :meth:`open` lets everything run."""

    def __init__(self, workers: int = 2) -> None:
        super().__init__(workers)
        self._permits = threading.Semaphore(0)

    def allow(self, n: int = 1) -> None:
        self._permits.release(n)

    def open(self) -> None:
        self._permits.release(1_000_000)

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        def stepped() -> Any:
            if not self._permits.acquire(timeout=TEST_TIMEOUT):
                raise TimeoutError("the test never allowed this task to run")
            return fn(*args, **kwargs)

        return super().submit(stepped)


def python_env(**extra: str) -> dict[str, str]:
    """The environment for a child Python: this checkout importable, no stray token."""
    env = {k: v for k, v in os.environ.items() if k != "AIOFOREST_TOKEN"}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), env.get("PYTHONPATH", "")) if p
    )
    env.update(extra)
    return env


class Processes:
    """Child processes that are always killed and reaped, even when a test fails."""

    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []

    async def spawn(
        self, *args: str, env: dict[str, str] | None = None
    ) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env if env is not None else python_env(),
            cwd=str(REPO),
            # Its own process group: close() kills the pool processes a worker forked too,
            # which otherwise hold the pipes open after the worker died.
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    async def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            # Read the pipes to their end, so that no transport outlives the loop.
            await proc.communicate()


@contextlib.asynccontextmanager
async def processes() -> AsyncIterator[Processes]:
    procs = Processes()
    try:
        yield procs
    finally:
        await procs.close()


async def finish(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    """Wait for ``proc`` and return (exit code, stdout, stderr)."""
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def small_data(n: int = 200, d: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1).astype(np.int64)
    return X, y


@contextlib.asynccontextmanager
async def in_process_cluster(
    n_workers: int = 2,
    *,
    worker_ssl: Any = None,
    worker_options: dict[str, Any] | None = None,
    names: list[str] | None = None,
    **master_options: Any,
) -> AsyncIterator[tuple[Any, list[Any]]]:
    """A master plus ``n_workers`` in-process workers (one pool process each, named
    ``names`` or w0, w1, ...), always closed."""
    from aioforest.cluster import Master, Worker

    async with asyncio.timeout(TEST_TIMEOUT), Master(token=TOKEN, **master_options) as master:
        extra: dict[str, Any] = dict(worker_options or {})
        if worker_ssl is not None:
            extra["ssl"] = worker_ssl
        names = names or [f"w{i}" for i in range(n_workers)]
        workers = [Worker(HOST, master.port, TOKEN, processes=1, name=names[i], **extra)
                   for i in range(n_workers)]
        tasks = [asyncio.ensure_future(w.run()) for w in workers]
        try:
            await master.wait_for_workers(n_workers)
            yield master, workers
        finally:
            await master.close()
            await asyncio.wait(tasks)
            for t in tasks:
                t.result()  # a worker that crashed fails the test
