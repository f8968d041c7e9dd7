"""Channel throughput: one producer task to one consumer task on a single event loop.

Compares ``aioforest.csp.Chan(0)`` (rendezvous) and ``Chan(128)`` with their peers that run
on asyncio: ``asyncio.Queue(1)`` and ``asyncio.Queue(128)``, and anyio's memory object
streams with buffers 0 and 128 (``anyio.create_memory_object_stream``, the bench extra),
on uvloop (when installed) and on asyncio's default loop. Each configuration runs several
times in a fresh loop, interleaved; the table reports the best and the median messages per
second, and then each channel's best against its peers'.

    python benchmarks/bench_channels.py [--messages N] [--repeats R]

Goals: keep the leads: ``Chan(0)`` ahead of anyio's stream with buffer 0 and of
``asyncio.Queue(1)``, ``Chan(128)`` ahead of ``asyncio.Queue(128)``. (The old goal of
``Chan(0)`` at half of ``Queue(128)`` is retired: one task switch per message is the floor
for a rendezvous in asyncio.) This is a benchmark, not a test: numbers depend on the
machine and its load.

Why ``Chan(0)`` trails: a rendezvous hands over one value per task switch, and each
switch costs one future and one event-loop iteration, while a buffered channel or queue
moves up to its capacity per switch. ``Chan(0)`` therefore runs at the loop's task-switch
rate (a bare two-task future ping-pong is no faster), not at the queue's per-item cost.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aioforest.csp import Chan

_STOP = object()


async def _timed(producer: Coroutine[Any, Any, None], consume: Callable[[], Awaitable[int]],
                 n: int) -> float:
    """Seconds for ``consume()`` to receive the ``n`` messages ``producer`` sends."""
    start = time.perf_counter()
    task = asyncio.get_running_loop().create_task(producer)
    received = await consume()
    await task
    elapsed = time.perf_counter() - start
    if received != n:
        raise AssertionError(f"received {received} of {n} messages")
    return elapsed


async def _chan_run(capacity: int, n: int) -> float:
    ch: Chan[int] = Chan(capacity)

    async def producer() -> None:
        send = ch.send
        for i in range(n):
            await send(i)
        ch.close()

    async def consume() -> int:
        received = 0
        async for _ in ch:
            received += 1
        return received

    return await _timed(producer(), consume, n)


async def _queue_run(capacity: int, n: int) -> float:
    queue: asyncio.Queue[object] = asyncio.Queue(capacity)

    async def producer() -> None:
        put = queue.put
        for i in range(n):
            await put(i)
        await put(_STOP)

    async def consume() -> int:
        received = 0
        get = queue.get
        while await get() is not _STOP:
            received += 1
        return received

    return await _timed(producer(), consume, n)


async def _anyio_run(capacity: int, n: int) -> float:
    import anyio

    send_stream, receive_stream = anyio.create_memory_object_stream[int](capacity)

    async def producer() -> None:
        async with send_stream:
            send = send_stream.send
            for i in range(n):
                await send(i)

    async def consume() -> int:
        received = 0
        async with receive_stream:
            async for _ in receive_stream:
                received += 1
        return received

    return await _timed(producer(), consume, n)


Runner = Callable[[int, int], Coroutine[Any, Any, float]]

CASES: list[tuple[str, Runner, int]] = [
    ("asyncio.Queue(128)", _queue_run, 128),
    ("asyncio.Queue(1)", _queue_run, 1),
    ("anyio stream(128)", _anyio_run, 128),
    ("anyio stream(0)", _anyio_run, 0),
    ("Chan(128)", _chan_run, 128),
    ("Chan(0)", _chan_run, 0),
]

#: (ours, peer): the comparisons the goals name.
LEADS = [
    ("Chan(0)", "anyio stream(0)"), ("Chan(0)", "asyncio.Queue(1)"),
    ("Chan(128)", "asyncio.Queue(128)"), ("Chan(128)", "anyio stream(128)"),
]


def _loop_factories() -> list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]]:
    factories: list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]] = []
    try:
        import uvloop
    except ImportError:
        print("uvloop is not installed: measuring the default asyncio loop only\n")
    else:
        factories.append(("uvloop", uvloop.new_event_loop))
    factories.append(("asyncio", asyncio.new_event_loop))
    return factories


def _measure(
    factory: Callable[[], asyncio.AbstractEventLoop], run: Runner, capacity: int, n: int
) -> float:
    """Messages per second of one run in a fresh loop."""
    gc.collect()
    with asyncio.Runner(loop_factory=factory) as runner:
        elapsed = runner.run(run(capacity, n))
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000, help="messages per run")
    parser.add_argument("--repeats", type=int, default=7, help="runs per configuration")
    args = parser.parse_args(argv)

    print(
        f"Python {sys.version.split()[0]}, {args.messages:,} messages per run,"
        f" {args.repeats} runs, producer -> consumer on one loop\n"
    )
    header = (
        f"{'loop':<8} {'channel':<20} {'best msgs/s':>12} {'median msgs/s':>14} {'vs Queue':>9}"
    )
    print(header)
    print("-" * len(header))
    for loop_name, factory in _loop_factories():
        rates: dict[str, list[float]] = {name: [] for name, _, _ in CASES}
        # Interleave the configurations so that drifting machine load hits all of them.
        for _ in range(args.repeats):
            for name, run, capacity in CASES:
                rates[name].append(_measure(factory, run, capacity, args.messages))
        baseline = max(rates[CASES[0][0]])
        for name, _, _ in CASES:
            best = max(rates[name])
            median = statistics.median(rates[name])
            print(
                f"{loop_name:<8} {name:<20} {best:>12,.0f} {median:>14,.0f}"
                f" {best / baseline:>8.2f}x"
            )
        for ours, peer in LEADS:
            ratio = max(rates[ours]) / max(rates[peer])
            print(f"{loop_name:<8} {ours} / {peer}: {ratio:.2f}x"
                  f"  ({'lead kept' if ratio >= 1.0 else 'BEHIND'})")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
