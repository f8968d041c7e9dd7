"""go(), WaitGroup, Group (errgroup), Once and Mutex."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import weakref
from collections.abc import Coroutine
from typing import Any

import pytest
from csp_helpers import finished, run_nowait, settle

from aioforest.csp import Chan, Group, Mutex, Once, WaitGroup, go

# ---------------------------------------------------------------- go()


def test_go_keeps_a_strong_reference_until_the_task_ends(csp_run: Any) -> None:
    """The task waits on a channel only it references: without go()'s reference, the task
    and its channel form a garbage cycle that the collector would destroy mid-flight."""

    async def main() -> None:
        async def worker() -> None:
            private: Chan[int] = Chan()
            await private.recv()

        ref = weakref.ref(go(worker()))  # the caller drops the task at once
        await settle()
        gc.collect()
        task = ref()
        assert task is not None, "a running task was garbage collected"
        assert not task.done()
        task.cancel()
        del task
        await settle()
        gc.collect()
        assert ref() is None, "a finished task is still referenced"

    csp_run(main())


def test_go_returns_the_task(csp_run: Any) -> None:
    async def main() -> None:
        async def answer() -> int:
            return 42

        task = go(answer(), name="answer")
        assert isinstance(task, asyncio.Task)
        assert task.get_name() == "answer"
        assert await task == 42

    csp_run(main())


def test_go_logs_an_unobserved_exception(csp_run: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async def fail() -> None:
            raise ValueError("nobody is watching")

        go(fail(), name="orphan")
        await settle()

    with caplog.at_level(logging.ERROR, logger="aioforest.csp"):
        csp_run(main())
    records = [r for r in caplog.records if r.name == "aioforest.csp"]
    assert len(records) == 1
    assert "orphan" in records[0].getMessage()
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], ValueError)
    assert not [r for r in caplog.records if r.name == "asyncio"]  # reported once


def test_go_does_not_log_observed_or_cancelled_tasks(
    csp_run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async def fail() -> None:
            raise ValueError("awaited")

        async def block() -> None:
            await asyncio.Event().wait()

        awaited = go(fail())
        gathered = go(fail())
        cancelled = go(block())
        with pytest.raises(ValueError):
            await awaited
        results = await asyncio.gather(gathered, return_exceptions=True)
        assert isinstance(results[0], ValueError)
        await settle()
        cancelled.cancel()
        await settle()

    with caplog.at_level(logging.DEBUG, logger="aioforest.csp"):
        csp_run(main())
    assert not [r for r in caplog.records if r.name == "aioforest.csp"]


def test_go_rejects_non_coroutines(csp_run: Any) -> None:
    async def work() -> None:
        pass

    async def main() -> None:
        with pytest.raises(TypeError, match="forget to call it"):
            go(work)  # type: ignore[arg-type]

    csp_run(main())


def test_go_without_a_loop_closes_the_coroutine() -> None:
    async def work() -> None:
        pass

    coro = work()
    with pytest.raises(RuntimeError, match="no running event loop"):
        go(coro)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


# ---------------------------------------------------------------- WaitGroup


def test_waitgroup_wait_at_zero_returns_at_once(csp_run: Any) -> None:
    async def main() -> None:
        wg = WaitGroup()
        run_nowait(wg.wait())
        wg.add(2)
        wg.done()
        wg.done()
        run_nowait(wg.wait())

    csp_run(main())


def test_waitgroup_releases_every_waiter_at_zero(csp_run: Any) -> None:
    async def main() -> None:
        wg = WaitGroup()
        wg.add(3)
        waiters = [go(wg.wait()) for _ in range(3)]
        await settle()
        wg.done()
        wg.add(-1)
        await settle()
        assert not any(w.done() for w in waiters)
        wg.done()
        await asyncio.gather(*waiters)

    csp_run(main())


def test_waitgroup_negative_counter() -> None:
    wg = WaitGroup()
    with pytest.raises(ValueError, match="negative WaitGroup counter"):
        wg.done()
    wg.add(1)
    with pytest.raises(ValueError, match="negative WaitGroup counter"):
        wg.add(-2)
    wg.done()  # the counter was left at 1 by the failed add
    with pytest.raises(TypeError, match="must be an int"):
        wg.add(1.0)  # type: ignore[arg-type]


def test_waitgroup_go(csp_run: Any) -> None:
    async def main() -> list[int]:
        wg = WaitGroup()
        out: Chan[int] = Chan(10)

        async def work(i: int) -> None:
            await asyncio.sleep(0)
            await out.send(i)

        tasks = [wg.go(work(i)) for i in range(10)]
        await wg.wait()
        assert all(t.done() for t in tasks)
        out.close()
        return sorted([v async for v in out])

    assert csp_run(main()) == list(range(10))


def test_waitgroup_go_counts_down_even_on_failure(csp_run: Any) -> None:
    async def main() -> None:
        wg = WaitGroup()

        async def fail() -> None:
            raise KeyError("x")

        task = wg.go(fail())
        await wg.wait()
        with pytest.raises(KeyError):
            await task

    csp_run(main())


def test_waitgroup_cancelled_wait_is_harmless(csp_run: Any) -> None:
    async def main() -> None:
        wg = WaitGroup()
        wg.add(1)
        waiter = go(wg.wait())
        other = go(wg.wait())
        await settle()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        wg.done()
        await other

    csp_run(main())


# ---------------------------------------------------------------- Group


def test_group_waits_for_every_task(csp_run: Any) -> None:
    async def main() -> None:
        finished: list[int] = []

        async def work(i: int) -> None:
            for _ in range(i):
                await asyncio.sleep(0)
            finished.append(i)

        async with Group() as g:
            for i in range(5):
                g.go(work(i))
        assert sorted(finished) == [0, 1, 2, 3, 4]

    csp_run(main())


def test_group_first_error_is_raised_itself_and_cancels_the_rest(csp_run: Any) -> None:
    async def main() -> None:
        boom = ValueError("first")
        cancelled: list[str] = []
        reached: list[str] = []

        async def fail() -> None:
            await asyncio.sleep(0)
            raise boom

        async def sibling() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append("sibling")
                raise

        async def parent() -> int:
            with pytest.raises(ValueError) as info:
                async with Group() as g:
                    g.go(sibling())
                    g.go(fail())
                    try:
                        await asyncio.Event().wait()  # the body is interrupted too
                    except asyncio.CancelledError:
                        cancelled.append("body")
                        raise
                    reached.append("body")
            assert info.value is boom
            task = asyncio.current_task()
            assert task is not None
            await asyncio.sleep(0)  # no stray cancellation is left behind
            return task.cancelling()

        assert await finished(go(parent())) == 0
        assert sorted(cancelled) == ["body", "sibling"]
        assert reached == []

    csp_run(main())


def test_group_error_keeps_its_exception_chain(csp_run: Any) -> None:
    async def main() -> None:
        async def fail() -> None:
            try:
                raise KeyError("root cause")
            except KeyError:
                raise ValueError("wrapped") from None

        with pytest.raises(ValueError) as info:
            async with Group() as g:
                g.go(fail())
                await asyncio.Event().wait()
        assert info.value.__suppress_context__ and info.value.__cause__ is None

        async def fail_implicit() -> None:
            try:
                raise KeyError("context")
            except KeyError:
                raise ValueError("during handling")  # noqa: B904 - the implicit chain is tested

        with pytest.raises(ValueError) as info:
            async with Group() as g:
                g.go(fail_implicit())
                await asyncio.Event().wait()
        assert isinstance(info.value.__context__, KeyError)

    csp_run(main())


def test_group_later_errors_are_dropped(csp_run: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async def fail_now() -> None:
            raise ValueError("first")

        async def fail_on_cancel() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                raise KeyError("second")

        with pytest.raises(ValueError, match="first"):
            async with Group() as g:
                g.go(fail_on_cancel())
                await asyncio.sleep(0)
                g.go(fail_now())

    with caplog.at_level(logging.DEBUG, logger="aioforest.csp"):
        csp_run(main())
    assert any("after the first" in r.getMessage() for r in caplog.records)


def test_group_body_error_cancels_tasks_and_propagates(csp_run: Any) -> None:
    async def main() -> None:
        cancelled: list[int] = []

        async def sibling(i: int) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(i)
                raise

        async def parent() -> None:
            async with Group() as g:
                g.go(sibling(1))
                g.go(sibling(2))
                await asyncio.sleep(0)
                raise KeyError("body")

        with pytest.raises(KeyError, match="body"):
            await finished(go(parent()))
        assert sorted(cancelled) == [1, 2]

    csp_run(main())


def test_group_parent_cancellation_cancels_children(csp_run: Any) -> None:
    async def main() -> None:
        cancelled: list[str] = []
        started = asyncio.Event()

        async def child() -> None:
            try:
                started.set()
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append("child")
                raise

        async def parent() -> None:
            async with Group() as g:
                g.go(child())
                await asyncio.Event().wait()

        task = go(parent())
        await started.wait()
        await settle()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await finished(task)
        assert cancelled == ["child"]

    csp_run(main())


def test_group_parent_cancelled_while_exiting(csp_run: Any) -> None:
    async def main() -> None:
        cancelled: list[str] = []

        async def child() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append("child")
                raise

        async def parent() -> None:
            async with Group() as g:
                g.go(child())
            # not reached: the block is waiting for the child when the cancel arrives

        task = go(parent())
        await settle()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await finished(task)
        assert cancelled == ["child"]

    csp_run(main())


def test_group_limit_bounds_concurrency(csp_run: Any) -> None:
    """Ten tasks, limit 3: exactly three run at a time, started in submission order, and
    go() itself never waits."""

    async def main() -> None:
        running = 0
        peak = 0
        started: list[int] = []
        gates = [asyncio.Event() for _ in range(10)]

        async def work(i: int) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            started.append(i)
            await gates[i].wait()
            running -= 1

        async with Group(limit=3) as g:
            for i in range(10):
                assert g.go(work(i)) is None  # queues past the limit, does not block
            await settle()
            assert started == [0, 1, 2]
            for i in range(10):  # release them one by one, in reverse start order per batch
                gates[i].set()
                await settle()
                assert running <= 3
        assert peak == 3
        assert started == list(range(10))

    csp_run(main())


def test_group_try_go(csp_run: Any) -> None:
    async def main() -> None:
        gate = asyncio.Event()

        async def work() -> None:
            await gate.wait()

        async with Group(limit=2) as g:
            assert g.try_go(work())
            assert g.try_go(work())
            refused = work()
            assert not g.try_go(refused)
            assert inspect.getcoroutinestate(refused) == inspect.CORO_CLOSED
            gate.set()
            await settle()
            assert g.try_go(work())  # room again once a task has finished
        assert Group().limit is None and g.limit == 2

    csp_run(main())


def test_group_abort_closes_queued_coroutines(csp_run: Any) -> None:
    async def main() -> None:
        async def fail() -> None:
            await asyncio.sleep(0)
            raise ValueError("stop")

        async def never() -> None:
            pytest.fail("a queued coroutine started after the group aborted")

        queued = [never() for _ in range(3)]
        with pytest.raises(ValueError):
            async with Group(limit=1) as g:
                g.go(fail())
                for coro in queued:
                    g.go(coro)
        for coro in queued:
            assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED

    csp_run(main())


def test_group_usage_errors(csp_run: Any) -> None:
    async def work() -> None:
        pass

    def closed_after(call: Any, coro: Coroutine[Any, Any, None], match: str) -> None:
        with pytest.raises(RuntimeError, match=match):
            call(coro)
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED

    async def main() -> None:
        g = Group()
        closed_after(g.go, work(), "before entering")
        async with g:
            pass
        closed_after(g.go, work(), "finished")
        closed_after(g.try_go, work(), "finished")
        with pytest.raises(RuntimeError, match="only once"):
            async with g:
                pass
        async with Group() as g2:
            with pytest.raises(TypeError, match="coroutine object"):
                g2.go(work)  # type: ignore[arg-type]

    csp_run(main())
    with pytest.raises(ValueError, match="limit must be >= 1"):
        Group(limit=0)
    with pytest.raises(TypeError, match="limit must be an int"):
        Group(limit=2.5)  # type: ignore[arg-type]


def test_group_tasks_can_spawn_tasks(csp_run: Any) -> None:
    async def main() -> None:
        seen: list[int] = []

        async with Group(limit=2) as g:

            async def spawn(depth: int) -> None:
                seen.append(depth)
                if depth < 5:
                    g.go(spawn(depth + 1))
                    g.go(spawn(depth + 1))

            g.go(spawn(0))
        assert len(seen) == 63

    csp_run(main())


# ---------------------------------------------------------------- Once


def test_once_runs_once_for_concurrent_callers(csp_run: Any) -> None:
    async def main() -> None:
        calls = 0
        gate = asyncio.Event()
        returned: list[int] = []

        async def init() -> None:
            nonlocal calls
            calls += 1
            await gate.wait()

        once = Once()

        async def caller(i: int) -> None:
            await once.do(init)
            returned.append(i)

        tasks = [go(caller(i)) for i in range(5)]
        await settle()
        assert calls == 1 and returned == []  # everybody waits for the first call
        gate.set()
        await asyncio.gather(*tasks)
        assert sorted(returned) == list(range(5))
        await once.do(init)
        assert calls == 1

    csp_run(main())


def test_once_plain_function(csp_run: Any) -> None:
    async def main() -> None:
        calls: list[str] = []
        once = Once()
        await once.do(lambda: calls.append("x"))
        await once.do(lambda: calls.append("y"))
        assert calls == ["x"]
        assert "done" in repr(once)

    csp_run(main())


def test_once_failure_counts_as_done(csp_run: Any) -> None:
    """Go: if f panics, Do considers it to have returned; the error goes to its caller."""

    async def main() -> None:
        calls = 0

        async def init() -> None:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0)
            raise OSError("init failed")

        once = Once()
        runner = go(once.do(init))
        waiter = go(once.do(init))
        with pytest.raises(OSError, match="init failed"):
            await runner
        await waiter  # returns normally
        await once.do(init)
        assert calls == 1

    csp_run(main())


def test_once_cancelled_runner_lets_the_next_caller_run(csp_run: Any) -> None:
    async def main() -> None:
        calls = 0

        async def init() -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                await asyncio.Event().wait()

        once = Once()
        first = go(once.do(init))
        await settle()
        second = go(once.do(init))
        await settle()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await finished(second)  # took over and ran init to completion
        assert calls == 2
        await once.do(init)
        assert calls == 2

    csp_run(main())


def test_once_recursive_call_is_an_error(csp_run: Any) -> None:
    async def main() -> None:
        once = Once()

        async def init() -> None:
            await once.do(init)

        with pytest.raises(RuntimeError, match="within its own function"):
            await once.do(init)

    csp_run(main())


# ---------------------------------------------------------------- Mutex


def test_mutex_basics(csp_run: Any) -> None:
    async def main() -> None:
        mu = Mutex()
        assert not mu.locked()
        assert mu.try_lock()
        assert mu.locked() and not mu.try_lock()
        mu.unlock()
        with pytest.raises(RuntimeError, match="unlock of unlocked"):
            mu.unlock()
        run_nowait(mu.lock())
        mu.unlock()
        async with mu:
            assert mu.locked()
        assert not mu.locked()

    csp_run(main())


def test_mutex_excludes_and_hands_over_in_fifo_order(csp_run: Any) -> None:
    async def main() -> None:
        mu = Mutex()
        inside = 0
        order: list[int] = []

        async def worker(i: int) -> None:
            nonlocal inside
            async with mu:
                inside += 1
                assert inside == 1
                order.append(i)
                await settle(3)
                inside -= 1

        await mu.lock()
        tasks = []
        for i in range(5):
            tasks.append(go(worker(i)))
            await settle()  # queue them in a known order
        mu.unlock()
        assert mu.locked()  # handed straight to the first waiter
        assert not mu.try_lock()
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3, 4]
        assert not mu.locked()

    csp_run(main())


def test_mutex_cancelled_waiter(csp_run: Any) -> None:
    async def main() -> None:
        mu = Mutex()
        await mu.lock()
        doomed = go(mu.lock())
        await settle()
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        mu.unlock()
        assert not mu.locked()

    csp_run(main())


def test_mutex_handed_over_then_cancelled_passes_it_on(csp_run: Any) -> None:
    async def main() -> None:
        mu = Mutex()
        await mu.lock()
        first = go(mu.lock())
        await settle()
        second = go(mu.lock())
        await settle()
        mu.unlock()  # hands the mutex to `first` ...
        first.cancel()  # ... which is cancelled before it resumes
        with pytest.raises(asyncio.CancelledError):
            await first
        await finished(second)  # the mutex went on to the next waiter
        assert mu.locked()
        mu.unlock()
        assert not mu.locked()

    csp_run(main())


def test_sync_objects_are_created_outside_a_loop_and_bind_lazily(csp_run: Any) -> None:
    wg, once, mu = WaitGroup(), Once(), Mutex()  # no running loop here

    async def main() -> None:
        await mu.lock()
        waiter = go(mu.lock())
        wg.add(1)
        wg_waiter = go(wg.wait())
        await settle()
        mu.unlock()
        wg.done()
        await asyncio.gather(waiter, wg_waiter)
        await once.do(lambda: None)

    csp_run(main())

    async def elsewhere() -> None:
        with pytest.raises(RuntimeError, match="different event loop"):
            await mu.lock()  # still held, so it would have to wait on the first loop

    with asyncio.Runner() as runner:
        runner.run(elsewhere())
