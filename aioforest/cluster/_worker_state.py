"""The worker's task state, sans-IO: stimuli in, instructions out.

No sockets, no asyncio, no process pool: :class:`Worker` turns what happens (a session
began or ended, a task or a cancel arrived, a fit finished, a stop was asked for) into a
stimulus, hands it to :meth:`WorkerState.handle`, and carries out the instructions it gets
back, in order. Every rule about which task runs, which is dropped and who is answered
lives here, so it is tested without sockets (``tests/test_cluster_worker_state.py``).

Rules:

* **Sessions.** Each welcome starts a session; a task belongs to the session it arrived
  in. Its answer goes out only while that session is connected; a result finished after
  the session ended is a *late result*, dropped (the master requeued the task when it lost
  us, and another worker may be fitting it).
* **Slots.** At most ``processes`` tasks run at once, each on its own slot of the pool's
  cancel board; the others wait in a FIFO queue, in arrival order.
* **Answers.** Every accepted task is answered exactly once while its session lasts: a
  ``result``, or ``failed`` (missing dataset, bad rows or bins, cancelled, error).
* **Cancel.** A queued task is dropped and answered ``cancelled`` at once; a running one is
  told to stop (its slot's byte on the board) and answers ``cancelled`` when the pool lets
  go, even if the fit completed in the meantime.
* **Lost session.** Queued tasks are dropped unanswered (the master requeues them) and the
  session's running tasks are stopped: nobody will take their results.
* **Stop.** Queued tasks are dropped (the master requeues every unanswered task when it
  gets our ``bye``) and new tasks are refused silently; running tasks finish and report.
* **Datasets.** A queued or running task pins its dataset in the cache; each pin is undone
  exactly once, when the task leaves the worker.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TypeAlias

from ._protocol import Cancel, Result, Task, TaskFailed

__all__ = [
    "CancelArrived",
    "DatasetView",
    "DropLate",
    "FitDone",
    "Instruction",
    "Pin",
    "ResetSlot",
    "RunKey",
    "Send",
    "SessionEnded",
    "SessionStarted",
    "StartFit",
    "Stimulus",
    "StopFit",
    "StopRequested",
    "TaskArrived",
    "Unpin",
    "WorkerState",
    "task_failed",
]

#: ``(session, job_id, task_id, attempt)``: job ids are per master session.
RunKey: TypeAlias = tuple[int, int, int, int]
Answer: TypeAlias = Result | TaskFailed


# ---------------------------------------------------------------------- stimuli


@dataclass(frozen=True, slots=True)
class DatasetView:
    """What the state needs to know of a cached dataset to accept a task on it."""

    n_rows: int
    n_features: int
    raw: bool


@dataclass(frozen=True, slots=True)
class SessionStarted:
    """The master welcomed us: a new session."""


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The session is over: ``lost`` (connection dropped or broken) or not (a ``bye``)."""

    lost: bool


@dataclass(frozen=True, slots=True)
class TaskArrived:
    """A task came in; ``dataset`` is the cached dataset it names (``None``: not held)."""

    task: Task
    dataset: DatasetView | None


@dataclass(frozen=True, slots=True)
class CancelArrived:
    cancel: Cancel


@dataclass(frozen=True, slots=True)
class FitDone:
    """The pool let go of the task run as ``key``; ``answer`` is what its fit gave."""

    key: RunKey
    answer: Answer


@dataclass(frozen=True, slots=True)
class StopRequested:
    """Leave the cluster (:meth:`Worker.stop`)."""


Stimulus: TypeAlias = (
    SessionStarted | SessionEnded | TaskArrived | CancelArrived | FitDone | StopRequested
)


# ---------------------------------------------------------------------- instructions


@dataclass(frozen=True, slots=True)
class Send:
    """Send this answer on the current session."""

    message: Answer


@dataclass(frozen=True, slots=True)
class StartFit:
    """Fit ``task`` in the pool on cancel-board slot ``slot``; report with ``FitDone(key)``."""

    key: RunKey
    task: Task
    slot: int


@dataclass(frozen=True, slots=True)
class StopFit:
    """Ask the fit run as ``key`` to stop: raise its slot's byte on the cancel board."""

    key: RunKey
    slot: int


@dataclass(frozen=True, slots=True)
class ResetSlot:
    """Lower the slot's byte on the cancel board: the slot is free for the next task."""

    slot: int


@dataclass(frozen=True, slots=True)
class Pin:
    dataset: str


@dataclass(frozen=True, slots=True)
class Unpin:
    dataset: str


@dataclass(frozen=True, slots=True)
class DropLate:
    """A result whose session is gone was dropped (worth a log line)."""

    task: Task


Instruction: TypeAlias = Send | StartFit | StopFit | ResetSlot | Pin | Unpin | DropLate


# ---------------------------------------------------------------------- the state


@dataclass(slots=True)
class _Run:
    task: Task
    slot: int
    cancelled: bool = False


class WorkerState:
    """The tasks of one worker: queued, running, and to whom each answer goes."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.processes = processes
        #: Sessions started (the current one's number while connected).
        self.session = 0
        self.connected = False
        self.stopping = False
        #: Tasks answered with a result, over the worker's life.
        self.tasks_done = 0
        #: Results dropped because the session their task came from was gone.
        self.late_results = 0
        #: Running tasks told to stop (a losing backup copy, a failed job, a lost session).
        self.cancelled_running = 0
        self._queue: deque[Task] = deque()
        self._running: dict[RunKey, _Run] = {}
        self._free_slots = list(range(processes - 1, -1, -1))

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def free(self) -> int:
        return self.processes - len(self._running)

    def running_keys(self) -> list[RunKey]:
        return list(self._running)

    def handle(self, stimulus: Stimulus) -> list[Instruction]:
        """Apply ``stimulus``; the instructions to carry out, in order."""
        if isinstance(stimulus, TaskArrived):
            return self._task_arrived(stimulus.task, stimulus.dataset)
        if isinstance(stimulus, FitDone):
            return self._fit_done(stimulus.key, stimulus.answer)
        if isinstance(stimulus, CancelArrived):
            return self._cancel(stimulus.cancel)
        if isinstance(stimulus, SessionStarted):
            self.session += 1
            self.connected = True
            return []
        if isinstance(stimulus, SessionEnded):
            return self._session_ended(stimulus.lost)
        self.stopping = True
        return self._drop_queue()

    # ------------------------------------------------------------------ transitions

    def _task_arrived(self, task: Task, dataset: DatasetView | None) -> list[Instruction]:
        if self.stopping or not self.connected:
            return []  # the master requeues it when it gets our bye (or loses us)
        if dataset is None:
            detail = f"the worker does not hold dataset {task.dataset}"
            return [Send(task_failed(task, "missing-dataset", detail))]
        problem = check_rows(task, dataset.n_rows) or check_bins(task, dataset)
        if problem:
            return [Send(task_failed(task, "error", problem))]
        self._queue.append(task)
        return [Pin(task.dataset), *self._start_queued()]

    def _fit_done(self, key: RunKey, answer: Answer) -> list[Instruction]:
        run = self._running.pop(key, None)
        if run is None:
            raise KeyError(f"no running task {key}")
        self._free_slots.append(run.slot)
        out: list[Instruction] = [Unpin(run.task.dataset), ResetSlot(run.slot)]
        if run.cancelled and isinstance(answer, Result):
            detail = "cancelled while running (after the fit)"
            answer = task_failed(run.task, "cancelled", detail)
        if isinstance(answer, Result):
            self.tasks_done += 1
        if self.connected and key[0] == self.session:
            out.append(Send(answer))
        elif isinstance(answer, Result):
            self.late_results += 1
            out.append(DropLate(run.task))
        out.extend(self._start_queued())
        return out

    def _cancel(self, cancel: Cancel) -> list[Instruction]:
        out: list[Instruction] = []
        keep: deque[Task] = deque()
        for task in self._queue:
            if _hit(cancel, task):
                out += [Unpin(task.dataset),
                        Send(task_failed(task, "cancelled", "cancelled before it started"))]
            else:
                keep.append(task)
        self._queue = keep
        stops = [key for key, run in self._running.items()
                 if key[0] == self.session and _hit(cancel, run.task)]
        return [*self._stop_runs(stops), *out]

    def _session_ended(self, lost: bool) -> list[Instruction]:
        self.connected = False
        out = self._drop_queue()
        if lost:
            # Nobody will take these results: free the pool for the next session's tasks.
            out += self._stop_runs([k for k in self._running if k[0] == self.session])
        return out

    # ------------------------------------------------------------------ helpers

    def _start_queued(self) -> list[Instruction]:
        out: list[Instruction] = []
        while self._queue and len(self._running) < self.processes:
            task = self._queue.popleft()
            key = (self.session, task.job_id, task.task_id, task.attempt)
            run = _Run(task, self._free_slots.pop())
            self._running[key] = run
            out.append(StartFit(key, task, run.slot))
        return out

    def _stop_runs(self, keys: list[RunKey]) -> list[Instruction]:
        out: list[Instruction] = []
        for key in keys:
            run = self._running[key]
            if not run.cancelled:
                run.cancelled = True
                self.cancelled_running += 1
                out.append(StopFit(key, run.slot))
        return out

    def _drop_queue(self) -> list[Instruction]:
        out: list[Instruction] = [Unpin(task.dataset) for task in self._queue]
        self._queue.clear()
        return out

    def check_invariants(self) -> None:
        """Assert the bookkeeping is consistent (for tests)."""
        slots = [run.slot for run in self._running.values()]
        assert len(slots) == len(set(slots)), slots
        assert sorted(slots + self._free_slots) == list(range(self.processes))
        assert len(self._running) <= self.processes
        assert not (self._queue and len(self._running) < self.processes)
        assert not (self.stopping and self._queue)


def _hit(cancel: Cancel, task: Task) -> bool:
    return task.job_id == cancel.job_id and (
        cancel.task_ids is None or task.task_id in cancel.task_ids
    )


def task_failed(task: Task, kind: str, detail: str) -> TaskFailed:
    """The ``failed`` answer to ``task``."""
    return TaskFailed(task.job_id, task.task_id, task.attempt, kind, detail)


def check_bins(task: Task, dataset: DatasetView) -> str | None:
    """A raw dataset needs the task's bins (one per feature); a binned one must not get any."""
    if dataset.raw != (task.bins is not None):
        if dataset.raw:
            return f"dataset {task.dataset} holds raw features: the task must carry bins"
        return f"dataset {task.dataset} is already binned: the task must not carry bins"
    if task.bins is not None and task.bins.n_features != dataset.n_features:
        return (
            f"the task's bins cover {task.bins.n_features} features, the dataset has "
            f"{dataset.n_features}"
        )
    return None


def check_rows(task: Task, n_rows: int) -> str | None:
    """Whether the task's row selector fits in a dataset of ``n_rows`` rows."""
    rows = task.rows
    if rows is None:
        return None
    if isinstance(rows, tuple):
        if rows[1] > n_rows:
            return f"rows [{rows[0]}, {rows[1]}) exceed the dataset's {n_rows} rows"
        return None
    if int(rows.max()) >= n_rows:
        return f"row index {int(rows.max())} is out of range for {n_rows} rows"
    return None
