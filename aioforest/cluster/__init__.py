"""Training forests on a cluster of TCP workers.

* :class:`Master` -- ``async with Master(...) as master: await master.fit(forest, X, y)``:
  bins the data once, ships each binned dataset once per worker (by content hash),
  schedules tree tasks and collects the trees. Model-parallel fits are bit-identical to a
  local ``fit`` with the same ``random_state``; ``mode="shards"`` trains each tree on one row
  shard (held by ``replicas`` workers). ``await master.cross_validate(forest, data)`` gives
  the same per-fold confusion matrices as :func:`aioforest.cross_validate`, sending the data
  once for all folds. Lost workers' tasks are retried elsewhere, stragglers get backup
  copies, and with ``checkpoint_dir`` every finished tree is on disk at once, so a killed
  master resumes where it stopped (:class:`CheckpointError` if the checkpoint does not fit).
* :class:`Worker` -- ``await Worker(host, port, token).run()``: fits trees in a local process
  pool for a master (``python -m aioforest.worker`` on the command line).
* :class:`LocalCluster` -- a master plus worker subprocesses on this machine (over TLS with
  :class:`ClusterTLS`).
* Data-parallel policy that every backend of ``mode="data"`` shares (the Dask one too):
  :func:`trees_per_batch`, :func:`local_subtree_rows`, :func:`balanced_owners`.
* The message vocabulary and the sans-IO scheduler live in ``_protocol`` and
  ``_scheduler``; every message is JSON plus raw numpy buffers, never pickle.
"""

from ..wire import is_loopback  # re-exported: the CLI and embedders check binds with it
from ._checkpoint import CheckpointError, checkpoint_spec
from ._data_parallel import balanced_owners, local_subtree_rows, trees_per_batch
from ._errors import ClusterError
from ._faults import Faults
from ._local import ClusterTLS, LocalCluster
from ._master import ClusterClosed, JobFailedError, Master
from ._protocol import CLUSTER_PROTOCOL_VERSION, MessageError
from ._scheduler import Scheduler
from ._worker import Backoff, Worker

__all__ = [
    "CLUSTER_PROTOCOL_VERSION",
    "Backoff",
    "CheckpointError",
    "ClusterClosed",
    "ClusterError",
    "ClusterTLS",
    "Faults",
    "JobFailedError",
    "LocalCluster",
    "Master",
    "MessageError",
    "Scheduler",
    "Worker",
    "balanced_owners",
    "checkpoint_spec",
    "is_loopback",
    "local_subtree_rows",
    "trees_per_batch",
]
