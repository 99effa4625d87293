"""Offsets: a sink's committed offsets with lag, a source's checkpoint, and resetting a sink."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, HTTPException, Query, status

from hub.api import models
from hub.api.routes.common import AUTH, CONFLICT, NOT_FOUND, conflict, find_worker
from hub.api.views import offsets_view, sink_partitions_of
from hub.errors import ChangehubError
from hub.sink_worker import SinkWorker
from hub.state import ConnectorState
from log.api import OffsetSpec

if TYPE_CHECKING:
    from hub.runtime import Hub

__all__ = ["offsets_router"]

STOP_TIMEOUT_S = 10.0

# Resetting under a running sink would race its next commit, which would undo the reset.
_RESETTABLE = (ConnectorState.PAUSED, ConnectorState.STOPPED, ConnectorState.FAILED)


def offsets_router(hub: Hub, control: threading.Lock) -> APIRouter:
    router = APIRouter(prefix="/connectors", tags=["offsets"], responses=AUTH)

    @router.get("/{name}/offsets", responses=NOT_FOUND,
                summary="Sinks: committed offset and lag per partition; sources: checkpoint")
    def get_offsets(name: str) -> models.Offsets:
        return offsets_view(hub, find_worker(hub, name))

    @router.post(
        "/{name}/offsets/reset",
        responses={**NOT_FOUND, **CONFLICT,
                   400: {"model": models.Problem, "description": "`to` is not understood"}},
        summary="Move a paused (or failed, or stopped) sink's offsets",
        description="The sink must not be running: pause it first. A sink that keeps its "
        "own offsets in its target (sql, batch) rewinds them too. A paused sink stays "
        "paused at the new offsets; resume it to replay.",
    )
    def reset_offsets(
        name: str,
        to: Annotated[str, Query(description="earliest, latest, an offset, or an ISO-8601 "
                                 "time with zone (2026-01-31T02:00:00Z)")],
        topic: Annotated[str | None, Query(
            description="only partitions of topics matching this glob")] = None,
    ) -> models.Offsets:
        with control:
            return _reset(hub, name, to, topic)

    return router


def _reset(hub: Hub, name: str, to: str, topic: str | None) -> models.Offsets:
    """Stop the (paused) sink's worker so that its last commit lands before the reset, move
    the offsets in the log and in the target, and bring a paused sink back paused."""
    worker = find_worker(hub, name)
    if not isinstance(worker, SinkWorker):
        raise conflict(f"{name} is a source; sources resume from their checkpoint, "
                       "only sinks' offsets can be reset")
    state = worker.status.state
    if state not in _RESETTABLE:
        raise conflict(f"{name} is {state.value}; pause it first "
                       f"(PUT /connectors/{name}/pause), then reset")
    try:
        spec = OffsetSpec.parse(to)
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    worker.stop()  # flushes and commits what it holds, before the reset, not after
    worker.join(STOP_TIMEOUT_S)
    if worker.is_alive():
        raise conflict(f"{name} did not stop within {STOP_TIMEOUT_S:.0f}s; try again")
    try:
        new = hub.log.reset_offsets(name, sink_partitions_of(hub, name, topic), spec)
        rewound = hub.build_sink(name).rewind(new)
        if rewound != new:
            hub.log.commit_offsets(name, {**hub.log.committed_offsets(name), **rewound})
    except ChangehubError as exc:
        raise conflict(f"resetting {name} failed: {exc}") from None
    finally:
        # A paused sink comes back paused at its new offsets; a failed or stopped one
        # stays as it was until someone restarts it.
        if state == ConnectorState.PAUSED:
            hub.restart(name, paused=True)
    return offsets_view(hub, hub.worker(name))
