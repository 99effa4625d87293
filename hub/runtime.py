"""The hub: one process running a pipeline file — the log, a worker per connector, shutdown.

Not a framework: it opens the log the config names, builds each connector from its type's
entry point, gives each its own supervised thread (:mod:`hub.worker`), and stops them in an
order that loses nothing: sources first (their last batch is appended with its checkpoint or
not at all), then sinks (each flushes and commits), then the log.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from connectors.api import ConnectorContext, Sink, SinkConfig, Source, SourceConfig
from connectors.registry import load_sink, load_source
from hub.config import PipelineConfig
from hub.errors import UsageError
from hub.gc_pause import freeze_startup_objects
from hub.sink_worker import SinkWorker
from hub.source_worker import SourceWorker
from hub.state import ConnectorStatus
from hub.worker import Worker
from log.api import Log, LogRecord
from log.factory import open_log

if TYPE_CHECKING:
    from hub.api.server import ApiServer

__all__ = ["Hub", "open_pipeline_log"]

log = logging.getLogger("changehub.hub")

STOP_TIMEOUT_S = 10.0


def open_pipeline_log(config: PipelineConfig, *, read_only: bool = False) -> Log:
    """Open the log a pipeline file names, with its defaults for new topics."""
    lc = config.log
    kwargs: dict[str, Any] = {}
    if read_only:
        kwargs["read_only"] = True
    return open_log(
        lc.backend,
        Path(lc.path),
        durability=lc.durability(),
        default_topic_config=lc.topic_config(""),
        kafka=lc.kafka,
        **kwargs,
    )


class Hub:
    """Runs a pipeline. Thread-safe control methods for the CLI and the REST API."""

    def __init__(self, config: PipelineConfig, log_: Log | None = None) -> None:
        self.config = config
        self.log = log_ if log_ is not None else open_pipeline_log(config)
        self._owns_log = log_ is None
        self._topics_lock = threading.Lock()
        self._partitions: dict[str, int] = {}
        self._workers: dict[str, Worker] = {}
        self._stopped = threading.Event()
        # State changes one at a time, whoever asks (API, CLI, tests): two restarts of one
        # connector at once would both start a worker, and one would run unsupervised.
        self._control = threading.RLock()
        self.api_url: str | None = None  # where the REST API listens, once it does

    # -- topics ---------------------------------------------------------------------------

    def ensure_topic(self, name: str) -> int:
        """Create ``name`` with the pipeline's settings if missing; return its partitions."""
        n = self._partitions.get(name)
        if n is not None:
            return n
        with self._topics_lock:
            if name not in self.log.list_topics():
                self.log.create_topic(name, self.config.log.topic_config(name))
                log.info("created topic %s", name)
            n = self._partitions[name] = self.log.topic_config(name).partitions
            return n

    # -- connectors -----------------------------------------------------------------------

    def _context(self, name: str, dead_letter: Callable[[LogRecord, str], None] | None = None
                 ) -> ConnectorContext:
        data_dir = Path(self.config.log.path).resolve().parent / "connectors" / name
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        ctx = ConnectorContext(
            name=name,
            log=self.log,
            data_dir=data_dir,
            logger=logging.getLogger(f"changehub.connector.{name}"),
            topic_partitions=self.ensure_topic,
        )
        ctx.progress = self._progress_reporter(name)
        if dead_letter is not None:
            ctx.dead_letter = dead_letter
        return ctx

    def _progress_reporter(self, name: str) -> Callable[[str, int, int | None], None]:
        def report(what: str, done: int, total: int | None) -> None:
            worker = self._workers.get(name)
            if worker is not None:
                worker.cell.update(progress=(what, done, total))

        return report

    def _source_worker(self, cfg: SourceConfig) -> SourceWorker:
        cls = load_source(cfg.type)

        def make() -> Source[Any]:
            return cls(cfg, self._context(cfg.name))

        return SourceWorker(
            ConnectorStatus(cfg.name, "source", cfg.type), make, self.log, self.ensure_topic
        )

    def build_sink(self, name: str) -> Sink[Any]:
        """A sink connector, not started (for ``changehub reset``'s rewind)."""
        for cfg in self.config.sinks:
            if cfg.name == name:
                return load_sink(cfg.type)(cfg, self._context(name))
        raise UsageError(f"no sink named {name!r} in {self.config.path}")

    def _sink_worker(self, cfg: SinkConfig) -> Worker:
        from connectors.sink.batch.config import BatchSinkConfig

        if isinstance(cfg, BatchSinkConfig) and cfg.schedule is not None:
            from hub.leased_export import LeasedExportWorker

            return LeasedExportWorker(
                ConnectorStatus(cfg.name, "sink", cfg.type), cfg, self.log,
                lambda: self._context(cfg.name), self.ensure_topic,
            )
        cls = load_sink(cfg.type)

        def make(dead_letter: Callable[[LogRecord, str], None]) -> Sink[Any]:
            return cls(cfg, self._context(cfg.name, dead_letter))

        return SinkWorker(
            ConnectorStatus(cfg.name, "sink", cfg.type), cfg, make, self.log, self.ensure_topic
        )

    def _build(self, name: str) -> Worker:
        for src in self.config.sources:
            if src.name == name:
                return self._source_worker(src)
        for snk in self.config.sinks:
            if snk.name == name:
                return self._sink_worker(snk)
        raise UsageError(f"no connector named {name!r} in {self.config.path}")

    def start(self) -> None:
        names = [c.name for c in self.config.sources] + [c.name for c in self.config.sinks]
        for name in names:
            worker = self._build(name)
            self._workers[name] = worker
            worker.start()

    def workers(self) -> Iterator[Worker]:
        return iter(list(self._workers.values()))

    def worker(self, name: str) -> Worker:
        try:
            return self._workers[name]
        except KeyError:
            known = ", ".join(sorted(self._workers)) or "none"
            raise UsageError(f"no connector named {name!r}; connectors: {known}") from None

    def statuses(self) -> list[ConnectorStatus]:
        return [w.status for w in self.workers()]

    def pause(self, name: str) -> None:
        with self._control:
            self.worker(name).pause()

    def resume(self, name: str) -> None:
        with self._control:
            self.worker(name).resume()

    def restart(self, name: str, *, paused: bool = False) -> None:
        """Stop a connector's worker (gracefully) and start a fresh one from durable state
        (``paused``: it opens, then waits for :meth:`resume` before its first step)."""
        with self._control:
            if self._stopped.is_set():
                raise UsageError(f"the hub is stopping; {name} is not restarted")
            old = self.worker(name)
            old.stop()
            old.join(STOP_TIMEOUT_S)
            new = self._build(name)
            if paused:
                new.pause()
            self._workers[name] = new
            new.start()

    def caught_up(self) -> bool:
        """Every source found nothing new on its last poll and every sink committed up to
        the end of every partition it reads: a one-shot run can stop here."""
        for w in self.workers():
            state = w.status.state.value
            if state == "FAILED":
                return True
            if state not in ("RUNNING", "STANDBY"):  # STANDBY: another process runs it
                return False
            if isinstance(w, SourceWorker):
                if not w.idle:
                    return False
            elif isinstance(w, SinkWorker) and not w.caught_up():
                return False
        return True

    def _serve_api(self) -> ApiServer | None:
        """Start the REST API if configured. A busy port is not fatal: the pipeline matters
        more than its dashboard, so the hub logs why and runs on without the API."""
        from hub.api.server import start_api

        if not self.config.api.enabled:
            return None
        try:
            api = start_api(self, self.config.api)
        except OSError as exc:
            log.warning("REST API not started on %s: %s (set api.listen to a free address, "
                        "or api.enabled: false)", self.config.api.listen, exc)
            return None
        self.api_url = api.url
        log.info("REST API and status page on %s", api.url, extra={"url": api.url})
        return api

    # -- stopping -------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop sources, then sinks, then close the log. Idempotent."""
        with self._control:  # a restart under way finishes first; none starts after
            if self._stopped.is_set():
                return
            self._stopped.set()
        sources = [w for w in self.workers() if isinstance(w, SourceWorker)]
        sinks = [w for w in self.workers() if not isinstance(w, SourceWorker)]
        for group in (sources, sinks):
            for w in group:
                w.stop()
            for w in group:
                w.join(STOP_TIMEOUT_S)
                if w.is_alive():
                    log.warning("%s did not stop within %.0fs", w.name, STOP_TIMEOUT_S)
        if self._owns_log:
            self.log.close()

    def run_until_signalled(
        self, ready: Callable[[], None] | None = None, until_caught_up: bool = False
    ) -> None:
        """Start, then block until SIGINT/SIGTERM (or :meth:`stop`, or — with
        ``until_caught_up`` — until everything available has reached every sink), then stop
        cleanly."""
        wake = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s, stopping", signal.Signals(signum).name)
            wake.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        api = None
        try:
            self.start()
            api = self._serve_api()
            frozen = freeze_startup_objects()
            log.debug("%d start-up objects frozen out of garbage collection", frozen)
            if ready is not None:
                ready()
            while not wake.wait(0.2) and not self._stopped.is_set():
                if until_caught_up and self.caught_up():
                    log.info("caught up: every source idle, every sink at the end of its topics")
                    break
        finally:
            if api is not None:
                api.stop()
            self.stop()
            for s, handler in previous.items():
                signal.signal(s, handler)
