"""The indexes a sink writes to: named from the template, created on first use, truncated.

An index is created the first time the sink writes to it and finds it missing, with the
configured ``settings`` (plus ``index.gc_deletes``, see :mod:`.versioning`) and mappings
from the config or inferred from the documents of its first bulk (:mod:`.mapping`). With
``alias: true`` the name is an alias over ``<name>-v1`` (``-v2`` … after a reindex), so that
``changehub reindex`` can build a fresh index beside it and swap the alias in one step.
An existing index or alias is used as it is.

A truncate either recreates the index — deleted and created again with the settings and
mappings it had, which is right even when the truncate is replayed after a crash, since the
records after it are replayed too and a fresh index remembers no versions — or deletes the
documents whose ``version_field`` is below the truncate's version (so a replayed truncate
leaves newer documents alone).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from connectors.sink.search.config import SearchSinkConfig
from connectors.sink.search.engine import Engine
from connectors.sink.search.mapping import index_name, infer_mappings

__all__ = ["Indexes", "concrete_name", "next_generation"]

_GENERATION = re.compile(r"^(?P<base>.+)-v(?P<n>\d+)$")


def concrete_name(alias: str, generation: int) -> str:
    return f"{alias}-v{generation}"


def next_generation(alias: str, targets: list[str]) -> int:
    """One more than the highest ``<alias>-vN`` among ``targets`` (1 if none)."""
    highest = 0
    for name in targets:
        m = _GENERATION.match(name)
        if m and m.group("base") == alias:
            highest = max(highest, int(m.group("n")))
    return highest + 1


class Indexes:
    """Index names and lifecycle for one sink. Used from the sink's thread only."""

    def __init__(self, engine: Engine, config: SearchSinkConfig, logger: logging.Logger) -> None:
        self._engine = engine
        self._config = config
        self._logger = logger
        self._names: dict[tuple[str, str, str], str] = {}
        self._ready: set[str] = set()
        self.fixed_target: str | None = None  # reindex: write everything into this index

    def name_for(self, topic: str, source: Any) -> str:
        if self.fixed_target is not None:
            return self.fixed_target
        src = source if isinstance(source, dict) else {}
        memo = (topic, str(src.get("schema", "")), str(src.get("table", "")))
        name = self._names.get(memo)
        if name is None:
            name = index_name(self._config.index, topic, src)
            self._names[memo] = name
        return name

    def body(self, documents: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Settings and mappings for a new index whose first documents are ``documents``."""
        settings = {"index.gc_deletes": self._config.gc_deletes, **self._config.settings}
        body: dict[str, Any] = {"settings": settings}
        if self._config.mappings is not None:
            body["mappings"] = self._config.mappings
        elif self._config.infer_mappings and documents:
            body["mappings"] = infer_mappings(documents)
        return body

    def is_ready(self, name: str) -> bool:
        """Known to exist (checked or created by this sink)."""
        return name in self._ready

    def ensure(self, name: str, documents: Sequence[Mapping[str, Any]]) -> None:
        """Create ``name`` (or its first generation behind the alias) if it does not exist,
        with mappings inferred from ``documents`` (its first bulk's) unless configured."""
        if name in self._ready:
            return
        if not self._engine.index_exists(name):
            body = self.body(documents)
            if self._config.alias and self.fixed_target is None:
                target = concrete_name(name, 1)
                body["aliases"] = {name: {}}
            else:
                target = name
            if self._engine.create_index(target, body):
                self._logger.info("search sink %s: created index %s%s", self._config.name,
                                  target, f" (alias {name})" if target != name else "")
        self._ready.add(name)

    def truncate(self, name: str, version: int) -> None:
        if not self._engine.index_exists(name):
            return
        if self._config.truncate == "delete_by_query":
            field = self._config.version_field
            assert field is not None  # the config model insists
            self._engine.refresh(name)  # the query sees only refreshed documents
            deleted = self._engine.delete_by_query(name, {"range": {field: {"lt": version}}})
            self._logger.info("search sink %s: truncate deleted %d document(s) from %s",
                              self._config.name, deleted, name)
            return
        targets = self._engine.alias_targets(name)
        for target in targets or [name]:
            body = self._engine.index_body(target)
            if targets:
                body["aliases"] = {name: {}}
            self._engine.delete_index(target)
            self._engine.create_index(target, body)
            self._logger.info("search sink %s: truncate recreated index %s",
                              self._config.name, target)
