"""The status page, the JSON it polls, and Prometheus ``/metrics``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, HTTPException, Response, status
from fastapi.responses import FileResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hub.api import models
from hub.api.routes.common import AUTH
from hub.api.views import status_view
from hub.metrics import RateTracker, hub_registry

if TYPE_CHECKING:
    from hub.runtime import Hub

__all__ = ["page_router", "status_router"]

STATIC = Path(__file__).resolve().parents[2] / "static"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


def status_router(hub: Hub, rates: RateTracker) -> APIRouter:
    router = APIRouter(tags=["status"], responses=AUTH)
    registry = hub_registry(hub, rates)

    @router.get("/status", summary="Connectors, topics and the pipeline graph, in one answer")
    def get_status() -> models.Status:
        return status_view(hub, rates)

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                         "description": "Prometheus text format"}},
    )
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


def page_router() -> APIRouter:
    """The page's files carry no data (the page fetches ``/status`` with the token the user
    types in), so they are served without a token."""
    router = APIRouter(tags=["status page"], include_in_schema=False)

    @router.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type=_TYPES[".html"])

    @router.get("/static/{file}")
    def asset(file: str) -> FileResponse:
        path = (STATIC / file).resolve()
        if path.parent != STATIC or not path.is_file() or path.suffix not in _TYPES:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no file {file!r}")
        return FileResponse(path, media_type=_TYPES[path.suffix])

    return router
