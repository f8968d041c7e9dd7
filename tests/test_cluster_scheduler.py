"""The sans-IO scheduler: credits, priorities, idempotent results, lost workers, placement."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from aioforest.cluster._scheduler import Assignment, Scheduler, TaskSpec

D1 = "d1" * 32
D2 = "d2" * 32


def specs(n: int, dataset: str = D1, first: int = 0) -> list[TaskSpec]:
    return [TaskSpec(i, dataset, first + i) for i in range(n)]


def keys(assignments: list[Assignment]) -> list[tuple[str, int, int, int]]:
    return [(a.worker, a.job_id, a.task_id, a.attempt) for a in assignments]


def test_credits_bound_outstanding_tasks() -> None:
    s = Scheduler(prefetch=1)
    s.add_worker("a", 2)
    s.add_job(1, specs(10))
    first = s.assign()
    assert [a.task_id for a in first] == [0, 1, 2]  # slots 2 + prefetch 1
    assert s.assign() == []  # no credit left
    assert s.on_result("a", 1, 0, 0).accepted
    again = s.assign()
    assert [a.task_id for a in again] == [3]
    s.check_invariants()


def test_prefetch_zero_and_two_workers_balance() -> None:
    s = Scheduler(prefetch=0)
    s.add_worker("a", 1)
    s.add_worker("b", 1)
    s.add_job(1, specs(4))
    got = s.assign()
    assert sorted(a.worker for a in got) == ["a", "b"]
    assert sorted(a.task_id for a in got) == [0, 1]


def test_dataset_is_sent_once_per_worker() -> None:
    s = Scheduler(prefetch=0)
    s.add_worker("a", 1)
    s.add_job(1, specs(3))
    (a1,) = s.assign()
    assert a1.send_dataset and a1.dataset == D1
    s.on_result("a", 1, a1.task_id, 0)
    (a2,) = s.assign()
    assert not a2.send_dataset
    assert s.worker_info("a")["datasets_sent"] == 1


def test_registered_datasets_are_not_resent() -> None:
    s = Scheduler(prefetch=0)
    s.add_worker("a", 1, datasets=[D1])
    s.add_job(1, specs(1))
    (a,) = s.assign()
    assert not a.send_dataset


def test_locality_prefers_the_worker_holding_the_dataset() -> None:
    s = Scheduler(prefetch=0)
    s.add_worker("a", 1)
    s.add_worker("b", 1, datasets=[D2])
    s.add_job(1, [TaskSpec(0, D2, 0)])
    (a,) = s.assign()
    assert a.worker == "b" and not a.send_dataset


def test_order_priority_then_tree_index_then_submission() -> None:
    s = Scheduler(prefetch=0)
    s.add_job(1, specs(2, first=0))  # orders 0, 1
    s.add_job(2, specs(2, first=0))  # orders 0, 1 too: interleaves with job 1
    s.add_job(3, specs(1, first=5), priority=1)  # high priority goes first
    s.add_worker("a", 5)
    order = [(a.job_id, a.task_id) for a in s.assign()]
    assert order == [(3, 0), (1, 0), (2, 0), (1, 1), (2, 1)]


def test_duplicate_and_superseded_results_are_ignored() -> None:
    s = Scheduler(prefetch=0)
    s.add_worker("a", 1)
    s.add_worker("b", 1)
    s.add_job(1, specs(1))
    (a,) = s.assign()
    assert a.worker == "a"
    s.on_worker_lost("a")
    (b,) = s.assign()
    assert (b.worker, b.attempt) == ("b", 1)
    assert not s.on_result("a", 1, 0, 0).accepted  # the lost worker's late answer
    assert not s.on_result("b", 1, 0, 0).accepted  # wrong attempt
    assert s.on_result("b", 1, 0, 1).accepted
    assert s.is_complete(1)
    assert not s.on_result("b", 1, 0, 1).accepted  # duplicate
    s.check_invariants()


def test_lost_worker_tasks_are_requeued_with_the_next_attempt() -> None:
    s = Scheduler(prefetch=1)
    s.add_worker("a", 1)
    s.add_job(1, specs(3))
    assert [x.task_id for x in s.assign()] == [0, 1]
    assert s.on_worker_lost("a") == []
    assert s.counts()["queued"] == 3
    s.add_worker("b", 2)
    got = s.assign()
    assert keys(got) == [("b", 1, 0, 1), ("b", 1, 1, 1), ("b", 1, 2, 0)]
    assert all(x.send_dataset == (x.task_id == 0) for x in got)


def test_poison_task_fails_the_job_after_max_attempts() -> None:
    s = Scheduler(prefetch=0, max_attempts=3)
    s.add_job(1, specs(1))
    for n in range(3):
        s.add_worker(f"w{n}", 1)
        (a,) = s.assign()
        failed = s.on_worker_lost(a.worker)
        if n < 2:
            assert failed == []
    assert len(failed) == 1
    assert failed[0].job_id == 1 and failed[0].task_id == 0
    assert "3 workers" in failed[0].reason and "max_attempts=3" in failed[0].reason
    assert not s.has_job(1)


def test_graceful_leave_does_not_count_as_a_failure() -> None:
    s = Scheduler(prefetch=0, max_attempts=1)
    s.add_job(1, specs(1))
    s.add_worker("a", 1)
    s.assign()
    assert s.on_worker_lost("a", graceful=True) == []
    s.add_worker("b", 1)
    (b,) = s.assign()
    assert b.attempt == 1


def test_missing_dataset_forgets_placement_and_resends() -> None:
    s = Scheduler(prefetch=0)
    s.add_worker("a", 1, datasets=[D1])
    s.add_job(1, specs(1))
    (a,) = s.assign()
    assert not a.send_dataset
    assert s.on_failed("a", 1, 0, 0, "missing-dataset") is None
    (again,) = s.assign()
    assert again.send_dataset and again.attempt == 1


def test_task_error_fails_the_job_and_lists_cancels() -> None:
    s = Scheduler(prefetch=1)
    s.add_worker("a", 1)
    s.add_worker("b", 1)
    s.add_job(1, specs(4))
    s.assign()
    failed = s.on_failed("a", 1, 0, 0, "error", "ValueError: boom")
    assert failed is not None
    assert "ValueError: boom" in failed.reason
    # Locality first: "a" holds the dataset after task 0, so it also gets task 1.
    assert failed.cancels == {"a": [1], "b": [2, 3]}
    assert not s.has_job(1)
    # Credits come back only as the workers answer the cancelled tasks.
    assert s.assign() == []
    assert s.on_failed("b", 1, 2, 0, "cancelled") is None
    assert s.outstanding("b") == {(1, 3): 0}
    assert s.outstanding("a") == {(1, 1): 0}
    s.add_job(2, specs(3))
    assert sorted(x.worker for x in s.assign()) == ["a", "b"]  # one free credit each


def test_worker_error_requeues_and_counts() -> None:
    s = Scheduler(prefetch=0, max_attempts=2)
    s.add_worker("a", 1)
    s.add_job(1, specs(1))
    s.assign()
    assert s.on_failed("a", 1, 0, 0, "worker-error", "pool broke") is None
    s.assign()
    failed = s.on_failed("a", 1, 0, 1, "worker-error", "pool broke")
    assert failed is not None and "pool broke" in failed.reason


def test_remove_job_returns_outstanding_and_drops_queue() -> None:
    s = Scheduler(prefetch=0)
    s.add_worker("a", 1)
    s.add_job(1, specs(3))
    s.assign()
    assert s.remove_job(1) == {"a": [0]}
    assert s.counts()["queued"] == 0
    s.add_job(2, specs(1, D2))
    assert s.assign() == []  # the cancelled task still holds the only credit
    assert not s.on_result("a", 1, 0, 0).accepted  # late result of the removed job frees it
    assert [x.job_id for x in s.assign()] == [2]


def test_a_shard_with_max_replicas_one_stays_on_its_worker() -> None:
    s = Scheduler(prefetch=0)
    s.add_worker("a", 1)
    s.add_worker("b", 1)
    s.add_job(1, [TaskSpec(i, D1 if i % 2 == 0 else D2, i, max_replicas=1) for i in range(6)])
    placed: dict[str, set[str]] = {"a": set(), "b": set()}
    for _ in range(6):
        for a in s.assign():
            placed[a.worker].add(a.dataset)
            s.on_result(a.worker, a.job_id, a.task_id, a.attempt)
    assert s.is_complete(1)
    assert placed == {"a": {D1}, "b": {D2}}  # each shard went to one worker only
    assert s.worker_info("a")["datasets_sent"] == s.worker_info("b")["datasets_sent"] == 1


def test_a_shard_waits_for_its_busy_holder_and_moves_when_it_is_lost() -> None:
    s = Scheduler(prefetch=0)
    s.add_worker("a", 1)
    s.add_job(1, [TaskSpec(i, D1, i, max_replicas=1) for i in range(3)])
    assert [x.worker for x in s.assign()] == ["a"]
    s.add_worker("b", 1)
    assert s.assign() == []  # "b" is free but the shard lives on busy "a"
    s.on_worker_lost("a")
    got = s.assign()
    assert [(x.worker, x.task_id, x.send_dataset) for x in got] == [("b", 0, True)]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="prefetch"):
        Scheduler(prefetch=-1)
    s = Scheduler()
    s.add_worker("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        s.add_worker("a", 1)
    with pytest.raises(ValueError, match="slots"):
        s.add_worker("b", 0)
    with pytest.raises(ValueError, match="no tasks"):
        s.add_job(1, [])
    with pytest.raises(ValueError, match="repeats"):
        s.add_job(1, [TaskSpec(0, D1, 0), TaskSpec(0, D1, 1)])
    s.add_job(1, specs(1))
    with pytest.raises(ValueError, match="already exists"):
        s.add_job(1, specs(1))


class SchedulerMachine(RuleBasedStateMachine):
    """Random sequences of events keep the scheduler consistent and every job finishable."""

    def __init__(self) -> None:
        super().__init__()
        # Backups on, with low thresholds, so random sequences exercise second copies.
        self.s = Scheduler(
            prefetch=1, max_attempts=1000, backup_factor=1.5, backup_min_done=0.25,
            backup_min_seconds=0.0,
        )
        self.now = 0.0
        self.sent: dict[str, list[Assignment]] = {}  # per worker: tasks it holds
        self.next_worker = 0
        self.next_job = 0
        self.jobs: set[int] = set()
        self.results: dict[int, set[int]] = {}
        self.n_tasks: dict[int, int] = {}

    @rule(slots=st.integers(1, 3), has_d1=st.booleans())
    def add_worker(self, slots: int, has_d1: bool) -> None:
        name = f"w{self.next_worker}"
        self.next_worker += 1
        self.s.add_worker(name, slots, [D1] if has_d1 else [])
        self.sent[name] = []

    @rule(
        n=st.integers(1, 5),
        priority=st.integers(0, 2),
        second=st.booleans(),
        replicas=st.sampled_from([None, 1, 2]),
    )
    def add_job(self, n: int, priority: int, second: bool, replicas: int | None) -> None:
        job = self.next_job
        self.next_job += 1
        dataset = D2 if second else D1
        tasks = [TaskSpec(i, dataset, i, replicas) for i in range(n)]
        self.s.add_job(job, tasks, priority=priority)
        self.jobs.add(job)
        self.results[job] = set()
        self.n_tasks[job] = n

    @rule(dt=st.sampled_from([0.0, 0.5, 3.0]))
    def assign(self, dt: float) -> None:
        self.now += dt
        for a in self.s.assign(self.now):
            assert a.job_id in self.jobs
            self.sent[a.worker].append(a)

    @precondition(lambda self: any(self.sent.values()))
    @rule(data=st.data(), duplicate=st.booleans())
    def answer(self, data: st.DataObject, duplicate: bool) -> None:
        name = data.draw(st.sampled_from(sorted(w for w, v in self.sent.items() if v)))
        a = self.sent[name].pop(data.draw(st.integers(0, len(self.sent[name]) - 1)))
        accepted = self.s.on_result(name, a.job_id, a.task_id, a.attempt, self.now).accepted
        if a.job_id in self.jobs:
            assert accepted != (a.task_id in self.results[a.job_id])
            self.results[a.job_id].add(a.task_id)
            if len(self.results[a.job_id]) == self.n_tasks[a.job_id]:
                assert self.s.is_complete(a.job_id)
                self.s.remove_job(a.job_id)
                self.jobs.discard(a.job_id)
        if duplicate:
            assert not self.s.on_result(name, a.job_id, a.task_id, a.attempt, self.now).accepted

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data(), graceful=st.booleans())
    def lose_worker(self, data: st.DataObject, graceful: bool) -> None:
        name = data.draw(st.sampled_from(sorted(self.sent)))
        assert self.s.on_worker_lost(name, graceful=graceful) == []
        del self.sent[name]

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data())
    def cancel_job(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(sorted(self.jobs)))
        cancels = self.s.remove_job(job)
        for name, ids in cancels.items():
            held = {a.task_id for a in self.sent[name] if a.job_id == job}
            assert set(ids) <= held
        self.jobs.discard(job)

    @invariant()
    def consistent(self) -> None:
        self.s.check_invariants()
        for name, held in self.sent.items():
            assert len(held) == len(self.s.outstanding(name))

    def teardown(self) -> None:
        # Drive everything to completion: one fresh worker, answer everything in order.
        self.s.add_worker("final", 2)
        self.sent["final"] = []
        for _ in range(1000):
            for name, held in self.sent.items():
                while held:
                    a = held.pop()
                    self.s.on_result(name, a.job_id, a.task_id, a.attempt)
            for job in list(self.jobs):
                if self.s.is_complete(job):
                    self.s.remove_job(job)
                    self.jobs.discard(job)
            if not self.jobs:
                break
            for a in self.s.assign():
                self.sent[a.worker].append(a)
        assert not self.jobs, "some job could never finish"


TestSchedulerMachine = SchedulerMachine.TestCase
TestSchedulerMachine.settings = settings(max_examples=40, stateful_step_count=40, deadline=None)


# ---------------------------------------------------------------------- backups and attempts


def backup_scheduler(**kw: object) -> Scheduler:
    params: dict[str, object] = {
        "prefetch": 0, "backup_factor": 3.0, "backup_min_done": 0.5, "backup_min_seconds": 0.0,
    }
    params.update(kw)
    return Scheduler(**params)  # type: ignore[arg-type]


def two_workers_one_job(n_tasks: int = 2, **kw: object) -> Scheduler:
    """A backup scheduler with workers "a" and "b" (one slot each) and job 1 of n tasks."""
    s = backup_scheduler(**kw)
    s.add_worker("a", 1)
    s.add_worker("b", 1)
    s.add_job(1, specs(n_tasks))
    return s


def test_a_straggler_gets_a_backup_once_half_is_done_and_the_first_result_wins() -> None:
    s = backup_scheduler()
    s.add_worker("slow", 1)
    s.add_worker("fast", 1)
    s.add_job(1, specs(4))
    first = {a.worker: a for a in s.assign(now=0.0)}
    assert set(first) == {"slow", "fast"}
    # "fast" finishes its tasks in 1 s each; "slow" is still on its first.
    t = 0.0
    for _ in range(2):
        t += 1.0
        (fa,) = [a for a in s.assign(now=t)] or [first["fast"]]
        assert s.on_result("fast", 1, fa.task_id, fa.attempt, now=t).accepted
        first["fast"] = fa
    got = s.assign(now=t)  # the last queued task goes to "fast"
    assert [(a.worker, a.backup) for a in got] == [("fast", False)]
    t += 1.0
    assert s.on_result("fast", 1, got[0].task_id, got[0].attempt, now=t).accepted
    # 3 of 4 done, median 1 s; "slow" has run 3 s: not more than 3x yet.
    assert s.assign(now=3.0) == []
    (backup,) = s.assign(now=3.5)
    assert backup.backup and backup.worker == "fast"
    assert backup.task_id == first["slow"].task_id and backup.attempt != first["slow"].attempt
    assert s.stats["backups"] == 1
    s.check_invariants()
    # The backup wins; the original is to be cancelled and its late answer is rejected.
    outcome = s.on_result("fast", 1, backup.task_id, backup.attempt, now=4.0)
    assert outcome.accepted and outcome.backup_won
    assert outcome.cancels == {"slow": [backup.task_id]}
    assert s.is_complete(1)
    assert not s.on_result("slow", 1, backup.task_id, first["slow"].attempt, now=5.0).accepted
    assert s.outstanding("slow") == {}  # its answer returned the credit
    s.check_invariants()


def test_the_original_can_win_and_the_backup_is_cancelled() -> None:
    s = two_workers_one_job(backup_min_done=0.0)
    a0, b0 = sorted(s.assign(now=0.0), key=lambda a: a.worker)
    assert s.on_result("b", 1, b0.task_id, b0.attempt, now=1.0).accepted
    (backup,) = s.assign(now=3.5)
    assert (backup.worker, backup.task_id) == ("b", a0.task_id)
    outcome = s.on_result("a", 1, a0.task_id, a0.attempt, now=4.0)
    assert outcome.accepted and not outcome.backup_won
    assert outcome.cancels == {"b": [a0.task_id]}
    # The cancelled copy's answer frees b's slot.
    assert s.on_failed("b", 1, a0.task_id, backup.attempt, "cancelled") is None
    assert s.outstanding("b") == {}
    s.check_invariants()


def test_no_backup_before_min_done_or_min_seconds_or_while_tasks_are_queued() -> None:
    s = two_workers_one_job(backup_min_seconds=10.0)
    _, b0 = sorted(s.assign(now=0.0), key=lambda a: a.worker)
    s.on_result("b", 1, b0.task_id, b0.attempt, now=0.1)
    assert s.assign(now=5.0) == []  # 50x the median, but under backup_min_seconds
    assert [x.backup for x in s.assign(now=10.5)] == [True]
    s2 = two_workers_one_job(4)
    s2.assign(now=0.0)
    assert s2.assign(now=100.0) == []  # nothing done yet: no median, no backups
    s3 = two_workers_one_job(backup_factor=None)
    _, b3 = sorted(s3.assign(now=0.0), key=lambda a: a.worker)
    s3.on_result("b", 1, b3.task_id, b3.attempt, now=1.0)
    assert s3.assign(now=100.0) == []  # backups off


def test_losing_the_original_keeps_the_backup_running_without_requeueing() -> None:
    s = two_workers_one_job(backup_min_done=0.0)
    _, b0 = sorted(s.assign(now=0.0), key=lambda a: a.worker)
    s.on_result("b", 1, b0.task_id, b0.attempt, now=1.0)
    (backup,) = s.assign(now=4.0)
    assert s.on_worker_lost("a") == []
    assert s.counts() == {"queued": 0, "running": 1, "done": 1, "done_total": 1}
    assert s.on_result("b", 1, backup.task_id, backup.attempt, now=5.0).accepted
    assert s.is_complete(1)
    s.check_invariants()


def test_a_worker_that_reconnects_with_the_same_incarnation_is_forgiven() -> None:
    s = Scheduler(prefetch=0, max_attempts=2)
    s.add_job(1, specs(1))
    s.add_worker("w", 1)
    s.assign()
    assert s.on_worker_lost("w", crash_key="inc-1") == []
    s.forgive("inc-1")  # its connection dropped; the process lived
    s.add_worker("w#2", 1)
    s.assign()
    assert s.on_worker_lost("w#2", crash_key="inc-2") == []  # one real death so far
    s.add_worker("w#3", 1)
    s.assign()
    (failed,) = s.on_worker_lost("w#3", crash_key="inc-3")
    assert failed.task_id == 0 and "2 workers" in failed.reason


def test_the_same_dead_incarnation_counts_once() -> None:
    s = Scheduler(prefetch=1, max_attempts=2)
    s.add_job(1, specs(1))
    for name in ("a", "b", "c"):
        s.add_worker(name, 1)
        s.assign()
        assert s.on_worker_lost(name, crash_key="same-process") == []
    assert s.has_job(1)


def test_every_copy_gets_a_fresh_attempt_number() -> None:
    s = two_workers_one_job(backup_min_done=0.0)
    seen = {(a.task_id, a.attempt) for a in s.assign(now=0.0)}
    done = [a for a in s.assign(now=0.0)]
    assert done == []
    s.on_worker_lost("a")
    s.add_worker("c", 1)
    for a in s.assign(now=1.0):
        assert (a.task_id, a.attempt) not in seen
        seen.add((a.task_id, a.attempt))
    s.check_invariants()


def test_bad_backup_arguments() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        Scheduler(max_attempts=0)
    with pytest.raises(ValueError, match="backup_factor"):
        Scheduler(backup_factor=0.5)
    with pytest.raises(ValueError, match="backup_min_done"):
        Scheduler(backup_min_done=1.5)
    with pytest.raises(ValueError, match="backup_min_seconds"):
        Scheduler(backup_min_seconds=-1)
