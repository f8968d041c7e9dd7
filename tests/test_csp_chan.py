"""Chan: construction, buffering, nowait operations, close, iteration, statistics."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from csp_helpers import assert_blocks, assert_idle, run_nowait, settle

from aioforest.csp import Chan, ChannelClosed, ChannelStatistics, WouldBlock, go

# ---------------------------------------------------------------- construction


def test_capacity_validation() -> None:
    with pytest.raises(ValueError, match="capacity must be >= 0, got -1"):
        Chan(-1)
    with pytest.raises(TypeError, match="capacity must be an int"):
        Chan(1.5)
    with pytest.raises(TypeError, match="capacity must be an int"):
        Chan(True)


@pytest.mark.asyncio
async def test_an_unbounded_channel_never_blocks_a_sender() -> None:
    """``Chan(math.inf)``: an outbox filled from synchronous code; FIFO, closable."""
    ch: Chan[int] = Chan(math.inf)
    for i in range(10_000):
        ch.send_nowait(i)
    assert (len(ch), ch.cap) == (10_000, math.inf)
    assert ch.statistics().capacity == math.inf
    ch.close()
    assert [v async for v in ch] == list(range(10_000))
    with pytest.raises(TypeError, match=r"or math\.inf"):
        Chan(-math.inf)


def test_properties_outside_a_loop() -> None:
    """Channels are plain objects: creating and inspecting them needs no event loop."""
    ch: Chan[int] = Chan(3, zero=-1)
    assert (len(ch), ch.cap, ch.closed, ch.zero) == (0, 3, False, -1)
    assert Chan().cap == 0
    assert Chan().zero is None
    assert bool(Chan()) is True  # not falsy although len() == 0
    ch.send_nowait(1)
    assert len(ch) == 1
    assert ch.statistics() == ChannelStatistics(
        buffered=1, capacity=3, closed=False, waiting_senders=0, waiting_receivers=0
    )
    assert "cap=3 len=1 open" in repr(ch)
    ch.close()
    assert ch.closed and "closed" in repr(ch)


def test_statistics_is_frozen() -> None:
    stats = Chan(1).statistics()
    with pytest.raises(AttributeError):
        stats.buffered = 3  # type: ignore[misc]


def test_created_outside_the_loop_binds_on_first_wait(csp_run: Any) -> None:
    ch: Chan[int] = Chan()

    async def main() -> int:
        task = go(ch.send(4))
        value = await ch.recv()
        await task
        return value

    assert csp_run(main()) == 4

    async def other_loop() -> None:
        with pytest.raises(RuntimeError, match="bound to a different event loop"):
            await ch.recv()
        assert_idle(ch)

    with asyncio.Runner() as runner:  # a second loop: the channel is bound to the first
        runner.run(other_loop())


# ---------------------------------------------------------------- buffered channels


@pytest.mark.parametrize("capacity", [1, 2, 5])
def test_buffered_nowait_fifo(capacity: int) -> None:
    ch: Chan[int] = Chan(capacity)
    for i in range(capacity):
        ch.send_nowait(i)
    with pytest.raises(WouldBlock):
        ch.send_nowait(99)
    assert len(ch) == capacity
    assert [ch.recv_nowait() for _ in range(capacity)] == [(i, True) for i in range(capacity)]
    with pytest.raises(WouldBlock):
        ch.recv_nowait()


def test_buffered_send_with_room_and_recv_with_values_never_wait(csp_run: Any) -> None:
    async def main() -> None:
        ch: Chan[int] = Chan(2)
        run_nowait(ch.send(1))
        run_nowait(ch.send(2))
        assert_blocks(ch.send(3))  # full
        assert_idle(ch, buffered=2)
        assert run_nowait(ch.recv()) == 1
        assert run_nowait(ch.recv_ok()) == (2, True)
        assert_blocks(ch.recv())  # empty
        assert_idle(ch)

    csp_run(main())


def test_receiver_frees_a_slot_for_a_parked_sender(csp_run: Any) -> None:
    """A receive from a full channel moves the first parked sender's value into the
    buffer (keeping FIFO order) and completes that send."""

    async def main() -> None:
        ch: Chan[str] = Chan(2)
        ch.send_nowait("a")
        ch.send_nowait("b")
        senders = [go(ch.send(v)) for v in ("c", "d")]
        await settle()
        assert ch.statistics().waiting_senders == 2
        assert ch.recv_nowait() == ("a", True)
        assert ch.statistics() == ChannelStatistics(2, 2, False, 1, 0)
        await settle()
        assert senders[0].done() and not senders[1].done()
        assert [ch.recv_nowait()[0] for _ in range(3)] == ["b", "c", "d"]
        await asyncio.gather(*senders)
        assert_idle(ch)

    csp_run(main())


# ---------------------------------------------------------------- unbuffered channels


def test_unbuffered_nowait_needs_a_parked_partner(csp_run: Any) -> None:
    async def main() -> None:
        ch: Chan[int] = Chan()
        with pytest.raises(WouldBlock):
            ch.send_nowait(1)
        with pytest.raises(WouldBlock):
            ch.recv_nowait()
        receiver = go(ch.recv())
        await settle()
        ch.send_nowait(7)  # a receiver is parked: the rendezvous happens now
        assert await receiver == 7
        sender = go(ch.send(8))
        await settle()
        assert ch.recv_nowait() == (8, True)
        await sender
        assert_idle(ch)

    csp_run(main())


def test_unbuffered_send_completes_only_when_taken(csp_run: Any) -> None:
    async def main() -> None:
        ch: Chan[int] = Chan()
        sender = go(ch.send(1))
        await settle()
        assert not sender.done()
        assert ch.statistics() == ChannelStatistics(0, 0, False, 1, 0)
        assert len(ch) == 0
        assert await ch.recv() == 1
        await settle()
        assert sender.done()

    csp_run(main())


def test_parked_receivers_are_served_in_fifo_order(csp_run: Any) -> None:
    async def main() -> None:
        for capacity in (0, 3):
            ch: Chan[int] = Chan(capacity)
            receivers = []
            for _ in range(4):
                receivers.append(go(ch.recv()))
                await settle()  # park them in a known order
            for i in range(4):
                ch.send_nowait(i)
            assert await asyncio.gather(*receivers) == [0, 1, 2, 3]

    csp_run(main())


# ---------------------------------------------------------------- close


def test_close_drains_then_reports_closed(csp_run: Any) -> None:
    async def main() -> None:
        ch: Chan[int] = Chan(3, zero=0)
        ch.send_nowait(1)
        ch.send_nowait(2)
        ch.close()
        assert ch.closed and len(ch) == 2
        assert run_nowait(ch.recv()) == 1
        assert ch.recv_nowait() == (2, True)
        for _ in range(3):  # then every receive returns at once with ok=False
            assert run_nowait(ch.recv()) == 0
            assert run_nowait(ch.recv_ok()) == (0, False)
            assert ch.recv_nowait() == (0, False)

    csp_run(main())


def test_close_wakes_receivers_and_fails_senders(csp_run: Any) -> None:
    async def main() -> None:
        rx: Chan[int] = Chan(zero=-1)
        receivers = [go(rx.recv()), go(rx.recv_ok())]
        tx: Chan[int] = Chan(1)
        tx.send_nowait(0)
        senders = [go(tx.send(1)), go(tx.send(2))]
        await settle()
        rx.close()
        tx.close()
        assert await asyncio.gather(*receivers) == [-1, (-1, False)]
        for sender in senders:
            with pytest.raises(ChannelClosed, match="closed while a send was waiting"):
                await sender
        # The blocked senders' values were discarded; the buffered one still drains.
        assert tx.recv_nowait() == (0, True)
        assert tx.recv_nowait() == (None, False)
        assert_idle(rx)
        assert_idle(tx)

    csp_run(main())


def test_send_and_close_on_closed_channel_raise(csp_run: Any) -> None:
    async def main() -> None:
        ch: Chan[int] = Chan(5)
        ch.close()
        with pytest.raises(ChannelClosed, match="send on closed channel"):
            ch.send_nowait(1)  # even with free buffer space
        with pytest.raises(ChannelClosed, match="send on closed channel"):
            run_nowait(ch.send(1))
        with pytest.raises(ChannelClosed, match="close of closed channel"):
            ch.close()
        assert len(ch) == 0

    csp_run(main())


def test_async_for_ends_when_closed_and_drained(csp_run: Any) -> None:
    async def main() -> None:
        ch: Chan[int] = Chan(2)

        async def produce() -> None:
            for i in range(10):
                await ch.send(i)
            ch.close()

        producer = go(produce())
        assert [v async for v in ch] == list(range(10))
        await producer
        assert [v async for v in ch] == []  # a drained, closed channel iterates empty

    csp_run(main())


def test_none_is_an_ordinary_value(csp_run: Any) -> None:
    """Unlike aiochan, None can be sent: closing is signalled by ok=False, not by None."""

    async def main() -> None:
        ch: Chan[int | None] = Chan(1, zero=0)
        await ch.send(None)
        assert await ch.recv_ok() == (None, True)
        receiver = go(ch.recv_ok())
        await settle()
        ch.send_nowait(None)
        assert await receiver == (None, True)

    csp_run(main())
