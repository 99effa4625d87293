"""The engine behind the sink: client construction, engine detection, the few calls used.

Elasticsearch is spoken to with the official ``elasticsearch`` client and OpenSearch with
``opensearch-py``; the rest of the sink sees only :class:`Engine`, so the bulk logic is the
same for both. The elasticsearch client refuses servers that do not answer as Elasticsearch
(its product check), so ``engine: auto`` asks the server with opensearch-py, which checks
nothing, and reads ``version.distribution`` (``opensearch``) from the root endpoint.

Client versions: ``elasticsearch`` 7.17 (``elasticsearch>=7.17,<8`` in pyproject), which
talks to Elasticsearch 7.x servers; tested against Elasticsearch 7.17.29. An Elasticsearch 8
server needs the 8.x client (which in turn cannot talk to 7.x servers); that combination is
not tested here. OpenSearch: ``opensearch-py`` 2.x/3.x, tested against OpenSearch 2.19.6.

Answers are parsed with orjson (a serializer given to each client; the clients' default is
the standard library's ``json``, which took a quarter of the sink's time parsing bulk
answers), and bulk answers are trimmed by ``filter_path`` to what :mod:`.bulk` reads: the
``errors`` flag and each item's ``status`` and ``error``; an answer saying ``"errors":false``
is not parsed further (its items are all done).

Both clients' own retries are off (``max_retries=0``): :mod:`.bulk` retries with backoff and
knows which failures are worth retrying. Errors are translated into :class:`EngineUnavailableError`
(connection refused or lost, timeouts, 429, 502, 503, 504: retry later) and
:class:`EngineRequestError` (the engine refused the request: fix the request).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import elasticsearch
import elasticsearch.serializer
import opensearchpy
import opensearchpy.serializer
import orjson

from hub.secrets import mask

__all__ = [
    "RETRIABLE_STATUS",
    "Engine",
    "EngineRequestError",
    "EngineUnavailableError",
    "connect",
    "detect",
]

EngineKind = Literal["elasticsearch", "opensearch"]
RETRIABLE_STATUS = frozenset({429, 502, 503, 504})
# What bulk.py reads of a bulk answer; the rest (index, id, version, shards, seq_no of every
# item) is not sent, so neither the engine nor the sink spends time on it.
BULK_FILTER = "errors,items.*.status,items.*.error"

T = TypeVar("T")

_CONNECTION_ERRORS = (elasticsearch.ConnectionError, opensearchpy.ConnectionError)
_SSL_ERRORS = (elasticsearch.SSLError, opensearchpy.SSLError)
_TRANSPORT_ERRORS = (elasticsearch.TransportError, opensearchpy.TransportError)


class EngineUnavailableError(Exception):
    """The engine could not be reached or is overloaded; the same request may work later."""


class EngineRequestError(Exception):
    """The engine refused a request (status and reason from its answer)."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class Engine:
    """One engine's client, with the calls the sink needs. Thread-safe (the clients are)."""

    def __init__(self, kind: EngineKind, client: Any, hosts: Sequence[str]) -> None:
        self.kind = kind
        self._client = client
        self._where = ", ".join(mask(h) for h in hosts)
        self.version = ""

    def __repr__(self) -> str:
        return f"Engine({self.kind} {self.version} at {self._where})"

    def info(self) -> dict[str, Any]:
        return self._call("reading the server's version", self._client.info)

    def bulk(self, body: bytes) -> dict[str, Any]:
        """Send an NDJSON bulk body; the answer holds ``errors`` and the items' ``status`` and
        ``error`` (in request order), nothing else."""
        return self._call("sending a bulk request",
                          lambda: self._client.bulk(body=body, filter_path=BULK_FILTER))

    def index_exists(self, name: str) -> bool:
        return bool(self._call(f"checking index {name}",
                               lambda: self._client.indices.exists(index=name)))

    def create_index(self, name: str, body: Mapping[str, Any]) -> bool:
        """Create ``name``; False if it exists already (another writer raced us)."""
        try:
            self._call(f"creating index {name}",
                       lambda: self._client.indices.create(index=name, **self._body(body)))
        except EngineRequestError as exc:
            if exc.status == 400 and "already_exists" in str(exc):
                return False
            raise
        return True

    def delete_index(self, name: str) -> None:
        self._call(f"deleting index {name}",
                   lambda: self._client.indices.delete(index=name, ignore_unavailable=True))

    def index_body(self, name: str) -> dict[str, Any]:
        """Settings and mappings of an existing index, as a body to create a copy from."""
        settings = self._call(f"reading settings of {name}",
                              lambda: self._client.indices.get_settings(index=name))
        mappings = self._call(f"reading mappings of {name}",
                              lambda: self._client.indices.get_mapping(index=name))
        concrete = next(iter(settings))
        index_settings = dict(settings[concrete]["settings"]["index"])
        for generated in ("uuid", "creation_date", "provided_name", "version", "routing",
                          "history"):
            index_settings.pop(generated, None)
        return {"settings": {"index": index_settings},
                "mappings": mappings[concrete]["mappings"]}

    def delete_by_query(self, index: str, query: Mapping[str, Any]) -> int:
        answer = self._call(
            f"deleting documents from {index}",
            lambda: self._client.delete_by_query(
                index=index, body={"query": dict(query)}, conflicts="proceed", refresh=True
            ),
        )
        return int(answer.get("deleted", 0))

    def refresh(self, index: str) -> None:
        self._call(f"refreshing {index}", lambda: self._client.indices.refresh(index=index))

    def alias_targets(self, alias: str) -> list[str]:
        """The indexes ``alias`` points at (empty if there is no such alias)."""
        try:
            answer = self._call(f"reading alias {alias}",
                                lambda: self._client.indices.get_alias(name=alias))
        except EngineRequestError as exc:
            if exc.status == 404:
                return []
            raise
        return sorted(answer)

    def update_aliases(self, actions: list[dict[str, Any]]) -> None:
        """Apply alias actions atomically (the engine does them in one cluster-state change)."""
        self._call("updating aliases",
                   lambda: self._client.indices.update_aliases(body={"actions": actions}))

    def close(self) -> None:
        self._client.close()

    def _body(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A request body as keyword arguments: the elasticsearch 7.17 client deprecates
        ``body=`` for most APIs (a warning), opensearch-py takes only ``body=``."""
        if self.kind == "elasticsearch":
            return dict(body)
        return {"body": dict(body)}

    def _call(self, doing: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except _CONNECTION_ERRORS as exc:
            detail = type(exc).__name__
            if isinstance(exc, _SSL_ERRORS):
                # Why the handshake failed (unknown CA, wrong host name) is what to fix.
                detail += f" ({mask(str(exc.error))[:300]})"
            raise EngineUnavailableError(f"{doing}: cannot reach {self.kind} at {self._where}: "
                                    f"{detail}") from exc
        except _TRANSPORT_ERRORS as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else None
            reason = mask(str(exc.error))
            info = exc.info if isinstance(exc.info, dict) else {}
            detail = info.get("error", {})
            if isinstance(detail, dict) and detail.get("reason"):
                reason = f"{detail.get('type')}: {detail.get('reason')}"
            if status in RETRIABLE_STATUS:
                raise EngineUnavailableError(
                    f"{doing}: {self.kind} at {self._where} answered {status} ({reason})"
                ) from exc
            raise EngineRequestError(
                f"{doing}: {self.kind} at {self._where} answered {status}: {reason}", status
            ) from exc


def _client(
    kind: EngineKind,
    hosts: Sequence[str],
    *,
    auth: tuple[str, str] | None,
    timeout: float,
    verify_certs: bool,
    ca_certs: str | None,
    pool_size: int,
) -> Any:
    options: dict[str, Any] = {
        "timeout": timeout,
        "max_retries": 0,
        "retry_on_timeout": False,
        "verify_certs": verify_certs,
        # Bulk bodies go uncompressed (both clients' default, said here on purpose): gzip of
        # a 1,000-document bulk costs the sink more CPU than the wire saves on a LAN or
        # loopback, and the engine would spend CPU inflating it. Connections are kept alive
        # in the clients' urllib3 pools (pool_size of them), never opened per request.
        "http_compress": False,
    }
    if ca_certs:
        options["ca_certs"] = ca_certs
    if auth is not None:
        options["http_auth"] = auth
    if kind == "elasticsearch":
        return elasticsearch.Elasticsearch(list(hosts), maxsize=pool_size,
                                           serializer=_EsSerializer(), **options)
    return opensearchpy.OpenSearch(list(hosts), pool_maxsize=pool_size,
                                   serializer=_OsSerializer(), **options)


# How a trimmed bulk answer with no failed item begins (both engines write ``errors`` first
# once ``took`` is filtered out). Its items need not be parsed: bulk.py counts them as done.
_BULK_ALL_DONE = '{"errors":false,'
_ALL_DONE: dict[str, Any] = {"errors": False}


def _loads(s: str) -> Any:
    if isinstance(s, str) and s.startswith(_BULK_ALL_DONE):
        return dict(_ALL_DONE)
    return orjson.loads(s)


class _EsSerializer(elasticsearch.serializer.JSONSerializer):
    """The client's JSON serializer, parsing answers with orjson (see :func:`_loads`)."""

    def loads(self, s: str) -> Any:
        try:
            return _loads(s)
        except orjson.JSONDecodeError as exc:
            raise elasticsearch.SerializationError(s, exc) from exc


class _OsSerializer(opensearchpy.serializer.JSONSerializer):
    """The client's JSON serializer, parsing answers with orjson (see :func:`_loads`)."""

    def loads(self, s: str) -> Any:
        try:
            return _loads(s)
        except orjson.JSONDecodeError as exc:
            raise opensearchpy.SerializationError(s, exc) from exc


def detect(hosts: Sequence[str], **options: Any) -> EngineKind:
    """Ask the server which engine it is (opensearch-py does no product check)."""
    probe = Engine("opensearch", _client("opensearch", hosts, pool_size=1, **options), hosts)
    try:
        info = probe.info()
    finally:
        probe.close()
    distribution = str(info.get("version", {}).get("distribution", "elasticsearch"))
    return "opensearch" if distribution == "opensearch" else "elasticsearch"


def connect(
    kind: Literal["auto", "elasticsearch", "opensearch"],
    hosts: Sequence[str],
    *,
    auth: tuple[str, str] | None = None,
    timeout: float = 30.0,
    verify_certs: bool = True,
    ca_certs: str | None = None,
    pool_size: int = 4,
) -> Engine:
    """A connected :class:`Engine`; raises :class:`EngineUnavailableError` if nothing answers."""
    options: dict[str, Any] = {
        "auth": auth, "timeout": timeout, "verify_certs": verify_certs, "ca_certs": ca_certs,
    }
    chosen: EngineKind = detect(hosts, **options) if kind == "auto" else kind
    engine = Engine(chosen, _client(chosen, hosts, pool_size=pool_size, **options), hosts)
    try:
        info = engine.info()
    except BaseException:
        engine.close()
        raise
    engine.version = str(info.get("version", {}).get("number", "?"))
    return engine
