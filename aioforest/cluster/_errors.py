"""The cluster's exception hierarchy (a module of its own so every part can import it)."""

from __future__ import annotations

__all__ = ["ClusterError"]


class ClusterError(Exception):
    """Something went wrong on the cluster."""
