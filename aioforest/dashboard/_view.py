"""A master's status snapshot shaped for the page, ``/status.json`` and ``/metrics``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["status_view"]

#: The fault counters of ``Master.status()`` the page shows, in its order.
FAULTS = ("workers_lost", "retries", "backups", "backups_won", "discarded_results",
          "cancels_sent", "auth_failures")


def status_view(status: Mapping[str, Any], *, now: float) -> dict[str, Any]:
    """``status`` (a :meth:`~aioforest.cluster.Master.status` dict) as the page shows it.

    ``now``: the wall-clock time of the snapshot (``time.time()``), stamped as ``time``.
    ``jobs`` and ``workers`` are lists sorted by id and name; a rate or ETA that cannot be
    known yet (no tree done) is ``None``.
    """
    jobs = [_job("model", job_id, job) for job_id, job in sorted(status["jobs"].items())]
    for fit_id, fit in sorted(status.get("data_fits", {}).items()):
        jobs.append({
            **_job("data", fit_id, fit),
            **{key: fit[key] for key in ("rows", "partitions", "rounds", "levels",
                                         "batches", "hist_bytes")},
        })
    workers = [
        {
            "name": name,
            "address": w["peer"],
            "slots": w["slots"],
            "running": w["outstanding"],
            "trees_done": w["trees_done"],
            "tasks_done": status["tasks_done_by_worker"].get(name, 0),
            "heartbeat_age_s": w["heartbeat_age_s"],
            "bytes_sent": w["bytes_sent_wire"],  # master to worker, compressed
            "bytes_received": w["bytes_received_wire"],
        }
        for name, w in sorted(status["workers"].items())
    ]
    return {
        "time": now,
        "address": status["address"],
        "jobs": jobs,
        "workers": workers,
        "faults": {key: status[key] for key in FAULTS},
        "tasks": dict(status["tasks"]),
        "trees_fitted": status["trees_fitted"],
        "trees_resumed": status["trees_resumed"],
        "datasets_sent": status["datasets_sent"],
        "bytes": dict(status["bytes"]),
    }


def _job(mode: str, job_id: int, job: Mapping[str, Any]) -> dict[str, Any]:
    done, total, elapsed = job["trees_done"], job["trees"], job["elapsed_s"]
    grown = done - job.get("trees_resumed", 0)  # trees from a checkpoint took no time
    rate = grown / elapsed if grown > 0 and elapsed > 0 else None
    return {
        "id": job_id,
        "mode": mode,
        "trees_done": done,
        "trees": total,
        "fraction": done / total if total else 0.0,
        "elapsed_s": elapsed,
        "trees_per_s": rate,
        "eta_s": (total - done) / rate if rate else None,
    }
