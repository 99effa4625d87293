"""Long work on demand: an incremental snapshot of a source, an export of a sink.

Only connectors that can do it accept: a Postgres or MySQL source re-reads tables while it
streams (the request travels through the database's WAL or binlog, see
:mod:`connectors.source.postgres.incremental_snapshot` and
:mod:`connectors.source.mysql.incremental_snapshot`); everything else answers 409 with
the reason, so a script learns at once that the call cannot do what it asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from hub.api import models
from hub.api.routes.common import AUTH, CONFLICT, NOT_FOUND, conflict, find_worker
from hub.errors import ChangehubError, UsageError
from hub.schedule import ScheduledExportWorker
from hub.sink_worker import SinkWorker

if TYPE_CHECKING:
    from hub.runtime import Hub

__all__ = ["actions_router"]


class SnapshotRequest(BaseModel):
    tables: list[str] | None = Field(
        default=None, description="tables to read again (schema.table); default: all captured"
    )


def actions_router(hub: Hub) -> APIRouter:
    router = APIRouter(prefix="/connectors", tags=["actions"], responses=AUTH)

    @router.post(
        "/{name}/snapshot",
        status_code=status.HTTP_202_ACCEPTED,
        responses={**NOT_FOUND, **CONFLICT,
                   400: {"model": models.Problem, "description": "a table it does not capture"},
                   503: {"model": models.Problem, "description": "the database did not answer"}},
        summary="Read tables of a source again while it keeps streaming (incremental snapshot)",
    )
    def snapshot(name: str, request: SnapshotRequest | None = None) -> models.ActionResult:
        from connectors.source.mysql.config import MySqlSourceConfig
        from connectors.source.mysql.incremental_snapshot import (
            request_snapshot as request_mysql_snapshot,
        )
        from connectors.source.postgres.config import PostgresSourceConfig
        from connectors.source.postgres.incremental_snapshot import request_snapshot

        worker = find_worker(hub, name)
        cfg = next((c for c in hub.config.sources if c.name == name), None)
        if cfg is None:
            raise conflict(f"{name} is a sink; snapshots are read by sources")
        if not isinstance(cfg, PostgresSourceConfig | MySqlSourceConfig):
            raise conflict(
                f"source {name} ({cfg.type}) has no incremental snapshot; only postgres and "
                "mysql sources can re-read tables while streaming. To read everything again, "
                "stop the hub, and start the source with a new name or snapshot: always"
            )
        tables = request.tables if request is not None else None
        try:
            if isinstance(cfg, MySqlSourceConfig):
                what = request_mysql_snapshot(cfg, tables)
            else:
                request_snapshot(cfg, tables)
                what = ", ".join(tables or cfg.tables)
        except UsageError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
        except ChangehubError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
        return models.ActionResult(
            name=name, action="snapshot", state=worker.status.state.value,
            message=f"incremental snapshot of {what} requested; "
            "the source starts it when the request arrives in its stream",
        )

    @router.post(
        "/{name}/export",
        status_code=status.HTTP_202_ACCEPTED,
        responses={**NOT_FOUND, **CONFLICT},
        summary="Export now (batch sinks)",
    )
    def export(name: str) -> models.ActionResult:
        worker = find_worker(hub, name)
        if isinstance(worker, ScheduledExportWorker):
            due = worker.run_now()
            return models.ActionResult(
                name=name, action="export", state=worker.status.state.value,
                message=f"export of sink {name} starts now (cutoff: the end of every partition "
                f"when it starts; the scheduled run after it stays at {due.isoformat()})",
            )
        if not isinstance(worker, SinkWorker):
            raise conflict(f"{name} is a source; exports are written by batch sinks")
        if worker.status.type != "batch":
            raise conflict(f"sink {name} ({worker.status.type}) is not a batch sink: it "
                           "writes every record as it arrives; there is nothing to export")
        raise conflict(
            f"sink {name} (batch) runs continuously (no schedule:): it writes a file per "
            "partition at every flush (flush_interval), so everything committed is already "
            "exported; give it a schedule: for exports on demand and by cron"
        )

    return router
