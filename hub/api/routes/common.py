"""What every route module shares: finding a connector, error answers for the schema."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import HTTPException, status

from hub.api.models import Problem
from hub.errors import UsageError
from hub.worker import Worker

if TYPE_CHECKING:
    from hub.runtime import Hub

__all__ = ["AUTH", "CONFLICT", "NOT_FOUND", "conflict", "find_worker"]

AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no token, or the wrong one"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no connector of that name"},
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "not possible in the connector's current state"},
}


def find_worker(hub: Hub, name: str) -> Worker:
    try:
        return hub.worker(name)
    except UsageError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


def conflict(message: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, message)
