"""Asking a running hub's API from another process: its status (``changehub status``), an
incremental snapshot (``changehub snapshot``).

Standard library only: the CLI must not need an HTTP client package to look at a hub.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from hub.config import ApiConfig, PipelineConfig
from hub.errors import ChangehubError, UsageError

__all__ = ["api_base_url", "fetch_status", "request_snapshot"]

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
    request = _request(api, f"{base}/status")
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


def _request(api: ApiConfig, url: str, body: dict[str, Any] | None = None
             ) -> urllib.request.Request:
    request = urllib.request.Request(
        url, data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={} if body is None else {"Content-Type": "application/json"},
    )
    if api.token is not None:
        request.add_header("Authorization", f"Bearer {api.token.get_secret_value()}")
    return request


def request_snapshot(config: PipelineConfig, source: str, tables: list[str] | None) -> str:
    """Ask the hub running ``config`` for an incremental snapshot of ``source`` (of
    ``tables``; None: all it captures); return the hub's answer.

    Raises :class:`UsageError` for a request that is wrong (no such source, a table it does
    not capture, a refused token), :class:`ChangehubError` when this pipeline's hub does not
    answer or the source cannot do it (its type has no incremental snapshot, its database
    is down).
    """
    names = [s.name for s in config.sources]
    if source not in names:
        raise UsageError(f"no source named {source!r} in {config.path}; sources: "
                         f"{', '.join(names) or 'none'}")
    api = config.api
    base = api_base_url(api)
    if base is None:
        raise ChangehubError("cannot reach the hub: its API is off or on a port picked at "
                             "start (api.listen with port 0); give api.listen a fixed port")
    live = fetch_status(api)
    if live is None:
        raise ChangehubError(f"no hub answered at {base}: start it with `changehub run "
                             f"{config.path}`, then ask again")
    served = live.get("pipeline")
    if not isinstance(served, str) or Path(served).resolve() != config.path.resolve():
        raise ChangehubError(f"the hub at {base} runs another pipeline ({served}), not "
                             f"{config.path}; give each pipeline its own api.listen")
    url = f"{base}/connectors/{urllib.parse.quote(source, safe='')}/snapshot"
    try:
        with urllib.request.urlopen(_request(api, url, {"tables": tables}),
                                    timeout=TIMEOUT_S) as answer:
            return str(json.loads(answer.read()).get("message", "requested"))
    except urllib.error.HTTPError as exc:
        detail = _detail(exc)
        if exc.code == 401:
            raise UsageError(f"the hub at {base} refused the token: set api.token in the "
                             "pipeline file to the running hub's token") from None
        if exc.code in (400, 422):
            raise UsageError(f"the hub refused the snapshot: {detail}") from None
        raise ChangehubError(f"the hub at {base} cannot snapshot {source}: {detail}") from None
    except (OSError, ValueError) as exc:
        raise ChangehubError(f"no hub answered at {base} ({exc}): start it with "
                             "`changehub run FILE`, then ask again") from None


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        detail = json.loads(exc.read()).get("detail")
    except (OSError, ValueError, AttributeError):
        detail = None
    return str(detail) if detail else f"HTTP {exc.code}"
