"""The management API of a running hub: :func:`create_app`.

Routes, in the spirit of Kafka Connect's REST API:

* ``GET /connectors``, ``GET /connectors/{name}``: state (RUNNING, PAUSED, FAILED with the
  error, SNAPSHOTTING with progress …), counters, lag, config with secrets masked;
* ``PUT /connectors/{name}/pause``, ``PUT …/resume``, ``POST …/restart``;
* ``GET /connectors/{name}/offsets``, ``POST …/offsets/reset?to=…`` (paused sinks only);
* ``POST /connectors/{name}/snapshot``, ``POST …/export``;
* ``GET /topics``; ``GET /status`` (all of it, for the status page); ``GET /metrics``;
* ``GET /`` the status page; ``GET /openapi.json`` the schema.

Every route but the page's files and the schema needs the bearer token when one is set.
The interactive docs pages (Swagger UI, ReDoc) are off: they load their code from a CDN,
and the API must work offline.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI

from hub.api.auth import bearer_auth
from hub.api.routes.actions import actions_router
from hub.api.routes.connectors import connectors_router
from hub.api.routes.offsets import offsets_router
from hub.api.routes.status import page_router, status_router
from hub.api.routes.topics import topics_router
from hub.metrics import RateTracker

if TYPE_CHECKING:
    from hub.runtime import Hub

__all__ = ["create_app"]


def create_app(hub: Hub, token: str | None) -> FastAPI:
    """An ASGI app serving ``hub``; requests must carry ``token`` when it is not None."""
    app = FastAPI(
        title="changehub",
        version="1",
        description="Management API of a running changehub pipeline.",
        docs_url=None,
        redoc_url=None,
    )
    guarded = [Depends(bearer_auth(token))]
    rates = RateTracker()
    control = threading.Lock()
    for router in (
        connectors_router(hub, rates, control),
        offsets_router(hub, control),
        actions_router(hub),
        topics_router(hub),
        status_router(hub, rates),
    ):
        app.include_router(router, dependencies=guarded)
    app.include_router(page_router())
    return app
