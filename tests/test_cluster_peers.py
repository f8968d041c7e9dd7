"""Rows shipped worker to worker for local subtrees: authenticated, checked, stashed."""

from __future__ import annotations

import numpy as np
import pytest
from cluster_helpers import HOST, TOKEN

from aioforest.cluster._peers import PeerServer, RowStash, rows_message, send_rows
from aioforest.tree import SubtreeRows
from aioforest.wire import AuthenticationError, Message, open_connection


def _rows(n: int) -> SubtreeRows:
    return SubtreeRows(np.arange(n * 3, dtype=np.uint8).reshape(n, 3), np.arange(n),
                       np.ones(n), np.zeros(n, dtype=np.int64))


@pytest.mark.asyncio
async def test_rows_shipped_to_a_peer_land_in_its_stash_by_session_and_ticket() -> None:
    stash = RowStash()
    server = PeerServer(stash, TOKEN)
    host, port = await server.start(HOST)
    try:
        await send_rows(host, port, rows_message(7, 3, _rows(5)), token=TOKEN)
        await send_rows(host, port, rows_message(7, 3, _rows(2)), token=TOKEN)
        await send_rows(host, port, rows_message(7, 4, _rows(1)), token=TOKEN)
        got = stash.take(7, 3)
        assert [r.weight.size for r in got] == [5, 2]
        assert np.array_equal(got[0].codes, _rows(5).codes)
        assert stash.take(7, 3) == [] and len(stash) == 1
        stash.drop(7)
        assert len(stash) == 0
    finally:
        await server.close()


@pytest.mark.asyncio
async def test_a_peer_with_a_wrong_token_or_a_bad_message_is_refused() -> None:
    stash = RowStash()
    server = PeerServer(stash, TOKEN)
    host, port = await server.start(HOST)
    try:
        with pytest.raises(AuthenticationError):
            await send_rows(host, port, rows_message(1, 1, _rows(2)), token=b"x" * 32)
        bad = _rows(3)
        for message in (
            Message("peerrows", {"session": 1, "ticket": 1},
                    (bad.codes, bad.y, -bad.weight, bad.subtree)),  # negative weights
            Message("peerrows", {"session": -1, "ticket": 1},
                    (bad.codes, bad.y, bad.weight, bad.subtree)),
            Message("peerrows", {"session": 1, "ticket": 1}, (bad.codes,)),
            Message("hello", {}),
        ):
            conn = await open_connection(host, port, token=TOKEN)
            await conn.send(message)
            with pytest.raises(Exception, match=r"closed|lost"):
                await conn.recv(timeout=10)
            await conn.aclose()
        assert len(stash) == 0 and server.refused == 5 and server.received == 0
        await send_rows(host, port, rows_message(1, 1, _rows(2)), token=TOKEN)  # still up
        assert len(stash) == 1
    finally:
        await server.close()
