"""A cluster worker: connects to a master, caches datasets, fits trees in a process pool.

``Worker(host, port, token).run()`` connects with jittered exponential backoff (an
authentication or version failure is final and raised at once), registers, and then serves
the master until it says ``bye``. Datasets are cached in shared memory by content hash, so a
dataset the worker already holds is never sent again, even across reconnections. Tasks run
in the process pool (at most ``processes`` at a time; the rest wait in a local queue where a
``cancel`` can still drop them); results stream back as each task finishes, and heartbeats
go out from the event loop while the pool works. ``stop()`` (wired to SIGTERM/SIGINT by the
command line) leaves cleanly: queued tasks are handed back, running ones finish and report
(within ``drain_timeout``), then the worker says ``bye``.

This module is the I/O half: sockets, the pool, the cache. Which task runs, which is
dropped and who is answered is decided by :class:`WorkerState` (``_worker_state.py``,
sans-IO): each event becomes a stimulus, and :meth:`Worker._apply` carries out the
instructions it returns. Answers go through one unbounded :class:`~aioforest.csp.Chan` per
session, written in order by the session's send loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import math
import os
import random
import secrets
import signal
import socket
import ssl as ssl_module
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from ..csp import Chan, go
from ..data import Bins
from ..ensemble import SharedArrays, effective_n_jobs, fit_task, get_executor, warm_up
from ..tree import FitCancelled, TreeArrays
from ..wire import (
    DEFAULT_CONFIG,
    AuthenticationError,
    Connection,
    ConnectionClosed,
    Message,
    ProtocolError,
    VersionMismatch,
    WireConfig,
    open_connection,
)
from ._faults import Faults, FitRunner
from ._part_host import PartHost
from ._peers import PEER_TIMEOUT, PeerServer, send_rows
from ._protocol import (
    Bye,
    Cancel,
    DatasetPayload,
    Heartbeat,
    MessageError,
    PartRequest,
    Register,
    Result,
    Task,
    TaskFailed,
    Welcome,
    decode,
)
from ._worker_state import (
    CancelArrived,
    DatasetView,
    FitDone,
    Instruction,
    Pin,
    ResetSlot,
    RunKey,
    Send,
    SessionEnded,
    SessionStarted,
    StartFit,
    StopFit,
    StopRequested,
    TaskArrived,
    Unpin,
    WorkerState,
    task_failed,
)

__all__ = ["Backoff", "DatasetCache", "Worker", "WorkerStopped"]

logger = logging.getLogger("aioforest.cluster")

_names = itertools.count(1)
_WORKER_RECEIVES: Final = (
    "welcome", "dataset", "task", "cancel", "bye", "heartbeat", "part",
)


class WorkerStopped(Exception):
    """Internal: the worker was asked to stop while connecting."""


@dataclass(eq=False)
class _Fit:
    """The I/O side of a running task: its asyncio task, and the event a cancel sets."""

    cancelled: asyncio.Event
    job: asyncio.Task[None] = field(init=False)


@dataclass(frozen=True)
class Backoff:
    """Reconnection delays: exponential growth with "equal jitter".

    Before retry ``n`` (1-based) the worker waits ``d/2 + uniform(0, d/2)`` seconds where
    ``d = min(maximum, initial * factor ** (n - 1))``: never less than half the nominal
    delay (so retries do not hammer the master) and spread out so a fleet of workers that
    lost the same master do not reconnect in lockstep. ``max_attempts`` bounds the number
    of connection attempts in a row (``None``: retry forever).
    """

    initial: float = 0.1
    maximum: float = 5.0
    factor: float = 2.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(
                f"Backoff needs 0 < initial <= maximum, got {self.initial}, {self.maximum}"
            )
        if self.factor < 1:
            raise ValueError(f"Backoff factor must be >= 1, got {self.factor}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"Backoff max_attempts must be >= 1 or None, got {self.max_attempts}")

    def delay(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        nominal = min(self.maximum, self.initial * self.factor ** max(retry - 1, 0))
        return nominal / 2 + rng.uniform(0, nominal / 2)


@dataclass
class _Cached:
    shared: SharedArrays
    bins: Bins
    n_rows: int
    raw: bool = False
    pins: int = 0


class DatasetCache:
    """Datasets in shared memory by content hash, least recently used evicted first.

    A dataset pinned by a running or queued task is never evicted; the cache may then hold
    more than ``max_entries`` for a while.
    """

    def __init__(self, max_entries: int = 8) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Cached] = OrderedDict()

    def __contains__(self, digest: object) -> bool:
        return digest in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def hashes(self) -> tuple[str, ...]:
        return tuple(self._entries)

    @staticmethod
    def prepare(payload: DatasetPayload) -> _Cached:
        """Copy ``payload`` into new shared memory (thread-safe: touches no cache state)."""
        # Row-major, as the pool's fit_task reads it: transposed once here, not per task.
        arrays: dict[str, np.ndarray[Any, Any]] = {"codes": payload.codes.T, "y": payload.y}
        if payload.sample_weight is not None:
            arrays["sw"] = payload.sample_weight
        return _Cached(
            SharedArrays(arrays),
            payload.bins,
            payload.n_rows,
            payload.is_raw,
        )

    def insert(self, digest: str, entry: _Cached) -> None:
        """Add a prepared dataset (an already cached hash keeps its entry)."""
        if digest in self._entries:
            entry.shared.close()
            self._entries.move_to_end(digest)
            return
        self._entries[digest] = entry
        self._evict()

    def put(self, payload: DatasetPayload) -> None:
        """Copy ``payload`` into shared memory and cache it."""
        self.insert(payload.hash, self.prepare(payload))

    def _evict(self) -> None:
        for digest in list(self._entries):
            if len(self._entries) <= self.max_entries:
                return
            if self._entries[digest].pins == 0:
                self._entries.pop(digest).shared.close()

    def view(self, digest: str) -> DatasetView | None:
        """What the worker state checks a task against (``None``: not held)."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        return DatasetView(entry.n_rows, entry.bins.n_features, entry.raw)

    def get(self, digest: str) -> _Cached:
        """The cached dataset (``KeyError`` if absent), marked as recently used."""
        self._entries.move_to_end(digest)
        return self._entries[digest]

    def pin(self, digest: str) -> _Cached:
        entry = self._entries[digest]
        self._entries.move_to_end(digest)
        entry.pins += 1
        return entry

    def unpin(self, digest: str) -> None:
        entry = self._entries.get(digest)
        if entry is not None:
            entry.pins -= 1
            self._evict()

    def close(self) -> None:
        """Free every segment (running pool tasks keep their own mapping on POSIX)."""
        for entry in self._entries.values():
            entry.shared.close()
        self._entries.clear()


def _default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{next(_names)}"


class Worker:
    """A cluster worker (see the module docstring).

    Args:
        host, port: the master's address.
        token: the shared cluster token (bytes or str); ``None`` only for an
            unauthenticated loopback master.
        processes: pool processes, i.e. tasks run at once (``None``: all cores).
        name: how the worker introduces itself (default ``host-pid-n``).
        backoff: reconnection policy; ``rng`` makes its jitter reproducible.
        heartbeat_interval: seconds between heartbeats (default: what the master asks for).
        executor: run tasks here instead of the shared process pool (tests).
        reconnect: after losing the master (not after its ``bye``), connect again.
        drain_timeout: how long ``stop()`` lets running tasks finish.
        max_datasets: datasets kept in the shared-memory cache.
        ssl: a client TLS context (see :func:`aioforest.wire.client_ssl_context`) for a
            master that serves TLS; ``server_hostname`` overrides the name checked
            against its certificate (default: ``host``).
        data_root: where this worker finds the files of a partitioned dataset when its
            mount point differs from the master's (``--data-root``); default: the
            dataset's own root directory.
        peer_host: the address other workers ship rows to for local subtrees
            (``--peer-host``; a free port is chosen); default: this end's address of the
            connection to the master. Peers authenticate with the cluster token.
        sleep: the coroutine used to wait between connection attempts (tests).
        faults: deliberate misbehaviour for fault-injection tests (see :class:`Faults`).
    """

    def __init__(
        self,
        host: str,
        port: int,
        token: bytes | str | None = None,
        processes: int | None = None,
        name: str | None = None,
        *,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        heartbeat_interval: float | None = None,
        executor: Executor | None = None,
        reconnect: bool = True,
        connect_timeout: float = 10.0,
        drain_timeout: float = 30.0,
        max_datasets: int = 8,
        config: WireConfig = DEFAULT_CONFIG,
        ssl: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        data_root: str | None = None,
        peer_host: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        faults: Faults | None = None,
    ) -> None:
        self.host = host
        self._ssl = ssl
        self._server_hostname = server_hostname
        self.port = int(port)
        self._token = token.encode() if isinstance(token, str) else token
        self.processes = effective_n_jobs(-1 if processes is None else processes)
        self.name = name if name is not None else _default_name()
        self.backoff = backoff if backoff is not None else Backoff()
        self._rng = rng if rng is not None else random.Random()
        if heartbeat_interval is not None and heartbeat_interval <= 0:
            raise ValueError(f"heartbeat_interval must be > 0, got {heartbeat_interval}")
        self._heartbeat_interval = heartbeat_interval
        self._executor = executor
        self.reconnect = reconnect
        self.connect_timeout = connect_timeout
        self.drain_timeout = drain_timeout
        self.config = config
        self._sleep = sleep
        self.faults = faults if faults is not None else Faults()
        #: Random per process, kept across reconnections: a master that lost us sees from
        #: it that we did not crash (so our tasks are not suspected of killing workers).
        self.incarnation = secrets.token_hex(8)
        self.cache = DatasetCache(max_datasets)
        #: The partitions this worker reads for data-parallel fits.
        self.parts = PartHost(data_root)
        self.peer_host = peer_host
        self._peer_server: PeerServer | None = None
        self._part_lock = asyncio.Lock()  # one operation at a time, in arrival order
        self._part_jobs: set[asyncio.Task[None]] = set()
        self._part_ops = 0
        #: The connection to the master while registered (for diagnostics and tests).
        self.connection: Connection | None = None
        #: Connection attempts that failed (and were retried).
        self.connect_failures = 0
        #: Which tasks are queued and running, and who gets their answers.
        self.state = WorkerState(self.processes)
        self._stop: asyncio.Event | None = None
        self._drain = True
        self._fits: dict[RunKey, _Fit] = {}  # the I/O side of the state's running tasks
        self._outbox: Chan[Message] | None = None  # answers for the current session
        self._written = asyncio.Event()  # set while every answer given so far is written
        self._written.set()
        self._board: SharedArrays | None = None  # one cancel byte per pool slot
        self._master_timeout: float | None = None  # from the master's welcome
        self._pool_start: asyncio.Future[None] | None = None
        self._started = False
        # Decided once: a healthy worker's fits run with no fault checks on their path.
        self._fit: FitRunner = (
            self.faults.wrap(self._fit_in_pool, self._written.wait)
            if self.faults.any
            else self._fit_in_pool
        )

    # ------------------------------------------------------------------ control

    def stop(self, *, drain: bool = True) -> None:
        """Leave the cluster: hand queued tasks back, let running ones finish (``drain``)
        within ``drain_timeout``, say ``bye``. Safe to call from a signal handler."""
        self._drain = self._drain and drain
        if self._stop is not None:
            self._stop.set()

    @property
    def running(self) -> int:
        """Tasks running in the pool now."""
        return self.state.running

    @property
    def queued(self) -> int:
        """Tasks received and waiting for a free process."""
        return self.state.queued

    @property
    def stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    @property
    def tasks_done(self) -> int:
        """Tasks answered with a result, over the worker's life."""
        return self.state.tasks_done

    @property
    def sessions(self) -> int:
        """Sessions the master welcomed us to."""
        return self.state.session

    @property
    def late_results(self) -> int:
        """Results dropped because the connection their task came from was gone."""
        return self.state.late_results

    @property
    def cancelled_running(self) -> int:
        """Running tasks stopped by a cancel (a losing backup copy, a failed fit)."""
        return self.state.cancelled_running

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: leave cleanly; a second signal leaves without waiting for tasks."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        logger.warning("worker %s: got %s, leaving the cluster", self.name, sig.name)
        self.stop(drain=not self.stopping)

    def _start_pool(self) -> None:
        # In a thread: starting a forkserver pool blocks until its processes exist, which
        # would otherwise freeze the event loop (registration, heartbeats) for that long.
        get_executor(self.processes).submit(warm_up).result()

    async def _pool(self) -> Executor:
        if self._executor is not None:
            return self._executor
        if self._pool_start is not None and not self._pool_start.done():
            await asyncio.wait([self._pool_start])
        return get_executor(self.processes)

    # ------------------------------------------------------------------ main loop

    async def run(self) -> None:
        """Serve the master until it says ``bye`` or :meth:`stop` is called.

        Raises:
            AuthenticationError: the master refused our token or failed to prove its own
                (never retried: a wrong token will not become right).
            VersionMismatch: the master speaks another protocol version.
            ConnectionError: ``backoff.max_attempts`` connection attempts failed.
        """
        if self._started:
            raise RuntimeError("Worker.run() can be called only once")
        self._started = True
        self._stop = asyncio.Event()
        self._board = SharedArrays({"cancel": np.zeros(self.processes, np.uint8)})
        try:
            failures = 0  # connection attempts or sessions in a row that got nowhere
            while not self._stop.is_set():
                try:
                    conn = await self._until_stopped(self._connect())
                except WorkerStopped:
                    break
                except (AuthenticationError, VersionMismatch):
                    raise
                except (OSError, TimeoutError, ProtocolError) as exc:
                    failures += 1
                    self.connect_failures += 1
                    if not await self._back_off(failures, exc):
                        break
                    continue
                welcomed_before = self.sessions
                outcome = await self._session(conn)
                if outcome != "lost" or not self.reconnect:
                    break
                # Lost after a welcome: start over. Lost before one (the master hung up on
                # us): count it, so a master that keeps refusing us is not hammered.
                failures = 1 if self.sessions > welcomed_before else failures + 1
                if not await self._back_off(failures, ConnectionError("the master hung up")):
                    break
        finally:
            self._apply(self.state.handle(StopRequested()))
            await self._finish_running()
            if self._peer_server is not None:
                await self._peer_server.close()
            self.cache.close()
            self._board.close()
            if self._pool_start is not None:
                await asyncio.wait([self._pool_start])  # a thread cannot be cancelled
                self._pool_start.exception()  # a broken pool shows in the tasks; log it once

    async def _start_peer_server(self, conn: Connection) -> None:
        """Listen for rows other workers ship here (see ``_peers``)."""
        local = conn.local_address
        host = self.peer_host or (local[0] if local else "127.0.0.1")
        server = PeerServer(self.parts.stash, self._token, self.config,
                            accepts=self.parts.has_session)
        try:
            self.parts.peer_address = await server.start(host)
        except OSError as exc:
            logger.warning("worker %s: no peer server on %s (%s): local subtrees in data "
                           "mode will not be grown here", self.name, host, exc)
            return
        self._peer_server = server
        loop = asyncio.get_running_loop()
        token, config = self._token, self.config

        def send_peer(peer_host: str, port: int, message: Message) -> None:
            future = asyncio.run_coroutine_threadsafe(
                send_rows(peer_host, port, message, token=token, config=config), loop)
            future.result(2 * PEER_TIMEOUT)

        self.parts.send_peer = send_peer

    async def _back_off(self, failures: int, exc: BaseException) -> bool:
        """Wait before the next attempt; False if stopped meanwhile. Raises past the limit."""
        limit = self.backoff.max_attempts
        if limit is not None and failures >= limit:
            raise ConnectionError(
                f"could not connect to the master at {self.host}:{self.port} "
                f"after {failures} attempts: {exc}"
            ) from exc
        delay = self.backoff.delay(failures, self._rng)
        logger.info(
            "worker %s: cannot reach %s:%s (%s); retrying in %.2f s",
            self.name, self.host, self.port, exc, delay,
        )
        try:
            await self._until_stopped(self._sleep(delay))
        except WorkerStopped:
            return False
        return True

    async def _until_stopped(self, aw: Awaitable[Any]) -> Any:
        """Await ``aw`` unless :meth:`stop` is called first (then raise WorkerStopped)."""
        assert self._stop is not None
        work = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled: take the work down with us
            work.cancel()
            raise
        finally:
            stop.cancel()
        if not work.done():
            work.cancel()
            await asyncio.wait([work])
            raise WorkerStopped
        return work.result()

    async def _connect(self) -> Connection:
        return await open_connection(
            self.host, self.port, token=self._token, timeout=self.connect_timeout,
            config=self.config, ssl=self._ssl,
            server_hostname=self._server_hostname if self._ssl is not None else None,
        )

    async def _finish_running(self) -> None:
        """Let running fits report (within ``drain_timeout`` if draining), else stop them."""
        running = [fit.job for fit in self._fits.values()]
        if not running:
            return
        if self._drain:
            _, pending = await asyncio.wait(running, timeout=self.drain_timeout)
        else:
            pending = set(running)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending)

    # ------------------------------------------------------------------ one connection

    async def _register(self, conn: Connection) -> Welcome | str:
        """Introduce ourselves; the master's welcome, or the session's outcome if none."""
        try:
            await conn.send(Register(
                self.name, self.processes, self.cache.hashes(), incarnation=self.incarnation
            ).to_message())
            first = decode(await conn.recv(timeout=self.connect_timeout), expect=("welcome", "bye"))
        except (ConnectionClosed, ProtocolError, TimeoutError) as exc:
            logger.warning("worker %s: registration with %s failed: %s", self.name, conn.peer, exc)
            conn.abort()
            return "lost"
        if isinstance(first, Bye):
            logger.warning("worker %s: the master refused us: %s", self.name, first.reason)
            await conn.aclose(timeout=1.0)
            return "bye"
        assert isinstance(first, Welcome)
        return first

    async def _session(self, conn: Connection) -> str:
        """Serve one connection; returns ``"bye"``, ``"lost"`` or ``"stopped"``."""
        assert self._stop is not None
        welcome = await self._register(conn)
        if isinstance(welcome, str):
            return welcome
        self.name = welcome.name
        self.connection = conn
        if self._peer_server is None:
            await self._start_peer_server(conn)
        if self._executor is None and self._pool_start is None:
            # Start the pool now, not at the first task (which would wait for it), and not
            # before the master accepted us (a refused worker should exit at once).
            self._pool_start = asyncio.ensure_future(asyncio.to_thread(self._start_pool))
        interval = self._heartbeat_interval or welcome.heartbeat_interval
        self._master_timeout = welcome.heartbeat_timeout
        logger.info("worker %s: registered with %s", self.name, conn.peer)
        outbox = self._outbox = Chan(math.inf)
        self._apply(self.state.handle(SessionStarted()))
        sender = go(self._send_loop(conn, outbox), name=f"aioforest-worker-send-{self.name}")
        reader = go(self._read_loop(conn), name=f"aioforest-worker-read-{self.name}")
        beats = go(self._heartbeats(conn, interval), name=f"aioforest-worker-heartbeat-{self.name}")
        stop = asyncio.ensure_future(self._stop.wait())
        outcome = "lost"
        try:
            await asyncio.wait({reader, stop}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                outcome = reader.result()
            else:
                reader.cancel()
                await self._leave(outbox, sender)
                outcome = "stopped"
        finally:
            stop.cancel()
            for t in (reader, beats, sender):
                t.cancel()
            await asyncio.wait([reader, beats, sender])
            self._apply(self.state.handle(SessionEnded(lost=outcome == "lost")))
            self.parts.drop_all()  # the master moves a lost worker's partitions on
            if not outbox.closed:  # a graceful leave closed it already
                outbox.close()
            self._outbox = None
            self._written.set()  # nothing more will be written for this session
            await conn.aclose(timeout=1.0)
        return outcome

    async def _leave(self, outbox: Chan[Message], sender: asyncio.Task[None]) -> None:
        """Graceful leave: hand queued tasks back (by saying bye), let running ones report."""
        self._apply(self.state.handle(StopRequested()))
        await self._finish_running()
        outbox.send_nowait(Bye("worker stopping").to_message())
        outbox.close()  # the sender writes what is left, the bye last, and returns
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.connect_timeout):
                await asyncio.wait([sender])
        logger.info("worker %s: left the cluster", self.name)

    async def _send_loop(self, conn: Connection, outbox: Chan[Message]) -> None:
        """The session's answers, in the order the state gave them."""
        with contextlib.suppress(ConnectionClosed):
            async for message in outbox:
                await conn.send(message)
                if not len(outbox):
                    self._written.set()

    async def _read_loop(self, conn: Connection) -> str:
        try:
            while True:
                msg = decode(await conn.recv(timeout=self._master_timeout),
                             expect=_WORKER_RECEIVES)
                if isinstance(msg, Bye):
                    logger.info("worker %s: master said bye (%s)", self.name, msg.reason)
                    return "bye"
                await self._handle(msg)
        except ConnectionClosed as exc:
            logger.warning("worker %s: lost the master: %s", self.name, exc)
            return "lost"
        except TimeoutError:
            logger.warning(
                "worker %s: the master at %s sent nothing for %.1f s; reconnecting",
                self.name, conn.peer, self._master_timeout,
            )
            conn.abort()
            return "lost"
        except ProtocolError as exc:
            logger.error("worker %s: protocol error from the master: %s", self.name, exc)
            conn.abort()
            return "lost"

    async def _handle(self, msg: object) -> None:
        if isinstance(msg, DatasetPayload):
            await self._store(msg)
        elif isinstance(msg, Task):
            self._apply(self.state.handle(TaskArrived(msg, self.cache.view(msg.dataset))))
        elif isinstance(msg, Cancel):
            self._apply(self.state.handle(CancelArrived(msg)))
        elif isinstance(msg, Heartbeat):
            pass  # the master is alive: receiving it reset the read timeout
        elif isinstance(msg, PartRequest):
            self._part_ops += 1
            if self.faults.crash_on_part_op == self._part_ops:
                await self._written.wait()  # what was answered reaches the master
                self.crash(f"data-parallel operation {self._part_ops} ({msg.op})")
            outbox = self._outbox
            job = go(self._part(msg, outbox), name=f"aioforest-worker-part-{msg.seq}")
            self._part_jobs.add(job)
            job.add_done_callback(self._part_jobs.discard)
        else:
            raise MessageError(type(msg).__name__.lower(), None, "not expected after welcome")

    def crash(self, why: str) -> None:
        """An injected crash: the process dies at once, as under ``kill -9``."""
        logger.critical("worker pid %d: injected fault: crashing on %s", os.getpid(), why)
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)

    async def _part(self, req: PartRequest, outbox: Chan[Message] | None) -> None:
        """One data-parallel operation, off the loop; its reply goes to the session that
        asked (operations run one at a time, in the order they came)."""
        async with self._part_lock:
            if outbox is None or outbox.closed:
                return  # its connection ended while it waited: nobody wants the answer
            reply = await asyncio.to_thread(self.parts.handle, req)
        if self._outbox is not outbox:  # the session ended while it ran
            self.parts.drop(req.session)  # e.g. a scan that re-created a dropped session
            return
        outbox.send_nowait(reply.to_message())

    async def _store(self, payload: DatasetPayload) -> None:
        if payload.hash in self.cache:
            return
        # Hash and copy off the loop: heartbeats keep going while a big dataset lands. The
        # cache itself is only touched here, on the loop.
        actual = await asyncio.to_thread(payload.computed_hash)
        if actual != payload.hash:
            raise MessageError(
                "dataset", "hash", f"content hashes to {actual}, not the announced {payload.hash}"
            )
        self.cache.insert(payload.hash, await asyncio.to_thread(DatasetCache.prepare, payload))

    async def _heartbeats(self, conn: Connection, interval: float) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                state = self.state
                await conn.send(Heartbeat(state.running, state.queued, state.free).to_message())
                await asyncio.sleep(interval)

    # ------------------------------------------------------------------ instructions

    def _apply(self, instructions: list[Instruction]) -> None:
        """Carry out the state's instructions, in order (none of them waits)."""
        assert self._board is not None
        board = self._board.arrays["cancel"]
        for ins in instructions:
            if isinstance(ins, Send):
                assert self._outbox is not None, "the state sends only while connected"
                self._outbox.send_nowait(ins.message.to_message())
                self._written.clear()
            elif isinstance(ins, StartFit):
                fit = _Fit(asyncio.Event())
                self._fits[ins.key] = fit
                fit.job = go(self._run_fit(ins, fit.cancelled),
                             name=f"aioforest-worker-task-{ins.key}")
            elif isinstance(ins, StopFit):
                board[ins.slot] = 1  # the pool's fit sees it at its next level
                self._fits[ins.key].cancelled.set()
            elif isinstance(ins, ResetSlot):
                board[ins.slot] = 0
            elif isinstance(ins, Pin):
                self.cache.pin(ins.dataset)
            elif isinstance(ins, Unpin):
                self.cache.unpin(ins.dataset)
            else:
                logger.info(
                    "worker %s: dropping the result of task %d/%d: its connection is gone",
                    self.name, ins.task.job_id, ins.task.task_id,
                )

    async def _run_fit(self, start: StartFit, cancelled: asyncio.Event) -> None:
        """Fit one task and report it to the state, whatever happens (cancellation too)."""
        task = start.task
        answer: Result | TaskFailed
        try:
            arrays = await self._fit(task, start.slot, cancelled)
            answer = Result(task.job_id, task.task_id, task.attempt,
                            tuple(TreeArrays.from_arrays(a) for a in arrays))
        except asyncio.CancelledError:
            answer = task_failed(task, "cancelled", "cancelled: the worker is leaving")
            raise
        except FitCancelled as exc:
            answer = task_failed(task, "cancelled", f"cancelled while running ({exc})")
        except BrokenProcessPool as exc:
            detail = f"worker {self.name}: process pool broke: {exc}"
            answer = task_failed(task, "worker-error", detail)
        except Exception as exc:
            answer = task_failed(task, "error", f"{type(exc).__name__}: {exc}")
        finally:
            del self._fits[start.key]
            self._apply(self.state.handle(FitDone(start.key, answer)))

    async def _fit_in_pool(
        self, task: Task, slot: int, cancelled: asyncio.Event
    ) -> list[dict[str, np.ndarray[Any, Any]]]:
        """The task's trees, fitted in the process pool on the cached dataset."""
        assert self._board is not None
        entry = self.cache.get(task.dataset)  # pinned since the task was queued
        specs = entry.shared.specs
        rows = np.asarray(task.rows) if isinstance(task.rows, np.ndarray) else task.rows
        bins = entry.bins if task.bins is None else task.bins
        future = asyncio.get_running_loop().run_in_executor(
            # Every field, rebuilt ones included: the wire carries whole trees.
            await self._pool(), functools.partial(fit_task, every_array=True), specs["codes"],
            bins, specs["y"], specs.get("sw"), task.plan.to_json(), list(task.indices), rows,
            task.bins is not None, (self._board.specs["cancel"], slot),
        )
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # Stop the fit, and let the pool finish reading the shared segments before
            # they can go away.
            self._board.arrays["cancel"][slot] = 1
            await asyncio.wait([future])
            raise

