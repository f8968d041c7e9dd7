"""Rows moving between workers, never through the master: PLANET's local subtrees.

When the growth driver sends small nodes off to finish their subtrees in one place, every
worker holding rows of them ships those rows (their codes, targets and weights) straight
to the subtree's owner. The owner listens on a :class:`PeerServer` (the cluster token
authenticates both sides, frames are the cluster's own) and keeps what arrives in a
:class:`RowStash` until the master asks it to grow the subtrees.

A peer connection carries one ``peerrows`` message and its ``peerack``; every field and
array is checked, and a bad message is refused naming the peer, without touching the stash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from ..tree import SubtreeRows
from ..wire import DEFAULT_CONFIG, Connection, Message, ProtocolError, WireConfig, accept
from ..wire import open_connection as wire_open

__all__ = ["PEER_TIMEOUT", "PeerServer", "RowStash", "rows_message", "send_rows"]

logger = logging.getLogger("aioforest.cluster")

#: Seconds a peer has to connect, send its rows and hear the acknowledgement.
PEER_TIMEOUT = 120.0
_ROWS, _ACK = "peerrows", "peerack"


class RowStash:
    """Rows shipped here for subtrees, by (session, ticket); safe across threads (the
    peer server stores from the event loop while a part operation runs in a thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[int, int], list[SubtreeRows]] = {}

    def put(self, session: int, ticket: int, rows: SubtreeRows) -> None:
        with self._lock:
            self._rows.setdefault((session, ticket), []).append(rows)

    def take(self, session: int, ticket: int) -> list[SubtreeRows]:
        """Everything shipped for ``ticket`` (it leaves the stash)."""
        with self._lock:
            return self._rows.pop((session, ticket), [])

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def drop_before(self, session: int, ticket: int) -> None:
        """Forget a session's rows of earlier tickets (abandoned when a worker was lost)."""
        with self._lock:
            for key in [k for k in self._rows if k[0] == session and k[1] < ticket]:
                del self._rows[key]

    def drop(self, session: int) -> None:
        """Forget a session's rows (its batch ended, or a ticket was abandoned)."""
        with self._lock:
            for key in [k for k in self._rows if k[0] == session]:
                del self._rows[key]

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._rows.values())


def rows_message(session: int, ticket: int, rows: SubtreeRows) -> Message:
    return Message(_ROWS, {"session": session, "ticket": ticket},
                   (np.ascontiguousarray(rows.codes), rows.y, rows.weight, rows.subtree))


def _decode_rows(msg: Message, peer: str) -> tuple[int, int, SubtreeRows]:
    def bad(what: str) -> ProtocolError:
        return ProtocolError(f"peer {peer}: {msg.type} message: {what}")

    if msg.type != _ROWS:
        raise bad(f"expected {_ROWS!r}")
    session, ticket = msg.fields.get("session"), msg.fields.get("ticket")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
               for v in (session, ticket)):
        raise bad("session and ticket must be integers >= 0")
    if len(msg.arrays) != 4:
        raise bad(f"expected 4 arrays (codes, y, weight, subtree), got {len(msg.arrays)}")
    codes, y, weight, subtree = msg.arrays
    n = weight.shape[0] if weight.ndim == 1 else -1
    if codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[0] != n:
        raise bad("codes must be uint8 (rows, features)")
    if y.ndim != 1 or y.shape[0] != n or y.dtype.kind not in "if":
        raise bad("y must hold one number per row")
    if weight.dtype != np.float64 or not bool(np.all(weight > 0)):
        raise bad("weights must be float64 > 0")
    if subtree.dtype != np.int64 or subtree.shape != (n,) or bool(np.any(subtree < 0)):
        raise bad("subtree must be int64 >= 0, one per row")
    assert isinstance(session, int) and isinstance(ticket, int)
    return session, ticket, SubtreeRows(codes, y, weight, subtree)


class PeerServer:
    """Where other workers ship rows for the subtrees this worker grows."""

    def __init__(self, stash: RowStash, token: bytes | None,
                 config: WireConfig = DEFAULT_CONFIG,
                 accepts: Callable[[int], bool] = lambda session: True) -> None:
        self.stash = stash
        self._accepts = accepts
        self._token = token
        self._config = config
        self._server: asyncio.Server | None = None
        self.address: tuple[str, int] | None = None
        self.received = 0
        self.refused = 0

    async def start(self, host: str) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, host, 0)
        port = int(self._server.sockets[0].getsockname()[1])
        self.address = (host, port)
        return self.address

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn: Connection | None = None
        try:
            conn = await accept(reader, writer, token=self._token, timeout=PEER_TIMEOUT,
                                config=self._config)
            msg = await conn.recv(timeout=PEER_TIMEOUT)
            session, ticket, rows = _decode_rows(msg, conn.peer)
            if not self._accepts(session):
                raise ProtocolError(f"peer {conn.peer}: rows for session {session}, which is "
                                    "not open here")
            self.stash.put(session, ticket, rows)
            self.received += 1
            await conn.send(Message(_ACK, {"rows": int(rows.weight.size)}))
        except (ProtocolError, OSError, TimeoutError) as exc:
            self.refused += 1
            logger.warning("worker: refused rows from a peer: %s", exc)
        finally:
            if conn is not None:
                await conn.aclose(timeout=10.0)
            else:
                writer.close()


async def send_rows(host: str, port: int, message: Message, *, token: bytes | None,
                    config: WireConfig = DEFAULT_CONFIG) -> None:
    """Ship one ``peerrows`` message and wait for its acknowledgement."""
    conn = await wire_open(host, port, token=token, timeout=PEER_TIMEOUT, config=config)
    try:
        await conn.send(message)
        ack: Any = await conn.recv(timeout=PEER_TIMEOUT)
        if ack.type != _ACK:
            raise ProtocolError(f"peer {conn.peer}: expected {_ACK!r}, got {ack.type!r}")
    finally:
        await conn.aclose(timeout=10.0)
