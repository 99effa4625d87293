"""Connectors: list, describe, pause, resume, restart (as Kafka Connect's REST API)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from fastapi import APIRouter, status

from hub.api import models
from hub.api.routes.common import AUTH, CONFLICT, NOT_FOUND, conflict, find_worker
from hub.api.views import connector_view
from hub.metrics import RateTracker
from hub.state import ConnectorState

if TYPE_CHECKING:
    from hub.runtime import Hub

__all__ = ["connectors_router"]

# A worker in these states has no thread to pause or resume: it must be restarted.
_ENDED = (ConnectorState.FAILED, ConnectorState.STOPPED)


def connectors_router(hub: Hub, rates: RateTracker, control: threading.Lock) -> APIRouter:
    """``control`` serializes state changes: two restarts of one connector at once would
    otherwise both start a worker, and one would run on unsupervised."""
    router = APIRouter(prefix="/connectors", tags=["connectors"], responses=AUTH)

    @router.get("", summary="All connectors with their state")
    def list_connectors() -> list[models.Connector]:
        return [connector_view(hub, w, rates) for w in hub.workers()]

    @router.get("/{name}", responses=NOT_FOUND,
                summary="One connector: state, error, progress, lag, counters, config")
    def get_connector(name: str) -> models.Connector:
        return connector_view(hub, find_worker(hub, name), rates)

    @router.put("/{name}/pause", status_code=status.HTTP_202_ACCEPTED,
                responses={**NOT_FOUND, **CONFLICT},
                summary="Pause between steps (nothing is torn down; offsets stay)")
    def pause(name: str) -> models.ActionResult:
        worker = find_worker(hub, name)
        if worker.status.state in _ENDED:
            raise conflict(f"{name} is {worker.status.state.value}; restart it instead "
                           f"(POST /connectors/{name}/restart)")
        with control:
            hub.pause(name)
        return _result(hub, name, "pause", "pausing after its current step")

    @router.put("/{name}/resume", status_code=status.HTTP_202_ACCEPTED,
                responses={**NOT_FOUND, **CONFLICT}, summary="Resume a paused connector")
    def resume(name: str) -> models.ActionResult:
        worker = find_worker(hub, name)
        if worker.status.state in _ENDED:
            raise conflict(f"{name} is {worker.status.state.value}; restart it instead "
                           f"(POST /connectors/{name}/restart)")
        with control:
            hub.resume(name)
        return _result(hub, name, "resume", "resumed")

    @router.post("/{name}/restart", status_code=status.HTTP_202_ACCEPTED,
                 responses=NOT_FOUND,
                 summary="Stop the worker cleanly and start a fresh one from durable state")
    def restart(name: str) -> models.ActionResult:
        find_worker(hub, name)
        with control:
            hub.restart(name)
        return _result(hub, name, "restart", "restarted from its durable state")

    return router


def _result(hub: Hub, name: str, action: str, message: str) -> models.ActionResult:
    return models.ActionResult(
        name=name, action=action, state=hub.worker(name).status.state.value, message=message
    )
