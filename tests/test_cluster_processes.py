"""Real processes on loopback: the command lines, LocalCluster, signals, a wrong token."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import pytest
from cluster_helpers import (
    HOST,
    TEST_TIMEOUT,
    TOKEN,
    finish,
    processes,
    python_env,
    small_data,
    step_until,
)
from forest_helpers import assert_same_forest

from aioforest import FitProgress, RandomForestClassifier, load, read_csv
from aioforest.cluster import LocalCluster, Master
from aioforest.datasets import path as dataset_path
from aioforest.master import main as master_main
from aioforest.master import parse_max_features
from aioforest.worker import main as worker_main
from aioforest.worker import parse_address


@pytest.mark.asyncio
async def test_cli_master_and_two_cli_workers_train_the_same_forest_as_fit(
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "token"
    token_file.write_bytes(TOKEN + b"\n")
    model = tmp_path / "model.aiof"
    data = str(dataset_path("iris_headers.csv"))
    async with asyncio.timeout(TEST_TIMEOUT), processes() as procs:
        master = await procs.spawn(
            "-m", "aioforest.master", "--data", data, "--trees", "20", "--seed", "5",
            "--max-features", "2", "--workers", "2", "--token-file", str(token_file),
            "--out", str(model), "--quiet",
        )
        assert master.stdout is not None
        line = (await master.stdout.readline()).decode()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert match, line
        address = f"{HOST}:{match.group(1)}"
        # One worker reads the token from a file, the other from the environment.
        w1 = await procs.spawn("-m", "aioforest.worker", "--connect", address,
                               "--token-file", str(token_file), "--name", "cli-1")
        w2 = await procs.spawn("-m", "aioforest.worker", "--connect", address,
                               "--processes", "1", "--name", "cli-2",
                               env=python_env(AIOFOREST_TOKEN=TOKEN.decode()))
        code, out, err = await finish(master)
        assert code == 0, err
        # The master says bye at the end: the workers leave on their own, successfully.
        for w in (w1, w2):
            wcode, _, werr = await finish(w)
            assert wcode == 0, werr
    assert "training accuracy: " in out
    tasks = re.search(r"tasks per worker: cli-1: (\d+), cli-2: (\d+)", out)
    assert tasks, out
    assert re.search(r"bytes sent: .* before compression, .* on the wire", out)
    assert f"model saved to {model}" in out
    local = RandomForestClassifier(n_estimators=20, random_state=5, max_features=2)
    local.fit(read_csv(data))
    assert_same_forest(load(model), local)


@pytest.mark.asyncio
async def test_cli_embedded_default_starts_local_workers(tmp_path: Path) -> None:
    model = tmp_path / "m.aiof"
    async with asyncio.timeout(TEST_TIMEOUT), processes() as procs:
        master = await procs.spawn(
            "-m", "aioforest.master", "--trees", "12", "--seed", "3", "--mode", "shards",
            "--shards", "3", "--out", str(model),
        )
        code, out, err = await finish(master)
    assert code == 0, err
    assert "started 2 local workers" in out
    assert "mode shards" in out
    assert re.search(r"tasks per worker: local-1: \d+, local-2: \d+", out), out
    assert re.search(r"trees 12/12 +[\d.]+ trees/s +ETA", err), err  # the progress line
    assert "\r" not in err and err.endswith("\n")  # stderr is a pipe: plain lines for a log
    forest = load(model)
    assert len(forest.trees_) == 12
    iris = read_csv(dataset_path("iris_headers.csv"))
    assert forest.score(iris, iris.y) > 0.9


@pytest.mark.asyncio
async def test_local_cluster_survives_a_killed_worker_and_reaps_its_processes() -> None:
    X, y = small_data(n=300, d=5, seed=2)
    async with asyncio.timeout(TEST_TIMEOUT):
        async with LocalCluster(2) as cluster:
            assert sorted(cluster.master.workers) == ["local-1", "local-2"]
            token = cluster._token
            if sys.platform.startswith("linux"):
                for proc in cluster.processes:
                    cmdline = await asyncio.to_thread(
                        Path(f"/proc/{proc.pid}/cmdline").read_bytes
                    )
                    assert token.encode() not in cmdline  # the token travels by environment
            victim = cluster.processes[1]

            def kill_on_first_tree(p: FitProgress) -> None:
                if p.done == 1:
                    victim.kill()  # SIGKILL mid-job: its tasks must be redone elsewhere

            forest = RandomForestClassifier(n_estimators=30, random_state=7)
            await cluster.master.fit(
                forest, X, y, task_size=1, on_progress=kill_on_first_tree
            )
            status = cluster.master.status()
            procs = list(cluster.processes)
        assert status["workers_lost"] == 1
        assert list(status["workers"]) == ["local-1"]
        assert [p.returncode for p in procs] == [0, -signal.SIGKILL]
    assert_same_forest(forest, RandomForestClassifier(n_estimators=30, random_state=7).fit(X, y))


@pytest.mark.asyncio
async def test_workers_with_a_wrong_or_missing_token_exit_non_zero() -> None:
    async with asyncio.timeout(TEST_TIMEOUT), Master(token=TOKEN) as master, processes() as procs:
        address = f"{HOST}:{master.port}"
        wrong = await procs.spawn("-m", "aioforest.worker", "--connect", address,
                                  env=python_env(AIOFOREST_TOKEN="not the token"))
        missing = await procs.spawn("-m", "aioforest.worker", "--connect", address)
        results = await asyncio.gather(finish(wrong), finish(missing))
        assert master.workers == []
        assert master.status()["auth_failures"] == 2
    for code, _, err in results:
        assert code == 3, err
        assert f"authentication with the master at {address} failed" in err
        assert "rejected our authentication" in err
        assert "AIOFOREST_TOKEN" in err


@pytest.mark.asyncio
async def test_sigterm_makes_a_worker_leave_cleanly() -> None:
    async with asyncio.timeout(TEST_TIMEOUT), Master(token=TOKEN) as master, processes() as procs:
        worker = await procs.spawn(
            "-m", "aioforest.worker", "--connect", f"{HOST}:{master.port}", "--name", "sig",
            "--processes", "1", env=python_env(AIOFOREST_TOKEN=TOKEN.decode()),
        )
        await master.wait_for_workers(1)
        worker.send_signal(signal.SIGTERM)
        code, _, err = await finish(worker)
        assert code == 0, err
        await step_until(lambda: not master.workers)  # it reads the bye, then hangs up
        assert master.status()["workers_lost"] == 0


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for main in (master_main, worker_main):
        with pytest.raises(SystemExit) as info:
            main(["--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert "examples:" in out and "--connect" in out and "--token-file" in out


def test_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        worker_main(["--connect", "nowhere"])
    assert info.value.code == 2
    assert "expected HOST:PORT" in capsys.readouterr().err
    assert master_main(["--data", str(tmp_path / "missing.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        master_main(["--shards", "3"])
    assert "--shards needs --mode shards" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        master_main(["--workers", "2", "--local-workers", "2"])
    assert "not allowed with" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        master_main(["--workers", "2", "--bind", "0.0.0.0"])
    assert "--bind 0.0.0.0 needs a token" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        master_main(["--resume"])
    assert "--resume needs --checkpoint-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        master_main(["--heartbeat-interval", "5", "--heartbeat-timeout", "5"])
    assert "--heartbeat-interval < --heartbeat-timeout" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        worker_main(["--connect", "h:1", "--inject-fault", "explode=1"])
    assert "known faults: crash-on-tree=N, slowdown=F" in capsys.readouterr().err
    # Nothing to resume: a clear error, exit status 1, and nothing created.
    empty = tmp_path / "no-checkpoint"
    assert master_main(["--checkpoint-dir", str(empty), "--resume", "--quiet"]) == 1
    assert "nothing to resume" in capsys.readouterr().err
    assert not empty.exists()


def test_argument_parsers() -> None:
    assert parse_address("10.0.0.5:7341") == ("10.0.0.5", 7341)
    assert parse_address("[::1]:80") == ("::1", 80)
    for bad in ("host", "host:", ":80", "host:99999", "host:x"):
        with pytest.raises(ValueError):
            parse_address(bad)
    assert parse_max_features("sqrt") == "sqrt"
    assert parse_max_features("ALL") is None
    assert parse_max_features("3") == 3
    assert parse_max_features("0.5") == 0.5
