"""Bulk requests: built by count and bytes, sent several at a time, answers sorted out.

:class:`BulkSender.send` takes a batch of operations (the sink keeps it to one per
document), cuts them into requests of at most ``max_actions`` operations
and ``max_bytes`` bytes, and keeps up to ``concurrency`` requests in flight. Each item of
each answer is one of:

* done (2xx, or 404 for a delete of a document that is not there);
* a version conflict (409): an older write than the document holds, i.e. a replay — counted;
* to retry (429, 502, 503, 504: the engine is overloaded or a shard is not ready), like a
  whole request that failed to connect or was refused with one of those statuses;
* rejected (anything else: a mapping conflict, a value the field cannot take) — handed
  back with the engine's reason, for the dead-letter topic.

Retries back off exponentially (with jitter) for up to ``retry_timeout_s``; then
:class:`~.engine.EngineUnavailableError` is raised and the caller lets the hub restart the
sink from its committed offsets. ``stopping`` cuts a wait short. :meth:`BulkSender.submit`
runs a send in the background, so the sink can decode the next records while earlier bulks
are on the wire. :meth:`BulkSender.send_prepared` sends a request whose body was built
beforehand (:mod:`.columnar`: a batch of events' lines without an :class:`Action` each);
its actions are made only if some of them must be retried or named as rejected.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from connectors.sink.search.documents import Action
from connectors.sink.search.engine import RETRIABLE_STATUS, Engine, EngineUnavailableError

__all__ = ["BulkResult", "BulkSender", "PreparedBulk", "SenderStoppedError", "split"]

BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
LATENCY_SAMPLES = 1000


class SenderStoppedError(Exception):
    """``stopping`` was set while a bulk was waiting to be retried."""


@dataclass
class BulkResult:
    done: int = 0
    conflicts: int = 0
    rejected: list[tuple[Action, str]] = field(default_factory=list)
    retried: int = 0  # operations sent again after a retriable failure


@dataclass
class PreparedBulk:
    """One bulk request: its body and how many operations it holds. ``items`` gives each
    operation's action and bytes (made by ``make_items`` the first time they are asked
    for: to retry some of them, or to name a rejected one); a builder that makes the
    actions only then may note in ``records`` which record each came from (by ``id``)."""

    body: bytes
    count: int
    make_items: Callable[[PreparedBulk], list[tuple[Action, bytes]]]
    records: dict[int, Any] = field(default_factory=dict)
    _items: list[tuple[Action, bytes]] | None = None

    @classmethod
    def of(cls, items: list[tuple[Action, bytes]]) -> PreparedBulk:
        """The request of operations encoded one by one."""
        return cls(b"".join(encoded for _, encoded in items), len(items), lambda _: items,
                   _items=items)

    def items(self) -> list[tuple[Action, bytes]]:
        if self._items is None:
            self._items = self.make_items(self)
        return self._items


@dataclass
class _Attempt:
    done: int = 0
    conflicts: int = 0
    rejected: list[tuple[Action, str]] = field(default_factory=list)
    retry: list[tuple[Action, bytes]] = field(default_factory=list)
    error: EngineUnavailableError | None = None


def split(
    encoded: Sequence[tuple[Action, bytes]], max_actions: int, max_bytes: int
) -> list[list[tuple[Action, bytes]]]:
    """Cut operations into requests by count and bytes (one oversized operation goes alone)."""
    requests: list[list[tuple[Action, bytes]]] = []
    current: list[tuple[Action, bytes]] = []
    size = 0
    for item in encoded:
        if current and (len(current) >= max_actions or size + len(item[1]) > max_bytes):
            requests.append(current)
            current, size = [], 0
        current.append(item)
        size += len(item[1])
    if current:
        requests.append(current)
    return requests


class BulkSender:
    """Sends operations in bulk; see the module doc. One ``send`` at a time."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_actions: int,
        max_bytes: int,
        concurrency: int,
        retry_timeout_s: float,
        stopping: threading.Event,
        version_type: str = "external",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._max_actions = max_actions
        self._max_bytes = max_bytes
        self._retry_timeout_s = retry_timeout_s
        self._stopping = stopping
        self._version_type = version_type
        self._clock = clock
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="changehub-bulk")
        # Runs whole sends (with their retries) in the background for submit().
        self._dispatch = ThreadPoolExecutor(concurrency, thread_name_prefix="changehub-send")
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._lock = threading.Lock()
        self.requests = 0
        self.bytes_sent = 0
        self.retries = 0  # rounds of retries so far, updated while a send is still waiting

    def send(self, actions: Sequence[Action]) -> BulkResult:
        encoded = [(a, a.encode(self._version_type)) for a in actions]
        return self._send([PreparedBulk.of(items) for items in
                           split(encoded, self._max_actions, self._max_bytes)])

    def send_prepared(self, bulk: PreparedBulk) -> BulkResult:
        """:meth:`send` of a request body built beforehand (cut by count and bytes by its
        builder); a retry of some of its operations is cut anew."""
        return self._send([bulk])

    def submit(self, actions: Sequence[Action]) -> Future[BulkResult]:
        """:meth:`send` in the background; the future holds its result or its error."""
        return self._dispatch.submit(self.send, actions)

    def submit_prepared(self, bulk: PreparedBulk) -> Future[BulkResult]:
        """:meth:`send_prepared` in the background."""
        return self._dispatch.submit(self.send_prepared, bulk)

    def _send(self, requests: list[PreparedBulk]) -> BulkResult:
        result = BulkResult()
        deadline = self._clock() + self._retry_timeout_s
        delay = BACKOFF_FIRST_S
        while requests:
            # One request (the sink's usual bulk) is sent from this thread: no hand-off.
            attempts = (
                [self._request(requests[0])] if len(requests) == 1
                else list(self._pool.map(self._request, requests))
            )
            pending: list[tuple[Action, bytes]] = []
            last_error: EngineUnavailableError | None = None
            for attempt in attempts:
                result.done += attempt.done
                result.conflicts += attempt.conflicts
                result.rejected.extend(attempt.rejected)
                pending.extend(attempt.retry)
                last_error = attempt.error or last_error
            if not pending:
                break
            result.retried += len(pending)
            with self._lock:
                self.retries += 1
            if self._clock() + delay > deadline:
                raise last_error or EngineUnavailableError(
                    f"{len(pending)} operation(s) still refused as overloaded after "
                    f"{self._retry_timeout_s:.0f} s of retries"
                )
            if self._stopping.wait(delay * random.uniform(0.5, 1.0)):
                raise SenderStoppedError("the sink is stopping")
            delay = min(delay * 2, BACKOFF_MAX_S)
            requests = [PreparedBulk.of(items) for items in
                        split(pending, self._max_actions, self._max_bytes)]
        return result

    def latencies(self) -> list[float]:
        with self._lock:
            return list(self._latencies)

    def close(self) -> None:
        self._dispatch.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _request(self, request: PreparedBulk) -> _Attempt:
        body = request.body
        started = time.perf_counter()
        try:
            answer = self._engine.bulk(body)
        except EngineUnavailableError as exc:
            return _Attempt(retry=request.items(), error=exc)
        elapsed = time.perf_counter() - started
        with self._lock:
            self._latencies.append(elapsed)
            self.requests += 1
            self.bytes_sent += len(body)
        return _sort_out(request, answer)


def _sort_out(request: PreparedBulk, answer: dict[str, Any]) -> _Attempt:
    attempt = _Attempt()
    if not answer.get("errors"):
        attempt.done = request.count
        return attempt
    replies = answer.get("items", [])
    if len(replies) != request.count:
        raise EngineUnavailableError(
            f"the bulk answer has {len(replies)} items for {request.count} operations"
        )
    for item, reply in zip(request.items(), replies, strict=True):
        action = item[0]
        outcome = next(iter(reply.values()))
        status = int(outcome.get("status", 500))
        if status < 300 or (status == 404 and action.op == "delete"):
            attempt.done += 1
        elif status == 409:
            attempt.conflicts += 1
        elif status in RETRIABLE_STATUS:
            attempt.retry.append(item)
        else:
            attempt.rejected.append((action, _reason(outcome.get("error"), status)))
    return attempt


def _reason(error: Any, status: int) -> str:
    if isinstance(error, dict):
        reason = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason"):
            reason += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return f"{status} {reason}"
    return f"{status} {error}"
