"""The worker's half of data-parallel growth: the partitions it reads, and their rows.

A :class:`PartHost` turns each ``part`` request into its reply, synchronously (the worker
runs it in a thread, so the event loop keeps its heartbeats). Per session (one fit) it
holds the partitions the master assigned to it, each read from storage by this worker:

* ``scan``: read the files, answer their :class:`~aioforest.data.PartitionScan`;
* ``texts``: the distinct texts of columns a file read as numbers while another file
  holds text there (the column is categorical, and these are categories too);
* ``load``: encode them in the merged schema, answer their merged
  :class:`~aioforest.data.BinSummary` (``summary``) or, when the bins are known (a
  partition moved here after its worker died), bin them at once;
* ``bins``: bin every partition with the master's bins (the float rows are dropped);
* ``begin``: start a batch of trees: every row's in-bag weights (keyed by its global row
  id, see :func:`~aioforest.tree.row_keys`), at its tree's root;
* ``missing``, ``totals``, ``keep``, ``hist``, ``route``: the
  :class:`~aioforest.tree.RowSource` calls of the growth driver, answered with the sum
  over this worker's partitions (or only the ones the request names);
* ``oob``: the out-of-bag votes of the fitted forest on these rows (rows with an
  estimate, and how many of them it gets right);
* ``peer``: where this worker's :class:`~._peers.PeerServer` listens;
* ``ship``: copy the rows of nodes that finish their subtrees in one place to each
  subtree's owner, straight to its peer server (or into this worker's stash); ``subtrees``:
  as an owner, grow those subtrees on the rows shipped here, with the same driver, and
  answer their :class:`~aioforest.tree.NodeRecords`;
* ``end``: drop the batch; ``forget``: drop partitions that moved to another worker;
  ``close``: drop the session.

Every argument is checked: a bad one is answered with an error naming the operation and
the field, and the session stays as it was.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..data import (
    Binner,
    Bins,
    CsvOptions,
    DataError,
    PartitionTable,
    Schema,
    encode_partition,
    read_partition,
)
from ..tree import (
    Arithmetic,
    CodeTable,
    DrawnFeatures,
    FlatForest,
    ForestPlan,
    HistogramRequest,
    LevelRows,
    LocalRows,
    NodeSplits,
    SubtreeRows,
    SubtreeStart,
    SummedRows,
    code_table,
    grow_subtrees_here,
    partition_oob_sums,
    partition_rows,
    tree_spec,
)
from ..wire import Message, ProtocolError
from ._peers import RowStash, rows_message
from ._protocol import MessageError, PartReply, PartRequest, bins_from_arrays

__all__ = ["PartHost", "PartOpError"]

Arrays = dict[str, npt.NDArray[Any]]
logger = logging.getLogger("aioforest.cluster")


class PartOpError(Exception):
    """A request this host cannot carry out; its text goes back to the master."""


@dataclass
class _Partition:
    index: int
    path: str
    table: PartitionTable | None = None
    offset: int = -1
    X: npt.NDArray[np.float64] | None = None
    y: npt.NDArray[Any] | None = None
    codes: CodeTable | None = None  # binned
    batch: LocalRows | None = None


@dataclass
class _Session:
    options: CsvOptions
    root: str
    parts: dict[int, _Partition] = field(default_factory=dict)
    schema: Schema | None = None
    n_total: int = 0
    bins: Bins | None = None
    plan: ForestPlan | None = None
    trees: list[int] | None = None  # the batch's tree indices


class PartHost:
    """The partitions this worker holds, per data-parallel session (see the module doc).

    ``data_root``: where this worker finds the files, when its mount point differs from
    the master's (the master sends paths relative to the dataset's root).
    """

    def __init__(self, data_root: str | None = None) -> None:
        self.data_root = data_root
        self._sessions: dict[int, _Session] = {}
        #: rows other workers shipped here for the subtrees this worker grows
        self.stash = RowStash()
        #: where the worker's peer server listens (set by the worker once it runs)
        self.peer_address: tuple[str, int] | None = None
        #: how rows reach another worker's peer server (blocking; set by the worker)
        self.send_peer: Callable[[str, int, Message], None] | None = None

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def has_session(self, session: int) -> bool:
        """Whether ``session`` is open here (rows for any other are refused)."""
        return session in self._sessions

    def handle(self, req: PartRequest) -> PartReply:
        """The reply to ``req`` (an error reply when it cannot be carried out)."""
        try:
            info, arrays = self._dispatch(req)
        except (PartOpError, DataError, MessageError) as exc:
            return PartReply(req.session, req.seq, str(exc) or type(exc).__name__, {}, {})
        except Exception as exc:  # a bug of ours: say so rather than leave the master waiting
            logger.exception("worker: data-parallel %s failed", req.op)
            return PartReply(req.session, req.seq,
                             f"internal error in {req.op}: {type(exc).__name__}: {exc}", {}, {})
        return PartReply(req.session, req.seq, "", info, arrays)

    def drop_all(self) -> None:
        """Forget every session (the connection to their master ended)."""
        self._sessions.clear()
        self.stash.clear()

    def drop(self, session: int) -> None:
        """Forget one session (its master is gone)."""
        self._sessions.pop(session, None)
        self.stash.drop(session)

    def _dispatch(self, req: PartRequest) -> tuple[dict[str, Any], Arrays]:
        if req.op == "scan":
            return self._scan(req), {}
        session = self._sessions.get(req.session)
        if session is None:
            raise PartOpError(f"part {req.op}: no session {req.session} on this worker")
        if req.op == "close":
            self.drop(req.session)
            return {}, {}
        handler = getattr(self, f"_op_{req.op}")
        out: tuple[dict[str, Any], Arrays] = handler(session, req)
        return out

    # --- reading -------------------------------------------------------------------------
    def _path(self, session: _Session, relative: str) -> str:
        if os.path.isabs(relative) or ".." in relative.replace("\\", "/").split("/"):
            raise PartOpError(f"part: path {relative!r:.200} must be relative, inside the root")
        return os.path.join(self.data_root or session.root, relative)

    def _scan(self, req: PartRequest) -> dict[str, Any]:
        args = req.args
        try:
            options = CsvOptions.from_json(args.get("options"))
        except ValueError as exc:
            raise PartOpError(f"part scan: {exc}") from None
        root = args.get("root")
        if not isinstance(root, str):
            raise PartOpError("part scan: args.root must be a string")
        session = self._sessions.setdefault(req.session, _Session(options, root))
        scans, digests = [], []
        for index, relative in _partition_list(args, "scan"):
            part = self._read(session, index, relative)
            assert part.table is not None
            scans.append(part.table.scan.to_json())
            if args.get("digest"):  # a checkpointed fit: what identifies the data
                digests.append(_file_digest(part.path))
        return {"scans": scans, "digests": digests}

    def _read(self, session: _Session, index: int, relative: str) -> _Partition:
        part = _Partition(index, self._path(session, relative))
        part.table = read_partition(part.path, session.options)
        session.parts[index] = part
        return part

    def _op_texts(self, session: _Session, req: PartRequest) -> tuple[dict[str, Any], Arrays]:
        columns = req.args.get("columns")
        if not isinstance(columns, dict):
            raise PartOpError("part texts: args.columns must map partitions to column lists")
        out: dict[str, dict[str, list[str]]] = {}
        for index, relative in _partition_list(req.args, "texts"):
            wanted = columns.get(str(index))
            if not isinstance(wanted, list) or not all(isinstance(k, int) for k in wanted):
                raise PartOpError(f"part texts: no column list for partition {index}")
            table = read_partition(self._path(session, relative), session.options,
                                   as_text=wanted)
            part = session.parts.setdefault(index, _Partition(index, table.scan.path))
            part.table = table
            out[str(index)] = {str(k): list(table.texts_of.get(k, ())) for k in wanted}
        return {"texts": out}, {}

    def _op_load(self, session: _Session, req: PartRequest) -> tuple[dict[str, Any], Arrays]:
        args = req.args
        try:
            schema = Schema.from_json(args.get("schema"))
        except ValueError as exc:
            raise PartOpError(f"part load: {exc}") from None
        n_total, max_bins = _int(args, "n_total", 1), _int(args, "max_bins", 2)
        offsets = {i: o for i, o in _pairs(args, "offsets")}
        expected = {i: r for i, r in _pairs(args, "rows")}
        listed = _partition_list(args, "load")
        for index, relative in listed:
            if index not in session.parts:  # moved here from a lost worker
                self._read(session, index, relative)
        session.schema, session.n_total = schema, n_total
        binner = Binner(max_bins)
        summaries = []
        cat = np.array([f.is_categorical for f in schema.features], dtype=bool)
        counts = np.zeros(max(len(schema.classes), 1), dtype=np.int64)
        target_max = 0.0  # regression: the largest |target| (fixes the fixed point's scale)
        for index, _ in listed:
            part = session.parts[index]
            if index not in offsets:
                raise PartOpError(f"part load: no offset for partition {index}")
            if part.table is None:  # loaded here before (it came back after a loss)
                continue
            if part.table.scan.n_rows != expected.get(index, -1):
                raise PartOpError(
                    f"part load: {part.path} has {part.table.scan.n_rows} rows, but "
                    f"{expected.get(index)} when it was first scanned: the file changed")
            part.X, part.y = encode_partition(part.table, schema, session.options)
            part.table, part.offset = None, offsets[index]
            ids = part.offset + np.arange(part.X.shape[0])
            if ids.size and ids[-1] >= n_total:
                raise PartOpError(f"part load: partition {index} runs past row {n_total}")
            if args.get("summary", False):
                summaries.append(binner.summarize(part.X, cat, row_ids=ids, n_total=n_total))
            if schema.classes and part.y is not None:
                counts += np.bincount(part.y, minlength=counts.size)
            elif part.y is not None and part.y.size:
                target_max = max(target_max, float(np.max(np.abs(part.y))))
            if session.bins is not None:
                self._bin(session, part)
        arrays: Arrays = {"class_counts": counts,
                          "target_max": np.array([target_max], dtype=np.float64)}
        if summaries:
            merged = summaries[0]
            for other in summaries[1:]:
                merged = merged.merge(other, max_bins)
            arrays.update({f"sum_{k}": v for k, v in merged.arrays().items()})
        return {}, arrays

    def _op_bins(self, session: _Session, req: PartRequest) -> tuple[dict[str, Any], Arrays]:
        session.bins = bins_from_arrays("part", req.arrays)
        if session.schema is not None and session.bins.n_features != len(session.schema.features):
            raise PartOpError("part bins: the bins do not match the schema's features")
        for part in session.parts.values():
            self._bin(session, part)
        return {}, {}

    @staticmethod
    def _bin(session: _Session, part: _Partition) -> None:
        assert session.bins is not None and part.X is not None
        part.codes = code_table(session.bins, session.bins.transform(part.X))
        part.X = None  # trees only need the codes

    # --- growth --------------------------------------------------------------------------
    def _selected(self, session: _Session, req: PartRequest) -> list[_Partition]:
        only = req.args.get("only")
        if only is None:
            return [session.parts[i] for i in sorted(session.parts)]
        if not isinstance(only, list) or not all(isinstance(i, int) for i in only):
            raise PartOpError(f"part {req.op}: args.only must be a list of partition indices")
        missing = [i for i in only if i not in session.parts]
        if missing:
            raise PartOpError(f"part {req.op}: partitions {missing[:5]} are not on this worker")
        return [session.parts[i] for i in only]

    def _batch_rows(self, session: _Session, req: PartRequest) -> SummedRows:
        parts = self._selected(session, req)
        batches = [p.batch for p in parts]
        if not parts or any(b is None for b in batches):
            raise PartOpError(f"part {req.op}: no batch begun on these partitions")
        return SummedRows([b for b in batches if b is not None])

    def _op_begin(self, session: _Session, req: PartRequest) -> tuple[dict[str, Any], Arrays]:
        try:
            plan = ForestPlan.from_json(req.args.get("plan"))
        except ValueError as exc:
            raise PartOpError(f"part begin: {exc}") from None
        indices = req.args.get("trees")
        if not isinstance(indices, list) or not indices or not all(
            isinstance(i, int) and i >= 0 for i in indices
        ):
            raise PartOpError("part begin: args.trees must be a non-empty list of tree indices")
        shift = req.args.get("target_shift", 0)
        if not isinstance(shift, int) or isinstance(shift, bool) or not -1100 <= shift <= 1100:
            raise PartOpError("part begin: args.target_shift must be an integer in [-1100, 1100]")
        session.plan, session.trees = plan, list(indices)
        for part in self._selected(session, req):
            if part.codes is None or part.y is None:
                raise PartOpError(f"part begin: partition {part.index} is not binned yet")
            part.batch = partition_rows(plan, indices, part.codes, part.y, part.offset,
                                        session.n_total, shift)
        return {}, {}

    def _op_forget(self, session: _Session, req: PartRequest) -> tuple[dict[str, Any], Arrays]:
        for part in self._selected(session, req):
            del session.parts[part.index]
        return {}, {}

    def _op_oob(self, session: _Session, req: PartRequest) -> tuple[dict[str, Any], Arrays]:
        try:
            plan = ForestPlan.from_json(req.args.get("plan"))
        except ValueError as exc:
            raise PartOpError(f"part oob: {exc}") from None
        if session.bins is None:
            raise PartOpError("part oob: no bins yet")
        mean = req.args.get("mean")
        if mean is not None and not (isinstance(mean, float) and np.isfinite(mean)):
            raise PartOpError("part oob: args.mean must be a finite number")
        flat = FlatForest.from_parts(session.bins, {k[3:]: v for k, v in req.arrays.items()
                                                    if k.startswith("ff_")})
        rows = correct = sum_y = ss_res = ss_tot = 0
        for part in self._selected(session, req):
            if part.codes is None or part.y is None:
                raise PartOpError(f"part oob: partition {part.index} is not binned yet")
            sums = partition_oob_sums(plan, flat, part.codes, part.y, part.offset,
                                      session.n_total, mean)
            rows, correct = rows + sums[0], correct + sums[1]
            sum_y, ss_res, ss_tot = sum_y + sums[2], ss_res + sums[3], ss_tot + sums[4]
        # exact sums are integers of any size: decimal strings on the wire
        return {"sum_y": str(sum_y), "ss_res": str(ss_res), "ss_tot": str(ss_tot)}, {
            "rows": np.array([rows], dtype=np.int64),
            "correct": np.array([correct], dtype=np.int64)}

    def _op_end(self, session: _Session, req: PartRequest) -> tuple[dict[str, Any], Arrays]:
        for part in session.parts.values():
            part.batch = None
        self.stash.drop(req.session)
        return {}, {}

    # --- local subtrees ------------------------------------------------------------------
    def _op_peer(self, session: _Session, req: PartRequest) -> tuple[dict[str, Any], Arrays]:
        if self.peer_address is None:
            raise PartOpError("part peer: this worker has no peer server")
        return {"host": self.peer_address[0], "port": self.peer_address[1]}, {}

    def _op_ship(self, session: _Session, req: PartRequest) -> tuple[dict[str, Any], Arrays]:
        a = req.args
        ticket, n_nodes, me = _int(a, "ticket", 0), _int(a, "n_nodes", 0), _int(a, "me", -1)
        nodes = _array(req, "nodes", np.int64, 1)
        owners = _array(req, "owners", np.int64, 1)
        peers = a.get("peers")
        if not isinstance(peers, list) or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
            and isinstance(p[1], int) for p in peers
        ):
            raise PartOpError("part ship: args.peers must be a list of [host, port]")
        if owners.shape != nodes.shape or (owners.size and (
                owners.min() < 0 or owners.max() >= len(peers))) or me >= len(peers):
            raise PartOpError("part ship: owners must name one of the peers per node")
        if nodes.size and (nodes.min() < 0 or nodes.max() >= n_nodes):
            raise PartOpError("part ship: a node is not among the level's nodes")
        rows = self._batch_rows(session, req)
        _check_nodes(rows, n_nodes, "ship")
        taken = rows.take_subtrees(nodes, n_nodes, remove=False)  # dropped by "keep"
        owner_of_row = owners[taken.subtree]
        unreachable = []
        sent = 0
        for owner in np.unique(owner_of_row).tolist():
            sel = owner_of_row == owner
            mine = SubtreeRows(taken.codes[sel], taken.y[sel], taken.weight[sel],
                               taken.subtree[sel])
            if owner == me:
                self.stash.put(req.session, ticket, mine)
                continue
            if self.send_peer is None:
                raise PartOpError("part ship: this worker cannot reach its peers")
            host, port = peers[owner]
            try:
                for chunk in _chunks(mine):  # frames stay far below the wire's size cap
                    self.send_peer(host, port, rows_message(req.session, ticket, chunk))
                sent += int(mine.weight.size)
            except (OSError, TimeoutError, ProtocolError) as exc:
                logger.warning("worker: cannot ship rows to peer %s:%d: %s", host, port, exc)
                unreachable.append(owner)
        return {"unreachable": unreachable, "rows": int(taken.weight.size), "sent": sent}, {}

    def _op_subtrees(self, session: _Session, req: PartRequest
                     ) -> tuple[dict[str, Any], Arrays]:
        a = req.args
        if session.plan is None or session.bins is None or session.trees is None:
            raise PartOpError("part subtrees: no batch begun")
        owned = _array(req, "subtrees", np.int64, 1)
        start = SubtreeStart(
            owned, owned.size, _array(req, "tree", np.int64, 1),
            _array(req, "path", np.uint64, 1), _array(req, "constant", np.bool_, 2),
            _array(req, "constant_rate", np.float64, 1),
            _array(req, "root_weight", np.float64, 1), _int(a, "depth", 0),
        )
        bins, plan, trees = session.bins, session.plan, session.trees
        s = owned.size
        if any(x.shape[0] != s for x in (start.tree, start.path, start.constant,
                                         start.constant_rate, start.root_weight)) or (
                start.constant.shape[1] != bins.n_features):
            raise PartOpError("part subtrees: the subtree arrays do not match")
        if s and (start.tree.min() < 0 or start.tree.max() >= len(trees)
                  or owned.min() < 0 or np.unique(owned).size != s):
            raise PartOpError("part subtrees: trees or subtrees out of range")
        ticket = _int(a, "ticket", 0)
        shipped = self.stash.take(req.session, ticket)
        self.stash.drop_before(req.session, ticket)
        rows = SubtreeRows.concat(shipped) if shipped else SubtreeRows(
            np.zeros((0, bins.n_features), np.uint8), np.zeros(0, np.int64), np.zeros(0),
            np.zeros(0, np.int64))
        _check_shipped(rows, bins, plan)
        top = int(owned.max(initial=-1))
        if rows.subtree.size and int(rows.subtree.max()) > top:
            raise PartOpError("part subtrees: rows arrived for subtrees not owned here")
        index = np.full(top + 1, -1, dtype=np.int64)
        index[owned] = np.arange(s)
        local_subtree = index[rows.subtree]
        if (local_subtree < 0).any():
            raise PartOpError("part subtrees: rows arrived for subtrees not owned here")
        expected = _array(req, "instances", np.int64, 1)
        got = np.bincount(local_subtree, minlength=s)
        if expected.shape == (s,) and (expected >= 0).all() and not np.array_equal(got, expected):
            raise PartOpError(f"part subtrees: {int(got.sum())} rows arrived for subtrees of "
                              f"{int(expected.sum())}: rows were lost or came twice")
        exact = Arithmetic(bool(a.get("integral")), bool(a.get("single")),
                           _int(a, "target_shift", -1100))
        template = CodeTable(np.zeros(0, np.uint8), bins.n_features, bins.n_bins,
                             bins.is_categorical)
        here = SubtreeRows(rows.codes, rows.y, rows.weight, local_subtree).local(template)
        specs = [tree_spec(plan, i, bins.n_features) for i in trees]
        class_weight = (np.asarray(plan.class_weight, dtype=np.float64)
                        if plan.class_weight is not None else None)
        records = grow_subtrees_here(bins, specs, plan.grow_params(), exact, class_weight,
                                     start, here)
        return {"rows": int(rows.weight.size)}, records.arrays()

    def _op_missing(self, session: _Session, req: PartRequest) -> tuple[dict[str, Any], Arrays]:
        features = _array(req, "features", np.int64, 1)
        out = np.zeros(features.size, dtype=bool)
        for part in self._selected(session, req):
            if part.codes is None:
                raise PartOpError(f"part missing: partition {part.index} is not binned yet")
            if features.size and (features.min() < 0
                                  or features.max() >= part.codes.n_features):
                raise PartOpError("part missing: a feature index is out of range")
            out |= LocalRows(part.codes, _no_rows()).missing_in(features)
        return {}, {"missing": out}

    def _op_totals(self, session: _Session, req: PartRequest) -> tuple[dict[str, Any], Arrays]:
        n_nodes = _int(req.args, "n_nodes", 0)
        n_channels = _int(req.args, "n_channels", 1)
        counts, total = self._batch_rows(session, req).node_totals(
            n_nodes, n_channels, bool(req.args.get("classification")))
        return {}, {"counts": counts, "total": np.ascontiguousarray(total)}

    def _op_keep(self, session: _Session, req: PartRequest) -> tuple[dict[str, Any], Arrays]:
        keep = _array(req, "keep", np.bool_, 1)
        rows = self._batch_rows(session, req)
        _check_nodes(rows, keep.size, "keep")
        rows.keep_nodes(keep)
        return {}, {}

    def _op_hist(self, session: _Session, req: PartRequest) -> tuple[dict[str, Any], Arrays]:
        a = req.args
        cand = _array(req, "candidates", np.int64, 1)
        features = _array(req, "features", np.int64, 2)
        valid = _array(req, "valid", np.bool_, 2)
        n_nodes = _int(a, "n_nodes", 1)
        if features.shape != valid.shape or features.shape[0] != cand.size:
            raise PartOpError("part hist: candidates, features and valid do not match")
        if cand.size and (cand.min() < 0 or cand.max() >= n_nodes):
            raise PartOpError("part hist: a candidate is not among the level's nodes")
        rows = self._batch_rows(session, req)
        n_features = session.bins.n_features if session.bins is not None else 0
        if features.size and (features.min() < 0 or features.max() >= n_features):
            raise PartOpError("part hist: a drawn feature index is out of range")
        _check_nodes(rows, n_nodes, "hist")
        hist = rows.histograms(HistogramRequest(
            cand, n_nodes, bool(a.get("all_splittable")), DrawnFeatures(features, valid),
            n_channels=_int(a, "n_channels", 1), classification=bool(a.get("classification")),
            integral=bool(a.get("integral")), with_counts=bool(a.get("with_counts")),
        ))
        return {}, _narrow(hist.arrays())

    def _op_route(self, session: _Session, req: PartRequest) -> tuple[dict[str, Any], Arrays]:
        splits = NodeSplits(
            _array(req, "feature", np.int64, 1), _array(req, "threshold_bin", np.int64, 1),
            _array(req, "missing_left", np.bool_, 1), _array(req, "improvement", np.float64, 1),
            _array(req, "lut", np.bool_, 2),
        )
        m = splits.feature.size
        if any(a.shape[0] != m for a in (splits.threshold_bin, splits.missing_left,
                                          splits.improvement, splits.lut)):
            raise PartOpError("part route: the split arrays differ in length")
        rows = self._batch_rows(session, req)
        _check_nodes(rows, m, "route")
        n_features = session.bins.n_features if session.bins is not None else 0
        if m and splits.feature.max() >= n_features:
            raise PartOpError("part route: a split feature is out of range")
        rows.route(splits)
        return {}, {}


#: Bytes of rows in one peer message (the wire refuses messages above its size cap).
SHIP_CHUNK_BYTES = 1 << 27


def _chunks(rows: SubtreeRows) -> list[SubtreeRows]:
    per_row = rows.codes.shape[1] + rows.y.itemsize + 16
    step = max(1, SHIP_CHUNK_BYTES // per_row)
    n = int(rows.weight.size)
    if n <= step:
        return [rows]
    return [SubtreeRows(rows.codes[i : i + step], rows.y[i : i + step],
                        rows.weight[i : i + step], rows.subtree[i : i + step])
            for i in range(0, n, step)]


def _check_shipped(rows: SubtreeRows, bins: Bins, plan: ForestPlan) -> None:
    """Rows from peers: codes within the bins, targets of the job's kind."""
    if rows.codes.shape[1] != bins.n_features:
        raise PartOpError("part subtrees: shipped rows have the wrong number of features")
    if rows.weight.size and bool((rows.codes > (bins.n_bins[None, :])).any()):
        raise PartOpError("part subtrees: a shipped code is outside its feature's bins")
    if rows.y.dtype != np.int64:  # class codes, or fixed-point targets
        raise PartOpError("part subtrees: shipped targets must be int64")
    if plan.n_classes and rows.y.size and (rows.y.min() < 0 or rows.y.max() >= plan.n_classes):
        raise PartOpError("part subtrees: a shipped class code is out of range")


def _file_digest(path: str) -> str:
    """The SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise DataError(f"cannot read the file: {exc.strerror or exc}", path=path) from None
    return digest.hexdigest()


def _narrow(arrays: Arrays) -> Arrays:
    """Integer arrays as int32 where every value fits: half the bytes on the wire (the
    master widens them back before summing, so sums stay exact)."""
    out: Arrays = {}
    limit = np.iinfo(np.int32)
    for name, arr in arrays.items():
        fits = arr.dtype == np.int64 and (
            arr.size == 0 or (int(arr.min()) >= limit.min and int(arr.max()) <= limit.max))
        out[name] = arr.astype(np.int32) if fits else arr
    return out


def _no_rows() -> LevelRows:
    empty = np.zeros(0, dtype=np.int64)
    return LevelRows(empty, np.zeros(0), empty, empty)


def _check_nodes(rows: SummedRows, n_nodes: int, op: str) -> None:
    for part in rows.parts:
        assert isinstance(part, LocalRows)
        if part.rows.size and int(part.rows.node.max()) >= n_nodes:
            raise PartOpError(f"part {op}: {n_nodes} nodes, but rows sit in node "
                              f"{int(part.rows.node.max())}")


def _int(args: dict[str, Any], name: str, low: int) -> int:
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise PartOpError(f"part: args.{name} must be an integer >= {low}, got {value!r:.40}")
    return value


def _pairs(args: dict[str, Any], name: str) -> list[tuple[int, int]]:
    value = args.get(name)
    if not isinstance(value, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(v, int) and v >= 0 for v in p)
        for p in value
    ):
        raise PartOpError(f"part: args.{name} must be a list of [index, number] pairs")
    return [(p[0], p[1]) for p in value]


def _partition_list(args: dict[str, Any], op: str) -> list[tuple[int, str]]:
    value = args.get("partitions")
    if not isinstance(value, list) or not all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], int) and p[0] >= 0
        and isinstance(p[1], str) for p in value
    ):
        raise PartOpError(f"part {op}: args.partitions must be a list of [index, path] pairs")
    return [(p[0], p[1]) for p in value]


def _array(req: PartRequest, name: str, dtype: Any, ndim: int) -> npt.NDArray[Any]:
    arr = req.arrays.get(name)
    if arr is None:
        raise PartOpError(f"part {req.op}: array {name!r} is missing")
    if arr.dtype != np.dtype(dtype) or arr.ndim != ndim:
        raise PartOpError(f"part {req.op}: array {name!r} must be {ndim}-D {np.dtype(dtype)}, "
                          f"got {arr.ndim}-D {arr.dtype}")
    return arr
