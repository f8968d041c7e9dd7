"""The process pool never outlives its owner, however the owner dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

OWNER = """
import os, sys
import numpy as np
from aioforest import RandomForestClassifier
X = np.random.default_rng(0).normal(size=(300, 4))
y = (X[:, 0] > 0).astype(int)
RandomForestClassifier(n_estimators=4, n_jobs=2, random_state=0).fit(X, y)
print(os.getpid(), flush=True)
sys.stdin.read()  # wait until killed
"""


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pool_processes_exit_when_the_owner_is_killed() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", OWNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    ) as owner:
        _check_children_exit(owner)


def _check_children_exit(owner: subprocess.Popen[str]) -> None:
    try:
        assert owner.stdout is not None
        pid = int(owner.stdout.readline())
        helpers = _descendants(pid)
        assert len(helpers) >= 3  # forkserver, its pool processes, the resource tracker
        os.kill(pid, signal.SIGKILL)
        owner.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in helpers) and time.monotonic() < deadline:
            time.sleep(0.1)  # polling a condition with a deadline, not a fixed sleep
        assert [p for p in helpers if _alive(p)] == []
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
