"""Deliberate misbehaviour for a worker, for fault-injection tests and benchmarks.

``aioforest-worker --inject-fault crash-on-tree=7 --inject-fault slowdown=5`` makes a real
worker process misbehave the way failing machines do, so the master's reactions (retries,
poison-task detection, backup copies) can be exercised end to end, across processes, with
nothing mocked. Never set in production: the default is a healthy worker, and a worker
with no faults never calls into this module on a task's path (:meth:`Faults.wrap` is applied
once, at construction, only when a fault is set).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np

from ._protocol import Task

__all__ = ["Faults", "FitRunner"]

logger = logging.getLogger("aioforest.cluster")

#: How a worker fits a task: ``(task, cancel-board slot, cancelled event) -> tree arrays``.
FitRunner: TypeAlias = Callable[
    [Task, int, asyncio.Event], Awaitable[list[dict[str, np.ndarray[Any, Any]]]]
]


@dataclass(frozen=True)
class Faults:
    """What a worker does wrong on purpose.

    Attributes:
        crash_on_tree: the worker process kills itself (SIGKILL, as a segfault or the OOM
            killer would) when it starts a task that includes this tree index.
        slowdown: every task keeps its slot this many times as long as its fit took (the
            result is held back), as on an overloaded or throttled machine.
        crash_on_part_op: the worker process kills itself (SIGKILL) when the N-th
            data-parallel operation (counting from 1) reaches it, mid-fit.
    """

    crash_on_tree: int | None = None
    slowdown: float = 1.0
    crash_on_part_op: int | None = None

    def __post_init__(self) -> None:
        if self.crash_on_tree is not None and self.crash_on_tree < 0:
            raise ValueError(f"crash-on-tree must be a tree index >= 0, got {self.crash_on_tree}")
        if not self.slowdown >= 1.0:
            raise ValueError(f"slowdown must be a factor >= 1, got {self.slowdown}")
        if self.crash_on_part_op is not None and self.crash_on_part_op < 1:
            raise ValueError(f"crash-on-part-op counts from 1, got {self.crash_on_part_op}")

    @property
    def any(self) -> bool:
        return (self.crash_on_tree is not None or self.slowdown != 1.0
                or self.crash_on_part_op is not None)

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Faults:
        """Parse ``name=value`` specs: ``crash-on-tree=N``, ``slowdown=F``,
        ``crash-on-part-op=N``."""
        crash: int | None = None
        part_op: int | None = None
        slowdown = 1.0
        for spec in specs:
            name, sep, value = spec.partition("=")
            name = name.strip().lower()
            try:
                if not sep:
                    raise ValueError("expected name=value")
                if name == "crash-on-tree":
                    crash = int(value)
                elif name == "slowdown":
                    slowdown = float(value)
                elif name == "crash-on-part-op":
                    part_op = int(value)
                else:
                    raise ValueError(
                        "known faults: crash-on-tree=N, slowdown=F, crash-on-part-op=N")
            except ValueError as exc:
                raise ValueError(f"bad fault {spec!r}: {exc}") from None
        return cls(crash, slowdown, part_op)

    def wrap(self, fit: FitRunner, answers_written: Callable[[], Awaitable[object]]) -> FitRunner:
        """``fit`` with these faults injected around it.

        A crash waits for ``answers_written`` first: the answers the worker already gave
        reach the master, so only the tasks the worker still holds die with it, as when a
        fit takes a machine down part-way.
        """

        async def faulty(
            task: Task, slot: int, cancelled: asyncio.Event
        ) -> list[dict[str, np.ndarray[Any, Any]]]:
            if self.crash_on_tree is not None and self.crash_on_tree in task.indices:
                await answers_written()
                logger.critical(
                    "worker pid %d: injected fault: crashing on task %d/%d (tree %d)",
                    os.getpid(), task.job_id, task.task_id, self.crash_on_tree,
                )
                logging.shutdown()
                os.kill(os.getpid(), signal.SIGKILL)
            loop = asyncio.get_running_loop()
            started = loop.time()
            arrays = await fit(task, slot, cancelled)
            if self.slowdown > 1.0:
                # Keep the slot (and the result) this long, unless cancelled meanwhile.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout((self.slowdown - 1.0) * (loop.time() - started)):
                        await cancelled.wait()
            return arrays

        return faulty
