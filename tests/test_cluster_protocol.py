"""Cluster message vocabulary: round trips through the wire codec and strict decoding."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from forest_helpers import assert_same_tree, classification_data

from aioforest import RandomForestClassifier
from aioforest.cluster._protocol import (
    CLUSTER_PROTOCOL_VERSION,
    Bye,
    Cancel,
    DatasetPayload,
    Heartbeat,
    MessageError,
    Register,
    Result,
    Task,
    TaskFailed,
    Welcome,
    dataset_hash,
    decode,
)
from aioforest.data import Binner
from aioforest.datasets import load_tennis
from aioforest.tree._plan import ForestPlan
from aioforest.wire import NEED_DATA, Decoder, Encoder, Message, ProtocolError

H = "ab" * 32


def through_wire(msg: Message) -> Message:
    """Encode to bytes and decode again, as a real connection would."""
    dec = Decoder()
    for frame in Encoder().encode(msg):
        dec.receive_data(frame)
    out = dec.next_event()
    assert isinstance(out, Message)
    assert dec.next_event() is NEED_DATA
    return out


def payload(seed: int = 0, *, weights: bool = False) -> DatasetPayload:
    X, y = classification_data(n=120, d=5, seed=seed)
    bins, codes = Binner(32).fit_transform(X)
    sw = np.random.default_rng(seed).integers(0, 3, y.size).astype(np.float64) if weights else None
    return DatasetPayload.build(bins, codes, y, sw)


def plan() -> ForestPlan:
    return ForestPlan(
        criterion="gini", n_classes=3, max_depth=1 << 30, min_samples_split=2,
        min_samples_leaf=1, min_weight_fraction_leaf=0.0, min_impurity_decrease=0.0,
        max_features=2, bootstrap=True, n_draws=120, feature_subspace=None,
        class_weight=(0.5, 1.25, 3.0), seed=2**70 + 3,
    )


def fitted_trees(n: int = 3) -> list[Any]:
    # Categorical features (tennis) so that categorical split sets are covered too.
    forest = RandomForestClassifier(n_estimators=n, random_state=4, bootstrap=False)
    forest.fit(load_tennis())
    return list(forest.trees_)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "msg",
    [
        Register("w1", 4, (H, "cd" * 32)),
        Register("w2", 1),
        Welcome("w1#2", 0.25),
        Heartbeat(running=2, queued=1, free=0),
        Cancel(7),
        Cancel(7, (1, 2, 3)),
        Bye("done"),
        TaskFailed(1, 2, 3, "missing-dataset", "no such dataset"),
    ],
    ids=lambda m: type(m).__name__,
)
def test_small_messages_round_trip(msg: Any) -> None:
    assert decode(through_wire(msg.to_message())) == msg


def test_register_carries_the_protocol_version() -> None:
    assert Register("w", 1).version == CLUSTER_PROTOCOL_VERSION
    assert decode(Register("w", 1, version=9).to_message()).version == 9  # type: ignore[union-attr]


@pytest.mark.parametrize("weights", [False, True])
def test_dataset_round_trip_keeps_arrays_and_hash(weights: bool) -> None:
    p = payload(3, weights=weights)
    got = decode(through_wire(p.to_message()))
    assert isinstance(got, DatasetPayload)
    assert got.hash == p.hash == got.computed_hash()
    np.testing.assert_array_equal(got.codes, p.codes)
    assert got.codes.dtype == np.uint8 and got.codes.shape == p.codes.shape
    np.testing.assert_array_equal(got.y, p.y)
    assert got.y.dtype == p.y.dtype
    if weights:
        assert got.sample_weight is not None and p.sample_weight is not None
        np.testing.assert_array_equal(got.sample_weight, p.sample_weight)
    else:
        assert got.sample_weight is None
    np.testing.assert_array_equal(got.n_bins, p.n_bins)
    np.testing.assert_array_equal(got.is_categorical, p.is_categorical)
    assert len(got.edges) == len(p.edges)
    for a, b in zip(got.edges, p.edges, strict=True):
        assert a.tobytes() == b.tobytes()


def test_dataset_hash_depends_on_every_part() -> None:
    p = payload(1, weights=True)
    assert p.sample_weight is not None
    base = dataset_hash(p.codes, p.y, p.sample_weight, p.n_bins, p.is_categorical, p.edges)
    assert base == p.hash
    codes = p.codes.copy()
    codes[0, 0] ^= 1
    y = p.y.copy()
    y[-1] = (y[-1] + 1) % 3
    sw = p.sample_weight.copy()
    sw[0] += 1
    cat = p.is_categorical.copy()
    cat[0] = ~cat[0]
    edges = list(p.edges)
    edges[1] = edges[1] + 1e-9
    variants = [
        (codes, p.y, p.sample_weight, p.n_bins, p.is_categorical, p.edges),
        (p.codes, y, p.sample_weight, p.n_bins, p.is_categorical, p.edges),
        (p.codes, p.y, sw, p.n_bins, p.is_categorical, p.edges),
        (p.codes, p.y, None, p.n_bins, p.is_categorical, p.edges),
        (p.codes, p.y.astype(np.float64), p.sample_weight, p.n_bins, p.is_categorical, p.edges),
        (p.codes, p.y, p.sample_weight, p.n_bins, cat, p.edges),
        (p.codes, p.y, p.sample_weight, p.n_bins, p.is_categorical, tuple(edges)),
    ]
    hashes = {dataset_hash(*v) for v in variants}
    assert len(hashes) == len(variants) and base not in hashes
    # Same content, different memory: same hash.
    assert payload(1, weights=True).hash == base


@pytest.mark.parametrize("rows", [None, (3, 90), np.array([0, 5, 7, 119], dtype=np.int64)])
def test_task_round_trip(rows: Any) -> None:
    t = Task(3, 4, 1, H, plan(), (5, 6, 9), rows)
    got = decode(through_wire(t.to_message()))
    assert isinstance(got, Task)
    assert (got.job_id, got.task_id, got.attempt, got.dataset) == (3, 4, 1, H)
    assert got.plan == t.plan  # including a seed beyond 64 bits and the class weights
    assert got.indices == (5, 6, 9)
    if isinstance(rows, np.ndarray):
        assert isinstance(got.rows, np.ndarray)
        np.testing.assert_array_equal(got.rows, rows)
    else:
        assert got.rows == rows


def test_result_round_trip_is_bit_exact() -> None:
    trees = fitted_trees(3)
    assert any(t.cat_left.shape[0] > 0 for t in trees), "want categorical splits covered"
    got = decode(through_wire(Result(1, 2, 0, tuple(trees)).to_message()))
    assert isinstance(got, Result)
    assert (got.job_id, got.task_id, got.attempt) == (1, 2, 0)
    assert len(got.trees) == 3
    for a, b in zip(got.trees, trees, strict=True):
        assert_same_tree(a, b)


# --------------------------------------------------------------------------- strict decoding


def expect_error(msg: Message, field: str | None, words: str) -> MessageError:
    with pytest.raises(MessageError) as info:
        decode(msg)
    err = info.value
    assert isinstance(err, ProtocolError)
    assert err.msg_type == msg.type
    assert err.field == field
    assert msg.type in str(err) and words in str(err)
    return err


def test_unknown_type_is_refused() -> None:
    expect_error(Message("shutdown", {}), None, "unknown message type")


def test_unexpected_type_is_refused_where_it_does_not_belong() -> None:
    with pytest.raises(MessageError, match="not expected here"):
        decode(Heartbeat(0, 0, 1).to_message(), expect=("register",))


def test_missing_field() -> None:
    fields = Register("w", 2).to_message().fields
    del fields["slots"]
    expect_error(Message("register", fields), "slots", "missing")


def test_unexpected_field() -> None:
    fields = {**Heartbeat(0, 0, 1).to_message().fields, "extra": 1}
    expect_error(Message("heartbeat", fields), "extra", "unexpected field")


@pytest.mark.parametrize(
    ("msg_type", "fields", "field", "words"),
    [
        ("register", {"name": "w", "slots": "4", "datasets": [], "version": 1}, "slots",
         "must be an integer"),
        ("register", {"name": "w", "slots": 0, "datasets": [], "version": 1}, "slots",
         "must be in [1, 4096]"),
        ("register", {"name": "", "slots": 1, "datasets": [], "version": 1}, "name",
         "must not be empty"),
        ("register", {"name": "w", "slots": 1, "datasets": ["xyz"], "version": 1}, "datasets",
         "sha256"),
        ("register", {"name": "w", "slots": True, "datasets": [], "version": 1}, "slots",
         "must be an integer"),
        ("heartbeat", {"running": -1, "queued": 0, "free": 0}, "running", ">= 0"),
        ("cancel", {"job_id": 1, "task_ids": [1, "2"]}, "task_ids", "entry 1"),
        ("bye", {"reason": 5}, "reason", "must be a string"),
        ("failed", {"job_id": 1, "task_id": 1, "attempt": 0, "reason": "oops", "detail": ""},
         "reason", "must be one of"),
        ("welcome", {"name": "w", "heartbeat_interval": 0}, "heartbeat_interval", "(0, 3600]"),
    ],
)
def test_ill_typed_fields(msg_type: str, fields: dict[str, Any], field: str, words: str) -> None:
    expect_error(Message(msg_type, fields), field, words)


def task_fields(**changes: Any) -> dict[str, Any]:
    fields = Task(1, 2, 0, H, plan(), (0, 1)).to_message().fields
    fields.update(changes)
    return fields


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"dataset": "AB" * 32}, "dataset", "lowercase hex"),
        ({"indices": []}, "indices", "must not be empty"),
        ({"indices": [1, 1]}, "indices", "must not repeat"),
        ({"indices": [-1]}, "indices", "entry 0"),
        ({"rows": [5, 5]}, "rows", "start < stop"),
        ({"rows": "all"}, "rows", "must be null"),
        ({"attempt": 1.5}, "attempt", "must be an integer"),
        ({"plan": [1]}, "plan", "must be an object"),
    ],
)
def test_bad_task_fields(changes: dict[str, Any], field: str, words: str) -> None:
    expect_error(Message("task", task_fields(**changes)), field, words)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("max_depth", 0, "integer >= 1"),
        ("seed", "-5", "decimal string"),
        ("seed", 5.0, "decimal string"),
        ("criterion", "gain", "one of"),
        ("bootstrap", 1, "boolean"),
        ("min_impurity_decrease", "0", "finite number"),
        ("class_weight", ["a"], "array of numbers"),
        ("feature_subspace", 0, "null or an integer"),
    ],
)
def test_bad_plan_fields_name_the_plan_key(key: str, value: Any, words: str) -> None:
    fields = task_fields()
    fields["plan"] = {**fields["plan"], key: value}
    expect_error(Message("task", fields), f"plan.{key}", words)


def test_plan_with_missing_keys() -> None:
    fields = task_fields()
    del fields["plan"]["seed"]
    expect_error(Message("task", fields), "plan", "missing ['seed']")


def dataset_message(**arrays: Any) -> Message:
    msg = payload(2, weights=True).to_message()
    names = list(msg.fields["arrays"])
    values = dict(zip(names, msg.arrays, strict=True))
    for k, v in arrays.items():
        if v is None:
            del values[k]
        else:
            values[k] = v
    return Message("dataset", {"hash": msg.fields["hash"], "arrays": list(values)},
                   list(values.values()))


def test_dataset_arrays_are_checked() -> None:
    p = payload(2, weights=True)
    expect_error(dataset_message(codes=p.codes.astype(np.int16)), "arrays['codes']", "dtype")
    expect_error(dataset_message(y=p.y[:-1]), "arrays['y']", "axis 0 has length")
    expect_error(dataset_message(y=p.y.astype(np.int32)), "arrays['y']", "dtype")
    expect_error(dataset_message(n_bins=None), "arrays['n_bins']", "missing")
    bad_w = p.sample_weight.copy()  # type: ignore[union-attr]
    bad_w[3] = -1.0
    expect_error(dataset_message(sample_weight=bad_w), "arrays['sample_weight']", "non-negative")
    codes = p.codes.copy()
    codes[2, 7] = int(p.n_bins[2]) + 1
    expect_error(dataset_message(codes=codes), "arrays['codes']", "feature 2 has code")
    expect_error(dataset_message(extra=np.zeros(2)), "arrays['extra']", "unexpected array")
    counts = np.array([e.size for e in p.edges], dtype=np.int64)
    counts[0] += 1
    expect_error(dataset_message(edge_counts=counts), "arrays['edge_counts']", "n_bins - 1")


def test_array_names_must_match_the_arrays() -> None:
    msg = payload(0).to_message()
    bad = Message("dataset", {"hash": msg.fields["hash"], "arrays": msg.fields["arrays"][:-1]},
                  msg.arrays)
    expect_error(bad, "arrays", "names")


def test_result_arrays_are_checked() -> None:
    msg = Result(1, 2, 0, tuple(fitted_trees(2))).to_message()
    names = list(msg.fields["arrays"])
    arrays = dict(zip(names, msg.arrays, strict=True))

    def variant(**changes: Any) -> Message:
        values = {**arrays, **changes}
        return Message("result", {**msg.fields, "arrays": list(values)}, list(values.values()))

    expect_error(variant(feature=arrays["feature"].astype(np.int64)), "arrays['feature']", "dtype")
    counts = arrays["node_counts"].copy()
    counts[0] += 1
    expect_error(variant(node_counts=counts), "arrays", "malformed")
    left = arrays["left"].copy()
    left[0] = 10**6
    expect_error(variant(left=left), "arrays", "malformed")
    expect_error(variant(node_counts=np.zeros(0, np.int64), cat_counts=np.zeros(0, np.int64)),
                 "arrays['node_counts']", "at least one tree")


def test_dataclasses_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Register("w", 1).slots = 2  # type: ignore[misc]
