"""Shared fixtures.

``csp_run`` runs a coroutine on every event-loop flavour the concurrency core supports:
asyncio's default loop, uvloop (not on Windows) and, on Python 3.12+, asyncio with
``eager_task_factory`` (child tasks start before ``create_task`` returns). No global
event-loop policy is installed: each test gets its own ``asyncio.Runner``.

``pytest_asyncio_loop_factories`` runs the async wire and cluster tests on uvloop, the loop
the entry points use, as well as on asyncio's own; the tests that start real worker
processes (faults, processes, hostile peers) run on uvloop only, as the command line does,
to keep ``make test`` quick.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

#: Test modules whose async tests run on both loops, and those that run on uvloop only.
BOTH_LOOPS = ("test_wire_", "test_cluster_master", "test_cluster_worker", "test_cluster_cv",
              "test_cluster_replicas", "test_cluster_tls", "test_worker_state")
UVLOOP_ONLY = ("test_cluster_faults", "test_cluster_processes", "test_cluster_hostile")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
CspRun = Callable[[Coroutine[Any, Any, Any]], Any]


def _eager_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
    return loop


def _loop_params() -> list[Any]:
    params: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    if sys.platform != "win32":
        import uvloop

        params.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    if sys.version_info >= (3, 12):
        params.append(pytest.param(_eager_loop, id="eager"))
    return params


@pytest.fixture(params=_loop_params())
def csp_run(request: pytest.FixtureRequest) -> Iterator[CspRun]:
    """Return ``run(coro)``: run ``coro`` to completion on this test's loop flavour.

    Several calls share one loop (fresh per test). After each call no task may be left
    running: tests must wait for, or cancel, every task they start.
    """
    factory: LoopFactory = request.param
    with asyncio.Runner(loop_factory=factory) as runner:

        def run(coro: Coroutine[Any, Any, Any]) -> Any:
            result = runner.run(coro)
            leftover = [t for t in asyncio.all_tasks(runner.get_loop()) if not t.done()]
            assert not leftover, f"tasks still running after the test coroutine: {leftover}"
            return result

        yield run


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, LoopFactory]:
    """The event loops an async test runs on (pytest-asyncio's hook)."""
    module = item.path.stem
    if sys.platform == "win32":
        return {"asyncio": asyncio.new_event_loop}
    import uvloop

    if module.startswith(UVLOOP_ONLY):
        return {"uvloop": uvloop.new_event_loop}
    if module.startswith(BOTH_LOOPS):
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
