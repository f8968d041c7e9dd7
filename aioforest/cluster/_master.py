"""The cluster master: accepts workers, ships datasets once, schedules tree tasks, collects trees.

``async with Master(...) as master`` listens (on 127.0.0.1 by default; any other address
needs a token). ``await master.fit(forest, X, y)`` prepares and bins the data once here,
names the binned dataset by its content hash, and hands tree tasks to the workers through
the sans-IO :class:`~aioforest.cluster._scheduler.Scheduler`. A worker receives a dataset
only if it does not hold it yet. Because tree ``i`` is a pure function of (binned data,
labels, weights, plan, ``i``), a model-parallel cluster fit is bit-identical to a local
``fit`` with the same ``random_state``, whatever the number of workers, the order results
arrive in, or how many tasks had to be retried after a worker was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import math
import os
import ssl as ssl_module
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from .._validation import check_int
from ..csp import Chan, go
from ..data import Bins, Partitions, split_rows
from ..ensemble import FitJob, FitProgress, SupportsFitJob, trees_per_task
from ..evaluation import ConfusionMatrix, clone, confusion_matrix, cv_inputs, sort_labels
from ..tree import ForestPlan, TreeArrays
from ..wire import (
    DEFAULT_CONFIG,
    OFF_LOOP_FRAME_BYTES,
    AuthenticationError,
    Connection,
    ConnectionClosed,
    Message,
    ProtocolError,
    WireConfig,
    accept,
    format_peer,
    is_loopback,
)
from ._checkpoint import Checkpoint, CheckpointError, job_spec, tree_ranges
from ._data_parallel import PartSession, WorkerGone, fit_partitions
from ._errors import ClusterError
from ._protocol import (
    CLUSTER_PROTOCOL_VERSION,
    Bye,
    Cancel,
    DatasetPayload,
    Heartbeat,
    MessageError,
    PartReply,
    PartRequest,
    Register,
    Result,
    RowSelector,
    Task,
    TaskFailed,
    Welcome,
    decode,
)
from ._scheduler import JobFailed, Scheduler, TaskSpec

if TYPE_CHECKING:
    from ..dashboard import Dashboard

__all__ = ["ClusterClosed", "ClusterError", "JobFailedError", "Master"]

logger = logging.getLogger("aioforest.cluster")

Forest = TypeVar("Forest", bound=SupportsFitJob)

_MASTER_RECEIVES = ("heartbeat", "result", "failed", "partreply", "bye")


class JobFailedError(ClusterError):
    """A fit failed: a task raised on a worker, or kept killing its workers.

    ``task_id`` and ``trees`` name the task that failed (when one did).
    """

    def __init__(self, message: str, *, task_id: int | None = None,
                 trees: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.trees = trees


class ClusterClosed(ClusterError):
    """The master was closed while a fit was running, or before it started."""


@dataclass
class _DatasetEntry:
    payload: DatasetPayload
    refs: int = 0
    message: Message | None = None

    def wire_message(self) -> Message:
        if self.message is None:
            self.message = self.payload.to_message()
        return self.message


@dataclass(frozen=True)
class _TaskInfo:
    indices: tuple[int, ...]
    dataset: str
    plan: ForestPlan
    rows: RowSelector = None
    bins: Bins | None = None


@dataclass(frozen=True, eq=False)
class _Group:
    """Trees of one job that train on one dataset (with a row selector and bins, if any)."""

    payload: DatasetPayload
    plan: ForestPlan
    indices: list[int]
    rows: RowSelector = None
    bins: Bins | None = None


@dataclass
class _Job:
    job_id: int
    tasks: dict[int, _TaskInfo]
    total: int
    n_outputs: int
    n_features: int
    future: asyncio.Future[None]
    on_progress: Callable[[FitProgress], object] | None
    t0: float
    datasets: list[str]
    trees: dict[int, TreeArrays] = field(default_factory=dict)
    checkpoint: Checkpoint | None = None
    writes: set[asyncio.Future[None]] = field(default_factory=set)  # checkpoint writes


@dataclass
class _DatasetRef:
    digest: str


@dataclass
class _Peer:
    name: str
    conn: Connection
    incarnation: str = ""
    #: What the send loop writes, in order; closed when the worker is dropped.
    outbox: Chan[Message | _DatasetRef] = field(default_factory=lambda: Chan(math.inf))
    sender: asyncio.Task[None] | None = None
    datasets_sent: int = 0
    tasks_sent: int = 0
    results: int = 0
    trees: int = 0  # accepted from it
    last_heard: float = field(default_factory=time.monotonic)  # any message, heartbeats too


def _task_size(n_trees: int, n_draws: int, slots: int) -> int:
    """Trees per task: enough to amortise a vectorised pass on small data, small enough that
    every slot gets a few tasks (load balance, progress, cheap retries)."""
    return trees_per_task(n_trees, n_draws, 2 * max(slots, 1))


class Master:
    """The cluster master (see the module docstring).

    Args:
        host, port: where to listen; ``port=0`` picks a free port (see :attr:`port`).
        token: the shared cluster token (bytes or str). Required unless ``host`` is a
            loopback address: an unauthenticated master on a network is refused.
        prefetch: tasks a worker may hold beyond its slots (hides the round trip).
        heartbeat_interval: how often workers are asked to report (seconds).
        heartbeat_timeout: a worker silent this long (frozen, partitioned) is dropped and
            its running and prefetched tasks are requeued at once.
        handshake_timeout: bound on the connection handshake and registration.
        max_attempts: a task that was running on this many workers when they died fails
            its fit (with an error naming the task and its trees).
        backup_factor: a task running more than this many times the median duration of
            its fit's finished tasks gets a backup copy on an idle worker, once
            ``backup_min_done`` of the tasks are done and nothing is queued; the first
            result wins and the other copy is cancelled. ``None`` turns backups off.
        backup_min_seconds: never back up a task that has run less than this.
        config: wire limits and compression settings.
        ssl: a server TLS context (see :func:`aioforest.wire.server_ssl_context`).
        dashboard: ``(host, port)`` of a live status page (:class:`aioforest.dashboard.
            Dashboard`, the ``aioforest[dashboard]`` extra) that starts and stops with the
            master; off loopback it asks for ``token``. :attr:`dashboard` is the server.
        dashboard_ssl: a TLS context for the page (HTTPS); without one, off loopback the
            token crosses the network in clear. Not ``ssl``, which may demand client
            certificates that browsers do not have.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: bytes | str | None = None,
        *,
        prefetch: int = 1,
        heartbeat_interval: float = 0.5,
        heartbeat_timeout: float = 5.0,
        handshake_timeout: float = 10.0,
        max_attempts: int = 3,
        backup_factor: float | None = 3.0,
        backup_min_done: float = 0.5,
        backup_min_seconds: float = 1.0,
        config: WireConfig = DEFAULT_CONFIG,
        ssl: ssl_module.SSLContext | None = None,
        dashboard: tuple[str, int] | None = None,
        dashboard_ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.host = host
        self._requested_port = int(port)
        self._token = token.encode() if isinstance(token, str) else token
        if self._token is not None and not self._token:
            raise ValueError("token must not be empty")
        if self._token is None and not is_loopback(host):
            raise ValueError(
                f"refusing to listen on {host!r} without a token: anyone who can reach the port "
                "could join the cluster. Pass token=... (or --token-file), or bind 127.0.0.1"
            )
        self.check_heartbeats(heartbeat_interval, heartbeat_timeout)
        self.heartbeat_interval = float(heartbeat_interval)
        self.heartbeat_timeout = float(heartbeat_timeout)
        self.handshake_timeout = float(handshake_timeout)
        self.config = config
        self._ssl = ssl
        self._scheduler = Scheduler(
            prefetch=prefetch, max_attempts=max_attempts, backup_factor=backup_factor,
            backup_min_done=backup_min_done, backup_min_seconds=backup_min_seconds,
        )
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._peers: dict[str, _Peer] = {}
        self._jobs: dict[int, _Job] = {}
        self._datasets: dict[str, _DatasetEntry] = {}
        self._handlers: set[asyncio.Task[Any]] = set()
        self._job_ids = itertools.count(1)
        self._peers_changed: asyncio.Condition | None = None
        self._closing = False
        self._closed_bytes = {"sent_raw": 0, "sent_wire": 0, "received_raw": 0, "received_wire": 0}
        self._tasks_done_by: dict[str, int] = {}
        self._auth_failures = 0
        self._workers_lost = 0
        self._datasets_sent = 0
        self._lost_incarnations: set[str] = set()  # of workers dropped without a bye
        self._cancels_sent = 0
        self._trees_received = 0  # accepted from workers (each tree fitted once per fit)
        self._trees_resumed = 0  # loaded from checkpoints instead of fitted
        self._trees_refitted = 0  # in copies started again (retries, backups)
        self._part_sessions: dict[int, PartSession] = {}  # data-parallel fits
        self.dashboard: Dashboard | None = None
        if dashboard is not None:
            from ..dashboard import Dashboard

            dash_host, dash_port = dashboard
            self.dashboard = Dashboard(
                self.status, dash_host, dash_port,
                token=None if is_loopback(dash_host) else self._token, ssl=dashboard_ssl,
            )

    # ------------------------------------------------------------------ data-parallel link

    def part_workers(self) -> list[str]:
        """Workers a data-parallel fit may use: the connected, admitted ones."""
        return [n for n in self._peers if self._scheduler.has_worker(n)]

    def send_part(self, worker: str, request: PartRequest) -> None:
        peer = self._peers.get(worker)
        if peer is None or peer.outbox.closed:
            raise WorkerGone(worker)
        peer.outbox.send_nowait(request.to_message())

    # ------------------------------------------------------------------ lifecycle

    @staticmethod
    def check_heartbeats(interval: float, timeout: float) -> None:
        """Raise ``ValueError`` unless ``0 < heartbeat_interval < heartbeat_timeout``."""
        if not 0 < interval < timeout:
            raise ValueError(
                f"need 0 < heartbeat_interval < heartbeat_timeout, got {interval} and {timeout}"
            )

    @staticmethod
    def check_fit_options(
        estimator: Any, mode: str, n_shards: int | None = None, replicas: int = 1
    ) -> None:
        """Raise ``ValueError`` for options :meth:`fit` refuses, before any work is done."""
        if mode not in ("model", "data", "shards"):
            raise ValueError(f"mode must be 'model', 'data' or 'shards', got {mode!r}")
        check_int("replicas", replicas, 1)
        if mode == "data":
            if n_shards is not None or replicas != 1:
                raise ValueError("n_shards and replicas are for mode='shards'; mode='data' "
                                 "uses every worker on every tree")
        elif mode != "shards":
            if n_shards is not None:
                raise ValueError("n_shards needs mode='shards' (model mode does not shard)")
            if replicas != 1:
                raise ValueError("replicas needs mode='shards' (model mode sends data to all)")
        elif getattr(estimator, "oob_score", False):
            raise ValueError("oob_score=True is not supported with mode='shards' yet")

    async def start(self) -> Master:
        """Start listening (``async with`` does this)."""
        if self._server is not None or self._closing:
            raise RuntimeError("a Master can be started only once")
        self._peers_changed = asyncio.Condition()
        # A deep accept queue: with asyncio's default of 100, a flood of connections
        # overflows it and the kernel answers with SYN cookies, so clients (an honest worker
        # among them) believe they are connected while the master never sees them.
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self._requested_port, ssl=self._ssl, backlog=4096
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        logger.info("master listening on %s", self.address)
        if self.dashboard is not None:
            try:
                await self.dashboard.start()
            except BaseException:  # the port is taken, say: the master does not stay up
                await self.close()
                raise
        return self

    async def __aenter__(self) -> Master:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The port actually listened on (still known after :meth:`close`)."""
        if self._port is None:
            raise RuntimeError("the master is not started (use async with Master(...))")
        return self._port

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def workers(self) -> list[str]:
        """Names of the connected workers, in joining order."""
        return list(self._peers)

    async def close(self) -> None:
        """Say ``bye`` to every worker, fail running fits with :class:`ClusterClosed`, stop."""
        if self._closing:
            return
        self._closing = True
        try:
            await self._shut_down()
        finally:  # even if saying goodbye failed or was cancelled: stop serving the page
            if self.dashboard is not None:
                await self.dashboard.close()

    async def _shut_down(self) -> None:
        if self._server is not None:
            self._server.close()
        for job in self._jobs.values():
            if not job.future.done():
                job.future.set_exception(ClusterClosed("the master was closed during the fit"))
        if self._peers_changed is not None:
            await self._notify_peers()
        peers = list(self._peers.values())
        if peers:
            await asyncio.gather(*(self._goodbye(peer) for peer in peers))
        handlers = list(self._handlers)
        if handlers:
            _, pending = await asyncio.wait(handlers, timeout=5.0)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._server is not None:
            await self._server.wait_closed()

    @staticmethod
    async def _goodbye(peer: _Peer) -> None:
        if peer.sender is not None:
            peer.sender.cancel()
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            async with asyncio.timeout(2.0):
                await peer.conn.send(Bye("master shutting down").to_message())
        await peer.conn.aclose(timeout=2.0)

    def _check_open(self) -> None:
        if self._server is None:
            raise RuntimeError("the master is not started (use async with Master(...))")
        if self._closing:
            raise ClusterClosed("the master is closed")

    # ------------------------------------------------------------------ workers

    async def wait_for_workers(self, n: int, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until at least ``n`` workers are connected (``TimeoutError`` after ``timeout``)."""
        self._check_open()
        assert self._peers_changed is not None
        async with asyncio.timeout(timeout), self._peers_changed:
            await self._peers_changed.wait_for(lambda: len(self._peers) >= n or self._closing)
        if len(self._peers) < n:
            raise ClusterClosed("the master closed while waiting for workers")

    async def _notify_peers(self) -> None:
        assert self._peers_changed is not None
        async with self._peers_changed:
            self._peers_changed.notify_all()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A connection that ends badly gets exactly one log line naming the peer and the
        # reason. Nothing may escape this callback: asyncio would log it once more as an
        # unhandled error of the server, without saying which peer it was about.
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        peer = format_peer(writer.get_extra_info("peername"))
        try:
            if self._closing:
                writer.close()
                return
            try:
                conn = await accept(
                    reader, writer, token=self._token, timeout=self.handshake_timeout,
                    config=self.config,
                )
            except AuthenticationError as exc:
                self._auth_failures += 1
                logger.warning("master: refused connection from %s: %s", peer, exc.detail)
                return
            except ProtocolError as exc:  # garbage, a bad frame, a timeout (HandshakeTimeout)
                where = "" if exc.frame is None else f"frame {exc.frame}: "
                logger.info("master: refused connection from %s: %s%s", peer, where, exc.detail)
                return
            except OSError as exc:  # reset or lost during the handshake (ConnectionClosed)
                logger.info(
                    "master: refused connection from %s: connection lost (%s)",
                    peer, exc.__cause__ or exc,
                )
                return
            await self._serve(conn)
        except Exception:  # a bug of ours: say so once, and never leave the socket open
            logger.exception("master: internal error on the connection from %s", peer)
            writer.transport.abort()
        finally:
            self._handlers.discard(task)

    async def _register(self, conn: Connection) -> Register | None:
        try:
            msg = await conn.recv(timeout=self.handshake_timeout)
            reg = decode(msg, expect=("register",))
        except (ProtocolError, ConnectionClosed, TimeoutError) as exc:
            if isinstance(exc, ProtocolError):  # a bad frame or the wrong message
                reason = exc.detail if exc.frame is None else f"frame {exc.frame}: {exc.detail}"
            elif isinstance(exc, ConnectionClosed):
                reason = _closed_reason(exc)
            else:
                reason = f"no register message within {self.handshake_timeout:g} s"
            logger.warning(
                "master: dropped connection from %s before it registered: %s", conn.peer, reason
            )
            conn.abort()
            return None
        assert isinstance(reg, Register)
        refusal = None
        if reg.version != CLUSTER_PROTOCOL_VERSION:
            refusal = (
                f"cluster protocol version {reg.version} is not supported "
                f"(this master speaks {CLUSTER_PROTOCOL_VERSION})"
            )
        elif not reg.name.isprintable():
            # The name goes into log lines: a newline in it could forge lines of its own.
            refusal = "the worker name must be printable (no control characters)"
        elif self._closing:
            refusal = "master shutting down"
        if refusal is not None:
            logger.log(
                logging.INFO if self._closing else logging.WARNING,
                "master: refused worker %r from %s: %s", reg.name, conn.peer, refusal,
            )
            with contextlib.suppress(ConnectionClosed):
                await conn.send(Bye(refusal).to_message())
            await conn.aclose(timeout=1.0)
            return None
        return reg

    def _unique_name(self, name: str) -> str:
        if name not in self._peers:
            return name
        for n in itertools.count(2):
            candidate = f"{name}#{n}"
            if candidate not in self._peers:
                return candidate
        raise AssertionError("unreachable")

    async def _serve(self, conn: Connection) -> None:
        reg = await self._register(conn)
        if reg is None:
            return
        name = self._unique_name(reg.name)
        peer = _Peer(name, conn)
        self._peers[name] = peer  # reserves the name before we await anything
        graceful = False
        try:
            await conn.send(
                Welcome(name, self.heartbeat_interval, self.heartbeat_timeout).to_message()
            )
            self._tasks_done_by.setdefault(name, 0)
            self._admit(peer, reg)
            peer.sender = go(self._send_loop(peer), name=f"aioforest-master-send-{name}")
            logger.info(
                "master: worker %s joined from %s with %d slots", name, conn.peer, reg.slots,
                extra={"event": "worker_joined", "worker": name, "slots": reg.slots},
            )
            await self._notify_peers()
            self._pump()
            while True:
                received = await conn.recv(timeout=self.heartbeat_timeout)
                # Checking a big message (results become trees) is O(size): off the loop,
                # by the same rule as the frames it came in.
                if received.nbytes >= OFF_LOOP_FRAME_BYTES:
                    msg = await asyncio.to_thread(decode, received, expect=_MASTER_RECEIVES)
                else:
                    msg = decode(received, expect=_MASTER_RECEIVES)
                peer.last_heard = time.monotonic()
                if isinstance(msg, Bye):
                    logger.info("master: worker %s left: %s", name, msg.reason,
                                extra={"event": "worker_left", "worker": name})
                    graceful = True
                    break
                self._on_message(peer, msg)
        except TimeoutError:
            logger.warning(
                "master: worker %s (%s) sent nothing for %.1f s; dropping it",
                name, conn.peer, self.heartbeat_timeout,
                extra={"event": "worker_lost", "worker": name, "reason": "silent"},
            )
        except ConnectionClosed as exc:
            if not self._closing:
                logger.warning(
                    "master: lost worker %s (%s): %s", name, conn.peer, _closed_reason(exc),
                    extra={"event": "worker_lost", "worker": name, "reason": "disconnected"},
                )
        except ProtocolError as exc:
            # The peer's fault, not ours: a warning, like every other hostile peer.
            where = "" if exc.frame is None else f"frame {exc.frame}: "
            logger.warning(
                "master: dropping worker %s (%s): %s%s", name, conn.peer, where, exc.detail,
                extra={"event": "worker_lost", "worker": name, "reason": "protocol error"},
            )
        except Exception:  # a bug of ours: drop the worker (its tasks are requeued), say why
            logger.exception("master: internal error while serving worker %s (%s)", name, conn.peer)
        finally:
            await self._drop_peer(peer, graceful=graceful)

    def _admit(self, peer: _Peer, reg: Register) -> None:
        """Register a welcomed worker with the scheduler.

        A worker process keeps its incarnation across reconnections: if one we dropped
        without a ``bye`` comes back, its process did not die, so the tasks it held do not
        count it towards ``max_attempts``.
        """
        peer.incarnation = reg.incarnation or f"{peer.name}@{id(peer):x}"
        if peer.incarnation in self._lost_incarnations:
            self._lost_incarnations.discard(peer.incarnation)
            self._scheduler.forgive(peer.incarnation)
            logger.info("master: worker %s is back (same process); forgiven", peer.name)
        self._scheduler.add_worker(peer.name, reg.slots, reg.datasets)

    async def _drop_peer(self, peer: _Peer, *, graceful: bool) -> None:
        # Forget the worker in _peers and in the scheduler before the first await: in
        # between, a newcomer could take the freed name while the scheduler still holds it,
        # or _pump could hand a task to a worker missing from _peers.
        if self._peers.get(peer.name) is peer:
            del self._peers[peer.name]
        if not graceful and not self._closing and self._scheduler.has_worker(peer.name):
            self._workers_lost += 1
            self._lost_incarnations.add(peer.incarnation)
        lost = self._scheduler.on_worker_lost(
            peer.name, graceful=graceful, crash_key=peer.incarnation
        )
        peer.conn.abort()
        peer.outbox.close()  # nothing more goes to it; the send loop ends
        for session in list(self._part_sessions.values()):
            session.on_worker_lost(peer.name)
        stats = peer.conn.stats
        self._closed_bytes["sent_raw"] += stats.sent.raw_bytes
        self._closed_bytes["sent_wire"] += stats.sent.wire_bytes
        self._closed_bytes["received_raw"] += stats.received.raw_bytes
        self._closed_bytes["received_wire"] += stats.received.wire_bytes
        for failure in lost:
            self._fail_job(failure.job_id, self._job_error(failure), failure.cancels)
        self._pump()
        if peer.sender is not None:
            peer.sender.cancel()
            await asyncio.wait([peer.sender])
        await self._notify_peers()

    def _on_message(self, peer: _Peer, msg: object) -> None:
        if isinstance(msg, Heartbeat):
            self._scheduler.update_load(
                peer.name, running=msg.running, queued=msg.queued, free=msg.free
            )
        elif isinstance(msg, Result):
            self._on_result(peer, msg)
        elif isinstance(msg, PartReply):
            session = self._part_sessions.get(msg.session)
            if session is not None:
                session.on_reply(peer.name, msg)
            return  # not the scheduler's business
        elif isinstance(msg, TaskFailed):
            failure = self._scheduler.on_failed(
                peer.name, msg.job_id, msg.task_id, msg.attempt, msg.reason, msg.detail
            )
            if msg.reason != "cancelled":
                logger.info(
                    "master: worker %s: task %d/%d failed (%s): %s",
                    peer.name, msg.job_id, msg.task_id, msg.reason, msg.detail,
                    extra={"event": "task_failed", "worker": peer.name, "task": msg.task_id,
                           "reason": msg.reason},
                )
            if failure is not None:
                self._fail_job(failure.job_id, self._job_error(failure), failure.cancels)
        self._pump()

    def _job_error(self, failure: JobFailed) -> JobFailedError:
        job = self._jobs.get(failure.job_id)
        info = job.tasks.get(failure.task_id) if job is not None else None
        trees = info.indices if info is not None else ()
        where = f" (its trees: {tree_ranges(trees)})" if trees else ""
        return JobFailedError(f"{failure.reason}{where}", task_id=failure.task_id, trees=trees)

    def _on_result(self, peer: _Peer, res: Result) -> None:
        job = self._jobs.get(res.job_id)
        info = job.tasks.get(res.task_id) if job is not None else None
        if job is not None and info is not None:
            _check_trees(res, info, job)
        peer.results += 1
        outcome = self._scheduler.on_result(
            peer.name, res.job_id, res.task_id, res.attempt, time.monotonic()
        )
        if not outcome.accepted:
            logger.debug(
                "master: discarded a duplicate or superseded result %d/%d/%d from %s",
                res.job_id, res.task_id, res.attempt, peer.name,
            )
            return
        if outcome.cancels:  # the other copy of a backed-up task: stop it
            for name in outcome.cancels:
                logger.info(
                    "master: task %d/%d done by %s%s; cancelling the copy on %s",
                    res.job_id, res.task_id, peer.name,
                    " (backup)" if outcome.backup_won else "", name,
                )
            self._send_cancels(res.job_id, outcome.cancels)
        self._tasks_done_by[peer.name] = self._tasks_done_by.get(peer.name, 0) + 1
        assert job is not None and info is not None
        self._trees_received += len(res.trees)
        peer.trees += len(res.trees)
        if job.checkpoint is not None:
            self._save(job, dict(zip(info.indices, res.trees, strict=True)))
        for index, tree in zip(info.indices, res.trees, strict=True):
            job.trees[index] = tree
            if job.on_progress is not None and not job.future.done():
                progress = FitProgress(
                    index, len(job.trees), job.total, time.perf_counter() - job.t0
                )
                try:
                    job.on_progress(progress)
                except Exception as exc:
                    self._fail_job(job.job_id, exc, self._scheduler.remove_job(job.job_id))
                    return
        if self._scheduler.is_complete(job.job_id):
            self._scheduler.remove_job(job.job_id)
            if not job.future.done():
                job.future.set_result(None)

    def _save(self, job: _Job, trees: dict[int, TreeArrays]) -> None:
        """Write trees to the job's checkpoint (in a thread); a failed write fails the fit."""
        checkpoint = job.checkpoint
        assert checkpoint is not None
        write = asyncio.ensure_future(asyncio.to_thread(checkpoint.write_trees, trees))
        job.writes.add(write)

        def written(f: asyncio.Future[None]) -> None:
            job.writes.discard(f)
            exc = None if f.cancelled() else f.exception()
            if exc is not None and not job.future.done():
                error = CheckpointError(
                    f"cannot write trees {tree_ranges(list(trees))} to the checkpoint in "
                    f"{checkpoint.directory}: {exc}"
                )
                self._fail_job(job.job_id, error, self._scheduler.remove_job(job.job_id))

        write.add_done_callback(written)

    def _fail_job(
        self, job_id: int, exc: BaseException, cancels: dict[str, list[int]]
    ) -> None:
        self._scheduler.remove_job(job_id)
        job = self._jobs.get(job_id)
        if job is not None and not job.future.done():
            job.future.set_exception(exc)
        self._send_cancels(job_id, cancels)

    def _send_cancels(self, job_id: int, cancels: dict[str, list[int]]) -> None:
        for name, task_ids in cancels.items():
            peer = self._peers.get(name)
            if peer is not None:
                self._cancels_sent += len(task_ids)
                peer.outbox.send_nowait(Cancel(job_id, tuple(task_ids)).to_message())

    # ------------------------------------------------------------------ sending

    def _pump(self) -> None:
        """Turn free credits into messages in the workers' outboxes."""
        for a in self._scheduler.assign(time.monotonic()):
            peer = self._peers[a.worker]
            info = self._jobs[a.job_id].tasks[a.task_id]
            if a.attempt > 0:  # a retry after a loss, or a backup copy: work done again
                self._trees_refitted += len(info.indices)
            if a.backup:
                logger.info(
                    "master: task %d/%d is straggling; backup copy on %s",
                    a.job_id, a.task_id, a.worker,
                )
            if a.send_dataset:
                peer.outbox.send_nowait(_DatasetRef(a.dataset))
            task = Task(
                a.job_id, a.task_id, a.attempt, info.dataset, info.plan, info.indices,
                info.rows, info.bins,
            )
            peer.outbox.send_nowait(task.to_message())

    async def _ping(self, peer: _Peer) -> None:
        """Heartbeats to the worker, so it can tell a frozen or cut-off master from a quiet
        one. Sent beside the send loop: the wire lets them overtake a big dataset."""
        ping = Heartbeat(0, 0, 0).to_message()
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(self.heartbeat_interval)
                await peer.conn.send(ping)

    async def _send_loop(self, peer: _Peer) -> None:
        # One sender per worker: a task never overtakes the dataset it needs (the wire
        # adapter lets small messages overtake chunked ones on the same connection).
        pinger = go(self._ping(peer), name=f"aioforest-master-ping-{peer.name}")
        try:
            async for item in peer.outbox:
                if isinstance(item, _DatasetRef):
                    entry = self._datasets.get(item.digest)
                    if entry is None:
                        continue  # its fits are over; the worker will report it missing
                    await peer.conn.send(entry.wire_message())
                    peer.datasets_sent += 1
                    self._datasets_sent += 1
                else:
                    await peer.conn.send(item)
                    if item.type == Task.TYPE:
                        peer.tasks_sent += 1
        except ConnectionClosed:
            pass  # the reader notices too and drops the worker
        except (TypeError, ValueError) as exc:  # an unencodable message: our bug
            logger.error("master: cannot send to worker %s: %s", peer.name, exc)
            peer.conn.abort()
        finally:
            pinger.cancel()
            await asyncio.wait([pinger])

    # ------------------------------------------------------------------ fitting

    async def fit(
        self,
        estimator: Forest,
        X: object,
        y: object = None,
        sample_weight: object = None,
        *,
        mode: Literal["model", "data", "shards"] = "model",
        n_shards: int | None = None,
        replicas: int = 1,
        on_progress: Callable[[FitProgress], object] | None = None,
        priority: int = 0,
        task_size: int | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        resume: Literal["auto", "new", "require"] = "auto",
    ) -> Forest:
        """Fit ``estimator`` (a random forest) on the cluster and return it.

        ``mode="model"``: every worker trains whole trees on the full binned dataset; the
        forest is bit-identical to ``estimator.fit(X, y)``.

        ``mode="data"``: ``X`` is a :class:`~aioforest.data.Partitions` whose files the
        workers read; rows never reach the master, every worker helps grow every tree
        (histogram aggregation, :mod:`~aioforest.cluster._data_parallel`), and the forest
        is bit-identical to ``estimator.fit(X)`` for any partitioning, any number of
        workers, and after workers die mid-fit.

        ``mode="shards"`` (an approximation): tree ``i`` trains on row shard
        ``i % n_shards`` only (default: one shard per worker; the forest depends on it).
        Each shard goes to at most ``replicas`` workers (default 1), whose free slots then
        share its trees. Bins are learned once, here, on all rows.

        ``on_progress`` is called with a :class:`~aioforest.ensemble.FitProgress` per tree
        received. ``priority``: higher runs first when several fits share the cluster.
        ``task_size``: trees per task (default: balance between batching and spreading).

        ``checkpoint_dir``: write every tree to this directory as soon as it arrives
        (atomically, with the job's specification and data hashes; see
        :mod:`~aioforest.cluster._checkpoint`). If the directory already holds this job's
        checkpoint (a killed run), only the missing trees are fitted and the forest is the
        one an uninterrupted run gives; a checkpoint of other data or parameters, or a
        damaged one, raises :class:`~aioforest.cluster.CheckpointError`. ``resume``:
        ``"auto"`` (resume if there is a checkpoint), ``"new"`` (refuse an existing one) or
        ``"require"`` (refuse to start without one). Resuming needs a fixed
        ``random_state``: with ``None`` every run draws another forest.

        Raises :class:`JobFailedError` if a task fails, :class:`ClusterClosed` if the
        master closes first. Cancelling the call cancels the fit's tasks on the workers.
        """
        self._check_open()
        _check_forest(estimator, "fit")
        self.check_fit_options(estimator, mode, n_shards, replicas)
        _check_task_size(task_size)
        if mode == "data":
            await self._fit_data(estimator, X, y, sample_weight, checkpoint_dir, resume,
                                 on_progress)
            return estimator
        await self._fit_tasks(estimator, X, y, sample_weight, mode=mode, n_shards=n_shards,
                              replicas=replicas, on_progress=on_progress, priority=priority,
                              task_size=task_size, checkpoint_dir=checkpoint_dir,
                              resume=resume)
        return estimator

    async def _fit_tasks(
        self, estimator: Forest, X: object, y: object, sample_weight: object, *, mode: str,
        n_shards: int | None, replicas: int,
        on_progress: Callable[[FitProgress], object] | None, priority: int,
        task_size: int | None, checkpoint_dir: str | os.PathLike[str] | None,
        resume: Literal["auto", "new", "require"],
    ) -> None:
        """Model and shard mode: whole trees as tasks, on data the master sends."""
        job = await asyncio.to_thread(estimator.fit_job, X, y, sample_weight)
        if not job.indices:
            return  # the job warned
        k: int | None = None
        if mode == "shards":
            _check_data_mode(job)
            k = n_shards if n_shards is not None else max(1, len(self._peers))
        bins, codes = await asyncio.to_thread(_bin_in_threads, job)
        groups = await asyncio.to_thread(_fit_groups, job, bins, codes, k)
        del codes  # the payloads hold what the workers need
        checkpoint: Checkpoint | None = None
        saved: dict[int, TreeArrays] = {}
        if checkpoint_dir is not None:
            spec = job_spec(
                data_hashes=[g.payload.hash for g in groups], plan=job.plan.to_json(),
                params=estimator.get_params(), indices=job.indices, mode=mode, n_shards=k)
            checkpoint, saved, groups = await self._resume(checkpoint_dir, spec, resume, groups)
        try:
            trees = await self._run_job(
                groups, n_outputs=job.n_outputs, n_features=bins.n_features,
                on_progress=on_progress, priority=priority, task_size=task_size,
                replicas=replicas if mode == "shards" else None, checkpoint=checkpoint,
            ) if groups else {}
        finally:
            if checkpoint is not None:
                await asyncio.to_thread(checkpoint.close)  # waits for writes in flight
        await asyncio.to_thread(job.install, {**saved, **trees})

    async def _fit_data(
        self, estimator: Forest, X: object, y: object, sample_weight: object,
        checkpoint_dir: str | os.PathLike[str] | None,
        resume: Literal["auto", "new", "require"],
        on_progress: Callable[[FitProgress], object] | None,
    ) -> None:
        if not isinstance(X, Partitions) or y is not None or sample_weight is not None:
            raise ValueError(
                "mode='data' grows every tree on rows the workers read themselves: pass "
                "X=aioforest.Partitions([...]) (no y or sample_weight); for data in "
                "memory use mode='model', or mode='shards'"
            )
        opened: list[Checkpoint] = []

        async def open_checkpoint(spec: dict[str, Any]) -> Checkpoint:
            assert checkpoint_dir is not None
            checkpoint = await asyncio.to_thread(Checkpoint.open, checkpoint_dir, spec,
                                                 resume=resume)
            opened.append(checkpoint)
            self._trees_resumed += len(checkpoint.trees)
            return checkpoint

        try:
            await fit_partitions(
                self, estimator, X, on_progress=on_progress, sessions=self._part_sessions,
                open_checkpoint=open_checkpoint if checkpoint_dir is not None else None)
        finally:
            for checkpoint in opened:
                await asyncio.to_thread(checkpoint.close)

    async def _resume(
        self,
        directory: str | os.PathLike[str],
        spec: dict[str, Any],
        resume: Literal["auto", "new", "require"],
        groups: list[_Group],
    ) -> tuple[Checkpoint, dict[int, TreeArrays], list[_Group]]:
        """Open the job's checkpoint: the trees it holds, and the groups left to fit."""
        checkpoint = await asyncio.to_thread(Checkpoint.open, directory, spec, resume=resume)
        saved = checkpoint.trees
        missing = set(checkpoint.missing)
        groups = [
            dataclasses.replace(g, indices=[i for i in g.indices if i in missing])
            for g in groups
        ]
        self._trees_resumed += len(saved)
        if saved:
            logger.info(
                "master: resuming from %s: %d trees saved, %d to fit",
                directory, len(saved), len(missing),
            )
        return checkpoint, saved, [g for g in groups if g.indices]

    async def cross_validate(
        self,
        estimator: SupportsFitJob,
        data: object,
        y: object = None,
        *,
        folds: int = 5,
        stratified: bool = True,
        random_state: Any = None,
        shuffle: bool = True,
        on_progress: Callable[[FitProgress], object] | None = None,
        priority: int = 0,
    ) -> list[ConfusionMatrix]:
        """k-fold cross-validation on the cluster: one :class:`ConfusionMatrix` per fold.

        The same folds, clones and matrices as :func:`aioforest.cross_validate` with the same
        arguments (bit-identical trees when the estimator has a fixed ``random_state``).
        The folds' fits run concurrently; each fold's test rows are predicted here.

        The data crosses the network once: the encoded float feature matrix and labels go
        to each worker as one *raw* dataset shared by every fold. A local fit on a fold bins
        only that fold's training rows, so here each fold's bins are learned on those rows
        (on the master, as the local fit would) and travel with the fold's tasks (a few KB),
        along with the training row indices; the worker bins those rows itself. A fold
        whose encoded training data differs from the full data's rows (say, a class absent
        from its training rows re-codes the labels) gets its own binned dataset instead.
        Trade-off: the raw matrix is float64, eight times the uint8 codes, so with few folds
        it can weigh more than sending each fold's codes; in exchange later runs on the same
        data (other seeds, other parameters) send no data at all, whatever their folds.

        ``on_progress`` gets a :class:`~aioforest.ensemble.FitProgress` per tree received,
        counting the trees of all folds.
        """
        self._check_open()
        _check_forest(estimator, "cross_validate")
        check_int("folds", folds, 2)
        if estimator.warm_start:
            raise ValueError("cross_validate needs warm_start=False: each fold fits from scratch")
        full, fold_plans, all_labels = await asyncio.to_thread(
            _cv_plans, estimator, data, y, folds, stratified, random_state, shuffle
        )
        raw = await asyncio.to_thread(
            DatasetPayload.build_raw, full.X, full.y, full.sample_weight, full.is_categorical
        )
        total = sum(len(f.job.indices) for f in fold_plans)
        counter = _ProgressCounter(total, on_progress)
        progress = counter.callback(time.perf_counter()) if on_progress is not None else None

        async def run_fold(fold: _FoldPlan) -> ConfusionMatrix:
            try:
                predicted = await self._fit_fold(fold, raw, total, progress, priority)
            except Exception as exc:
                exc.add_note(f"(in cross-validation fold {fold.number} of {folds})")
                raise
            return confusion_matrix(fold.truth, predicted).with_labels(all_labels)

        # One reference for the whole run: the raw dataset stays known between folds' jobs.
        entry = self._datasets.setdefault(raw.hash, _DatasetEntry(raw))
        entry.refs += 1
        runs = [asyncio.ensure_future(run_fold(f)) for f in fold_plans]
        try:
            return list(await asyncio.gather(*runs))
        except BaseException:
            for r in runs:  # one fold failed (or we were cancelled): stop the others
                r.cancel()
            await asyncio.wait(runs)
            raise
        finally:
            self._release([raw.hash])

    async def _fit_fold(
        self,
        fold: _FoldPlan,
        raw: DatasetPayload,
        total: int,
        on_progress: Callable[[FitProgress], object] | None,
        priority: int,
    ) -> np.ndarray[Any, Any]:
        """Fit one cross-validation fold's model on the cluster; its test predictions."""
        job = fold.job
        trees = await self._run_job(
            [fold.group(raw)], n_outputs=job.n_outputs, n_features=job.bins.n_features,
            on_progress=on_progress, priority=priority, replicas=None,
            # The folds run side by side, so balance tasks over all of their trees: fewer,
            # larger tasks (each carries the fold's rows and bins).
            task_size=_task_size(total, job.plan.n_draws, self._slots()),
        )
        await asyncio.to_thread(job.install, trees)
        return await asyncio.to_thread(fold.predict)

    def _slots(self) -> int:
        """Task slots over all registered workers."""
        return sum(self._scheduler.worker_info(w)["slots"] for w in self._scheduler.workers)

    def _release(self, digests: list[str]) -> None:
        for digest in digests:
            entry = self._datasets[digest]
            entry.refs -= 1
            if entry.refs == 0:
                del self._datasets[digest]

    async def _run_job(
        self,
        groups: list[_Group],
        *,
        n_outputs: int,
        n_features: int,
        on_progress: Callable[[FitProgress], object] | None,
        priority: int,
        task_size: int | None,
        replicas: int | None,
        checkpoint: Checkpoint | None = None,
    ) -> dict[int, TreeArrays]:
        """Schedule the groups' trees as one job and wait for all of them (and for their
        checkpoint writes)."""
        for g in groups:
            if g.payload.nbytes > self.config.max_message_size:
                raise ValueError(
                    f"the dataset is {g.payload.nbytes} bytes, over the wire limit "
                    f"max_message_size={self.config.max_message_size}; use mode='shards' with "
                    "more shards, or raise the limit in the WireConfig of master and workers"
                )
        self._check_open()
        slots = self._slots()
        job_id = next(self._job_ids)
        tasks: dict[int, _TaskInfo] = {}
        for g in groups:
            size = task_size or _task_size(len(g.indices), g.plan.n_draws, slots)
            for lo in range(0, len(g.indices), size):
                chunk = tuple(g.indices[lo : lo + size])
                tasks[len(tasks)] = _TaskInfo(chunk, g.payload.hash, g.plan, g.rows, g.bins)
        digests = [g.payload.hash for g in groups]
        for g in groups:
            entry = self._datasets.setdefault(g.payload.hash, _DatasetEntry(g.payload))
            entry.refs += 1
        job = _Job(
            job_id, tasks, sum(len(g.indices) for g in groups),
            n_outputs=n_outputs, n_features=n_features,
            future=asyncio.get_running_loop().create_future(), on_progress=on_progress,
            t0=time.perf_counter(), datasets=digests, checkpoint=checkpoint,
        )
        self._jobs[job_id] = job
        try:
            specs = [
                TaskSpec(tid, t.dataset, t.indices[0], replicas) for tid, t in tasks.items()
            ]
            self._scheduler.add_job(job_id, specs, priority=priority)
            self._pump()
            await job.future
            while job.writes:  # the last trees' checkpoint writes
                await asyncio.gather(*job.writes)
        except BaseException:
            self._send_cancels(job_id, self._scheduler.remove_job(job_id))
            raise
        finally:
            del self._jobs[job_id]
            self._release(digests)
            if job.writes:  # a cancelled or failed fit still saves the trees it received
                await asyncio.wait(set(job.writes))
        return job.trees

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """A snapshot: workers (load, tasks, bytes), task counts, running fits, bytes on the wire.

        O(workers + the running fits' tasks), cheap enough for a status page a few times
        a second (the dashboard caches it for ``min_interval``). ``bytes`` counts every
        connection so far; ``raw`` is what the frames would weigh without compression,
        ``wire`` what was actually sent. ``jobs`` are the running model-parallel fits,
        ``data_fits`` the data-parallel ones (with their rounds and histogram bytes).
        """
        now, clock = time.monotonic(), time.perf_counter()
        totals = dict(self._closed_bytes)
        workers: dict[str, Any] = {}
        for name, peer in self._peers.items():
            if not self._scheduler.has_worker(name):
                continue  # still being welcomed
            stats = peer.conn.stats
            totals["sent_raw"] += stats.sent.raw_bytes
            totals["sent_wire"] += stats.sent.wire_bytes
            totals["received_raw"] += stats.received.raw_bytes
            totals["received_wire"] += stats.received.wire_bytes
            workers[name] = {
                "peer": peer.conn.peer,
                **self._scheduler.worker_info(name),
                "tasks_sent": peer.tasks_sent,
                "datasets_received": peer.datasets_sent,
                "results": peer.results,
                "trees_done": peer.trees,
                "heartbeat_age_s": max(0.0, now - peer.last_heard),
                "bytes_sent_raw": stats.sent.raw_bytes,
                "bytes_sent_wire": stats.sent.wire_bytes,
                "bytes_received_raw": stats.received.raw_bytes,
                "bytes_received_wire": stats.received.wire_bytes,
                "messages_sent": stats.sent.messages,
            }
        jobs = {
            job_id: {"trees": job.total, "trees_done": len(job.trees),
                     "elapsed_s": clock - job.t0}
            for job_id, job in self._jobs.items()
        }
        data_fits = {sid: session.progress(clock) for sid, session in self._part_sessions.items()}
        return {
            "address": self.address if self._server is not None else None,
            "workers": workers,
            "tasks": self._scheduler.counts(),
            "tasks_done_by_worker": dict(self._tasks_done_by),
            "jobs": jobs,
            "data_fits": data_fits,
            "datasets_sent": self._datasets_sent,
            "bytes": totals,
            "auth_failures": self._auth_failures,
            "workers_lost": self._workers_lost,
            # Fault tolerance: copies requeued after a loss, backup copies started and won,
            # results discarded (duplicates, superseded or cancelled copies), cancels sent.
            "retries": self._scheduler.stats["requeued"],
            "backups": self._scheduler.stats["backups"],
            "backups_won": self._scheduler.stats["backups_won"],
            "discarded_results": self._scheduler.stats["rejected_results"],
            "cancels_sent": self._cancels_sent,
            "trees_fitted": self._trees_received,
            "trees_resumed": self._trees_resumed,
            "trees_refitted": self._trees_refitted,
        }


def _check_trees(res: Result, info: _TaskInfo, job: _Job) -> None:
    """A worker's result must match its task; anything else is a protocol violation."""
    if len(res.trees) != len(info.indices):
        raise MessageError(
            "result", "arrays",
            f"task {res.job_id}/{res.task_id} asked for {len(info.indices)} trees, "
            f"got {len(res.trees)}",
        )
    for tree in res.trees:
        if tree.value.shape[1] != job.n_outputs:
            raise MessageError(
                "result", "arrays['value']",
                f"trees must have {job.n_outputs} outputs, got {tree.value.shape[1]}",
            )
        if int(tree.feature.max()) >= job.n_features:
            raise MessageError(
                "result", "arrays['feature']", f"split on a feature >= {job.n_features}"
            )


def _closed_reason(exc: ConnectionClosed) -> str:
    """Why a connection ended, for a log line: a reset or error, or a plain close."""
    cause = exc.__cause__
    if isinstance(cause, OSError):
        return f"connection lost ({cause})"
    return "the peer closed the connection"


def _shard_groups(
    bins: Bins,
    codes: np.ndarray[Any, Any],
    y: np.ndarray[Any, Any],
    sample_weight: np.ndarray[Any, Any] | None,
    plan: ForestPlan,
    indices: list[int],
    n_shards: int,
) -> list[_Group]:
    """Data-parallel split: shard datasets (global bins), their plans, and their trees."""
    check_int("n_shards", n_shards, 1)
    n = codes.shape[1]
    if n_shards > n:
        raise ValueError(f"cannot split {n} rows into {n_shards} shards")
    # Shuffled shards: contiguous ones would inherit any ordering of the file (sorted by
    # class, by date...). Seeded by the plan, so the split is part of the model.
    shards = split_rows(n, n_shards, shuffle=True, random_state=plan.seed)
    out = []
    for s, rows in enumerate(shards):
        trees = [i for i in indices if i % n_shards == s]
        if not trees:
            continue
        sw = sample_weight[rows] if sample_weight is not None else None
        payload = DatasetPayload.build(bins, codes[:, rows], y[rows], sw)
        # The bootstrap draws as many rows from the shard as the full plan would draw
        # from all rows, scaled by the shard's share.
        n_draws = max(1, round(plan.n_draws * rows.size / n))
        out.append(_Group(payload, dataclasses.replace(plan, n_draws=n_draws), trees))
    return out


def _check_forest(estimator: object, method: str) -> None:
    if not callable(getattr(estimator, "fit_job", None)):
        raise TypeError(
            f"Master.{method} needs an aioforest RandomForestClassifier or RandomForestRegressor, "
            f"got {type(estimator).__name__}"
        )


def _check_data_mode(job: FitJob) -> None:
    # oob_score is refused earlier, by check_fit_options
    if job.warm:
        raise ValueError("warm_start fits are not supported with mode='shards' yet")


def _bin_in_threads(job: FitJob) -> tuple[Bins, np.ndarray[Any, Any]]:
    """The job's bins and its codes, feature-major, its features binned by a thread per
    core (``FitJob.bin_into``: the same bins and codes as ``FitJob.bin``); the workers
    wait for them before their first task."""
    rows = np.empty(job.X.shape, dtype=np.uint8)
    bins = job.bin_into(rows, os.cpu_count() or 1)
    return bins, rows.T


def _fit_groups(
    job: FitJob, bins: Bins, codes: np.ndarray[Any, Any], n_shards: int | None
) -> list[_Group]:
    """The job's datasets and their trees: one (model mode) or one per shard (data mode)."""
    if n_shards is None:
        payload = DatasetPayload.build(bins, codes, job.y, job.sample_weight)
        return [_Group(payload, job.plan, list(job.indices))]
    return _shard_groups(
        bins, codes, job.y, job.sample_weight, job.plan, list(job.indices), n_shards
    )


def _check_task_size(task_size: object) -> None:
    if task_size is not None:
        check_int("task_size", task_size, 1)


class _ProgressCounter:
    """Turns per-job progress into one count over several jobs (cross-validation folds)."""

    def __init__(self, total: int, sink: Callable[[FitProgress], object] | None) -> None:
        self.total = total
        self.done = 0
        self.sink = sink

    def callback(self, t0: float) -> Callable[[FitProgress], object]:
        def on_tree(p: FitProgress) -> object:
            self.done += 1
            assert self.sink is not None
            return self.sink(FitProgress(p.index, self.done, self.total,
                                         time.perf_counter() - t0))

        return on_tree


@dataclass(eq=False)
class _FoldPlan:
    """One cross-validation fold: its fit job (binned), test rows and how to predict them."""

    job: FitJob  # the fold model's fit job on the fold's training rows
    codes: np.ndarray[Any, Any] | None  # None: the fold uses the full raw dataset's rows
    train: np.ndarray[Any, Any]
    truth: np.ndarray[Any, Any]
    predict: Callable[[], np.ndarray[Any, Any]]
    number: int  # 1-based

    def group(self, raw: DatasetPayload) -> _Group:
        """The fold's trees: on the shared raw dataset (training rows and bins travel with
        each task), or on a binned dataset of its own."""
        job = self.job
        if self.codes is None:
            return _Group(raw, job.plan, list(job.indices), self.train, job.bins)
        payload = DatasetPayload.build(job.bins, self.codes, job.y, job.sample_weight)
        return _Group(payload, job.plan, list(job.indices))


def _shares_rows(fold: FitJob, full: FitJob, train: np.ndarray[Any, Any]) -> bool:
    """Whether the fold's encoded rows are exactly the full data's ``train`` rows (same
    features, label codes and weights), so that it can use the shared raw dataset."""
    fw, sw = fold.sample_weight, full.sample_weight
    return bool(
        fold.features == full.features
        and np.array_equal(fold.X, full.X[train], equal_nan=True)
        and np.array_equal(fold.y, full.y[train])
        and (fw is None) == (sw is None)
        and (fw is None or sw is None or np.array_equal(fw, sw[train]))
    )


def _cv_plans(
    estimator: SupportsFitJob,
    data: object,
    y: object,
    folds: int,
    stratified: bool,
    random_state: Any,
    shuffle: bool,
) -> tuple[FitJob, list[_FoldPlan], tuple[Any, ...]]:
    """The full data's fit job, each fold's fit job and bins, and every label (in a thread)."""
    inputs = cv_inputs(
        data, y, folds=folds, stratified=stratified, random_state=random_state, shuffle=shuffle
    )
    labels, splits = inputs.labels, inputs.splits
    if inputs.dataset is not None:
        ds = inputs.dataset

        def fit_args(idx: np.ndarray[Any, Any]) -> tuple[object, object]:
            return ds.take(idx), None

        def test_xy(idx: np.ndarray[Any, Any]) -> tuple[Any, np.ndarray[Any, Any]]:
            t = ds.take(idx)
            return t.X, np.asarray(t.y)

        full_args: tuple[object, object] = (ds, None)
    else:
        X = inputs.X
        assert X is not None

        def fit_args(idx: np.ndarray[Any, Any]) -> tuple[object, object]:
            return X[idx], labels[idx]

        def test_xy(idx: np.ndarray[Any, Any]) -> tuple[Any, np.ndarray[Any, Any]]:
            return X[idx], labels[idx]

        full_args = (X, labels)
    full = clone(estimator).fit_job(*full_args)
    plans: list[_FoldPlan] = []
    for train, test in splits:
        model = clone(estimator)
        job = model.fit_job(*fit_args(train))
        shares = _shares_rows(job, full, train)  # before binning drops the job's rows
        _, codes = job.bin()
        test_X, truth = test_xy(test)

        def predict(model: Any = model, test_X: Any = test_X) -> np.ndarray[Any, Any]:
            return np.asarray(model.predict(test_X))

        plans.append(_FoldPlan(
            job, None if shares else codes, train, truth, predict, len(plans) + 1
        ))
    return full, plans, sort_labels(set(labels.tolist()))
