"""``LocalCluster``: a master on 127.0.0.1 plus worker subprocesses, for one machine.

The workers are real ``python -m aioforest.worker`` processes talking TCP to the master over
loopback, exactly as remote workers would; only their start and stop are automated. A random
token is generated when none is given (other local users cannot join), and it reaches the
workers through the environment (``AIOFOREST_TOKEN``), never the command line, which any
local user can read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import ssl as ssl_module
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any

from .._validation import check_int
from ..wire import check_tls_pair, server_ssl_context
from ._master import ClusterError, Master

__all__ = ["ClusterTLS", "LocalCluster"]


@dataclass(frozen=True)
class ClusterTLS:
    """Certificate files for a TLS :class:`LocalCluster` (PEM paths).

    The master serves ``cert``/``key``; the workers verify it against ``ca`` (so the
    certificate must name 127.0.0.1 or localhost). With ``worker_cert``/``worker_key`` the
    workers present that certificate and the master requires one signed by ``ca``
    (mutual TLS); without them the master accepts workers without certificates (the
    token still authenticates them).
    """

    ca: str | None
    cert: str
    key: str
    worker_cert: str | None = None
    worker_key: str | None = None

    def __post_init__(self) -> None:
        if self.ca is None:
            raise ValueError("TLS with local workers needs ca (the workers verify the master)")
        check_tls_pair(self.worker_cert, self.worker_key, ("worker_cert", "worker_key"))

    def server_context(self) -> ssl_module.SSLContext:
        mutual = self.worker_cert is not None
        return server_ssl_context(self.cert, self.key, self.ca if mutual else None)

    def worker_args(self) -> list[str]:
        assert self.ca is not None  # checked when made
        args = ["--tls-ca", self.ca]
        if self.worker_cert is not None and self.worker_key is not None:
            args += ["--tls-cert", self.worker_cert, "--tls-key", self.worker_key]
        return args


class LocalCluster:
    """``async with LocalCluster(2) as cluster: await cluster.master.fit(forest, X, y)``.

    Args:
        n_workers: worker processes to start (and wait for).
        processes_per_worker: pool processes of each worker.
        token: the cluster token; default a fresh random one.
        startup_timeout: seconds to wait for every worker to register.
        tls: serve TLS and have the workers verify it (see :class:`ClusterTLS`).
        worker_args: extra command-line arguments per worker (``worker_args[i]`` for worker
            ``i``; shorter lists leave the rest alone), e.g. ``--inject-fault`` for tests.
        master_options: keyword arguments for :class:`Master` (``prefetch``, ...).
    """

    def __init__(
        self,
        n_workers: int = 2,
        processes_per_worker: int = 1,
        token: bytes | str | None = None,
        *,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        tls: ClusterTLS | None = None,
        worker_args: Sequence[Sequence[str]] = (),
        **master_options: Any,
    ) -> None:
        check_int("n_workers", n_workers, 1)
        check_int("processes_per_worker", processes_per_worker, 1)
        self.n_workers = n_workers
        self.processes_per_worker = processes_per_worker
        if token is None:
            token = secrets.token_hex(32)
        self._token = token.decode() if isinstance(token, bytes) else token
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.tls = tls
        self._worker_args = [list(a) for a in worker_args]
        self._worker_tls_args = tls.worker_args() if tls is not None else []
        if tls is not None:
            master_options["ssl"] = tls.server_context()
        self.master = Master("127.0.0.1", 0, self._token, **master_options)
        self.processes: list[asyncio.subprocess.Process] = []
        # Worker stderr goes to files, not pipes: a pipe stays open as long as any process
        # holds it, and a killed worker's pool processes can outlive it for a while.
        self._stderr: list[IO[bytes]] = []

    async def __aenter__(self) -> LocalCluster:
        await self.master.start()
        try:
            for i in range(self.n_workers):
                await self._spawn(i)
            await self._wait_ready()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _spawn(self, i: int) -> None:
        env = dict(os.environ)
        env["AIOFOREST_TOKEN"] = self._token
        log = tempfile.TemporaryFile()  # noqa: SIM115 - lives until close()
        self._stderr.append(log)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aioforest.worker",
            "--connect", f"127.0.0.1:{self.master.port}",
            "--processes", str(self.processes_per_worker),
            "--name", f"local-{i + 1}",
            "--max-retries", "5",
            *self._worker_tls_args,
            *(self._worker_args[i] if i < len(self._worker_args) else []),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
            env=env,
            # Its own process group: a Ctrl-C at the terminal reaches the master only (which
            # then says bye), and the group can be cleaned up if the worker dies abruptly.
            start_new_session=True,
        )
        self.processes.append(proc)

    async def _wait_ready(self) -> None:
        ready = asyncio.ensure_future(self.master.wait_for_workers(self.n_workers))
        exits = [asyncio.ensure_future(p.wait()) for p in self.processes]
        try:
            async with asyncio.timeout(self.startup_timeout):
                await asyncio.wait([ready, *exits], return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            raise ClusterError(
                f"only {len(self.master.workers)} of {self.n_workers} local workers registered "
                f"within {self.startup_timeout:g} s"
            ) from None
        finally:
            for f in (ready, *exits):
                f.cancel()
            await asyncio.wait([ready, *exits])
        for i, proc in enumerate(self.processes):
            if proc.returncode is not None:
                detail = "\n".join(self.worker_stderr[i]) or "(no output)"
                raise ClusterError(
                    f"local worker {i + 1} exited with code {proc.returncode} during startup:\n"
                    f"{detail}"
                )

    @property
    def worker_stderr(self) -> list[list[str]]:
        """The last lines each worker wrote to stderr (for diagnostics)."""
        tails = []
        for log in self._stderr:
            log.seek(0)
            lines = log.read().decode(errors="replace").splitlines()
            tails.append(lines[-20:])
        return tails

    async def close(self) -> None:
        """Close the master (workers get ``bye`` and exit), then reap every process."""
        await self.master.close()
        for proc in self.processes:
            await _reap(proc, self.stop_timeout)
            if proc.returncode != 0:
                # A worker that did not exit cleanly may leave its pool processes behind.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for log in self._stderr:
            log.close()
        self._stderr.clear()


async def _reap(proc: asyncio.subprocess.Process, timeout: float) -> None:  # noqa: ASYNC109
    """Wait for ``proc``; SIGTERM after ``timeout`` seconds, SIGKILL after as long again."""
    for action in ("wait", "terminate", "kill"):
        if proc.returncode is not None:
            return
        if action != "wait":
            with contextlib.suppress(ProcessLookupError):
                getattr(proc, action)()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await proc.wait()
    if proc.returncode is None:  # pragma: no cover - SIGKILL cannot be refused
        await proc.wait()
