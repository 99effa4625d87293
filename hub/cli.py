"""The ``changehub`` command line.

Exit codes scripts can rely on: 0 success, 1 the work failed (a server unreachable, a
corrupt log, a connector FAILED), 2 bad usage or bad configuration. Commands other than
``run`` and ``validate`` find the pipeline with ``-c FILE`` (default ``./changehub.yaml``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hub.config import PipelineConfig, load_pipeline
from hub.errors import ChangehubError, LogLockedError, UsageError
from hub.logs import setup_logging
from hub.secrets import mask
from log.api import Log, LogRecord, OffsetSpec, TopicPartition

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_CONFIG = "changehub.yaml"

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def config_option(f: F) -> F:
    return click.option(
        "-c",
        "--config",
        "config_path",
        default=DEFAULT_CONFIG,
        show_default=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="The pipeline file.",
    )(f)


def _load(path: Path) -> PipelineConfig:
    if not path.exists():
        raise UsageError(
            f"{path}: no such pipeline file (pass one with -c FILE; see configs/ for examples)"
        )
    return load_pipeline(path)


@contextmanager
def _open_log(config: PipelineConfig) -> Iterator[Log]:
    """Open the pipeline's log for inspection, also while a hub is running on it."""
    from hub.runtime import open_pipeline_log

    log_ = open_pipeline_log(config, read_only=True)
    try:
        yield log_
    finally:
        log_.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Format of log lines on stderr.")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def cli(log_format: str, log_level: str) -> None:
    """changehub: database changes into a durable ordered log, and out to search indexes,
    warehouses and files. Declared in YAML; see README.md."""
    setup_logging(log_format, log_level.upper())


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--until-caught-up", is_flag=True,
              help="Stop (cleanly) once every source is idle and every sink has caught up.")
def run(file: Path, until_caught_up: bool) -> None:
    """Run the pipeline in FILE until SIGINT/SIGTERM (then flush, commit and exit 0)."""
    from hub.runtime import Hub

    config = _load(file)
    hub = Hub(config)
    names = ", ".join([s.name for s in config.sources] + [s.name for s in config.sinks])
    hub.run_until_signalled(
        ready=lambda: err.print(f"changehub running {file}: {names}"
                                + (f"; API and status page on {hub.api_url}" if hub.api_url
                                   else "")),
        until_caught_up=until_caught_up,
    )
    failed = [s for s in hub.statuses() if s.state.value == "FAILED"]
    for s in failed:
        err.print(f"[red]{s.kind} {s.name} FAILED: {s.error}[/red]")
    if failed:
        sys.exit(1)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def validate(file: Path) -> None:
    """Check FILE (YAML, types, connector settings, env vars) without starting anything."""
    config = _load(file)
    out.print(
        f"{file}: valid — {len(config.sources)} source(s), {len(config.sinks)} sink(s), "
        f"log {config.log.backend} at {config.log.path}"
    )


@cli.command()
@config_option
def topics(config_path: Path) -> None:
    """List topics with partitions, offsets and sizes."""
    config = _load(config_path)
    with _open_log(config) as log_:
        table = Table("topic", "partitions", "start", "end", "records", "size", "cleanup")
        for name in log_.list_topics():
            info = log_.describe_topic(name)
            start = sum(p.start_offset for p in info.partitions)
            end = sum(p.end_offset for p in info.partitions)
            table.add_row(name, str(len(info.partitions)), str(start), str(end),
                          str(end - start), _size(info.size_bytes), info.config.cleanup)
        out.print(table)


@cli.command()
@config_option
@click.argument("topic")
@click.option("--from", "from_", default="latest", show_default=True,
              help="earliest, latest, an offset, or an ISO-8601 time.")
@click.option("--follow/--no-follow", default=True, show_default=True,
              help="Keep waiting for new records.")
@click.option("-n", "--max", "max_records", type=int, default=None, help="Stop after N records.")
@click.option("--raw", is_flag=True, help="One JSON line per record, for scripts.")
def tail(config_path: Path, topic: str, from_: str, follow: bool, max_records: int | None,
         raw: bool) -> None:
    """Print records of TOPIC as they arrive."""
    spec = _offset_spec(from_)
    config = _load(config_path)
    shown = 0
    with _open_log(config) as log_:
        n = log_.topic_config(topic).partitions
        positions: dict[TopicPartition, int] = {}
        for p in range(n):
            tp = TopicPartition(topic, p)
            positions[tp] = _resolve(log_, tp, spec)
        while max_records is None or shown < max_records:
            batch = log_.fetch(positions, max_records=500, timeout=1.0 if follow else 0.0)
            if not batch:
                if not follow:
                    break
                continue
            for r in batch:
                positions[r.tp] = r.offset + 1
                _print_record(r, raw)
                shown += 1
                if max_records is not None and shown >= max_records:
                    break


@cli.command()
@config_option
@click.argument("sink", required=False)
def offsets(config_path: Path, sink: str | None) -> None:
    """Committed offsets and lag of every sink (or of SINK), and each source's checkpoint."""
    config = _load(config_path)
    with _open_log(config) as log_:
        table = Table("sink", "partition", "committed", "end", "lag")
        for s in config.sinks:
            if sink and s.name != sink:
                continue
            committed = log_.committed_offsets(s.name)
            for tp in _sink_partitions(log_, s.topics):
                end = log_.end_offset(tp)
                at = committed.get(tp)
                lag = end - (at if at is not None else log_.start_offset(tp))
                table.add_row(s.name, str(tp), "-" if at is None else str(at), str(end), str(lag))
        out.print(table)
        if sink is None:
            for src in config.sources:
                cp = log_.last_checkpoint(src.name)
                out.print(f"source {src.name}: checkpoint {mask(str(cp)) if cp else 'none yet'}")


@cli.command()
@config_option
@click.argument("sink")
@click.option("--to", "to", required=True,
              help="earliest, latest, an offset, or an ISO-8601 time (2026-01-31T02:00:00Z).")
@click.option("--topic", "topic_glob", default=None, help="Only partitions of topics matching.")
def reset(config_path: Path, sink: str, to: str, topic_glob: str | None) -> None:
    """Move SINK's committed offsets (the hub must not be running)."""
    from hub.runtime import Hub, open_pipeline_log

    spec = _offset_spec(to)
    config = _load(config_path)
    matches = [s for s in config.sinks if s.name == sink]
    if not matches:
        raise UsageError(f"no sink named {sink!r} in {config_path}; sinks: "
                         f"{', '.join(s.name for s in config.sinks) or 'none'}")
    try:
        log_ = open_pipeline_log(config)
    except LogLockedError as exc:
        raise UsageError(f"{exc}; stop the running hub before resetting offsets") from exc
    with log_:
        patterns = [topic_glob] if topic_glob else matches[0].topics
        tps = _sink_partitions(log_, patterns)
        new = log_.reset_offsets(sink, tps, spec)
        # A sink keeping its own offsets in the target (sql, batch files) rewinds them too;
        # it may move a partition further back, to a boundary it can rewrite whole.
        hub = Hub(config, log_)
        rewound = hub.build_sink(sink).rewind(new)
        if rewound != new:
            log_.commit_offsets(sink, {**log_.committed_offsets(sink), **rewound})
        for tp, off in sorted(rewound.items()):
            out.print(f"{sink} {tp} -> {off}")


@cli.command()
@config_option
@click.argument("sink")
@click.option("--until", default=None,
              help="Cutoff: an ISO-8601 time with zone (default: everything in the log now).")
def export(config_path: Path, sink: str, until: str | None) -> None:
    """Run one export of scheduled batch sink SINK now (the hub must not be running).
    Exit 1 if records were lost to retention before they could be exported."""
    from hub.export import export_now

    spec = _offset_spec(until) if until is not None else None
    if spec is not None and spec.kind != "timestamp":
        raise UsageError(f"--until {until!r}: expected an ISO-8601 time with zone, "
                         "e.g. 2026-01-31T02:00:00Z")
    result = export_now(_load(config_path), sink, spec.value if spec else None, err)
    for tp, n in sorted(result.lost.items()):
        err.print(f"[bold red]LOST {n} record(s) of {tp}: deleted by retention before "
                  "export[/bold red]")
    done = " (finished before; offsets committed now)" if result.already_done else ""
    out.print(f"{sink}: run {result.run_id or '-'}: {result.records} record(s) in "
              f"{len(result.files)} file(s){done}")
    if result.lost:
        sys.exit(1)


@cli.command()
@config_option
@click.argument("sink")
@click.option("--keep-old", is_flag=True, help="Keep the old index after the alias swap.")
def reindex(config_path: Path, sink: str, keep_old: bool) -> None:
    """Rebuild search sink SINK's indexes from the log and swap their aliases (no downtime)."""
    import logging

    from connectors.sink.search.config import SearchSinkConfig
    from connectors.sink.search.reindex import reindex as rebuild

    config = _load(config_path)
    matches = [s for s in config.sinks if s.name == sink]
    if not matches or not isinstance(matches[0], SearchSinkConfig):
        raise UsageError(f"no search sink named {sink!r} in {config_path}")
    with _open_log(config) as log_:
        for r in rebuild(matches[0], log_, logging.getLogger("changehub.reindex"),
                         keep_old=keep_old):
            out.print(f"{r.alias}: {r.records} records -> {r.new} "
                      f"(was {', '.join(r.old) or 'nothing'})")


@cli.command()
@config_option
@click.option("--watch", is_flag=True, help="Refresh every second until interrupted.")
def status(config_path: Path, watch: bool) -> None:
    """Connectors with state, errors and lag: live from the running hub's API, or from the
    log when no hub answers. Exit 1 when the hub reports a connector FAILED."""
    from rich.live import Live

    from hub.status_report import status_report

    config = _load(config_path)
    if not watch:
        report = status_report(config)
        out.print(report.view)
        if report.failed:
            err.print(f"[red]FAILED: {', '.join(report.failed)}[/red]")
            sys.exit(1)
        return
    with Live(status_report(config).view, console=out, refresh_per_second=4) as live:
        while True:
            time.sleep(1.0)
            live.update(status_report(config).view)


@cli.command()
@config_option
@click.argument("source")
@click.option("--table", "tables", multiple=True,
              help="A table to read again (schema.table); repeat for more. Default: all.")
def snapshot(config_path: Path, source: str, tables: tuple[str, ...]) -> None:
    """Read tables of SOURCE again on the running hub while it keeps streaming (an
    incremental snapshot, through the hub's API). Exit 1 if the hub is not running or
    SOURCE cannot do it."""
    from hub.api.client import request_snapshot

    out.print(request_snapshot(_load(config_path), source, list(tables) or None))


@cli.command()
@config_option
def doctor(config_path: Path) -> None:
    """Check every system the pipeline names (reachability, credentials, server settings,
    permissions, disk space) and print the fix for each problem. Exit 1 on any error."""
    from hub.doctor import diagnose

    config = _load(config_path)
    findings = diagnose(config)
    styles = {"ok": "green", "warning": "yellow", "error": "bold red"}
    system = None
    for f in findings:
        if f.system != system:
            system = f.system
            out.print(Text(system, style="bold"))
        out.print(Text(f"  {f.level:<7} ", style=styles[f.level]) + Text(f"{f.check}: {f.message}"))
        if f.fix and f.level != "ok":
            out.print(Text(f"          fix: {f.fix}"))
    errors = sum(f.level == "error" for f in findings)
    warnings = sum(f.level == "warning" for f in findings)
    if errors:
        err.print(f"[red]{errors} problem(s) to fix[/red], {warnings} warning(s)")
        sys.exit(1)
    out.print(f"no problems found ({warnings} warning(s))")


@cli.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Keep servers and data here (default: a temporary directory, "
              "removed afterwards).")
@click.option("--listen", default="127.0.0.1:8083", show_default=True,
              help="Address of the API and status page.")
@click.option("--for", "seconds", type=float, default=None,
              help="Stop after SECONDS, wait for the index to catch up and compare it with "
              "the tables (exit 1 if they differ).")
@click.option("--keep", is_flag=True, help="Keep the temporary directory.")
def demo(directory: Path | None, listen: str, seconds: float | None, keep: bool) -> None:
    """A throwaway PostgreSQL and OpenSearch, a live shop, and the Postgres -> search mirror
    with orders embedding their customer and lines; prints the status page and a query."""
    from hub.demo import run_demo

    result = run_demo(lambda line: err.print(line, markup=False), directory=directory,
                      listen=listen, seconds=seconds, keep=keep)
    if result is None:
        return
    out.print(f"{result.changes} changes written; orders: {result.orders_in_db} in Postgres, "
              f"{result.orders_in_index} in the index; order lines: {result.lines_in_db} in "
              f"Postgres, {result.lines_in_index} embedded in order documents")
    if not result.equal:
        err.print("[red]the index does not equal the tables[/red]")
        sys.exit(1)
    out.print("the index equals the tables")


@cli.command("migrate-log")
@config_option
@click.option("--to", "target", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The pipeline file naming the destination log (e.g. backend: kafka).")
def migrate_log(config_path: Path, target: Path) -> None:
    """Copy topics, source checkpoints and sink offsets to another log (embedded -> Kafka),
    so that the pipeline moves without a re-snapshot. Stop the hub first."""
    from hub.runtime import Hub, open_pipeline_log
    from log.migrate import migrate

    config, dest = _load(config_path), _load(target)
    if (config.log.backend, config.log.path) == (dest.log.backend, dest.log.path) and (
        config.log.backend == "embedded"
    ):
        raise UsageError(f"{config_path} and {target} name the same log")
    try:
        src = open_pipeline_log(config)
    except LogLockedError as exc:
        raise UsageError(f"{exc}; stop the running hub before migrating its log") from exc
    with src, open_pipeline_log(dest) as dst:
        report = migrate(
            src,
            dst,
            groups=[s.name for s in config.sinks],
            sources=[s.name for s in config.sources],
            topic_config=lambda name, _old: dest.log.topic_config(name),
            progress=lambda topic, n: err.print(f"  {topic}: {n} records", end="\r"),
        )
        # Sinks that keep offsets in their target (sql, batch) hold the old log's numbering:
        # move them to the new log's, as a reset does.
        hub = Hub(dest, dst)
        for group, offsets in report.groups.items():
            hub.build_sink(group).rewind(offsets)
    for topic, n in sorted(report.records.items()):
        out.print(f"topic {topic}: {n} records")
    for source in report.sources:
        out.print(f"source {source}: checkpoint copied")
    for group, offsets in sorted(report.groups.items()):
        out.print(f"sink {group}: offsets copied for {len(offsets)} partition(s)")
    for group, tps in sorted(report.skipped_offsets.items()):
        out.print(f"sink {group}: offsets of {', '.join(map(str, tps))} not copied "
                  "(their topics were not migrated)")
    out.print(f"done: run the pipeline with {target} from now on")


def _sink_partitions(log_: Log, patterns: list[str]) -> list[TopicPartition]:
    from hub.sink_worker import match_topics

    return [
        TopicPartition(t, p)
        for t in match_topics(patterns, log_.list_topics())
        for p in range(log_.topic_config(t).partitions)
    ]


def _offset_spec(text: str) -> OffsetSpec:
    try:
        return OffsetSpec.parse(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _resolve(log_: Log, tp: TopicPartition, spec: OffsetSpec) -> int:
    if spec.kind == "earliest":
        return log_.start_offset(tp)
    if spec.kind == "latest":
        return log_.end_offset(tp)
    if spec.kind == "offset":
        return min(max(spec.value, log_.start_offset(tp)), log_.end_offset(tp))
    return log_.offset_for_time(tp, spec.value)


def _print_record(r: LogRecord, raw: bool) -> None:
    key = r.key.decode("utf-8", "replace") if r.key is not None else None
    value: Any = None
    if r.value is not None:
        try:
            value = orjson.loads(r.value)
        except orjson.JSONDecodeError:
            value = r.value.decode("utf-8", "replace")
    if raw:
        sys.stdout.write(orjson.dumps({"topic": r.topic, "partition": r.partition,
                                       "offset": r.offset, "timestamp_ms": r.timestamp_ms,
                                       "key": key, "value": value}).decode() + "\n")
        sys.stdout.flush()
        return
    when = time.strftime("%H:%M:%S", time.localtime(r.timestamp_ms / 1000))
    if isinstance(value, dict) and "op" in value:
        op = value.get("op")
        row = value.get("after") if op != "d" else value.get("before")
        out.print(f"[dim]{when} {r.topic}[{r.partition}]@{r.offset}[/dim] [bold]{op}[/bold] "
                  f"{key} {orjson.dumps(row).decode()}", markup=True)
    else:
        shown = "[tombstone]" if value is None else orjson.dumps(value).decode()
        out.print(f"[dim]{when} {r.topic}[{r.partition}]@{r.offset}[/dim] {key} {shown}")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _error(exc: Exception) -> None:
    err.print(Text("error: ", style="bold red") + Text(mask(str(exc))))


def main(argv: list[str] | None = None) -> None:
    # Everything the hub writes (log segments, offsets, checkpoints, exports, schedule
    # state) holds the captured data: owner-only, whatever mode each writer asks for.
    os.umask(0o077)
    try:
        cli.main(args=argv, prog_name="changehub", standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except UsageError as exc:
        _error(exc)
        sys.exit(2)
    except ChangehubError as exc:
        _error(exc)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
