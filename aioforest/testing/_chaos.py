"""A TCP proxy that cuts connections on demand: the network half of fault injection.

Workers connect to the proxy instead of the master; :meth:`ChaosProxy.cut_one` aborts one
proxied connection (both halves, with a reset, as a failing switch or a NAT timeout would).
Like :class:`~aioforest.cluster.Faults`, never part of a production deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

__all__ = ["ChaosProxy"]


class ChaosProxy:
    """``async with ChaosProxy(master_port) as proxy``: listen on ``proxy.port``, forward."""

    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.upstream_port = upstream_port
        #: Connections cut so far.
        self.cuts = 0
        self._pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not started (use async with)")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def connections(self) -> int:
        """Proxied connections open now."""
        return len(self._pairs)

    async def __aenter__(self) -> ChaosProxy:
        self._server = await asyncio.start_server(self._on_connect, self.host, 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for a, b in self._pairs:
            a.transport.abort()
            b.transport.abort()
        for t in list(self._handlers):
            t.cancel()
        if self._handlers:
            await asyncio.wait(self._handlers)
        await self._server.wait_closed()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
            except OSError:
                writer.transport.abort()
                return
            pair = (writer, up_writer)
            self._pairs.append(pair)
            pipes = [asyncio.ensure_future(_pipe(reader, up_writer)),
                     asyncio.ensure_future(_pipe(up_reader, writer))]
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for p in pipes:
                    p.cancel()
                await asyncio.wait(pipes)
                writer.transport.abort()
                up_writer.transport.abort()
                if pair in self._pairs:
                    self._pairs.remove(pair)
        finally:
            self._handlers.discard(task)

    def cut_one(self, rng: random.Random) -> bool:
        """Abort one open connection chosen by ``rng``; False if there was none."""
        if not self._pairs:
            return False
        a, b = self._pairs.pop(rng.randrange(len(self._pairs)))
        a.transport.abort()
        b.transport.abort()
        self.cuts += 1
        return True


    async def cut_until(
        self, fut: asyncio.Future[Any], rng: random.Random, every: float = 0.5
    ) -> None:
        """Cut one connection every ``every`` seconds until ``fut`` is done, then await it."""
        while not fut.done():
            await asyncio.wait([fut], timeout=every)
            if not fut.done():
                self.cut_one(rng)
        await fut


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await src.read(1 << 16):
            dst.write(data)
            await dst.drain()
