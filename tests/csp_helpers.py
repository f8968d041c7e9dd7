"""Deterministic helpers for the aioforest.csp tests (no sleeping-and-hoping)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from aioforest.csp import Chan, ChannelStatistics

T = TypeVar("T")


async def settle(steps: int = 20) -> None:
    """Let every runnable task run until it blocks: step the loop ``steps`` times."""
    for _ in range(steps):
        await asyncio.sleep(0)


def run_nowait(coro: Coroutine[Any, Any, T]) -> T:
    """Drive ``coro`` by hand; it must finish without suspending even once.

    Exceptions raised by the operation propagate. Must be called from a running loop (an
    operation that wrongly parks needs one to create its future).
    """
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError(f"expected the operation to complete at once, it waited on {yielded!r}")


def assert_blocks(coro: Coroutine[Any, Any, Any]) -> None:
    """Drive ``coro`` by hand; it must suspend. It is then abandoned (closed), which
    exercises the same clean-up path as a cancellation."""
    try:
        coro.send(None)
    except StopIteration as stop:
        msg = f"expected the operation to block, it returned {stop.value!r}"
        raise AssertionError(msg) from None
    coro.close()


def idle_stats(ch: Chan[Any], buffered: int = 0) -> ChannelStatistics:
    """The statistics of ``ch`` with nobody waiting on it."""
    return ChannelStatistics(
        buffered=buffered,
        capacity=ch.cap,
        closed=ch.closed,
        waiting_senders=0,
        waiting_receivers=0,
    )


def queued(ch: Chan[Any]) -> tuple[int, int]:
    """Raw lengths of the sender and receiver wait queues, dead entries included.

    ``statistics()`` counts only operations that can still complete; a withdrawn waiter
    left behind in a queue would not show there, but shows here.
    """
    return len(ch._sendq), len(ch._recvq)


def assert_idle(ch: Chan[Any], buffered: int = 0) -> None:
    """Nobody waits on ``ch`` (not even a dead waiter) and it buffers ``buffered`` values."""
    assert ch.statistics() == idle_stats(ch, buffered)
    assert queued(ch) == (0, 0), f"stale waiters left in the queues of {ch!r}"


async def finished(task: asyncio.Task[T], steps: int = 50) -> T:
    """Step the loop until ``task`` is done, then return its result (or raise its error).

    Fails instead of hanging when a bug leaves the task blocked forever.
    """
    for _ in range(steps):
        if task.done():
            break
        await asyncio.sleep(0)
    assert task.done(), f"{task!r} is still blocked after {steps} loop steps"
    return await task
