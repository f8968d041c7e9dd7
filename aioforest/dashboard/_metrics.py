"""The status view in Prometheus' text exposition format (version 0.0.4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["CONTENT_TYPE", "metrics_text"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Sample = tuple[Mapping[str, str], float]

_WORKER_METRICS = (
    # (name, type, help, key of a worker in the view)
    ("aioforest_worker_slots", "gauge", "Task slots of the worker.", "slots"),
    ("aioforest_worker_running_tasks", "gauge", "Tasks the worker holds now.", "running"),
    ("aioforest_worker_trees_done_total", "counter", "Trees the worker delivered.",
     "trees_done"),
    ("aioforest_worker_heartbeat_age_seconds", "gauge",
     "Seconds since the worker last sent anything.", "heartbeat_age_s"),
    ("aioforest_worker_bytes_sent_total", "counter",
     "Bytes sent to the worker, compressed.", "bytes_sent"),
    ("aioforest_worker_bytes_received_total", "counter",
     "Bytes received from the worker, compressed.", "bytes_received"),
)

_FAULT_HELP = {
    "workers_lost": "Workers lost without saying goodbye.",
    "retries": "Task copies requeued after a worker was lost.",
    "backups": "Backup copies of slow tasks started.",
    "backups_won": "Backup copies that finished first.",
    "discarded_results": "Results discarded (duplicates, superseded or cancelled copies).",
    "cancels_sent": "Cancels sent to workers.",
    "auth_failures": "Connections refused by the handshake.",
}


def metrics_text(view: Mapping[str, Any]) -> str:
    """The :func:`~aioforest.dashboard.status_view` ``view`` as Prometheus metrics.

    Cluster-wide figures have no labels; per-worker ones carry ``worker``, per-fit ones
    ``fit`` and ``mode`` (not ``job``: Prometheus gives its targets that label). Counters
    end in ``_total`` and only grow while the master runs (a fit's own counters start
    again with each fit, under a new ``fit`` label).
    """
    jobs, workers = view["jobs"], view["workers"]
    out: list[str] = []
    _family(out, "aioforest_workers", "gauge", "Workers connected.", [({}, len(workers))])
    _family(out, "aioforest_jobs", "gauge", "Fits running.", [({}, len(jobs))])
    _family(out, "aioforest_trees_done", "gauge", "Trees done in the running fits.",
            [({}, sum(j["trees_done"] for j in jobs))])
    _family(out, "aioforest_trees", "gauge", "Trees of the running fits.",
            [({}, sum(j["trees"] for j in jobs))])
    _family(out, "aioforest_trees_fitted_total", "counter",
            "Trees received from workers since the master started.",
            [({}, view["trees_fitted"])])
    _family(out, "aioforest_trees_resumed_total", "counter",
            "Trees loaded from checkpoints instead of fitted.", [({}, view["trees_resumed"])])
    _family(out, "aioforest_datasets_sent_total", "counter",
            "Datasets shipped to workers.", [({}, view["datasets_sent"])])
    b = view["bytes"]
    _family(out, "aioforest_bytes_sent_total", "counter", "Bytes sent to workers.",
            [({"encoding": "wire"}, b["sent_wire"]), ({"encoding": "raw"}, b["sent_raw"])])
    _family(out, "aioforest_bytes_received_total", "counter", "Bytes received from workers.",
            [({"encoding": "wire"}, b["received_wire"]),
             ({"encoding": "raw"}, b["received_raw"])])
    for key, text in _FAULT_HELP.items():
        _family(out, f"aioforest_{key}_total", "counter", text, [({}, view["faults"][key])])
    tasks = view["tasks"]
    _family(out, "aioforest_tasks", "gauge", "Tasks of the running fits by state.",
            [({"state": state}, tasks.get(state, 0)) for state in ("queued", "running")])
    _family(out, "aioforest_tasks_done_total", "counter", "Tasks finished, over all fits.",
            [({}, tasks.get("done_total", 0))])
    for name, kind, text, key in _WORKER_METRICS:
        _family(out, name, kind, text, [({"worker": w["name"]}, w[key]) for w in workers])
    job_labels = [{"fit": str(j["id"]), "mode": j["mode"]} for j in jobs]
    _family(out, "aioforest_job_trees_done", "gauge", "Trees done in the fit.",
            [(lab, j["trees_done"]) for lab, j in zip(job_labels, jobs, strict=True)])
    _family(out, "aioforest_job_trees", "gauge", "Trees of the fit.",
            [(lab, j["trees"]) for lab, j in zip(job_labels, jobs, strict=True)])
    data = [(lab, j) for lab, j in zip(job_labels, jobs, strict=True) if j["mode"] == "data"]
    _family(out, "aioforest_job_rounds_total", "counter",
            "Histogram rounds of a data-parallel fit.", [(lab, j["rounds"]) for lab, j in data])
    _family(out, "aioforest_job_histogram_bytes_total", "counter",
            "Histogram bytes a data-parallel fit received.",
            [(lab, j["hist_bytes"]) for lab, j in data])
    return "".join(out)


def _family(out: list[str], name: str, kind: str, text: str, samples: Iterable[Sample]
            ) -> None:
    out.append(f"# HELP {name} {text}\n# TYPE {name} {kind}\n")
    for labels, value in samples:
        out.append(f"{name}{_labels(labels)} {_number(value)}\n")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + body + "}"


def _escape(value: str) -> str:
    """Label values may hold anything a worker named itself: escape as the format says."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"metric values must be numbers, got {value!r}")
    return repr(int(value)) if isinstance(value, int) else repr(float(value))
