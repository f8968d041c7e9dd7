"""The worker's sans-IO task state: stimuli in, instructions out, no sockets or pool.

Each rule of ``aioforest/cluster/_worker_state.py`` gets a test here; a hypothesis state
machine then drives random interleavings of tasks, cancels, fits finishing, lost sessions
and stops, and checks what the master would see: every task answered at most once, and
exactly once when its session lasts; dataset pins balanced; never more fits than slots.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import hypothesis.strategies as st
import numpy as np
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from aioforest import RandomForestClassifier
from aioforest.cluster._protocol import Cancel, Result, Task, TaskFailed
from aioforest.cluster._worker_state import (
    CancelArrived,
    DatasetView,
    DropLate,
    FitDone,
    Instruction,
    Pin,
    ResetSlot,
    Send,
    SessionEnded,
    SessionStarted,
    StartFit,
    StopFit,
    StopRequested,
    TaskArrived,
    Unpin,
    WorkerState,
)

_X = np.random.default_rng(0).normal(size=(20, 3))
PLAN = RandomForestClassifier(n_estimators=4, random_state=0).fit_job(_X, _X[:, 0] > 0).plan
HELD = DatasetView(n_rows=100, n_features=3, raw=False)


def task(job: int = 1, tid: int = 0, attempt: int = 0, **kw: Any) -> Task:
    return Task(job, tid, attempt, kw.pop("dataset", "d1"), PLAN, (tid,), **kw)


def result(t: Task) -> Result:
    return Result(t.job_id, t.task_id, t.attempt, ())


def connected(processes: int = 1) -> WorkerState:
    state = WorkerState(processes)
    assert state.handle(SessionStarted()) == []
    return state


def kinds(instructions: list[Instruction]) -> list[str]:
    return [type(i).__name__ for i in instructions]


def sent(instructions: list[Instruction]) -> list[Result | TaskFailed]:
    return [i.message for i in instructions if isinstance(i, Send)]


# ---------------------------------------------------------------------- rules, one by one


def test_a_task_pins_its_dataset_and_starts_on_a_free_slot() -> None:
    state = connected(2)
    first, second = task(tid=0), task(tid=1)
    out = state.handle(TaskArrived(first, HELD))
    assert out == [Pin("d1"), StartFit((1, 1, 0, 0), first, 0)]
    out = state.handle(TaskArrived(second, HELD))
    assert out == [Pin("d1"), StartFit((1, 1, 1, 0), second, 1)]
    assert (state.running, state.queued, state.free) == (2, 0, 0)


def test_tasks_past_the_slots_queue_in_arrival_order_and_start_as_slots_free() -> None:
    state = connected(1)
    first, second, third = task(tid=0), task(tid=1), task(tid=2)
    for t in (first, second, third):
        state.handle(TaskArrived(t, HELD))
    assert (state.running, state.queued) == (1, 2)
    done = result(first)
    out = state.handle(FitDone((1, 1, 0, 0), done))
    assert out == [Unpin("d1"), ResetSlot(0), Send(done),
                   StartFit((1, 1, 1, 0), second, 0)]
    assert state.tasks_done == 1
    state.check_invariants()


def test_a_missing_dataset_or_bad_selector_is_answered_at_once_and_pins_nothing() -> None:
    state = connected(1)
    (missing,) = sent(state.handle(TaskArrived(task(dataset="nope"), None)))
    assert isinstance(missing, TaskFailed) and missing.reason == "missing-dataset"
    assert "does not hold dataset nope" in missing.detail
    (bad_rows,) = sent(state.handle(TaskArrived(task(rows=(0, 101)), HELD)))
    assert isinstance(bad_rows, TaskFailed) and bad_rows.reason == "error"
    assert "exceed the dataset's 100 rows" in bad_rows.detail
    rows = np.array([3, 100], np.int64)
    (bad_index,) = sent(state.handle(TaskArrived(task(rows=rows), HELD)))
    assert isinstance(bad_index, TaskFailed) and "row index 100 is out of range" in bad_index.detail
    raw = DatasetView(100, 3, raw=True)
    (no_bins,) = sent(state.handle(TaskArrived(task(), raw)))
    assert isinstance(no_bins, TaskFailed) and "must carry bins" in no_bins.detail
    assert (state.running, state.queued) == (0, 0)


def test_cancel_answers_queued_tasks_at_once_and_stops_running_ones() -> None:
    state = connected(1)
    running, queued, other_job = task(tid=0), task(tid=1), task(job=2, tid=0)
    for t in (running, queued, other_job):
        state.handle(TaskArrived(t, HELD))
    out = state.handle(CancelArrived(Cancel(1)))
    assert out[0] == StopFit((1, 1, 0, 0), 0)
    assert out[1] == Unpin("d1")
    (answer,) = sent(out)
    assert isinstance(answer, TaskFailed) and (answer.task_id, answer.reason) == (1, "cancelled")
    assert (state.queued, state.cancelled_running) == (1, 1)  # job 2 keeps its place
    # A second cancel of the same running task does not stop it twice.
    assert state.handle(CancelArrived(Cancel(1, (0,)))) == []


def test_a_cancelled_fit_answers_cancelled_even_if_it_completed() -> None:
    state = connected(1)
    t = task()
    state.handle(TaskArrived(t, HELD))
    state.handle(CancelArrived(Cancel(1, (0,))))
    (answer,) = sent(state.handle(FitDone((1, 1, 0, 0), result(t))))
    assert isinstance(answer, TaskFailed) and answer.reason == "cancelled"
    assert state.tasks_done == 0


def test_a_lost_session_drops_the_queue_and_stops_its_fits_whose_results_are_late() -> None:
    state = connected(1)
    running, queued = task(tid=0), task(tid=1)
    state.handle(TaskArrived(running, HELD))
    state.handle(TaskArrived(queued, HELD))
    out = state.handle(SessionEnded(lost=True))
    assert out == [Unpin("d1"), StopFit((1, 1, 0, 0), 0)]  # no answers: nobody listens
    assert state.handle(SessionStarted()) == []
    # The fit finished anyway (the pool ignored the cancel): dropped, slot freed.
    out = state.handle(FitDone((1, 1, 0, 0), result(running)))
    assert kinds(out) == ["Unpin", "ResetSlot"]  # cancelled, so not even a late result
    # The same task ids in the new session are new tasks.
    out = state.handle(TaskArrived(running, HELD))
    assert out == [Pin("d1"), StartFit((2, 1, 0, 0), running, 0)]


def test_a_result_after_a_bye_is_a_late_result() -> None:
    state = connected(1)
    t = task()
    state.handle(TaskArrived(t, HELD))
    assert state.handle(SessionEnded(lost=False)) == []  # a bye does not stop running fits
    out = state.handle(FitDone((1, 1, 0, 0), result(t)))
    assert out == [Unpin("d1"), ResetSlot(0), DropLate(t)]
    assert (state.late_results, state.tasks_done) == (1, 1)


def test_stop_drops_the_queue_refuses_new_tasks_and_lets_running_ones_report() -> None:
    state = connected(1)
    running, queued = task(tid=0), task(tid=1)
    state.handle(TaskArrived(running, HELD))
    state.handle(TaskArrived(queued, HELD))
    assert state.handle(StopRequested()) == [Unpin("d1")]
    assert state.handle(TaskArrived(task(tid=2), HELD)) == []
    done = result(running)
    assert sent(state.handle(FitDone((1, 1, 0, 0), done))) == [done]
    assert (state.running, state.queued) == (0, 0)


def test_an_unknown_fit_is_a_bug_not_a_silent_no_op() -> None:
    state = connected(1)
    try:
        state.handle(FitDone((1, 9, 9, 0), result(task())))
    except KeyError as exc:
        assert "no running task" in str(exc)
    else:
        raise AssertionError("FitDone for an unknown key was accepted")


# ---------------------------------------------------------------------- state machine


class WorkerStateMachine(RuleBasedStateMachine):
    """Random interleavings; checks what reaches the master and the cache's pins."""

    def __init__(self) -> None:
        super().__init__()
        self.state = WorkerState(2)
        self.state.handle(SessionStarted())
        self.pins: Counter[str] = Counter()
        self.answers: Counter[tuple[int, int, int, int]] = Counter()  # (session, job, task, att)
        self.accepted: set[tuple[int, int, int, int]] = set()  # queued or started
        self.refused: set[tuple[int, int, int, int]] = set()  # answered on arrival
        self.stopped: set[tuple[int, int, int, int]] = set()  # told to stop (StopFit)
        self.fits: dict[tuple[int, int, int, int], Task] = {}  # StartFit not yet done
        self.started: set[tuple[int, int, int, int]] = set()  # ever given a StartFit
        self.dropped: set[tuple[int, int, int, int]] = set()  # queued when a stop came
        self.next_id = 0

    def apply(self, out: list[Instruction]) -> None:
        for ins in out:
            if isinstance(ins, Pin):
                self.pins[ins.dataset] += 1
            elif isinstance(ins, Unpin):
                self.pins[ins.dataset] -= 1
                assert self.pins[ins.dataset] >= 0, "unpinned more than pinned"
            elif isinstance(ins, Send):
                assert self.state.connected
                m = ins.message
                key = (self.state.session, m.job_id, m.task_id, m.attempt)
                assert key in self.accepted | self.refused, f"{key} is not this session's"
                assert not (key in self.stopped and isinstance(m, Result)), "a stopped fit won"
                self.answers[key] += 1
            elif isinstance(ins, StopFit):
                assert ins.key in self.fits and ins.key not in self.stopped, "stopped twice"
                self.stopped.add(ins.key)
            elif isinstance(ins, StartFit):
                assert ins.key not in self.fits
                self.fits[ins.key] = ins.task
                self.started.add(ins.key)

    @precondition(lambda self: not self.state.connected)
    @rule()
    def session_starts(self) -> None:
        self.apply(self.state.handle(SessionStarted()))

    @precondition(lambda self: self.state.connected)
    @rule(lost=st.booleans())
    def session_ends(self, lost: bool) -> None:
        self.apply(self.state.handle(SessionEnded(lost)))

    @rule(job=st.integers(1, 2), held=st.integers(0, 3))
    def task_arrives(self, job: int, held: int) -> None:
        t = task(job=job, tid=self.next_id)
        self.next_id += 1
        out = self.state.handle(TaskArrived(t, HELD if held else None))  # mostly held
        key = (self.state.session, job, t.task_id, 0)
        if Pin("d1") in out:
            self.accepted.add(key)
        elif out:
            self.refused.add(key)
        self.apply(out)

    @rule(job=st.integers(1, 2), everything=st.booleans(), data=st.data())
    def cancel_arrives(self, job: int, everything: bool, data: st.DataObject) -> None:
        ids = None if everything else (data.draw(st.integers(0, max(self.next_id, 1))),)
        self.apply(self.state.handle(CancelArrived(Cancel(job, ids))))

    @precondition(lambda self: bool(self.fits))
    @rule(data=st.data(), fails=st.booleans())
    def fit_finishes(self, data: st.DataObject, fails: bool) -> None:
        key = data.draw(st.sampled_from(sorted(self.fits)))
        t = self.fits.pop(key)
        answer = TaskFailed(t.job_id, t.task_id, 0, "error", "boom") if fails else result(t)
        self.apply(self.state.handle(FitDone(key, answer)))

    @precondition(lambda self: not self.state.stopping)
    @rule()
    def stop(self) -> None:
        # The queue is dropped unanswered: the master requeues it when our bye arrives.
        current = {k for k in self.accepted if k[0] == self.state.session}
        queued = current - self.started - set(self.answers)
        self.apply(self.state.handle(StopRequested()))
        assert self.state.queued == 0
        self.dropped |= queued

    @invariant()
    def consistent(self) -> None:
        self.state.check_invariants()
        assert set(self.fits) == set(self.state.running_keys())
        assert all(n <= 1 for n in self.answers.values()), "a task answered twice"
        assert sum(self.pins.values()) == self.state.running + self.state.queued

    def teardown(self) -> None:
        # Finish every fit: each task of a session still connected has then been answered.
        while self.fits:
            key, t = self.fits.popitem()
            self.apply(self.state.handle(FitDone(key, result(t))))
        assert sum(self.pins.values()) == self.state.queued
        if self.state.connected and self.state.queued == 0:
            current = {k for k in self.accepted if k[0] == self.state.session} - self.dropped
            assert current <= set(self.answers), current - set(self.answers)


TestWorkerStateMachine = WorkerStateMachine.TestCase
TestWorkerStateMachine.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None, derandomize=True
)
