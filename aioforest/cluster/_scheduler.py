"""The master's scheduling state, sans-IO: jobs, a task queue, workers with credits.

No sockets, no asyncio, no clocks: the master feeds events in (a worker joined, a result or
failure arrived, a worker was lost, a job was added or cancelled) and calls :meth:`assign`
to learn which task to send to which worker; the time is an argument (``now``), never read.
Everything is deterministic for a given sequence of calls, which is what the unit and
state-machine tests rely on.

Rules:

* **Order.** Queued tasks run by job priority (higher first), then by their first tree
  index, then by job submission order: concurrent jobs of equal priority interleave
  instead of one starving the other.
* **Credits.** A worker holds at most ``slots + prefetch`` outstanding tasks. The worker
  answers every task exactly once (``result`` or ``failed``), which returns the credit.
* **Attempts.** ``(job_id, task_id, attempt)`` names one copy of a task; every copy gets a
  new attempt number. A result is accepted only from a worker holding a live copy, and only
  the first: duplicates, copies superseded after their worker was lost, and losing backup
  copies are ignored. Trees are pure functions of the task, so whichever copy wins gives
  the same trees.
* **Lost workers.** A worker's outstanding copies go back to the queue at once (unless
  another copy of the task is still running elsewhere).
* **Poison tasks.** A task that ``max_attempts`` different workers held (running or
  prefetched: the master cannot tell which) when they died (connection lost, not a graceful
  leave), or whose fit crashed their process pool, fails its job: it is probably what kills
  them. A worker that comes back with the same
  incarnation (its connection dropped, its process lived) is forgiven: see :meth:`forgive`.
* **Backups.** When nothing is queued, a task that has run more than ``backup_factor``
  times the median duration of its job's finished tasks (once ``backup_min_done`` of them
  are done) gets a second copy on a worker with an idle slot. The first result wins; the
  caller cancels the other copy (:class:`ResultOutcome` lists it).
* **Placement.** The scheduler remembers which worker holds which dataset. It prefers
  workers that already hold a task's dataset and tells the caller when a dataset has to
  be sent first (marking it as held from then on). A task may cap how many workers hold
  its dataset (``max_replicas``); past the cap its tasks wait for a holder's credit, which
  is how a data-parallel shard stays on one worker.
"""

from __future__ import annotations

import heapq
import itertools
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._validation import check_int

__all__ = [
    "Assignment",
    "JobFailed",
    "ResultOutcome",
    "Scheduler",
    "TaskSpec",
]

TaskKey = tuple[int, int]  # (job_id, task_id)
_Entry = tuple[int, int, int, int, int, int]  # heap entry, see _push


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
    """Send task ``(job_id, task_id, attempt)`` to ``worker``; send the dataset first if told.

    ``backup`` marks a second copy of a straggling task.
    """

    worker: str
    job_id: int
    task_id: int
    attempt: int
    dataset: str
    send_dataset: bool
    backup: bool = False


@dataclass(frozen=True, slots=True)
class JobFailed:
    """A job failed because of ``task_id``; ``cancels`` lists, per worker, its tasks still
    outstanding there."""

    job_id: int
    task_id: int
    reason: str
    cancels: dict[str, list[int]]


@dataclass(frozen=True, slots=True)
class ResultOutcome:
    """What a result did: ``accepted`` if it is the task's first; ``cancels`` names the other
    copies of the task still running (worker -> task ids of this job) that the caller should
    cancel; ``backup_won`` if the accepted copy was a backup."""

    accepted: bool
    cancels: dict[str, list[int]] = field(default_factory=dict)
    backup_won: bool = False


_REJECTED = ResultOutcome(False)


@dataclass(slots=True)
class _Task:
    job_id: int
    task_id: int
    dataset: str
    order: int
    max_replicas: int | None = None
    next_attempt: int = 0
    #: worker -> (attempt, start time) of each live copy
    running: dict[str, tuple[int, float]] = field(default_factory=dict)
    backups: set[int] = field(default_factory=set)  # attempts that were backup copies
    lost_by: set[str] = field(default_factory=set)  # crash keys of workers that died on it
    queued: int | None = None  # the attempt its live queue entry carries
    done: bool = False


@dataclass(slots=True)
class _Job:
    job_id: int
    priority: int
    seq: int
    tasks: dict[int, _Task]
    remaining: int
    durations: list[float] = field(default_factory=list)  # of the accepted copies


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
    """Pure scheduling state (see the module docstring).

    Args:
        prefetch: tasks a worker may hold beyond its slots.
        max_attempts: a task that was running on this many workers when they died fails
            its job.
        backup_factor: a running task gets a backup copy once it has run this many times
            the median duration of its job's finished tasks (``None``: no backups).
        backup_min_done: ...and only once this fraction of the job's tasks is done.
        backup_min_seconds: ...and never before it has run this long (jitter on tiny tasks
            is not a straggler).
    """

    def __init__(
        self,
        *,
        prefetch: int = 1,
        max_attempts: int = 3,
        backup_factor: float | None = 3.0,
        backup_min_done: float = 0.5,
        backup_min_seconds: float = 1.0,
    ) -> None:
        check_int("prefetch", prefetch, 0)
        check_int("max_attempts", max_attempts, 1)
        if backup_factor is not None and not backup_factor >= 1.0:
            raise ValueError(f"backup_factor must be >= 1 or None, got {backup_factor!r}")
        if not 0.0 <= backup_min_done <= 1.0:
            raise ValueError(f"backup_min_done must be in [0, 1], got {backup_min_done!r}")
        if not backup_min_seconds >= 0.0:
            raise ValueError(f"backup_min_seconds must be >= 0, got {backup_min_seconds!r}")
        self.prefetch = prefetch
        self.max_attempts = max_attempts
        self.backup_factor = backup_factor
        self.backup_min_done = backup_min_done
        self.backup_min_seconds = backup_min_seconds
        self._jobs: dict[int, _Job] = {}
        self._workers: dict[str, _Worker] = {}
        self._heap: list[_Entry] = []
        self._job_seq = itertools.count()
        self._worker_seq = itertools.count()
        self.stats = {
            "done": 0, "requeued": 0, "backups": 0, "backups_won": 0, "rejected_results": 0,
        }

    # ------------------------------------------------------------------ workers

    def add_worker(self, name: str, slots: int, datasets: Iterable[str] = ()) -> None:
        """A worker joined with ``slots`` parallel task slots and these cached datasets."""
        if name in self._workers:
            raise ValueError(f"worker {name!r} is already registered")
        check_int("worker slots", slots, 1)
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

    def outstanding(self, name: str) -> dict[TaskKey, int]:
        """The tasks sent to ``name`` and not answered yet, with their attempt."""
        return dict(self._workers[name].outstanding)

    def on_worker_lost(
        self, name: str, *, graceful: bool = False, crash_key: str | None = None
    ) -> list[JobFailed]:
        """``name`` is gone; its outstanding copies are dropped and their tasks requeued.

        Unless ``graceful`` (the worker said ``bye``), each such task records ``crash_key``
        (default: the worker's name; the master passes the worker's incarnation) among the
        workers that died on it; a task with ``max_attempts`` of them fails its job.
        Unknown workers are ignored.
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
            copy = task.running.get(name)
            if task.done or copy is None or copy[0] != attempt:
                continue
            del task.running[name]
            if not graceful:
                task.lost_by.add(crash_key or name)
            if len(task.lost_by) >= self.max_attempts:
                failed.append(self._fail(job, task_id, self._poison_reason(task)))
            elif not task.running:
                self.stats["requeued"] += 1
                self._push(job, task)
        return failed

    def forgive(self, crash_key: str) -> None:
        """A worker recorded as dead under ``crash_key`` is back: it did not die on a task.

        Its connection dropped but its process lived (it reconnected with the same
        incarnation), so no task should count it towards ``max_attempts``.
        """
        for job in self._jobs.values():
            for task in job.tasks.values():
                task.lost_by.discard(crash_key)

    def _poison_reason(self, task: _Task) -> str:
        return (
            f"task {task.task_id} was running on {len(task.lost_by)} workers when they died "
            f"or crashed (max_attempts={self.max_attempts}); it is probably what kills them, "
            "so the job gives up on it"
        )

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
            if not task.done:
                for worker in task.running:
                    cancels.setdefault(worker, []).append(task.task_id)
        for ids in cancels.values():
            ids.sort()
        return cancels

    def _fail(self, job: _Job, task_id: int, reason: str) -> JobFailed:
        self._jobs.pop(job.job_id, None)
        return JobFailed(job.job_id, task_id, reason, self._outstanding_of(job))

    # ------------------------------------------------------------------ queue

    def _push(self, job: _Job, task: _Task) -> None:
        task.queued = task.next_attempt
        task.next_attempt += 1
        heapq.heappush(
            self._heap,
            (-job.priority, task.order, job.seq, task.task_id, job.job_id, task.queued),
        )

    def _live(self, entry: _Entry) -> _Task | None:
        job_id, task_id, attempt = entry[4], entry[3], entry[5]
        job = self._jobs.get(job_id)
        if job is None:
            return None
        task = job.tasks[task_id]
        if task.done or task.queued != attempt:
            return None
        return task

    def assign(self, now: float = 0.0) -> list[Assignment]:
        """Match queued tasks with free worker credits, best task first; then backups.

        A task goes to the least loaded worker (outstanding / credits) among those that
        hold its dataset and have a free credit, else to the least loaded worker with a
        free credit, which then needs the dataset (``send_dataset``). ``now`` is the
        caller's clock (any monotonic seconds): it times the copies for backups.
        """
        out: list[Assignment] = []
        free = {w.name: w for w in self._workers.values() if len(w.outstanding) < w.credits}
        waiting: list[_Entry] = []  # tasks for a busy holder
        while self._heap and free:
            entry = heapq.heappop(self._heap)
            task = self._live(entry)
            if task is None:
                continue
            candidates = self._candidates(task, free.values())
            if not candidates:
                waiting.append(entry)
                continue
            worker = self._pick(task.dataset, candidates)
            attempt = entry[5]
            task.queued = None
            out.append(self._start(task, worker, attempt, now, backup=False))
            if len(worker.outstanding) >= worker.credits:
                del free[worker.name]
        for entry in waiting:
            heapq.heappush(self._heap, entry)
        while self._heap and self._live(self._heap[0]) is None:
            heapq.heappop(self._heap)  # drop dead entries so "nothing queued" is cheap
        if not self._heap and self.backup_factor is not None:
            out.extend(self._backups(now))
        return out

    def _candidates(self, task: _Task, free: Iterable[_Worker]) -> list[_Worker]:
        if task.max_replicas is None:
            return list(free)
        holders = sum(task.dataset in w.datasets for w in self._workers.values())
        if holders >= task.max_replicas:
            return [w for w in free if task.dataset in w.datasets]
        return list(free)

    def _start(
        self, task: _Task, worker: _Worker, attempt: int, now: float, *, backup: bool
    ) -> Assignment:
        send = task.dataset not in worker.datasets
        if send:
            worker.datasets.add(task.dataset)
            worker.datasets_sent += 1
        task.running[worker.name] = (attempt, now)
        if backup:
            task.backups.add(attempt)
        worker.outstanding[(task.job_id, task.task_id)] = attempt
        worker.assigned += 1
        return Assignment(
            worker.name, task.job_id, task.task_id, attempt, task.dataset, send, backup
        )

    def _backups(self, now: float) -> list[Assignment]:
        """Second copies of stragglers on workers with an idle slot (nothing is queued)."""
        assert self.backup_factor is not None
        out: list[Assignment] = []
        idle = [w for w in self._workers.values() if len(w.outstanding) < w.slots]
        if not idle:
            return out
        for job in sorted(self._jobs.values(), key=lambda j: (-j.priority, j.seq)):
            n = len(job.tasks)
            if not job.durations or n - job.remaining < math.ceil(self.backup_min_done * n):
                continue
            limit = max(
                self.backup_factor * statistics.median(job.durations), self.backup_min_seconds
            )
            stragglers = sorted(
                (min(s for _, s in t.running.values()), t.task_id)
                for t in job.tasks.values()
                if len(t.running) == 1 and not t.done
            )
            for started, task_id in stragglers:
                if now - started <= limit:
                    break  # sorted by start: the rest started later
                task = job.tasks[task_id]
                candidates = [
                    w for w in self._candidates(task, idle)
                    if w.name not in task.running and len(w.outstanding) < w.slots
                ]
                if not candidates:
                    continue
                worker = self._pick(task.dataset, candidates)
                attempt = task.next_attempt
                task.next_attempt += 1
                self.stats["backups"] += 1
                out.append(self._start(task, worker, attempt, now, backup=True))
        return out

    @staticmethod
    def _pick(dataset: str, candidates: Iterable[_Worker]) -> _Worker:
        def load(w: _Worker) -> tuple[bool, float, int]:
            return (dataset not in w.datasets, len(w.outstanding) / w.credits, w.seq)

        return min(candidates, key=load)

    # ------------------------------------------------------------------ answers

    def _answer(self, worker: str, job_id: int, task_id: int, attempt: int) -> _Task | None:
        """Return the credit for this answer; the task if the answer is for a live copy."""
        w = self._workers.get(worker)
        if w is None:
            return None
        key = (job_id, task_id)
        if w.outstanding.get(key) != attempt:
            return None  # not something we sent this worker: duplicate or bogus
        del w.outstanding[key]
        job = self._jobs.get(job_id)
        task = job.tasks.get(task_id) if job is not None else None
        if task is None or task.done or task.running.get(worker, (None, 0.0))[0] != attempt:
            return None
        return task

    def on_result(
        self, worker: str, job_id: int, task_id: int, attempt: int, now: float = 0.0
    ) -> ResultOutcome:
        """A result arrived: accepted if it is the first for a live copy of the task."""
        task = self._answer(worker, job_id, task_id, attempt)
        if task is None:
            self.stats["rejected_results"] += 1
            return _REJECTED
        job = self._jobs[job_id]
        started = task.running.pop(worker)[1]
        job.durations.append(now - started)
        cancels = {other: [task_id] for other in sorted(task.running)}
        task.running.clear()
        task.done = True
        job.remaining -= 1
        self._workers[worker].completed += 1
        self.stats["done"] += 1
        won = attempt in task.backups
        if won:
            self.stats["backups_won"] += 1
        return ResultOutcome(True, cancels, won)

    def on_failed(
        self, worker: str, job_id: int, task_id: int, attempt: int, reason: str, detail: str = ""
    ) -> JobFailed | None:
        """A worker will not produce a result for this copy.

        ``missing-dataset`` and ``cancelled`` requeue the task (unless another copy runs),
        the former after forgetting that the worker holds the dataset; ``worker-error``
        (the worker's process pool crashed on it) does the same and counts towards
        ``max_attempts``; ``error`` (the task itself raised) fails the job.
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
        del task.running[worker]
        if reason == "error":
            return self._fail(job, task_id, f"task {task_id} failed on worker {worker}: {detail}")
        if reason == "worker-error":
            task.lost_by.add(f"{worker}/attempt-{attempt}")
            if len(task.lost_by) >= self.max_attempts:
                return self._fail(
                    job, task_id, f"{self._poison_reason(task)}; last error: {detail}"
                )
        if not task.running:
            self.stats["requeued"] += 1
            self._push(job, task)
        return None

    # ------------------------------------------------------------------ inspection

    def counts(self) -> dict[str, int]:
        """Tasks queued, running (on at least one worker) and done, over live jobs."""
        queued = running = done = 0
        for job in self._jobs.values():
            for t in job.tasks.values():
                if t.done:
                    done += 1
                elif t.running:
                    running += 1
                elif t.queued is not None:
                    queued += 1
        return {"queued": queued, "running": running, "done": done,
                "done_total": self.stats["done"]}

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
                states = [t.done, bool(t.running), t.queued is not None]
                assert sum(states) == 1, f"task {job.job_id}/{t.task_id} in states {states}"
                for name, (attempt, _) in t.running.items():
                    w = self._workers[name]
                    assert w.outstanding.get((job.job_id, t.task_id)) == attempt
                assert len(t.running) <= 2, "at most one backup copy"
                if t.queued is not None:
                    assert any(
                        e[4] == job.job_id and e[3] == t.task_id and e[5] == t.queued
                        for e in self._heap
                    )
        for w in self._workers.values():
            assert len(w.outstanding) <= w.credits, f"worker {w.name} over its credits"
            for (job_id, task_id), attempt in w.outstanding.items():
                owner = self._jobs.get(job_id)
                if owner is None:
                    continue  # a cancelled job: the worker's answer frees the credit
                t = owner.tasks[task_id]
                # A live copy, or the losing copy of a finished task awaiting its answer.
                assert t.done or t.running.get(w.name, (None, 0.0))[0] == attempt
