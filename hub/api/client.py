"""Asking a running hub's API for its status, from another process (``changehub status``).

Standard library only: the CLI must not need an HTTP client package to look at a hub.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from hub.config import ApiConfig
from hub.errors import UsageError

__all__ = ["api_base_url", "fetch_status"]

TIMEOUT_S = 5.0

# A hub listening on every address answers on loopback too.
_WILDCARD = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def api_base_url(api: ApiConfig) -> str | None:
    """Where a hub running with ``api`` answers, or None when that cannot be known (API off,
    or port 0: a port picked at start)."""
    if not api.enabled or api.port == 0:
        return None
    host = _WILDCARD.get(api.host, api.host)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{api.port}"


def fetch_status(api: ApiConfig) -> dict[str, Any] | None:
    """``GET /status`` of the hub running with ``api``; None when nothing answers there.

    Raises :class:`UsageError` when a hub answers but refuses the configured token.
    """
    base = api_base_url(api)
    if base is None:
        return None
    request = urllib.request.Request(f"{base}/status")
    if api.token is not None:
        request.add_header("Authorization", f"Bearer {api.token.get_secret_value()}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
            data: dict[str, Any] = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise UsageError(f"the hub at {base} refused the token: set api.token in the "
                             "pipeline file to the running hub's token") from None
        return None
    except (OSError, ValueError):
        return None  # nothing listening, or not a changehub API
    if not isinstance(data, dict) or "connectors" not in data:
        return None
    return data
