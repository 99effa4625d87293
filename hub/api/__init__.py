"""The REST API, Prometheus metrics and status page of a running hub."""

from __future__ import annotations

from hub.api.app import create_app
from hub.api.server import ApiServer, start_api

__all__ = ["ApiServer", "create_app", "start_api"]
