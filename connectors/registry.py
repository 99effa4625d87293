"""Finding connector classes by type name through entry points.

Sources register under ``changehub.sources`` and sinks under ``changehub.sinks``; a third
party adds a connector with a pip install and an entry point, no change to changehub.
Classes are loaded lazily, so a broken third-party connector only breaks pipelines using it.
"""

from __future__ import annotations

import difflib
from importlib.metadata import entry_points
from typing import Literal

from connectors.api import Sink, Source
from hub.errors import UsageError

__all__ = ["available", "load_sink", "load_source"]

Kind = Literal["source", "sink"]
_GROUP: dict[Kind, str] = {"source": "changehub.sources", "sink": "changehub.sinks"}


def available(kind: Kind) -> list[str]:
    return sorted({ep.name for ep in entry_points(group=_GROUP[kind])})


def _load(kind: Kind, type_name: str) -> type:
    for ep in entry_points(group=_GROUP[kind], name=type_name):
        cls = ep.load()
        if not isinstance(cls, type):
            raise UsageError(f"entry point {ep.value} for {kind} type {type_name!r} is not a class")
        return cls
    known = available(kind)
    close = difflib.get_close_matches(type_name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UsageError(
        f"unknown {kind} type {type_name!r}{hint}; installed {kind} types: {', '.join(known)}"
    )


def load_source(type_name: str) -> type[Source]:  # type: ignore[type-arg]
    cls = _load("source", type_name)
    if not issubclass(cls, Source):
        raise UsageError(f"source type {type_name!r} ({cls.__qualname__}) is not a Source")
    return cls


def load_sink(type_name: str) -> type[Sink]:  # type: ignore[type-arg]
    cls = _load("sink", type_name)
    if not issubclass(cls, Sink):
        raise UsageError(f"sink type {type_name!r} ({cls.__qualname__}) is not a Sink")
    return cls
