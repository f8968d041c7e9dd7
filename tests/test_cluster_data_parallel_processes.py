"""Data mode end to end: a CLI master and CLI workers that read the partitions themselves."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from cluster_helpers import HOST, TEST_TIMEOUT, TOKEN, finish, processes
from forest_helpers import assert_same_forest
from test_data_partitions import _lines, _write

from aioforest import Partitions, RandomForestClassifier, load

N_ROWS = 900


async def _run(tmp_path: Path, cut: list[int], faults: list[list[str]]) -> tuple[str, Path]:
    """Real partitions under ``real/``, garbage under ``decoy/`` with the same names: the
    master lists the decoys (never opening one), the workers read ``real/``."""
    _write(tmp_path / "real", _lines(N_ROWS), cut)
    (tmp_path / "decoy").mkdir()
    for path in (tmp_path / "real").iterdir():
        (tmp_path / "decoy" / path.name).write_text("not,the data\n\x00garbage")
    token_file = tmp_path / "token"
    token_file.write_bytes(TOKEN + b"\n")
    model = tmp_path / "model.aiof"
    async with asyncio.timeout(TEST_TIMEOUT), processes() as procs:
        master = await procs.spawn(
            "-m", "aioforest.master", "--data", str(tmp_path / "decoy" / "part-*.csv"),
            "--mode", "data", "--trees", "6", "--seed", "5", "--max-features", "2",
            "--workers", str(len(faults)), "--token-file", str(token_file),
            "--out", str(model), "--quiet",
        )
        assert master.stdout is not None
        line = (await master.stdout.readline()).decode()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert match, line
        for i, fault in enumerate(faults):
            await procs.spawn("-m", "aioforest.worker", "--connect", f"{HOST}:{match[1]}",
                              "--token-file", str(token_file), "--name", f"w{i}",
                              "--processes", "1", "--data-root", str(tmp_path / "real"),
                              *fault)
        code, out, err = await finish(master)
    assert code == 0, err
    return out, model


def _local(tmp_path: Path) -> RandomForestClassifier:
    forest = RandomForestClassifier(n_estimators=6, random_state=5, max_features=2)
    return forest.fit(Partitions(str(tmp_path / "real" / "part-*.csv")))


@pytest.mark.asyncio
@pytest.mark.parametrize("cut", [[300, 600], [100, 0, 250, 50, 200, 1, 299]],
                         ids=["2 files", "7 files"])
async def test_cli_data_mode_saves_the_model_of_the_local_fit(
    tmp_path: Path, cut: list[int]
) -> None:
    out, model = await _run(tmp_path, cut, [[], []])
    assert re.search(rf"trained 6 trees on {N_ROWS} rows x 4 features in {len(cut)} "
                     r"partitions .*\(mode data\)", out), out
    assert re.search(r"data-parallel: \d+ histogram rounds", out), out
    assert_same_forest(load(model), _local(tmp_path))


@pytest.mark.asyncio
async def test_cli_data_mode_survives_a_worker_killed_mid_fit(tmp_path: Path) -> None:
    # The third worker SIGKILLs itself on its 12th operation (a level of the first batch).
    crash = ["--inject-fault", "crash-on-part-op=12"]
    out, model = await _run(tmp_path, [200, 200, 200, 300], [[], [], crash])
    moved = re.search(r"(\d+) partitions moved after worker losses", out)
    assert moved and int(moved[1]) >= 1, out
    assert re.search(r"faults: 1 workers lost", out), out
    assert_same_forest(load(model), _local(tmp_path))
