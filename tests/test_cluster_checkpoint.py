"""Cluster checkpoints: durable tree files, exact resume, loud refusal of anything doubtful."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from forest_helpers import assert_same_tree

import aioforest
from aioforest import datasets
from aioforest.cluster import _checkpoint as ckpt
from aioforest.cluster._checkpoint import (
    JOB_FILE,
    JOB_KIND,
    TREE_KIND,
    Checkpoint,
    CheckpointError,
    job_spec,
    spec_digest,
    tree_file_name,
)
from aioforest.persistence import _container as container
from aioforest.tree import TreeArrays

DATA = hashlib.sha256(b"iris").hexdigest()
OTHER_DATA = hashlib.sha256(b"not iris").hexdigest()


@pytest.fixture(scope="module")
def forest() -> Any:
    model = aioforest.RandomForestClassifier(n_estimators=4, random_state=0)
    return model.fit(datasets.load_iris())


@pytest.fixture(scope="module")
def trees(forest: Any) -> list[TreeArrays]:
    return list(forest.trees_)


def make_spec(forest: Any, **changes: Any) -> dict[str, Any]:
    params = dict(forest.get_params())
    params.update(changes.pop("params", {}))
    args: dict[str, Any] = {
        "data_hashes": [DATA],
        "plan": forest.plan_.to_json(),
        "params": params,
        "indices": range(4),
        "mode": "model",
        "n_shards": None,
    }
    args.update(changes)
    return job_spec(**args)


@pytest.fixture
def spec(forest: Any) -> dict[str, Any]:
    return make_spec(forest)


def saved(directory: Path, spec: dict[str, Any], trees: list[TreeArrays],
          indices: list[int]) -> None:
    """A checkpoint in ``directory`` holding ``indices`` (closed again)."""
    with Checkpoint.open(directory, spec) as cp:
        for i in indices:
            cp.write_tree(i, trees[i])


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# --- creating, writing, resuming --------------------------------------------------------

def test_new_checkpoint_layout(tmp_path: Path, spec: dict[str, Any],
                               trees: list[TreeArrays]) -> None:
    d = tmp_path / "a" / "ckpt"
    with Checkpoint.open(d, spec) as cp:
        assert cp.directory == d
        assert not cp.resumed
        assert cp.trees == {}
        assert cp.missing == [0, 1, 2, 3]
        assert sorted(os.listdir(d)) == [".lock", JOB_FILE]
        kind, meta, arrays = container.read(d / JOB_FILE)
        assert kind == JOB_KIND
        assert meta == {"spec": spec, "digest": spec_digest(spec)}
        assert arrays == {}
        assert (d / ".lock").read_text().strip() == str(os.getpid())

        cp.write_tree(2, trees[2])
        assert cp.missing == [0, 1, 3]
        assert sorted(os.listdir(d)) == [".lock", JOB_FILE, "tree-000002.aiof"]
        kind, meta, arrays = container.read(d / "tree-000002.aiof")
        assert kind == TREE_KIND
        assert meta == {"job": spec_digest(spec), "index": 2}
        assert set(arrays) == set(trees[2].arrays())
    assert (d / "tree-000002.aiof").read_bytes()[:8] == container.MAGIC  # never pickle


def test_existing_empty_directory_gets_a_checkpoint(tmp_path: Path,
                                                    spec: dict[str, Any]) -> None:
    with Checkpoint.open(tmp_path, spec, resume="new") as cp:
        assert not cp.resumed
    assert (tmp_path / JOB_FILE).is_file()


def test_resume_gives_the_same_trees(tmp_path: Path, spec: dict[str, Any],
                                     trees: list[TreeArrays]) -> None:
    saved(tmp_path, spec, trees, [0, 2])
    with Checkpoint.open(tmp_path, spec, resume="require") as cp:
        assert cp.resumed
        assert sorted(cp.trees) == [0, 2]
        assert cp.missing == [1, 3]
        for i, tree in cp.trees.items():
            assert_same_tree(tree, trees[i], where=f"tree {i}: ")
            assert all(a.flags.writeable for a in tree.arrays().values())
        cp.write_trees({1: trees[1], 3: trees[3]})
        assert cp.missing == []
    with Checkpoint.open(tmp_path, spec) as cp:
        assert cp.missing == []
        resumed = [cp.trees[i] for i in range(4)]
    for i, (a, b) in enumerate(zip(resumed, trees, strict=True)):
        assert_same_tree(a, b, where=f"tree {i}: ")


def test_writing_a_tree_twice_is_harmless(tmp_path: Path, spec: dict[str, Any],
                                          trees: list[TreeArrays]) -> None:
    with Checkpoint.open(tmp_path, spec) as cp:
        cp.write_tree(1, trees[1])
        cp.write_tree(1, trees[1])
        assert cp.missing == [0, 2, 3]
    with Checkpoint.open(tmp_path, spec) as cp:
        assert_same_tree(cp.trees[1], trees[1])
    assert sorted(os.listdir(tmp_path)) == [".lock", JOB_FILE, "tree-000001.aiof"]


def test_bad_writes_are_refused(tmp_path: Path, spec: dict[str, Any],
                                trees: list[TreeArrays]) -> None:
    with Checkpoint.open(tmp_path, spec) as cp:
        with pytest.raises(ValueError, match=r"tree 7 is not one of this job's trees \(0-3\)"):
            cp.write_tree(7, trees[0])
        with pytest.raises(ValueError, match="integer"):
            cp.write_tree(True, trees[0])
        wrong = TreeArrays.from_arrays(
            {**trees[0].arrays(), "threshold": trees[0].threshold.astype(np.float32)}
        )
        with pytest.raises(ValueError, match="'threshold' is <f4"):
            cp.write_tree(0, wrong)
        # A bad tree anywhere in a batch writes nothing of the batch.
        with pytest.raises(ValueError, match="not one of this job's trees"):
            cp.write_trees([(0, trees[0]), (9, trees[1])])
        assert cp.missing == [0, 1, 2, 3]
    assert sorted(os.listdir(tmp_path)) == [".lock", JOB_FILE]


def test_write_after_close_is_refused(tmp_path: Path, spec: dict[str, Any],
                                      trees: list[TreeArrays]) -> None:
    cp = Checkpoint.open(tmp_path, spec)
    cp.close()
    cp.close()
    with pytest.raises(RuntimeError, match="closed"):
        cp.write_tree(0, trees[0])


def test_batch_write_syncs_the_directory_once(tmp_path: Path, spec: dict[str, Any],
                                              trees: list[TreeArrays],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[Path] = []
    real = ckpt.fsync_dir

    def counting(directory: Path) -> None:
        synced.append(directory)
        real(directory)

    with Checkpoint.open(tmp_path, spec) as cp:
        monkeypatch.setattr(ckpt, "fsync_dir", counting)
        cp.write_trees(dict(enumerate(trees)))
        assert synced == [tmp_path]
        cp.write_tree(0, trees[0])
        assert synced == [tmp_path, tmp_path]


def test_concurrent_writes_from_threads(tmp_path: Path, spec: dict[str, Any],
                                        trees: list[TreeArrays]) -> None:
    with Checkpoint.open(tmp_path, spec) as cp, ThreadPoolExecutor(4) as pool:
        list(pool.map(cp.write_tree, range(4), trees))
        assert cp.missing == []
    with Checkpoint.open(tmp_path, spec) as cp:
        for i in range(4):
            assert_same_tree(cp.trees[i], trees[i])


def test_a_failed_write_leaves_no_file(tmp_path: Path, spec: dict[str, Any],
                                       trees: list[TreeArrays],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with Checkpoint.open(tmp_path, spec) as cp:
        def broken_fsync(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fsync", broken_fsync)
        with pytest.raises(OSError, match="Input/output error"):
            cp.write_tree(0, trees[0])
        monkeypatch.undo()
        assert cp.missing == [0, 1, 2, 3]
    assert sorted(os.listdir(tmp_path)) == [".lock", JOB_FILE]


# --- a killed write ---------------------------------------------------------------------

def test_partial_temporary_file_of_a_killed_write_is_removed(
    tmp_path: Path, spec: dict[str, Any], trees: list[TreeArrays]
) -> None:
    saved(tmp_path, spec, trees, [0])
    payload = container.dumps(TREE_KIND, {"job": spec_digest(spec), "index": 1},
                              trees[1].arrays())
    temp = tmp_path / ".tree-000001.aiof.k1ll3d.tmp"
    temp.write_bytes(payload[: len(payload) // 2])  # kill -9 in the middle of the write
    with Checkpoint.open(tmp_path, spec) as cp:
        assert cp.missing == [1, 2, 3]
        assert not temp.exists()


def test_directory_with_only_a_temporary_job_file_counts_as_empty(
    tmp_path: Path, spec: dict[str, Any]
) -> None:
    (tmp_path / ".job.aiof.a8b9c0.tmp").write_bytes(b"AIOF")  # killed while creating
    (tmp_path / ".lock").write_text("12345\n")  # and its lock file
    with pytest.raises(CheckpointError, match="nothing to resume"):
        Checkpoint.open(tmp_path, spec, resume="require")
    with Checkpoint.open(tmp_path, spec) as cp:
        assert not cp.resumed
    assert sorted(os.listdir(tmp_path)) == [".lock", JOB_FILE]


# --- refusing another job ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"data_hashes": [OTHER_DATA]},
         f"data: checkpoint was made on data {DATA[:12]}..., this job's data is "
         f"{OTHER_DATA[:12]}... (the data changed)"),
        ({"params": {"max_depth": 5}}, "parameter max_depth: checkpoint None, this job 5"),
        ({"indices": range(8)}, "trees: checkpoint covers trees 0-3, this job 0-7"),
        ({"mode": "data"}, "mode: checkpoint 'model', this job 'data'"),
        ({"n_shards": 3}, "n_shards: checkpoint None, this job 3"),
    ],
    ids=["data", "parameter", "indices", "mode", "n_shards"],
)
def test_another_job_is_refused(tmp_path: Path, forest: Any, spec: dict[str, Any],
                                trees: list[TreeArrays], changes: dict[str, Any],
                                expected: str) -> None:
    saved(tmp_path, spec, trees, [0])
    other = make_spec(forest, **changes)
    with pytest.raises(CheckpointError) as info:
        Checkpoint.open(tmp_path, other)
    message = str(info.value)
    assert f"checkpoint {tmp_path} was made for another job" in message
    assert expected in message
    assert "delete the directory to start over" in message
    # Refusing touches nothing: the original job still resumes.
    with Checkpoint.open(tmp_path, spec) as cp:
        assert cp.missing == [1, 2, 3]


def test_every_difference_is_listed(tmp_path: Path, forest: Any, spec: dict[str, Any]) -> None:
    saved(tmp_path, spec, [], [])
    other = make_spec(forest, data_hashes=[OTHER_DATA], indices=range(2),
                      params={"criterion": "entropy", "max_features": None})
    with pytest.raises(CheckpointError) as info:
        Checkpoint.open(tmp_path, other)
    message = str(info.value)
    for part in ("data: checkpoint", "trees: checkpoint covers trees 0-3, this job 0-1",
                 "parameter criterion: checkpoint 'gini', this job 'entropy'",
                 "parameter max_features: checkpoint 'sqrt', this job None"):
        assert part in message


def test_a_new_seed_explains_random_state_none(tmp_path: Path, forest: Any) -> None:
    plan = forest.plan_.to_json()
    first = make_spec(forest, params={"random_state": None}, plan={**plan, "seed": 11})
    second = make_spec(forest, params={"random_state": None}, plan={**plan, "seed": 12})
    saved(tmp_path, first, [], [])
    with pytest.raises(CheckpointError, match=r"(?s)plan seed: checkpoint 11, this job 12 "
                       r"\(random_state=None draws a new seed"):
        Checkpoint.open(tmp_path, second)


def test_n_jobs_does_not_identify_the_job(tmp_path: Path, forest: Any,
                                          spec: dict[str, Any]) -> None:
    saved(tmp_path, spec, [], [])
    with Checkpoint.open(tmp_path, make_spec(forest, params={"n_jobs": 2})) as cp:
        assert cp.resumed


def test_resume_new_refuses_an_existing_checkpoint(tmp_path: Path, spec: dict[str, Any],
                                                   trees: list[TreeArrays]) -> None:
    saved(tmp_path, spec, trees, [0])
    with pytest.raises(CheckpointError, match=r"already holds a checkpoint: pass --resume"):
        Checkpoint.open(tmp_path, spec, resume="new")


def test_resume_require_needs_a_checkpoint(tmp_path: Path, spec: dict[str, Any]) -> None:
    with pytest.raises(CheckpointError, match=re.escape(f"nothing to resume in {tmp_path}")):
        Checkpoint.open(tmp_path, spec, resume="require")
    missing = tmp_path / "never"
    with pytest.raises(CheckpointError, match=r"nothing to resume .* does not exist"):
        Checkpoint.open(missing, spec, resume="require")
    assert not missing.exists()
    assert os.listdir(tmp_path) == []


def test_unrelated_directory_is_refused(tmp_path: Path, spec: dict[str, Any]) -> None:
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(CheckpointError, match=r"not empty and not a checkpoint .*thesis\.tex"):
        Checkpoint.open(tmp_path, spec)
    assert os.listdir(tmp_path) == ["thesis.tex"]  # not even a lock file
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="exists and is not a directory"):
        Checkpoint.open(tmp_path / "file", spec)


def test_unknown_files_in_a_checkpoint_are_left_alone(tmp_path: Path, spec: dict[str, Any],
                                                      trees: list[TreeArrays]) -> None:
    saved(tmp_path, spec, trees, [0])
    (tmp_path / "notes.txt").write_text("resume me tomorrow")
    with Checkpoint.open(tmp_path, spec) as cp:
        assert cp.missing == [1, 2, 3]
    assert (tmp_path / "notes.txt").read_text() == "resume me tomorrow"


# --- refusing damaged or foreign files --------------------------------------------------

def refused(directory: Path, spec: dict[str, Any], *parts: str) -> str:
    with pytest.raises(CheckpointError) as info:
        Checkpoint.open(directory, spec)
    message = str(info.value)
    for part in parts:
        assert part in message, message
    return message


def test_truncated_tree_file_is_refused(tmp_path: Path, spec: dict[str, Any],
                                        trees: list[TreeArrays]) -> None:
    saved(tmp_path, spec, trees, [0, 1])
    path = tmp_path / "tree-000001.aiof"
    path.write_bytes(path.read_bytes()[:-100])
    refused(tmp_path, spec, str(path), "damaged or truncated", "delete that file")
    assert path.exists()  # refused, not deleted


def test_flipped_byte_in_tree_file_is_refused(tmp_path: Path, spec: dict[str, Any],
                                              trees: list[TreeArrays]) -> None:
    saved(tmp_path, spec, trees, [0, 1])
    path = tmp_path / "tree-000000.aiof"
    flip_byte(path, len(path.read_bytes()) // 2)
    refused(tmp_path, spec, str(path), "checksum mismatch")


def test_tree_file_of_another_job_is_refused(tmp_path: Path, forest: Any,
                                             spec: dict[str, Any],
                                             trees: list[TreeArrays]) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    saved(mine, spec, trees, [0])
    saved(theirs, make_spec(forest, data_hashes=[OTHER_DATA]), trees, [1])
    shutil.copy(theirs / "tree-000001.aiof", mine / "tree-000001.aiof")
    refused(mine, spec, str(mine / "tree-000001.aiof"), "belongs to another job")


def test_renamed_tree_file_is_refused(tmp_path: Path, spec: dict[str, Any],
                                      trees: list[TreeArrays]) -> None:
    saved(tmp_path, spec, trees, [1])
    os.rename(tmp_path / "tree-000001.aiof", tmp_path / "tree-000003.aiof")
    refused(tmp_path, spec, str(tmp_path / "tree-000003.aiof"),
            "holds tree 1 but its name says tree 3")
    os.rename(tmp_path / "tree-000003.aiof", tmp_path / "tree-1.aiof")  # not the usual name
    refused(tmp_path, spec, str(tmp_path / "tree-1.aiof"), "holds tree 1 but its name says")


def test_tree_outside_the_job_is_refused(tmp_path: Path, spec: dict[str, Any],
                                         trees: list[TreeArrays]) -> None:
    saved(tmp_path, spec, trees, [])
    path = tmp_path / tree_file_name(9)
    path.write_bytes(container.dumps(TREE_KIND, {"job": spec_digest(spec), "index": 9},
                                     trees[0].arrays()))
    refused(tmp_path, spec, str(path), "holds tree 9, which is not one of this job's trees")


def test_invalid_tree_arrays_are_refused(tmp_path: Path, spec: dict[str, Any],
                                         trees: list[TreeArrays]) -> None:
    saved(tmp_path, spec, trees, [])
    arrays = trees[2].arrays()
    arrays["left"] = np.zeros_like(arrays["left"])  # children pointing at the root
    path = tmp_path / tree_file_name(2)
    path.write_bytes(container.dumps(TREE_KIND, {"job": spec_digest(spec), "index": 2}, arrays))
    refused(tmp_path, spec, str(path), "tree child")
    arrays = {**trees[2].arrays(), "feature": trees[2].feature.astype(np.int64)}
    path.write_bytes(container.dumps(TREE_KIND, {"job": spec_digest(spec), "index": 2}, arrays))
    refused(tmp_path, spec, str(path), "'feature' is <i8")


def test_damaged_job_file_is_refused(tmp_path: Path, spec: dict[str, Any],
                                     trees: list[TreeArrays]) -> None:
    saved(tmp_path, spec, trees, [0])
    job = tmp_path / JOB_FILE
    good = job.read_bytes()
    flip_byte(job, 30)
    refused(tmp_path, spec, str(job), "checksum mismatch", "delete the directory")
    job.write_bytes(good[:20])
    refused(tmp_path, spec, str(job), "too short")
    shutil.copy(tmp_path / "tree-000000.aiof", job)  # not a job file at all
    refused(tmp_path, spec, str(job), "expected a 'aioforest.checkpoint.job'")
    forged = {"spec": spec, "digest": "0" * 64}  # a spec that does not match its digest
    job.write_bytes(container.dumps(JOB_KIND, forged, {}))
    refused(tmp_path, spec, str(job), "does not match its digest")


def test_tree_files_without_job_file_are_refused(tmp_path: Path, spec: dict[str, Any],
                                                 trees: list[TreeArrays]) -> None:
    saved(tmp_path, spec, trees, [0])
    (tmp_path / JOB_FILE).unlink()
    refused(tmp_path, spec, str(tmp_path), f"holds tree files but no {JOB_FILE}")


# --- one master at a time ---------------------------------------------------------------

def test_lock_refuses_a_second_open(tmp_path: Path, spec: dict[str, Any]) -> None:
    first = Checkpoint.open(tmp_path, spec)
    try:
        with pytest.raises(CheckpointError, match=f"in use by process {os.getpid()}"):
            Checkpoint.open(tmp_path, spec)
    finally:
        first.close()
    with Checkpoint.open(tmp_path, spec) as second:  # released by close
        assert second.resumed


# --- the spec ---------------------------------------------------------------------------

def test_the_spec_refuses_a_parameter_it_cannot_encode_and_names_it(forest: Any) -> None:
    class Thing:
        pass

    with pytest.raises(TypeError, match=r"parameter 'class_weight'\[1\]: .*Thing"):
        make_spec(forest, params={"class_weight": {0: 1.0, 1: Thing()}})


def test_job_spec_checks_its_arguments(forest: Any) -> None:
    with pytest.raises(ValueError, match="distinct"):
        make_spec(forest, indices=[0, 1, 1])
    with pytest.raises(ValueError, match="at least one tree"):
        make_spec(forest, indices=[])
    with pytest.raises(ValueError, match="data_hashes"):
        make_spec(forest, data_hashes=[])
    spec = make_spec(forest, indices=[3, 1, 2])
    assert spec["trees"] == [1, 2, 3]
    assert spec["aioforest"] == aioforest.__version__
    assert "n_jobs" not in spec["params"]
    assert spec_digest(spec) == spec_digest(orjson.loads(orjson.dumps(spec)))
    with pytest.raises(ValueError, match="resume must be"):
        Checkpoint.open("unused", spec, resume="yes")  # type: ignore[arg-type]


def _as_version(path: Path, version: int) -> None:
    """Rewrite a container file as another format version, checksum resealed."""
    data = bytearray(path.read_bytes())
    data[8:12] = version.to_bytes(4, "big")
    body = bytes(data[:-32])
    path.write_bytes(body + hashlib.sha256(body).digest())


def test_a_checkpoint_of_the_old_format_is_refused_saying_why(
    tmp_path: Path, spec: dict[str, Any], trees: list[TreeArrays]
) -> None:
    # Format 1 trees came from another bootstrap: a resume would mix two forests.
    saved(tmp_path, spec, trees, [0])
    _as_version(tmp_path / JOB_FILE, 1)
    refused(tmp_path, spec, str(tmp_path / JOB_FILE), "format version 1",
            "grown by other rules", "without --resume")
