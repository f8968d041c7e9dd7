"""The master's half of data-parallel growth: rows stay on the workers that read them.

One :class:`PartSession` per fit of a :class:`~aioforest.data.Partitions` dataset with
``mode="data"``:

1. **scan**: each worker reads the partitions assigned to it and reports their scans; the
   master merges them into the schema (it never opens a data file);
2. **load**: workers encode their rows in that schema and send per-partition bin
   summaries; the master merges them into the bins and broadcasts them (**bins**);
3. **growth**: the one growth driver (:func:`aioforest.tree.grow`) runs in a thread, on a
   :class:`RemoteRows` whose parts are the workers: every histogram is the exact sum of
   the workers' integer histograms, the split choice runs once, here, and the splits go
   back for the workers to route their rows;
4. **local subtrees** (PLANET's in-memory build): once a node holds few instances
   (:func:`local_subtree_rows`), its rows are shipped worker to worker to one owner
   (``ship``, the workers' peer servers), which grows the rest of its subtree with the same
   driver (``subtrees``); the records come back here and are spliced in.

With a checkpoint, every batch's trees are saved when it ends and, between levels, where
it stands (its state and its keep/route log; see ``_round_saver``); a resumed fit replays
the log and continues from that level.

A worker lost at any point hands its partitions to the survivors: they read them again
from storage, and are brought to the current level by replaying the batch's log (its
``keep`` and ``route`` operations, which are part of the model anyway). Sums are exact,
so the forest does not change. A worker that answers nothing within ``timeout`` fails the
fit with an error naming it and the operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .._exact import r2_from_sums, to_float
from .._validation import Prepared
from ..data import (
    Binner,
    Bins,
    BinSummary,
    Partitions,
    PartitionScan,
    Schema,
    columns_to_reread,
    merge_scans,
)
from ..ensemble import FitProgress
from ..tree import (
    ROUND_CELLS,
    Arithmetic,
    FitCancelled,
    ForestPlan,
    GrowHere,
    GrowthState,
    HistogramRequest,
    Histograms,
    NodeRecords,
    NodeSplits,
    SubtreeStart,
    TreeArrays,
    arithmetic,
    grow,
    sum_histograms,
    tree_spec,
)
from ._checkpoint import Checkpoint, CheckpointError, job_spec
from ._errors import ClusterError
from ._protocol import PartReply, PartRequest, bins_to_arrays

__all__ = ["PartFailed", "PartLink", "PartSession", "RemoteRows", "WorkerGone", "fit_partitions"]

logger = logging.getLogger("aioforest.cluster")
Arrays = dict[str, npt.NDArray[Any]]


class WorkerGone(Exception):
    """The worker left (or was dropped) before it answered."""

    def __init__(self, worker: str) -> None:
        super().__init__(worker)
        self.worker = worker


class PartFailed(ClusterError):
    """A data-parallel operation failed on a worker (the message names it and why)."""


class PartLink(Protocol):
    """What a session needs of the master: its workers, and a way to reach them."""

    def part_workers(self) -> list[str]: ...

    def send_part(self, worker: str, request: PartRequest) -> None:
        """Queue ``request`` for ``worker``; raise :class:`WorkerGone` if it is not here."""
        ...


@dataclass
class _Pending:
    worker: str
    future: asyncio.Future[PartReply]


@dataclass
class _Stats:
    rounds: int = 0
    hist_bytes: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    partitions_moved: int = 0
    workers_joined: int = 0  # took partitions at a batch boundary
    levels: int = 0  # levels grown, over all batches (rounds / levels: rounds per level)
    batches: int = 0
    subtrees: int = 0  # grown whole on one worker (PLANET's local subtrees)
    levels_saved: int = 0  # checkpoints of a batch in progress
    levels_resumed: int = 0  # the depth a resumed batch continued from
    rows_shipped: int = 0  # instances sent from one worker to another for them
    wait_seconds: float = 0.0  # the driver waiting for the workers' answers
    grow_seconds: float = 0.0  # the driver's threads in all (waiting included)


class PartSession:
    """One data-parallel fit's conversation with the workers (see the module docstring)."""

    _ids = itertools.count(1)

    def __init__(self, link: PartLink, partitions: Partitions, *, max_bins: int,
                 timeout: float = 600.0, digests: bool = False) -> None:
        self.id = next(self._ids)
        self.link = link
        self.partitions = partitions
        self.relative = partitions.relative_paths()
        self.max_bins = max_bins
        self.timeout = timeout
        self.members: list[str] = []
        self.holder: dict[int, str] = {}
        self.lost: set[str] = set()
        self.scans: dict[int, PartitionScan] = {}
        #: with ``digests``: each partition's SHA-256, from its reader (checkpoints)
        self.want_digests = digests
        self.digests: dict[int, str] = {}
        self.schema: Schema | None = None
        self.offsets: dict[int, int] = {}
        self.n_total = 0
        self.bins: Bins | None = None
        self._schema_json: dict[str, Any] = {}
        self.class_counts: npt.NDArray[np.int64] | None = None
        self.target_max = 0.0  # regression: the largest |target| of any partition
        self.target_shift = 0  # regression: the job's fixed point (``Arithmetic``)
        self.batch: tuple[dict[str, Any], list[int]] | None = None
        self.log: list[tuple[str, dict[str, Any], Arrays]] = []
        self.applied: dict[int, int] = {}
        self.stats = _Stats()
        self.trees_total = 0  # in this fit (set once the job is planned)
        self.trees_done = 0
        self.trees_resumed = 0  # of trees_done: loaded from the checkpoint
        self.started = time.perf_counter()
        #: Set when the fit ends (done, failed or cancelled): a driver thread still
        #: running stops at its next operation.
        self.stopping = False
        self._seq = itertools.count()
        # random start: rows of another master's tickets (shipped before it died) never
        # match ours on a worker's stash
        self._tickets = itertools.count(secrets.randbits(40) << 20)
        self._peers: dict[str, list[Any]] = {}  # worker -> [host, port] of its peer server
        self._pending: dict[int, _Pending] = {}

    def progress(self, clock: float) -> dict[str, Any]:
        """Where the fit stands, for :meth:`Master.status` (``clock``: ``perf_counter()``)."""
        return {
            "trees": self.trees_total, "trees_done": self.trees_done,
            "trees_resumed": self.trees_resumed,
            "elapsed_s": clock - self.started, "rows": self.n_total,
            "partitions": len(self.relative), "workers": len(self.members),
            "rounds": self.stats.rounds, "levels": self.stats.levels,
            "batches": self.stats.batches, "hist_bytes": self.stats.hist_bytes,
            "bytes_out": self.stats.bytes_out, "bytes_in": self.stats.bytes_in,
            "partitions_moved": self.stats.partitions_moved,
        }

    # --- messages --------------------------------------------------------------------------
    def on_reply(self, worker: str, reply: PartReply) -> None:
        pending = self._pending.get(reply.seq)
        if pending is None or pending.worker != worker:
            logger.warning("master: worker %s answered part request %d it was not asked",
                           worker, reply.seq)
            return
        del self._pending[reply.seq]
        if not pending.future.done():
            pending.future.set_result(reply)

    def on_worker_lost(self, worker: str) -> None:
        # A member that left is lost for good, even when nothing was pending: a newcomer
        # may register under the same name, and it holds none of this session.
        if worker in self.members:
            self.lost.add(worker)
        for seq, pending in list(self._pending.items()):
            if pending.worker == worker:
                del self._pending[seq]
                if not pending.future.done():
                    pending.future.set_exception(WorkerGone(worker))

    async def call(self, worker: str, op: str, args: dict[str, Any],
                   arrays: Arrays | None = None) -> PartReply:
        """One operation on one worker; raises :class:`WorkerGone` or :class:`PartFailed`."""
        if worker in self.lost:
            raise WorkerGone(worker)
        seq = next(self._seq)
        future: asyncio.Future[PartReply] = asyncio.get_running_loop().create_future()
        self._pending[seq] = _Pending(worker, future)
        request = PartRequest(self.id, seq, op, args, arrays or {})
        self.stats.bytes_out += sum(a.nbytes for a in request.arrays.values())
        try:
            self.link.send_part(worker, request)
            async with asyncio.timeout(self.timeout):
                reply = await future
        except TimeoutError:
            raise PartFailed(
                f"worker {worker} did not answer the data-parallel {op!r} within "
                f"{self.timeout:g} s; the cluster cannot make progress"
            ) from None
        finally:
            self._pending.pop(seq, None)
        self.stats.bytes_in += sum(a.nbytes for a in reply.arrays.values())
        if reply.error:
            raise PartFailed(f"worker {worker}: {op}: {reply.error:.500}")
        return reply

    # --- placement -------------------------------------------------------------------------
    def _alive(self) -> list[str]:
        here = set(self.link.part_workers())
        return [w for w in self.members if w in here and w not in self.lost]

    def _parts_of(self, worker: str) -> list[int]:
        return sorted(p for p, w in self.holder.items() if w == worker)

    def _pairs(self, parts: Sequence[int]) -> list[list[Any]]:
        return [[p, self.relative[p]] for p in parts]

    def _move_from(self, worker: str) -> dict[str, list[int]]:
        """Hand ``worker``'s partitions to the survivors with the fewest: {new holder: parts}."""
        self.lost.add(worker)
        moved = self._parts_of(worker)
        alive = self._alive()
        if not alive:
            raise PartFailed(
                f"every worker holding the data was lost (last: {worker}); "
                f"{len(self.holder)} partitions have no reader left"
            )
        out: dict[str, list[int]] = {}
        for p in moved:
            target = min(alive, key=lambda w: (len(self._parts_of(w)), alive.index(w)))
            self.holder[p] = target
            out.setdefault(target, []).append(p)
        self.stats.partitions_moved += len(moved)
        if moved:
            logger.warning("master: worker %s lost; partitions %s move to %s",
                           worker, moved, sorted(out))
        return out

    # --- the phases ------------------------------------------------------------------------
    async def open(self) -> None:
        """Scan every partition on its assigned worker; merge the schema."""
        self.members = list(self.link.part_workers())
        if not self.members:
            raise PartFailed("no worker is connected to read the partitions")
        for p in range(len(self.relative)):
            self.holder[p] = self.members[p % len(self.members)]
        options = self.partitions.options().to_json()
        base = {"options": options, "root": self.partitions.root}
        # every member joins the session (a partition may move to any of them)
        await self._each_member("scan", lambda w: {**base, "partitions": []})
        todo = set(range(len(self.relative)))
        while todo:
            by_worker = self._group(todo)
            results = await self._gather({
                w: self.call(w, "scan", {**base, "partitions": self._pairs(ps),
                                         "digest": self.want_digests})
                for w, ps in by_worker.items()
            })
            for w, outcome in results.items():
                if isinstance(outcome, WorkerGone):
                    self._move_from(w)
                    continue
                scans = await asyncio.to_thread(_parse_scans, w, outcome, by_worker[w],
                                                self.relative)
                if self.want_digests:
                    self.digests.update(_digests(w, outcome, by_worker[w]))
                self.scans.update(scans)
                todo.difference_update(scans)
        ordered = [self.scans[p] for p in range(len(self.relative))]
        texts = await self._texts(base, columns_to_reread(ordered))
        self.schema = await asyncio.to_thread(merge_scans, ordered, self.partitions.options(),
                                              texts)
        self._schema_json = self.schema.to_json()
        start = 0
        for p, scan in enumerate(ordered):
            self.offsets[p] = start
            start += scan.n_rows
        self.n_total = start

    async def _texts(self, base: dict[str, Any], columns: dict[int, list[int]]
                     ) -> dict[int, dict[int, tuple[str, ...]]]:
        """The texts of columns some files read as numbers while others hold text there."""
        out: dict[int, dict[int, tuple[str, ...]]] = {}
        todo = set(columns)
        while todo:
            by_worker = self._group(todo)
            results = await self._gather({
                w: self.call(w, "texts", {**base, "partitions": self._pairs(ps),
                                          "columns": {str(p): columns[p] for p in ps}})
                for w, ps in by_worker.items()
            })
            for w, outcome in results.items():
                if isinstance(outcome, WorkerGone):
                    self._move_from(w)
                    continue
                got = outcome.info.get("texts")
                for p in by_worker[w]:
                    try:
                        entry = got[str(p)] if isinstance(got, dict) else None
                        out[p] = {k: tuple(str(t) for t in entry[str(k)])
                                  for k in columns[p]} if isinstance(entry, dict) else {}
                    except (KeyError, TypeError):
                        raise PartFailed(f"worker {w}: texts of {self.relative[p]}: malformed"
                                         ) from None
                    todo.discard(p)
        return out

    def _load_args(self, parts: Sequence[int], summary: bool) -> dict[str, Any]:
        assert self.schema is not None
        return {"schema": self._schema_json, "n_total": self.n_total,
                "max_bins": self.max_bins, "summary": summary,
                "offsets": [[p, self.offsets[p]] for p in parts],
                "rows": [[p, self.scans[p].n_rows] for p in parts],
                "partitions": self._pairs(parts)}

    async def learn_bins(self, is_categorical: npt.NDArray[np.bool_],
                         n_categories: npt.NDArray[np.int64]) -> Bins:
        """Load every partition, merge the bin summaries, send the bins to every worker."""
        summaries: list[BinSummary] = []
        counts: list[npt.NDArray[np.int64]] = []
        todo = set(range(len(self.relative)))
        while todo:
            by_worker = self._group(todo)
            results = await self._gather({
                w: self.call(w, "load", self._load_args(ps, True)) for w, ps in by_worker.items()
            })
            for w, outcome in results.items():
                if isinstance(outcome, WorkerGone):
                    # What it summarised is counted; the rows it held must be loaded again.
                    done = [p for p in self._parts_of(w) if p not in todo]
                    moved = self._move_from(w)
                    again = {t: [p for p in ps if p in done] for t, ps in moved.items()}
                    await self._restore({t: ps for t, ps in again.items() if ps})
                    continue
                summaries.append(await asyncio.to_thread(_summary_of, w, outcome))
                counts.append(self._class_counts(w, outcome, by_worker[w]))
                self.target_max = max(self.target_max, _target_max(w, outcome))
                todo.difference_update(by_worker[w])
        self.class_counts = np.sum(counts, axis=0).astype(np.int64)
        bins = await asyncio.to_thread(Binner(self.max_bins).fit_summaries, summaries,
                                       is_categorical, n_categories)
        self.bins = bins
        await self._each_member("bins", lambda w: {}, bins_to_arrays(bins))
        return bins

    def _class_counts(self, worker: str, reply: PartReply, parts: Sequence[int]
                      ) -> npt.NDArray[np.int64]:
        """A load reply's rows per class, checked against what the scans said."""
        assert self.schema is not None
        counts = reply.arrays.get("class_counts")
        k = max(len(self.schema.classes), 1)
        if (counts is None or counts.dtype != np.int64 or counts.shape != (k,)
                or (counts < 0).any()):
            raise PartFailed(f"worker {worker}: load: class_counts must be {k} counts")
        if self.schema.classes and int(counts.sum()) != sum(self.scans[p].n_rows for p in parts):
            raise PartFailed(f"worker {worker}: load: class counts do not add up to its rows")
        return counts

    async def _each_member(self, op: str, args: Callable[[str], dict[str, Any]],
                           arrays: Arrays | None = None) -> None:
        """``op`` on every live member; a member lost meanwhile hands its partitions on."""
        results = await self._gather({w: self.call(w, op, args(w), arrays)
                                      for w in self._alive()})
        for w, outcome in results.items():
            if isinstance(outcome, WorkerGone):
                await self._restore(self._move_from(w))

    def _group(self, parts: set[int] | Sequence[int]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for p in sorted(parts):
            out.setdefault(self.holder[p], []).append(p)
        return out

    async def _gather(self, calls: dict[str, Any]) -> dict[str, PartReply | WorkerGone]:
        keys = list(calls)
        outcomes = await asyncio.gather(*calls.values(), return_exceptions=True)
        out: dict[str, PartReply | WorkerGone] = {}
        for key, outcome in zip(keys, outcomes, strict=True):
            if isinstance(outcome, WorkerGone):
                out[key] = outcome
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                out[key] = outcome
        return out

    async def _restore(self, moved: dict[str, list[int]]) -> None:
        """Bring moved partitions, on their new holders, to where the others are."""
        queue = list(moved.items())
        while queue:
            worker, parts = queue.pop()
            try:
                if self.schema is not None:
                    await self.call(worker, "load", self._load_args(parts, False))
                if self.batch is not None:
                    await self.call(worker, "begin", self._begin_args(parts))
                    for op, args, arrays in self.log:
                        await self.call(worker, op, {**args, "only": parts}, arrays)
                for p in parts:
                    self.applied[p] = len(self.log)
            except WorkerGone:
                queue.extend(self._move_from(worker).items())

    # --- growth ----------------------------------------------------------------------------
    async def admit_newcomers(self) -> None:
        """Between batches: workers that joined the cluster since the fit began take a
        share of the partitions (read from storage, binned with the session's bins)."""
        assert self.bins is not None
        here = self.link.part_workers()
        new = [w for w in here if w not in self.members and w not in self.lost]
        if not new:
            return
        base = {"options": self.partitions.options().to_json(), "root": self.partitions.root}
        for worker in new:
            try:
                await self.call(worker, "scan", {**base, "partitions": []})
                await self.call(worker, "bins", {}, bins_to_arrays(self.bins))
            except (WorkerGone, PartFailed) as exc:
                logger.warning("master: worker %s could not join the data-parallel fit: %s",
                               worker, exc)
                continue
            self.members.append(worker)
            share = len(self.holder) // len(self._alive())
            donors = sorted(self._alive(), key=lambda w: -len(self._parts_of(w)))
            given: dict[str, list[int]] = {}
            for donor in donors:
                while (sum(map(len, given.values())) < share
                       and len(self._parts_of(donor)) > share):
                    p = self._parts_of(donor)[-1]
                    self.holder[p] = worker
                    given.setdefault(donor, []).append(p)
            taken = sorted(p for ps in given.values() for p in ps)
            if not taken:
                continue
            try:
                await self.call(worker, "load", self._load_args(taken, False))
            except WorkerGone:
                await self._restore(self._move_from(worker))
                continue
            for donor, parts in given.items():  # best effort: they only free memory
                with contextlib.suppress(WorkerGone, PartFailed):
                    await self.call(donor, "forget", {"only": parts})
            self.stats.workers_joined += 1
            logger.info("master: worker %s joined the data-parallel fit with partitions %s",
                        worker, taken)

    async def begin(self, plan: ForestPlan, trees: Sequence[int]) -> None:
        """Start a batch of trees on every partition."""
        self.batch = (plan.to_json(), list(trees))
        self.log = []
        self.applied = dict.fromkeys(self.holder, 0)
        await self._each_member("begin", lambda w: self._begin_args(self._parts_of(w)))

    def _begin_args(self, parts: Sequence[int]) -> dict[str, Any]:
        assert self.batch is not None
        plan, trees = self.batch
        return {"plan": plan, "trees": trees, "only": list(parts),
                "target_shift": self.target_shift}

    async def end(self) -> None:
        self.batch = None
        self.log = []
        await self._each_member("end", lambda w: {})

    async def broadcast(self, op: str, args: dict[str, Any], arrays: Arrays,
                        mutate: bool) -> list[PartReply]:
        """``op`` on every partition, each once, whoever holds it now; the replies."""
        if mutate:
            self.log.append((op, args, arrays))
        target = len(self.log)
        answered: set[int] = set()
        replies: list[PartReply] = []
        while True:
            need = [p for p in self.holder if (self.applied[p] < target if mutate
                                               else p not in answered)]
            if not need:
                return replies
            by_worker = self._group(need)
            results = await self._gather({
                w: self.call(w, op, {**args, "only": ps}, arrays) for w, ps in by_worker.items()
            })
            for w, outcome in results.items():
                if isinstance(outcome, WorkerGone):
                    await self._restore(self._move_from(w))
                    continue
                replies.append(outcome)
                for p in by_worker[w]:
                    answered.add(p)
                    if mutate:
                        self.applied[p] = target

    # --- local subtrees --------------------------------------------------------------------
    async def peers_ready(self) -> bool:
        """Whether every live member can take rows from the others (a peer server)."""
        for worker in self._alive():
            if worker in self._peers:
                continue
            try:
                reply = await self.call(worker, "peer", {})
            except PartFailed as exc:
                logger.warning("master: %s; data mode grows no local subtrees", exc)
                return False
            except WorkerGone:
                await self._restore(self._move_from(worker))
                continue
            host, port = reply.info.get("host"), reply.info.get("port")
            if not isinstance(host, str) or not isinstance(port, int) or not 0 < port < 65536:
                raise PartFailed(f"worker {worker}: peer: malformed address")
            self._peers[worker] = [host, port]
        return True

    async def grow_subtrees(self, start: SubtreeStart, exact: Arithmetic) -> NodeRecords:
        """Every subtree of ``start`` grown whole on one worker: each holder ships the
        nodes' rows to their owners, which grow them. Losing a worker redoes it all (the
        shipping copies rows, the driver drops them from the holders afterwards)."""
        while True:
            ready = await self.peers_ready()
            owners = [w for w in self._alive() if w in self._peers]
            if not ready or not owners:
                raise PartFailed("no worker is left to grow the local subtrees")
            ticket = next(self._tickets)
            owner_of = balanced_owners(start.instances, start.size, len(owners))
            if not await self._ship(ticket, start, owners, owner_of):
                continue
            records = await self._grow_owned(ticket, start, exact, owners, owner_of)
            if records is not None:
                self.stats.subtrees += start.size
                return records

    async def _ship(self, ticket: int, start: SubtreeStart, owners: list[str],
                    owner_of: npt.NDArray[np.int64]) -> bool:
        """Every partition's rows of the subtrees to their owners; False: start over."""
        args = {"ticket": ticket, "n_nodes": start.n_nodes,
                "peers": [self._peers[w] for w in owners]}
        arrays = {"nodes": start.nodes.astype(np.int64), "owners": owner_of}
        need = set(self.holder)
        while need:
            by_worker = self._group(need)
            results = await self._gather({
                w: self.call(w, "ship", {**args, "me": owners.index(w) if w in owners else -1,
                                         "only": ps}, arrays)
                for w, ps in by_worker.items()
            })
            for w, outcome in results.items():
                if isinstance(outcome, WorkerGone):
                    await self._restore(self._move_from(w))
                    if w in owners:
                        return False
                    continue
                sent = outcome.info.get("sent")
                self.stats.rows_shipped += sent if isinstance(sent, int) and sent > 0 else 0
                unreachable = outcome.info.get("unreachable") or []
                if unreachable:  # an owner its peers cannot reach leaves the fit
                    for index in {int(i) for i in unreachable if isinstance(i, int)}:
                        lost = owners[index] if 0 <= index < len(owners) else None
                        if lost is not None and lost not in self.lost:
                            logger.warning("master: worker %s cannot be reached by its "
                                           "peers; it leaves the data-parallel fit", lost)
                            await self._restore(self._move_from(lost))
                    return False
                need.difference_update(by_worker[w])
        return True

    async def _grow_owned(self, ticket: int, start: SubtreeStart, exact: Arithmetic,
                          owners: list[str], owner_of: npt.NDArray[np.int64]
                          ) -> NodeRecords | None:
        calls = {}
        owned_by: dict[str, npt.NDArray[np.int64]] = {}
        for index, worker in enumerate(owners):
            owned = np.flatnonzero(owner_of == index).astype(np.int64)
            if not owned.size:
                continue
            owned_by[worker] = owned
            calls[worker] = self.call(worker, "subtrees", {
                "ticket": ticket, "depth": start.depth, "integral": exact.integral,
                "single": exact.single, "target_shift": exact.target_shift,
            }, {"subtrees": owned, "tree": start.tree[owned], "path": start.path[owned],
                "instances": (start.instances[owned] if start.instances is not None
                              else np.full(owned.size, -1, dtype=np.int64)),
                "constant": start.constant[owned],
                "constant_rate": start.constant_rate[owned],
                "root_weight": start.root_weight[owned]})
        results = await self._gather(calls)
        replies = []
        for worker, outcome in results.items():
            if isinstance(outcome, WorkerGone):
                await self._restore(self._move_from(worker))
                return None
            replies.append((worker, outcome, owned_by[worker]))
        assert self.bins is not None
        # O(subtree nodes): off the loop, which keeps serving heartbeats
        return await asyncio.to_thread(_merged_records, replies, self.bins)

    async def close(self) -> None:
        """Let every live worker drop the session (a lost one has dropped it already)."""
        self.timeout = min(self.timeout, 10.0)
        with contextlib.suppress(WorkerGone, PartFailed):
            await self._gather({w: self.call(w, "close", {}) for w in self._alive()})
        for pending in self._pending.values():  # a driver thread's call still in flight
            if not pending.future.done():
                pending.future.set_exception(PartFailed("the data-parallel fit ended"))
        self._pending.clear()


def _parse_scans(worker: str, reply: PartReply, parts: Sequence[int],
                 relative: Sequence[str]) -> dict[int, PartitionScan]:
    data = reply.info.get("scans")
    if not isinstance(data, list) or len(data) != len(parts):
        raise PartFailed(f"worker {worker}: scan: expected {len(parts)} scans")
    out = {}
    for p, scan in zip(parts, data, strict=True):
        try:
            out[p] = PartitionScan.from_json(scan)
        except ValueError as exc:
            raise PartFailed(f"worker {worker}: scan of {relative[p]}: {exc}") from None
    return out


_RECORD_TYPES = {"tree": np.int64, "local": np.int64, "feature": np.int64,
                 "threshold_bin": np.int64, "missing_left": np.bool_, "left": np.int64,
                 "right": np.int64, "value": np.float64, "impurity": np.float64,
                 "n": np.int64, "wn": np.float64, "improvement": np.float64, "lut": np.bool_}


def _merged_records(replies: list[tuple[str, PartReply, npt.NDArray[np.int64]]],
                    bins: Bins) -> NodeRecords:
    """The owners' subtree records, each checked, in one set (in owner order)."""
    blocks = [_checked_records(worker, reply, owned, bins) for worker, reply, owned in replies]
    return NodeRecords(**{
        name: np.concatenate([getattr(b, name) for b in blocks])
        for name in NodeRecords.__dataclass_fields__
    })


def _checked_records(worker: str, reply: PartReply, owned: npt.NDArray[np.int64],
                     bins: Bins) -> NodeRecords:
    """A worker's subtrees, checked, their subtree ids put back in the level's numbering."""
    arrays = reply.arrays
    n = -1
    for name, dtype in _RECORD_TYPES.items():
        arr = arrays.get(name)
        ok = arr is not None and arr.dtype == np.dtype(dtype) and (
            arr.ndim == 2 and arr.shape[1] == 256 if name == "lut"
            else arr.ndim == 2 if name == "value" else arr.ndim == 1)
        if ok and name != "lut":
            assert arr is not None
            n = arr.shape[0] if n < 0 else n
            ok = arr.shape[0] == n
        if not ok:
            raise PartFailed(f"worker {worker}: subtrees: {name!r} is malformed")
    records = NodeRecords.from_arrays(arrays)
    problem = _tree_problem(records, owned.size, bins)
    if problem:
        raise PartFailed(f"worker {worker}: subtrees: {problem}")
    return NodeRecords(**{**{k: getattr(records, k) for k in _RECORD_TYPES},
                          "tree": owned[records.tree]})


def _tree_problem(rec: NodeRecords, n_subtrees: int, bins: Bins) -> str:
    """What makes ``rec`` not ``n_subtrees`` proper trees over ``bins`` ("" if nothing):
    every subtree's ids are 0..k-1, each node but the root is the child of exactly one
    node, features are in range and categorical splits have one table each."""
    if rec.tree.size and (rec.tree.min() < 0 or rec.tree.max() >= n_subtrees):
        return "records of subtrees it did not own"
    if np.bincount(rec.tree, minlength=n_subtrees).min(initial=1) < 1:
        return "a subtree without its root"
    order = np.lexsort((rec.local, rec.tree))
    tree, local = rec.tree[order], rec.local[order]
    first = np.searchsorted(tree, tree, side="left")
    if not np.array_equal(local, np.arange(tree.size) - first):
        return "node ids are not 0..k-1 in every subtree"
    split = rec.feature >= 0
    if not np.array_equal(split, (rec.left >= 0) & (rec.right >= 0)) or (
            (~split) & ((rec.left != -1) | (rec.right != -1))).any():
        return "splits and children do not match"
    child_tree = np.concatenate([rec.tree[split], rec.tree[split]])
    child = np.concatenate([rec.left[split], rec.right[split]])
    nonroot = local > 0  # (tree, local) sorted: every node but the roots, once
    got = np.lexsort((child, child_tree))
    if not (np.array_equal(child_tree[got], tree[nonroot]) and
            np.array_equal(child[got], local[nonroot])):
        return "a node is not the child of exactly one node"
    # with one parent each, only a cycle out of the roots' reach is left: walk down
    start_of = np.searchsorted(tree, np.arange(n_subtrees))
    left, right = rec.left[order], rec.right[order]
    level, reached = start_of, 0
    while level.size and reached <= tree.size:
        reached += level.size
        t, go_on = tree[level], left[level] >= 0
        level = np.concatenate([start_of[t[go_on]] + left[level][go_on],
                                start_of[t[go_on]] + right[level][go_on]])
    if reached != tree.size:
        return "a node is not the child of exactly one node reachable from its root"
    if split.any() and rec.feature.max() >= bins.n_features:
        return "a split feature is out of range"
    n_cat = int(np.count_nonzero(split & bins.is_categorical[np.maximum(rec.feature, 0)]))
    if rec.lut.shape[0] != n_cat:
        return f"{rec.lut.shape[0]} category tables for {n_cat} categorical splits"
    return ""


def _target_max(worker: str, reply: PartReply) -> float:
    value = reply.arrays.get("target_max")
    if (value is None or value.dtype != np.float64 or value.shape != (1,)
            or not np.isfinite(value[0]) or value[0] < 0):
        raise PartFailed(f"worker {worker}: load: target_max must be one finite number >= 0")
    return float(value[0])


def _digests(worker: str, reply: PartReply, parts: Sequence[int]) -> dict[int, str]:
    got = reply.info.get("digests")
    if not isinstance(got, list) or len(got) != len(parts) or not all(
        isinstance(d, str) and len(d) == 64 and all(c in "0123456789abcdef" for c in d)
        for d in got
    ):
        raise PartFailed(f"worker {worker}: scan: expected {len(parts)} SHA-256 digests")
    return dict(zip(parts, got, strict=True))


def _summary_of(worker: str, reply: PartReply) -> BinSummary:
    arrays = {k[4:]: v for k, v in reply.arrays.items() if k.startswith("sum_")}
    try:
        return BinSummary.from_arrays(arrays)
    except ValueError as exc:
        raise PartFailed(f"worker {worker}: load: {exc}") from None


class RemoteRows:
    """A :class:`~aioforest.tree.RowSource` whose parts are a session's workers.

    The growth driver runs in a thread and calls these methods; each one runs an
    operation on the event loop and waits for the exact sum of the workers' answers.
    """

    round_cells = ROUND_CELLS  # each histogram request is a round trip: few, large ones

    def __init__(self, session: PartSession, loop: asyncio.AbstractEventLoop,
                 exact: Arithmetic) -> None:
        self.session = session
        self.loop = loop
        self.exact = exact

    def _run(self, op: str, args: dict[str, Any], arrays: Arrays, mutate: bool
             ) -> list[PartReply]:
        if self.session.stopping:
            raise FitCancelled("the data-parallel fit ended")
        t0 = time.perf_counter()
        future = asyncio.run_coroutine_threadsafe(
            self.session.broadcast(op, args, arrays, mutate), self.loop)
        try:
            return future.result()
        finally:
            self.session.stats.wait_seconds += time.perf_counter() - t0

    def missing_in(self, features: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        replies = self._run("missing", {}, {"features": features.astype(np.int64)}, False)
        out = np.zeros(features.size, dtype=bool)
        for r in replies:
            out |= _checked(r, "missing", np.bool_, (features.size,))
        return out

    def node_totals(self, n_nodes: int, n_channels: int, classification: bool
                    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
        replies = self._run("totals", {"n_nodes": n_nodes, "n_channels": n_channels,
                                       "classification": classification}, {}, False)
        counts = np.zeros(n_nodes, dtype=np.int64)
        total = np.zeros((n_nodes, n_channels), dtype=np.float64)
        for r in replies:
            counts += _checked(r, "counts", np.int64, (n_nodes,))
            total += _checked(r, "total", np.float64, (n_nodes, n_channels))
        self.session.stats.levels += 1
        return counts, total

    def keep_nodes(self, keep: npt.NDArray[np.bool_]) -> None:
        self._run("keep", {}, {"keep": keep.astype(bool)}, True)

    def histograms(self, request: HistogramRequest) -> Histograms:
        args = {"n_nodes": request.n_nodes, "all_splittable": request.all_splittable,
                "n_channels": request.n_channels, "classification": request.classification,
                "integral": request.integral, "with_counts": request.with_counts}
        arrays = {"candidates": request.candidates.astype(np.int64),
                  "features": request.drawn.features.astype(np.int64),
                  "valid": request.drawn.valid.astype(bool)}
        replies = self._run("hist", args, arrays, False)
        parts = []
        for r in replies:
            parts.append(_checked_histograms(r, request))
            self.session.stats.hist_bytes += sum(a.nbytes for a in r.arrays.values())
        self.session.stats.rounds += 1
        return sum_histograms(parts)

    def grow_subtrees(self, start: SubtreeStart, grow_here: GrowHere) -> NodeRecords:
        # The workers grow them (with the same driver, ``grow_subtrees_here``); the rows
        # go from worker to worker, never through here.
        if self.session.stopping:
            raise FitCancelled("the data-parallel fit ended")
        t0 = time.perf_counter()
        future = asyncio.run_coroutine_threadsafe(
            self.session.grow_subtrees(start, self.exact), self.loop)
        try:
            return future.result()
        finally:
            self.session.stats.wait_seconds += time.perf_counter() - t0

    def route(self, splits: NodeSplits) -> None:
        self._run("route", {}, {
            "feature": splits.feature.astype(np.int64),
            "threshold_bin": splits.threshold_bin.astype(np.int64),
            "missing_left": splits.missing_left.astype(bool),
            "improvement": splits.improvement.astype(np.float64),
            "lut": np.ascontiguousarray(splits.lut, dtype=bool),
        }, True)


def _checked_histograms(reply: PartReply, request: HistogramRequest) -> Histograms:
    """A worker's histograms, widened to int64 and checked against the request: a
    malformed answer fails the fit instead of changing a split."""
    wide = {k: (v.astype(np.int64) if v.dtype == np.int32 else v)
            for k, v in reply.arrays.items()}
    try:
        hist = Histograms.from_arrays(wide)
    except (KeyError, ValueError, IndexError, TypeError) as exc:
        raise PartFailed(f"a worker's histograms are malformed: {exc!r:.200}") from None
    s, k = request.drawn.features.shape
    bpg = hist.bins_per_group
    problem = ""
    if not 2 <= bpg <= 256:
        problem = f"bins_per_group {bpg}"
    elif hist.cells.size and (hist.cells[0] < 0 or hist.cells[-1] >= s * k * bpg):
        problem = "cells outside the request"
    elif hist.stats.shape[0] != request.n_channels:
        problem = f"{hist.stats.shape[0]} channels, not {request.n_channels}"
    elif request.integral and hist.stats.dtype != np.int64:
        problem = f"stats of dtype {hist.stats.dtype}, not int64"
    elif not request.integral and hist.stats.dtype != np.float64:
        problem = f"stats of dtype {hist.stats.dtype}, not float64"
    elif request.with_counts and hist.counts is None:
        problem = "no row counts (min_samples_leaf needs them)"
    if problem:
        raise PartFailed(f"a worker's histograms are malformed: {problem}")
    return hist


def _checked(reply: PartReply, name: str, dtype: Any, shape: tuple[int, ...]
             ) -> npt.NDArray[Any]:
    arr = reply.arrays.get(name)
    if arr is None or arr.dtype != np.dtype(dtype) or arr.shape != shape:
        got = None if arr is None else (arr.dtype, arr.shape)
        raise PartFailed(f"a worker's {name!r} answer is malformed: expected {np.dtype(dtype)} "
                         f"{shape}, got {got}")
    return arr



#: A node with at most this many instances finishes its subtree on one worker (PLANET's
#: in-memory build), at least; above it, a node holding less than 1/``SUBTREE_SHARE``
#: of a worker's share of the rows does too. Fewer rounds (the deep levels' many small
#: nodes cost a round trip each and nearly empty histograms) for shipping each instance
#: once per tree, worker to worker.
SUBTREE_MIN_ROWS = 1 << 12
SUBTREE_SHARE = 4


def balanced_owners(instances: npt.NDArray[np.int64] | None, n_subtrees: int, n_owners: int
                    ) -> npt.NDArray[np.int64]:
    """Each subtree's owner: the largest first, each to the owner with the least work so
    far (ties to the first); round robin when the sizes are unknown."""
    if instances is None:
        return (np.arange(n_subtrees) % n_owners).astype(np.int64)
    load = [0] * n_owners
    out = np.zeros(n_subtrees, dtype=np.int64)
    for i in np.argsort(-instances, kind="stable").tolist():
        owner = min(range(n_owners), key=lambda o: (load[o], o))
        out[i] = owner
        load[owner] += int(instances[i])
    return out


def local_subtree_rows(n_total: int, n_workers: int) -> int:
    """The instance count below which a node's subtree grows on one worker."""
    return max(SUBTREE_MIN_ROWS, n_total // (SUBTREE_SHARE * max(n_workers, 1)))


#: Instances (tree, in-bag row) a worker holds for one batch of trees: about 32 bytes each
#: (an owner of local subtrees also receives each instance's codes: see trees_per_batch).
BATCH_INSTANCES_PER_WORKER = 1 << 23


def trees_per_batch(n_total: int, n_workers: int, n_trees: int, n_features: int = 0) -> int:
    """Trees grown together (one round serves them all) under the workers' memory budget;
    ``n_features``: the codes bytes an instance also takes once it is shipped."""
    per_tree = max(1.0, 0.64 * n_total / max(n_workers, 1))  # in-bag rows per worker
    budget = BATCH_INSTANCES_PER_WORKER * 32 / (32 + max(n_features, 0))
    return max(1, min(n_trees, int(budget // per_tree)))


async def fit_partitions(
    link: PartLink, estimator: Any, partitions: Partitions, *,
    on_progress: Callable[[FitProgress], object] | None,
    sessions: dict[int, PartSession], op_timeout: float = 600.0,
    open_checkpoint: Callable[[dict[str, Any]], Awaitable[Checkpoint]] | None = None,
) -> None:
    """Fit ``estimator`` on ``partitions`` in data-parallel mode (see the module doc).

    ``open_checkpoint(spec)``: the job's checkpoint (the data named by the SHA-256 of
    every partition, which its reader computes): saved trees are not grown again, and each
    batch's trees are saved as soon as the batch ends."""
    if estimator._classification != (partitions.task == "classification"):
        raise ValueError(f"a {type(estimator).__name__} needs Partitions(task="
                         f"{'classification' if estimator._classification else 'regression'!r})")
    session = PartSession(link, partitions, max_bins=estimator.max_bins,
                          timeout=op_timeout, digests=open_checkpoint is not None)
    sessions[session.id] = session
    try:
        await session.open()
        schema = session.schema
        assert schema is not None
        is_cat = np.array([f.is_categorical for f in schema.features], dtype=bool)
        n_cat = np.array([len(f.categories) for f in schema.features], dtype=np.int64)
        bins = await session.learn_bins(is_cat, n_cat)
        classes = np.array(schema.classes, dtype=object) if schema.classes else None
        prep = Prepared.described(schema.features, session.n_total, classes,
                                  session.class_counts)
        job = estimator.job_for(prep)
        job.use_bins(bins)
        checkpoint = None
        saved: dict[int, TreeArrays] = {}
        if open_checkpoint is not None:
            checkpoint = await open_checkpoint(job_spec(
                data_hashes=[session.digests[p] for p in range(len(session.relative))],
                plan=job.plan.to_json(), params=estimator.get_params(), indices=job.indices,
                mode="data", n_shards=None))
            saved = checkpoint.trees
        todo = [i for i in job.indices if i not in saved]
        session.trees_total = len(job.indices)
        session.trees_done = session.trees_resumed = len(saved)
        trees = await _grow_batches(session, job, bins, todo, on_progress, checkpoint)
        await asyncio.to_thread(job.install, {**saved, **trees})
        if estimator.oob_score:
            await _oob_score(session, estimator)
        logger.info(
            "master: data-parallel fit of %d trees on %d rows in %d partitions: %d rounds, "
            "%.1f MiB of histograms, %d partitions moved", len(trees), session.n_total,
            len(partitions.paths), session.stats.rounds, session.stats.hist_bytes / 2**20,
            session.stats.partitions_moved,
        )
        estimator.data_parallel_stats_ = {**vars(session.stats), "n_rows": session.n_total}
    finally:
        session.stopping = True
        try:
            await session.close()
        finally:
            del sessions[session.id]


async def _oob_score(session: PartSession, estimator: Any) -> None:
    """``oob_score_`` from the workers' out-of-bag votes on their own rows (the per-row
    ``oob_decision_function_`` / ``oob_prediction_`` would be O(rows) here, so data mode
    leaves them out). Regression's R² takes two passes of exact sums (the mean of every
    worker's rows, then the deviations from it), so it equals a local fit's bit for bit."""
    flat = await asyncio.to_thread(estimator._flat_forest)  # O(model): off the loop
    arrays = {f"ff_{k}": np.ascontiguousarray(v) for k, v in flat.parts().items()}
    plan = {"plan": estimator.plan_.to_json()}
    replies = await session.broadcast("oob", plan, arrays, False)
    rows = correct = sum_y = ss_res = 0
    for r in replies:
        rows += int(_checked(r, "rows", np.int64, (1,))[0])
        correct += int(_checked(r, "correct", np.int64, (1,))[0])
        sum_y += _big_int(r, "sum_y")
        ss_res += _big_int(r, "ss_res")
    if rows > session.n_total or correct > rows:
        raise PartFailed("the workers' out-of-bag counts do not add up")
    if rows < session.n_total:
        warnings.warn(
            f"{session.n_total - rows} samples were in-bag for every tree; their out-of-bag "
            "estimate is left out of oob_score_", UserWarning, stacklevel=2)
    if estimator._classification or not rows:
        estimator.oob_score_ = correct / rows if rows else 0.0
        return
    mean = to_float(sum_y, rows)
    second = await session.broadcast("oob", {**plan, "mean": mean}, arrays, False)
    ss_tot = sum(_big_int(r, "ss_tot") for r in second)
    estimator.oob_score_ = r2_from_sums(ss_res, ss_tot)


def _big_int(reply: PartReply, name: str) -> int:
    """An exact sum sent as a decimal string (see ``aioforest._exact``)."""
    text = reply.info.get(name)
    if not isinstance(text, str) or not 0 < len(text) <= 2000 or not (
        text.isdigit() or (text[0] == "-" and text[1:].isdigit())
    ):
        raise PartFailed(f"a worker's {name!r} answer is malformed: expected an integer")
    return int(text)


async def _grow_batches(
    session: PartSession, job: Any, bins: Bins, indices: list[int],
    on_progress: Callable[[FitProgress], object] | None, checkpoint: Checkpoint | None,
) -> dict[int, TreeArrays]:
    plan: ForestPlan = job.plan
    exact = arithmetic(plan, session.n_total, None, session.target_max)
    if not exact.integral:  # only exact sums make the partitioning irrelevant
        raise ValueError(
            f"data mode needs exact sums, which {session.n_total} rows with "
            f"max_samples={plan.n_draws} exceed (a tree's weight must stay below 2**31)")
    session.target_shift = exact.target_shift
    class_weight = (np.asarray(plan.class_weight, dtype=np.float64)
                    if plan.class_weight is not None else None)
    saved = await asyncio.to_thread(checkpoint.read_round) if checkpoint is not None else None
    per_batch = trees_per_batch(session.n_total, len(session.members), len(indices),
                                bins.n_features)
    batches = _batches(indices, per_batch, saved)
    if saved is not None and (not batches or batches[0] != saved[0].get("batch")):
        # its trees were saved after all (killed between saving them and forgetting this)
        saved = None
        if checkpoint is not None:
            await asyncio.to_thread(checkpoint.clear_round)
    loop = asyncio.get_running_loop()
    trees: dict[int, TreeArrays] = {}
    fit_t0 = time.perf_counter()
    for n, batch in enumerate(batches):
        if n:
            await session.admit_newcomers()
        await session.begin(plan, batch)
        session.stats.batches += 1
        resume = await _resume_round(session, saved) if n == 0 and saved else None
        specs = [tree_spec(plan, i, bins.n_features) for i in batch]
        rows = RemoteRows(session, loop, exact)
        subtree_rows = (local_subtree_rows(session.n_total, len(session._alive()))
                        if await session.peers_ready() else 0)
        on_level = _round_saver(session, checkpoint, batch) if checkpoint is not None else None
        t0 = time.perf_counter()
        grown = await asyncio.to_thread(grow, bins, specs, rows, plan.grow_params(), exact,
                                        class_weight, None, subtree_rows, on_level, resume)
        session.stats.grow_seconds += time.perf_counter() - t0
        await session.end()
        if checkpoint is not None:  # durably, before the batch counts as done
            await asyncio.to_thread(checkpoint.write_trees, zip(batch, grown, strict=True))
            await asyncio.to_thread(checkpoint.clear_round)
        for i, tree in zip(batch, grown, strict=True):
            trees[i] = tree
            session.trees_done += 1
            if on_progress is not None:
                on_progress(FitProgress(i, len(trees), len(indices),
                                        time.perf_counter() - fit_t0, tree))
    return trees


#: A data-mode checkpoint saves where a batch's growth stands at most this often (each
#: save writes the batch's nodes so far and its keep/route log).
ROUND_CHECKPOINT_SECONDS = 30.0

Saved = tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]


def _batches(indices: list[int], per_batch: int, saved: Saved | None) -> list[list[int]]:
    """The batches of trees still to grow; a part-grown batch (``saved``) comes first."""
    first: list[int] = []
    if saved is not None:
        batch = saved[0].get("batch")
        if (isinstance(batch, list) and batch and all(isinstance(i, int) for i in batch)
                and set(batch) <= set(indices)):
            first = list(batch)
    rest = [i for i in indices if i not in set(first)]
    return ([first] if first else []) + [rest[i : i + per_batch]
                                         for i in range(0, len(rest), per_batch)]


def _round_saver(session: PartSession, checkpoint: Checkpoint, batch: list[int]
                 ) -> Callable[[int, Callable[[], GrowthState]], None]:
    """The driver's between-levels hook: save the batch's state and its log now and then
    (in the driver's thread, while no operation is in flight)."""
    last = time.monotonic()

    def save(depth: int, make_state: Callable[[], GrowthState]) -> None:
        nonlocal last
        if time.monotonic() - last < ROUND_CHECKPOINT_SECONDS:
            return
        state_meta, state_arrays = make_state().to_arrays()
        arrays = {f"state_{k}": v for k, v in state_arrays.items()}
        log = []
        for k, (op, args, op_arrays) in enumerate(session.log):
            log.append([op, args, sorted(op_arrays)])
            arrays |= {f"log{k}_{name}": a for name, a in op_arrays.items()}
        checkpoint.write_round({"batch": batch, "state": state_meta, "log": log}, arrays)
        session.stats.levels_saved += 1
        last = time.monotonic()

    return save


async def _resume_round(session: PartSession, saved: Saved) -> GrowthState:
    """Bring the workers' rows to the saved level (the batch's log, replayed) and return
    the driver's state there."""
    meta, arrays = saved
    log = meta.get("log")
    try:
        if not isinstance(log, list):
            raise ValueError("the log is not a list")
        for k, entry in enumerate(log):
            op, args, names = entry
            if op not in ("keep", "route") or not isinstance(args, dict):
                raise ValueError(f"log entry {k} is not a keep or route")
            await session.broadcast(op, args, {n: arrays[f"log{k}_{n}"] for n in names}, True)
        state = GrowthState.from_arrays(
            meta["state"], {k[6:]: v for k, v in arrays.items() if k.startswith("state_")})
        n_trees = len(meta["batch"])
        if (state.next_local.shape != (n_trees,) or state.root_weight.shape != (n_trees,)
                or (state.nodes.tree.size and (state.nodes.tree.min() < 0
                                               or state.nodes.tree.max() >= n_trees))):
            raise ValueError(f"the saved state is not of a batch of {n_trees} trees")
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"the checkpoint's part-grown batch is malformed: {exc}; delete "
                              "its round.aiof to grow that batch from the start") from None
    session.stats.levels_resumed = state.depth
    return state
