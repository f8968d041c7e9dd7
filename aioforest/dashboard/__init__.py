"""A live status page for a running master: an HTML page, ``/status.json`` and ``/metrics``.

* :func:`status_view` -- a :meth:`aioforest.cluster.Master.status` snapshot shaped for a
  reader: running fits as a list (pace, ETA, data mode's rounds and histogram bytes),
  workers as a list (slots, running tasks, trees, heartbeat age, bytes each way) and the
  fault counters. Pure: no I/O, no clock of its own.
* :func:`metrics_text` -- the same view in Prometheus' text exposition format.
* :class:`Dashboard` -- serves both and the page with aiohttp (the ``aioforest[dashboard]``
  extra, imported only when a dashboard starts). Open on loopback; anywhere else it asks
  for the cluster token, as ``Authorization: Bearer <token>`` or through its login form.
  ``Master(..., dashboard=("127.0.0.1", 8787))`` and ``--dashboard HOST:PORT`` start one.
"""

from ._metrics import metrics_text
from ._server import Dashboard, parse_bind
from ._view import status_view

__all__ = ["Dashboard", "metrics_text", "parse_bind", "status_view"]
