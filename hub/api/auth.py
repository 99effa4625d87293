"""Bearer-token authentication of the API.

Every data and control route depends on :func:`bearer_auth`. With a token configured, a
request must carry ``Authorization: Bearer <token>``; the comparison runs in constant time
(:func:`hmac.compare_digest`), so response timing tells nothing about how much of a guess was
right. Without a token (allowed only on a loopback bind: :class:`hub.config.ApiConfig`
refuses anything else) every local client is trusted.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

__all__ = ["bearer_auth"]

_scheme = HTTPBearer(auto_error=False, description="the api.token of the pipeline file")

CHALLENGE = {"WWW-Authenticate": "Bearer"}


def bearer_auth(token: str | None) -> Callable[..., None]:
    """A FastAPI dependency admitting requests that carry ``token`` (all, if None)."""
    expected = token.encode() if token is not None else None

    def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_scheme)],
    ) -> None:
        if expected is None:
            return
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "this API needs a token: send the header Authorization: Bearer <api.token>",
                headers=CHALLENGE,
            )
        if not hmac.compare_digest(credentials.credentials.encode(), expected):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "wrong token: send the api.token of the pipeline file",
                headers=CHALLENGE,
            )

    return check
