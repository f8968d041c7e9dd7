"""The master's scheduling state, sans-IO: jobs, a task queue, workers with credits.

No sockets, no asyncio, no clocks: the master feeds events in (a worker joined, a result or
failure arrived, a worker was lost, a job was added or cancelled) and calls :meth:`assign`
to learn which task to send to which worker. Everything is deterministic for a given
sequence of calls, which is what the unit and state-machine tests rely on.

Rules:

* **Order.** Queued tasks run by job priority (higher first), then by their first tree
  index, then by job submission order: concurrent jobs of equal priority interleave
  instead of one starving the other.
* **Credits.** A worker holds at most ``slots + prefetch`` outstanding tasks. The worker
  answers every task exactly once (``result`` or ``failed``), which returns the credit.
* **Attempts.** ``(job_id, task_id, attempt)`` names one try. A task handed back (its
  worker was lost or left) is queued again with ``attempt + 1``; a result is accepted only
  from the worker holding the current attempt, so duplicates and superseded attempts are
  ignored. Trees are pure functions of the task, so whichever attempt wins is the same.
* **Poison tasks.** A task whose worker is *lost* (not a graceful leave) more than
  ``max_failures`` times fails its job instead of killing worker after worker.
* **Placement.** The scheduler remembers which worker holds which dataset. It prefers
  workers that already hold a task's dataset and tells the caller when a dataset has to
  be sent first (marking it as held from then on). A task may cap how many workers hold
  its dataset (``max_replicas``); past the cap its tasks wait for a holder's credit, which
  is how a data-parallel shard stays on one worker.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Assignment",
    "JobFailed",
    "Scheduler",
    "TaskSpec",
]

TaskKey = tuple[int, int]  # (job_id, task_id)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A task of a job as the scheduler sees it: which dataset it needs and where it sorts."""

    task_id: int
    dataset: str
    order: int  # usually the first tree index of the task
    #: At most this many workers may hold the task's dataset (``None``: no limit). With 1,
    #: a data shard stays on one worker and its tasks wait for that worker.
    max_replicas: int | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    """Send task ``(job_id, task_id, attempt)`` to ``worker``; send the dataset first if told."""

    worker: str
    job_id: int
    task_id: int
    attempt: int
    dataset: str
    send_dataset: bool


@dataclass(frozen=True, slots=True)
class JobFailed:
    """A job failed; ``cancels`` lists, per worker, its tasks still outstanding there."""

    job_id: int
    reason: str
    cancels: dict[str, list[int]]


@dataclass(slots=True)
class _Task:
    job_id: int
    task_id: int
    dataset: str
    order: int
    max_replicas: int | None = None
    attempt: int = 0
    failures: int = 0
    worker: str | None = None
    queued: bool = False
    done: bool = False


@dataclass(slots=True)
class _Job:
    job_id: int
    priority: int
    seq: int
    tasks: dict[int, _Task]
    remaining: int


@dataclass(slots=True)
class _Worker:
    name: str
    slots: int
    credits: int
    seq: int
    datasets: set[str]
    outstanding: dict[TaskKey, int] = field(default_factory=dict)  # key -> attempt
    completed: int = 0
    assigned: int = 0
    datasets_sent: int = 0
    load: dict[str, int] = field(default_factory=dict)


class Scheduler:
    """Pure scheduling state (see the module docstring)."""

    def __init__(self, *, prefetch: int = 1, max_failures: int = 3) -> None:
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise ValueError(f"prefetch must be an integer >= 0, got {prefetch!r}")
        if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 0:
            raise ValueError(f"max_failures must be an integer >= 0, got {max_failures!r}")
        self.prefetch = prefetch
        self.max_failures = max_failures
        self._jobs: dict[int, _Job] = {}
        self._workers: dict[str, _Worker] = {}
        self._heap: list[tuple[int, int, int, int, int, int]] = []
        self._job_seq = itertools.count()
        self._worker_seq = itertools.count()
        self._done_total = 0

    # ------------------------------------------------------------------ workers

    def add_worker(self, name: str, slots: int, datasets: Iterable[str] = ()) -> None:
        """A worker joined with ``slots`` parallel task slots and these cached datasets."""
        if name in self._workers:
            raise ValueError(f"worker {name!r} is already registered")
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise ValueError(f"worker slots must be an integer >= 1, got {slots!r}")
        self._workers[name] = _Worker(
            name, slots, slots + self.prefetch, next(self._worker_seq), set(datasets)
        )

    def has_worker(self, name: str) -> bool:
        return name in self._workers

    @property
    def workers(self) -> list[str]:
        """Registered workers, in joining order."""
        return list(self._workers)

    def update_load(self, name: str, **load: int) -> None:
        """Record what a worker's heartbeat reported (informational only)."""
        self._workers[name].load = dict(load)

    def worker_datasets(self, name: str) -> frozenset[str]:
        return frozenset(self._workers[name].datasets)

    def outstanding(self, name: str) -> dict[TaskKey, int]:
        """The tasks sent to ``name`` and not answered yet, with their attempt."""
        return dict(self._workers[name].outstanding)

    def on_worker_lost(self, name: str, *, graceful: bool = False) -> list[JobFailed]:
        """``name`` is gone; its outstanding tasks go back to the queue with ``attempt + 1``.

        Unless ``graceful`` (the worker said ``bye``), each such task counts a failure;
        a task over ``max_failures`` fails its job. Unknown workers are ignored.
        """
        worker = self._workers.pop(name, None)
        if worker is None:
            return []
        failed: list[JobFailed] = []
        for (job_id, task_id), attempt in sorted(worker.outstanding.items()):
            job = self._jobs.get(job_id)
            if job is None:
                continue
            task = job.tasks[task_id]
            if task.done or task.worker != name or task.attempt != attempt:
                continue
            task.worker = None
            task.attempt += 1
            if not graceful:
                task.failures += 1
            if task.failures > self.max_failures:
                failed.append(
                    self._fail(
                        job,
                        f"task {task_id} was lost with {task.failures} workers "
                        f"(more than max_failures={self.max_failures}); giving up on it",
                    )
                )
            else:
                self._push(job, task)
        return failed

    # ------------------------------------------------------------------ jobs

    def add_job(self, job_id: int, tasks: Sequence[TaskSpec], *, priority: int = 0) -> None:
        """Queue a job's tasks. Task ids must be unique within the job."""
        if job_id in self._jobs:
            raise ValueError(f"job {job_id} already exists")
        if not tasks:
            raise ValueError(f"job {job_id} has no tasks")
        for t in tasks:
            if t.max_replicas is not None and t.max_replicas < 1:
                raise ValueError(f"task {t.task_id}: max_replicas must be >= 1 or None")
        states = {
            t.task_id: _Task(job_id, t.task_id, t.dataset, t.order, t.max_replicas)
            for t in tasks
        }
        if len(states) != len(tasks):
            raise ValueError(f"job {job_id} repeats a task id")
        job = _Job(job_id, priority, next(self._job_seq), states, len(states))
        self._jobs[job_id] = job
        for task in states.values():
            self._push(job, task)

    def has_job(self, job_id: int) -> bool:
        return job_id in self._jobs

    def is_complete(self, job_id: int) -> bool:
        """Whether every task of the (still registered) job has an accepted result."""
        job = self._jobs.get(job_id)
        return job is not None and job.remaining == 0

    def remove_job(self, job_id: int) -> dict[str, list[int]]:
        """Forget a job (finished, failed elsewhere or cancelled).

        Returns, per worker, the job's tasks still outstanding there: the caller should send
        them a ``cancel``. Their credits come back when the worker answers.
        """
        job = self._jobs.pop(job_id, None)
        if job is None:
            return {}
        return self._outstanding_of(job)

    def _outstanding_of(self, job: _Job) -> dict[str, list[int]]:
        cancels: dict[str, list[int]] = {}
        for task in job.tasks.values():
            if task.worker is not None and not task.done:
                cancels.setdefault(task.worker, []).append(task.task_id)
        for ids in cancels.values():
            ids.sort()
        return cancels

    def _fail(self, job: _Job, reason: str) -> JobFailed:
        self._jobs.pop(job.job_id, None)
        return JobFailed(job.job_id, reason, self._outstanding_of(job))

    # ------------------------------------------------------------------ queue

    def _push(self, job: _Job, task: _Task) -> None:
        task.queued = True
        heapq.heappush(
            self._heap,
            (-job.priority, task.order, job.seq, task.task_id, job.job_id, task.attempt),
        )

    def _live(self, entry: tuple[int, int, int, int, int, int]) -> _Task | None:
        job_id, task_id, attempt = entry[4], entry[3], entry[5]
        job = self._jobs.get(job_id)
        if job is None:
            return None
        task = job.tasks[task_id]
        if not task.queued or task.done or task.attempt != attempt:
            return None
        return task

    def assign(self) -> list[Assignment]:
        """Match queued tasks with free worker credits, best task first.

        A task goes to the least loaded worker (outstanding / credits) among those that
        hold its dataset and have a free credit, else to the least loaded worker with a
        free credit, which then needs the dataset (``send_dataset``).
        """
        out: list[Assignment] = []
        free = {w.name: w for w in self._workers.values() if len(w.outstanding) < w.credits}
        waiting: list[tuple[int, int, int, int, int, int]] = []  # tasks for a busy holder
        while self._heap and free:
            entry = heapq.heappop(self._heap)
            task = self._live(entry)
            if task is None:
                continue
            candidates: Iterable[_Worker] = free.values()
            if task.max_replicas is not None:
                holders = sum(task.dataset in w.datasets for w in self._workers.values())
                if holders >= task.max_replicas:
                    candidates = [w for w in free.values() if task.dataset in w.datasets]
                    if not candidates:
                        waiting.append(entry)
                        continue
            worker = self._pick(task.dataset, candidates)
            send = task.dataset not in worker.datasets
            if send:
                worker.datasets.add(task.dataset)
                worker.datasets_sent += 1
            task.queued = False
            task.worker = worker.name
            worker.outstanding[(task.job_id, task.task_id)] = task.attempt
            worker.assigned += 1
            if len(worker.outstanding) >= worker.credits:
                del free[worker.name]
            out.append(
                Assignment(
                    worker.name, task.job_id, task.task_id, task.attempt, task.dataset, send
                )
            )
        for entry in waiting:
            heapq.heappush(self._heap, entry)
        return out

    @staticmethod
    def _pick(dataset: str, candidates: Iterable[_Worker]) -> _Worker:
        def load(w: _Worker) -> tuple[bool, float, int]:
            return (dataset not in w.datasets, len(w.outstanding) / w.credits, w.seq)

        return min(candidates, key=load)

    # ------------------------------------------------------------------ answers

    def _answer(self, worker: str, job_id: int, task_id: int, attempt: int) -> _Task | None:
        """Return the credit for this answer; the task if the answer is for its current try."""
        w = self._workers.get(worker)
        if w is None:
            return None
        key = (job_id, task_id)
        if w.outstanding.get(key) == attempt:
            del w.outstanding[key]
        else:
            return None  # not something we sent this worker: duplicate or bogus
        job = self._jobs.get(job_id)
        if job is None:
            return None
        task = job.tasks.get(task_id)
        if task is None or task.done or task.worker != worker or task.attempt != attempt:
            return None
        return task

    def on_result(self, worker: str, job_id: int, task_id: int, attempt: int) -> bool:
        """A result arrived; True if it is the one to keep (first answer for the current try)."""
        task = self._answer(worker, job_id, task_id, attempt)
        if task is None:
            return False
        task.done = True
        task.worker = None
        self._jobs[job_id].remaining -= 1
        self._workers[worker].completed += 1
        self._done_total += 1
        return True

    def on_failed(
        self, worker: str, job_id: int, task_id: int, attempt: int, reason: str, detail: str = ""
    ) -> JobFailed | None:
        """A worker will not produce a result for this try.

        ``missing-dataset`` and ``cancelled`` requeue the task (``attempt + 1``), the former
        after forgetting that the worker holds the dataset; ``worker-error`` requeues it
        counting a failure; ``error`` fails the job.
        """
        w = self._workers.get(worker)
        if reason == "missing-dataset" and w is not None and job_id in self._jobs:
            task0 = self._jobs[job_id].tasks.get(task_id)
            if task0 is not None:
                w.datasets.discard(task0.dataset)
        task = self._answer(worker, job_id, task_id, attempt)
        if task is None:
            return None
        job = self._jobs[job_id]
        task.worker = None
        task.attempt += 1
        if reason == "error":
            return self._fail(job, f"task {task_id} failed on worker {worker}: {detail}")
        if reason == "worker-error":
            task.failures += 1
            if task.failures > self.max_failures:
                return self._fail(
                    job,
                    f"task {task_id} failed on {task.failures} workers "
                    f"(more than max_failures={self.max_failures}); last error: {detail}",
                )
        self._push(job, task)
        return None

    # ------------------------------------------------------------------ inspection

    def counts(self) -> dict[str, int]:
        """Tasks queued, running (outstanding on a worker) and done, over live jobs."""
        queued = running = done = 0
        for job in self._jobs.values():
            for t in job.tasks.values():
                if t.done:
                    done += 1
                elif t.worker is not None:
                    running += 1
                elif t.queued:
                    queued += 1
        return {"queued": queued, "running": running, "done": done, "done_total": self._done_total}

    def job_counts(self, job_id: int) -> dict[str, int]:
        job = self._jobs[job_id]
        tasks = job.tasks.values()
        return {
            "tasks": len(job.tasks),
            "done": sum(t.done for t in tasks),
            "running": sum(t.worker is not None for t in tasks),
        }

    def worker_info(self, name: str) -> dict[str, Any]:
        w = self._workers[name]
        return {
            "slots": w.slots,
            "credits": w.credits,
            "outstanding": len(w.outstanding),
            "assigned": w.assigned,
            "completed": w.completed,
            "datasets": len(w.datasets),
            "datasets_sent": w.datasets_sent,
            "load": dict(w.load),
        }

    def check_invariants(self) -> None:
        """Raise AssertionError if the state is inconsistent (used by tests)."""
        for job in self._jobs.values():
            assert job.remaining == sum(not t.done for t in job.tasks.values())
            for t in job.tasks.values():
                states = [t.done, t.worker is not None, t.queued]
                assert sum(states) == 1, f"task {job.job_id}/{t.task_id} in states {states}"
                if t.worker is not None:
                    w = self._workers[t.worker]
                    assert w.outstanding.get((job.job_id, t.task_id)) == t.attempt
                if t.queued:
                    assert any(
                        e[4] == job.job_id and e[3] == t.task_id and e[5] == t.attempt
                        for e in self._heap
                    )
        for w in self._workers.values():
            assert len(w.outstanding) <= w.credits, f"worker {w.name} over its credits"
