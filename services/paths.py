"""Where installed artifacts live: one cache shared by every run and every checkout.

Jars resolved by Maven and compiled launchers go under
``$CHANGEHUB_SERVICES_CACHE`` (default ``$XDG_CACHE_HOME/changehub/services``, i.e.
``~/.cache/changehub/services``), one directory per server and version, so that the second
start of a server does not resolve or compile anything.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    explicit = os.environ.get("CHANGEHUB_SERVICES_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "changehub" / "services"
