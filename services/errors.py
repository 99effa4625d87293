"""Errors raised by ``services/``.

``services`` is tooling around changehub, not part of its runtime: it must run with a bare
``python3`` before the project's virtualenv exists (``scripts/test`` calls it to install
servers), so it keeps its own two errors instead of importing :mod:`hub.errors`::

    ServiceError            a server could not be installed, started or stopped: exit code 1
    └── ServiceUsageError   the command line asked for something impossible: exit code 2
"""

from __future__ import annotations

__all__ = ["ServiceError", "ServiceUsageError"]


class ServiceError(Exception):
    """A server could not be installed, started or stopped; the message says why and what to do."""


class ServiceUsageError(ServiceError):
    """The command line asked for something that cannot be done (unknown name, bad option)."""
