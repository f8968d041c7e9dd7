"""The worker's half of data-parallel growth, without sockets: requests in, replies out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_data_partitions import _lines, _write

from aioforest.cluster._part_host import PartHost
from aioforest.cluster._protocol import (
    MessageError,
    PartReply,
    PartRequest,
    bins_to_arrays,
    decode,
)
from aioforest.data import Binner, Partitions, Schema
from aioforest.tree import ForestPlan
from aioforest.wire import Message


class _Host:
    def __init__(self, root: Path) -> None:
        self.host = PartHost()
        self.seq = 0
        self.root = root

    def __call__(self, op: str, args: dict[str, Any] | None = None,
                 arrays: dict[str, Any] | None = None) -> PartReply:
        self.seq += 1
        request = PartRequest(1, self.seq, op, args or {}, arrays or {})
        # through the codec, as on the wire
        return self.host.handle(decode(request.to_message()))  # type: ignore[arg-type]


def _plan() -> dict[str, Any]:
    return ForestPlan("gini", 3, 10**9, 2, 1, 0.0, 0.0, 2, True, 600, None, None, 7).to_json()


@pytest.fixture
def host(tmp_path: Path) -> _Host:
    _write(tmp_path, _lines(600), [250, 350])
    parts = Partitions(str(tmp_path / "part-*.csv"))
    h = _Host(tmp_path)
    rel = parts.relative_paths()
    base = {"options": parts.options().to_json(), "root": str(tmp_path)}
    assert not h("scan", {**base, "partitions": [[0, rel[0]], [1, rel[1]]]}).error
    return h


def test_a_bad_request_is_answered_with_an_error_naming_it(host: _Host) -> None:
    assert "no session 5" in PartHost().handle(PartRequest(5, 1, "totals", {}, {})).error
    reply = host("scan", {"options": {}, "root": "/"})
    assert "csv options" in reply.error
    bad_path = host("texts", {"partitions": [[0, "../../etc/passwd"]], "columns": {"0": [2]}})
    assert "must be relative" in bad_path.error
    assert "no batch begun" in host("totals", {"n_nodes": 1, "n_channels": 3}).error
    assert "array 'keep' is missing" in host("keep").error
    assert "args.trees" in host("begin", {"plan": _plan(), "trees": []}).error


def test_an_unknown_operation_is_refused_by_the_codec() -> None:
    msg = Message("part", {"session": 1, "seq": 1, "op": "format-disk", "args": {}})
    with pytest.raises(MessageError, match=r"field 'op'.*unknown operation"):
        decode(msg)
    with pytest.raises(MessageError, match="field 'args'"):
        decode(Message("part", {"session": 1, "seq": 1, "op": "scan", "args": []}))


def test_the_host_bins_its_rows_and_answers_their_sums(tmp_path: Path) -> None:
    _write(tmp_path, _lines(600), [250, 350])
    parts = Partitions(str(tmp_path / "part-*.csv"))
    h = _Host(tmp_path)
    rel = parts.relative_paths()
    base = {"options": parts.options().to_json(), "root": str(tmp_path)}
    assert not h("scan", {**base, "partitions": [[0, rel[0]], [1, rel[1]]]}).error
    whole = parts.read()
    schema = Schema(whole.features, whole.classes, "label", "classification", True,
                    (0, 1, 2, 3), 4)
    load = h("load", {"schema": schema.to_json(), "n_total": 600, "max_bins": 255,
                      "summary": True, "offsets": [[0, 0], [1, 250]], "rows": [[0, 250], [1, 350]],
                      "partitions": [[0, rel[0]], [1, rel[1]]]})
    assert not load.error, load.error
    counts = np.bincount(np.searchsorted(np.array(whole.classes, dtype=object),
                                         np.asarray(whole.y, dtype=object)), minlength=3)
    assert np.array_equal(load.arrays["class_counts"], counts)
    cat = np.array([f.is_categorical for f in whole.features])
    bins = Binner().fit(whole.encoded(), cat, [len(f.categories) for f in whole.features])
    assert not h("bins", {}, bins_to_arrays(bins)).error
    assert not h("begin", {"plan": _plan(), "trees": [0, 1]}).error
    totals = h("totals", {"n_nodes": 2, "n_channels": 3, "classification": True})
    assert totals.arrays["counts"].sum() > 0
    # a hist request naming a feature that does not exist is refused; the batch survives
    bad = h("hist", {"n_nodes": 2, "n_channels": 3, "classification": True},
            {"candidates": np.array([0, 1]), "features": np.array([[0], [9]]),
             "valid": np.ones((2, 1), dtype=bool)})
    assert "out of range" in bad.error
    again = h("totals", {"n_nodes": 2, "n_channels": 3, "classification": True})
    assert np.array_equal(again.arrays["total"], totals.arrays["total"])
