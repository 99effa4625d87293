"""Topics of the log with their offsets and sizes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

from hub.api import models
from hub.api.routes.common import AUTH
from hub.api.views import topics_view

if TYPE_CHECKING:
    from hub.runtime import Hub

__all__ = ["topics_router"]


def topics_router(hub: Hub) -> APIRouter:
    router = APIRouter(prefix="/topics", tags=["topics"], responses=AUTH)

    @router.get("", summary="Every topic: partitions with start/end offsets and sizes")
    def list_topics() -> list[models.Topic]:
        return topics_view(hub.log)

    return router
