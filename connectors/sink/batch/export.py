"""One scheduled export run: committed offsets -> cutoff, into date-partitioned files.

Layout under the sink's ``path``::

    <topic>/dt=YYYY-MM-DD/<run id>-<partition>-<first offset>-<last offset>.<ext>
    <topic>/dt=YYYY-MM-DD/_SUCCESS
    _runs/<run id>.json

A run, in order:

1. The cutoff is fixed first: per partition the end offset (the high-water mark) at that
   moment, or with ``until`` the first offset at or after that time. Records appended later
   belong to the next run.
2. The run id is a hash of (topic, partition, from, cutoff) of every partition plus the shape
   and format, so rerunning the same night (after a crash, a kill -9, a failed commit) gives
   the same run id, the same file names and the same bytes: no duplicates.
3. Files are written under temporary names, fsync'd and renamed (:mod:`.files`).
4. The run manifest ``_runs/<run id>.json`` is written (atomically): it lists the files,
   offsets and counts and is what makes the run finished. Files that no finished manifest
   lists are what a killed run left and are deleted at the start of the next run.
5. ``_SUCCESS`` is written in every ``dt=`` directory the run wrote to, then the sink's
   offsets are committed to the cutoff. A crash after step 4 and before the commit: the next
   run finds its own manifest already there and only commits.

Shapes: ``changes`` writes every record from the committed offset to the cutoff (the date
comes from each record's timestamp in the configured time zone). ``latest`` writes the last
change of every key as of the cutoff, reading each partition from the start of the log (a
snapshot needs all keys: give such topics ``cleanup: compact`` or a long retention); a
delete or tombstone removes the key. Its files go to the date of the newest record read.

Data lost to retention (the committed offset below the log start) is counted per partition,
logged as an ERROR and written to the manifest under ``"lost"``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from connectors.api import Offsets, dead_letter_topic, merge_offsets
from connectors.sink.batch import parquet
from connectors.sink.batch.columnar import Decoder
from connectors.sink.batch.config import BatchSinkConfig
from connectors.sink.batch.files import TMP_SUFFIX, fsync_dir, safe_topic, write_durably
from connectors.sink.batch.rows import BadRecordError, ExportRow, export_row
from connectors.sink.batch.sink import WRITERS, storage_error
from hub.errors import FatalError, RecordError
from hub.sink_worker import match_topics
from log.api import Log, LogRecord, Record, RecordBlock, TopicPartition

__all__ = ["ExportResult", "RunFile", "clean_unfinished", "finished_runs", "run_export"]

log = logging.getLogger("changehub.export")

RUNS_DIR = "_runs"
SUCCESS = "_SUCCESS"
READ_RECORDS = 10_000

_RUN_FILE = re.compile(r"[0-9a-f]{16}-\d+-\d+-\d+\.(jsonl|parquet|csv)")

Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class RunFile:
    file: str  # relative to the export directory, with /
    topic: str
    partition: int
    date: str
    first_offset: int
    last_offset: int
    records: int
    bytes: int
    sha256: str


@dataclass
class ExportResult:
    """What a run did. ``run_id`` is None when there was nothing to export."""

    run_id: str | None
    records: int = 0
    files: list[RunFile] = field(default_factory=list)
    lost: dict[TopicPartition, int] = field(default_factory=dict)
    cutoff: Offsets = field(default_factory=dict)
    already_done: bool = False  # the same run had finished before (only the commit was left)


def run_export(
    config: BatchSinkConfig,
    log_: Log,
    *,
    until_ms: int | None = None,
    progress: Progress = lambda *_: None,
    ensure_topic: Callable[[str], int] | None = None,
) -> ExportResult:
    """Run one export of sink ``config`` (see the module doc); return what it did."""
    try:
        return _run(config, log_, until_ms, progress, ensure_topic)
    except OSError as exc:
        raise storage_error(exc, f"exporting to {config.path}") from exc


def _run(
    config: BatchSinkConfig, log_: Log, until_ms: int | None, progress: Progress,
    ensure_topic: Callable[[str], int] | None,
) -> ExportResult:
    root = config.path
    group = config.name
    root.mkdir(parents=True, exist_ok=True)
    committed = log_.committed_offsets(group)
    plan = _plan(config, log_, committed, until_ms)
    finished = finished_runs(root)
    _remove_unfinished(root, finished)
    lost = {p.tp: p.lost for p in plan if p.lost}
    for p in plan:
        if p.lost:
            log.error(
                "sink %s: %d record(s) of %s were deleted by retention before they were "
                "exported (committed offset %d, log start %d): they are LOST and not in "
                "this export", group, p.lost, p.tp, p.committed, p.start,
            )
    cutoff = {p.tp: p.cutoff for p in plan}
    result = ExportResult(run_id=None, lost=lost, cutoff=cutoff)
    if all(p.origin >= p.cutoff for p in plan) and not lost:
        # Nothing new since the last cutoff (for latest too: its snapshot would be the same).
        _commit(log_, group, committed, cutoff)
        return result
    run_id = _run_id(config, plan)
    result.run_id = run_id
    manifest = root / RUNS_DIR / f"{run_id}.json"
    if run_id in finished:
        done = orjson.loads(manifest.read_bytes())
        result.already_done = True
        result.records = done["records"]
        result.files = [RunFile(**f) for f in done["files"]]
    else:
        dead: list[tuple[LogRecord, str]] = []
        writer = _Writer(config, run_id, progress, sum(p.cutoff - p.read_from for p in plan),
                         _Rejects(config, dead))
        try:
            for p in plan:
                if config.shape == "latest":
                    writer.write_latest(p.tp, writer.rows(_records(log_, p)))
                else:
                    writer.write_changes(p.tp, _blocks(log_, p))
            writer.finish()
        finally:
            writer.close()
        if dead:
            _dead_letter(config, log_, dead, ensure_topic)
        result.files, result.records = writer.files, writer.records
        _write_manifest(root, manifest, config, run_id, plan, result)
    for directory in sorted({str(Path(f.file).parent) for f in result.files}):
        write_durably(root, Path(directory, SUCCESS), f"{run_id}\n".encode())
    _commit(log_, group, committed, cutoff)
    return result


def clean_unfinished(config: BatchSinkConfig) -> None:
    """Delete what killed runs left (each run does this first; the hub also at start)."""
    try:
        if config.path.is_dir():
            _remove_unfinished(config.path, finished_runs(config.path))
    except OSError as exc:
        raise storage_error(exc, f"cleaning up export directory {config.path}") from exc


def finished_runs(root: Path) -> dict[str, set[str]]:
    """Run id -> files listed, for every finished run (its manifest is there)."""
    out: dict[str, set[str]] = {}
    runs = root / RUNS_DIR
    if not runs.is_dir():
        return out
    for path in sorted(runs.glob("*.json")):
        try:
            data = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise FatalError(
                f"{path} is not a run manifest ({exc}); it was edited or damaged: restore "
                "it, or delete it together with the files it lists"
            ) from None
        out[path.stem] = {f["file"] for f in data["files"]}
    return out


# -- planning ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Partition:
    tp: TopicPartition
    committed: int | None  # the sink's committed offset, None if it never committed
    start: int  # the log start offset
    read_from: int
    cutoff: int
    lost: int

    @property
    def origin(self) -> int:
        """Where the sink stands: its committed offset, or the log start if it never committed
        (the same run either way)."""
        return self.committed if self.committed is not None else self.start


def _plan(
    config: BatchSinkConfig, log_: Log, committed: Offsets, until_ms: int | None
) -> list[_Partition]:
    dlq = dead_letter_topic(config)
    plan = []
    for topic in match_topics(config.topics, log_.list_topics()):
        if topic == dlq:
            continue
        if not safe_topic(topic):
            raise FatalError(
                f"topic name {topic!r} cannot be used as a directory name; leave it out of "
                f"sink {config.name!r}'s topics"
            )
        for partition in range(log_.topic_config(topic).partitions):
            tp = TopicPartition(topic, partition)
            start = log_.start_offset(tp)
            at = committed.get(tp)
            cutoff = log_.end_offset(tp) if until_ms is None else log_.offset_for_time(
                tp, until_ms)
            lost = max(0, start - at) if at is not None else 0
            if config.shape == "latest":
                read_from = start
            else:
                read_from = max(start, at if at is not None else start)
            plan.append(_Partition(tp, at, start, read_from, max(cutoff, read_from), lost))
    return plan


def _run_id(config: BatchSinkConfig, plan: list[_Partition]) -> str:
    """Stable across reruns of the same night: from the offsets, not from the clock."""
    key = orjson.dumps({
        "shape": config.shape,
        "format": config.format,
        "timezone": config.timezone,
        "partitions": [[p.tp.topic, p.tp.partition, p.origin, p.cutoff] for p in plan],
    })
    return hashlib.sha256(key).hexdigest()[:16]


# -- reading ----------------------------------------------------------------------------------


def _records(log_: Log, p: _Partition) -> Iterator[LogRecord]:
    position = p.read_from
    while position < p.cutoff:
        batch = log_.read(p.tp, position, max_records=min(READ_RECORDS, p.cutoff - position))
        if not batch:
            break  # the rest up to the cutoff is not readable records (Kafka markers)
        if batch[-1].offset < p.cutoff:
            yield from batch
        else:
            yield from (r for r in batch if r.offset < p.cutoff)
            return
        position = batch[-1].offset + 1


def _blocks(log_: Log, p: _Partition) -> Iterator[RecordBlock]:
    """The records of :func:`_records` as the log's columnar reads (no object per record)."""
    position = p.read_from
    while position < p.cutoff:
        block = log_.read_block(p.tp, position, max_records=min(READ_RECORDS,
                                                                 p.cutoff - position))
        if not len(block):
            break  # the rest up to the cutoff is not readable records (Kafka markers)
        last = block.offsets[-1]
        if last >= p.cutoff:
            block = block.slice(0, bisect_left(block.offsets, p.cutoff))
            if len(block):
                yield block
            return
        yield block
        position = last + 1


@dataclass
class _Rejects:
    """Records that cannot be exported: a RecordError, or with ``errors.tolerance: all``
    kept for the dead-letter topic."""

    config: BatchSinkConfig
    dead: list[tuple[LogRecord, str]]

    def __call__(self, record: LogRecord, reason: str) -> None:
        if self.config.errors.tolerance != "all":
            raise RecordError(
                f"{reason} (set errors.tolerance: all on sink {self.config.name!r} to send "
                "such records to its dead-letter topic and carry on)",
                topic=record.topic, partition=record.partition, offset=record.offset,
            )
        self.dead.append((record, reason))


def _dead_letter(
    config: BatchSinkConfig, log_: Log, dead: list[tuple[LogRecord, str]],
    ensure_topic: Callable[[str], int] | None,
) -> None:
    dlq = dead_letter_topic(config)
    if ensure_topic is None:
        raise FatalError(f"sink {config.name!r} has records for its dead-letter topic {dlq} "
                         "but no way to create it here")
    ensure_topic(dlq)
    log_.append(TopicPartition(dlq, 0), [
        Record(r.key, r.value, r.timestamp_ms, (
            ("changehub.error.reason", why.encode()),
            ("changehub.error.sink", config.name.encode()),
            ("changehub.source.topic", r.topic.encode()),
            ("changehub.source.partition", str(r.partition).encode()),
            ("changehub.source.offset", str(r.offset).encode()),
        ))
        for r, why in dead
    ])
    log.warning("sink %s: %d record(s) -> dead-letter topic %s", config.name, len(dead), dlq)


# -- writing ----------------------------------------------------------------------------------


class _Writer:
    """Encodes rows into files of one run, and counts them for progress."""

    def __init__(self, config: BatchSinkConfig, run_id: str, progress: Progress,
                 total: int, reject: _Rejects) -> None:
        self.root = config.path
        self.run_id = run_id
        self.zone = ZoneInfo(config.timezone)
        self.max_rows = config.max_file_records
        self.extension, self.encode = WRITERS[config.format]
        self.progress = progress
        self.total = total
        self.read = 0
        self.files: list[RunFile] = []
        self.records = 0
        self._day = (0, 0, date.min)  # [from ms, to ms) of the last local day seen
        self.reject = reject
        # Parquet files of changes are decoded a file at a time in DuckDB (.columnar)
        self.decoder = Decoder() if config.format == "parquet" else None
        # ... and encoded and written on a worker thread (pyarrow releases the interpreter
        # lock) while this one reads and decodes the next file; one file at a time, so the
        # files are written in order and at most two are in memory.
        self._pool: ThreadPoolExecutor | None = None
        self._writing: Future[RunFile] | None = None

    def finish(self) -> None:
        """Wait for the file being written (before the run's manifest)."""
        self._written()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # a failed run's last file is left to the next
            self._pool = None  # run's clean-up, as a killed run's
        if self.decoder is not None:
            self.decoder.close()

    def rows(self, records: Iterable[LogRecord]) -> Iterator[ExportRow]:
        """``records`` decoded one by one; those that cannot be exported go to ``reject``."""
        for record in records:
            try:
                yield export_row(record)
            except BadRecordError as exc:
                self.reject(record, str(exc))

    def day(self, timestamp_ms: int) -> date:
        # Called for every row: the local day's bounds in ms are kept, so converting a
        # timestamp in the zone (~2 us) happens once a day of records, not once a record.
        lo, hi, known = self._day
        if lo <= timestamp_ms < hi:
            return known
        day = datetime.fromtimestamp(timestamp_ms / 1000, self.zone).date()
        start = datetime.combine(day, datetime.min.time(), self.zone)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), self.zone)
        lo, hi = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        if lo <= timestamp_ms < hi:  # else a zone whose midnight is skipped: do not cache
            self._day = (lo, hi, day)
        return day

    def write_changes(self, tp: TopicPartition, blocks: Iterator[RecordBlock]) -> None:
        # Records are buffered as they were read, in the log's columnar blocks (no parsing
        # yet): a file's worth is decoded at once in _changes_file. A file holds the records
        # of one local day in a row, at most max_rows of them.
        buffer: list[RecordBlock] = []
        count = 0
        day = date.min
        max_rows = self.max_rows
        for block in blocks:
            for row_day, part in self._days(block):
                rest = part
                while len(rest):
                    if buffer and (row_day != day or count >= max_rows):
                        self._changes_file(tp, day, buffer)
                        buffer, count = [], 0
                    day = row_day
                    take = rest.slice(0, max_rows - count)
                    buffer.append(take)
                    count += len(take)
                    rest = rest.slice(len(take), len(rest))
            before = self.read
            self.read += len(block)
            if self.read // 10_000 != before // 10_000:
                self.progress("export", self.read, self.total)
        if buffer:
            self._changes_file(tp, day, buffer)

    def _days(self, block: RecordBlock) -> Iterator[tuple[date, RecordBlock]]:
        """``block`` cut where the local day of its records' timestamps changes."""
        times = block.timestamps
        lo, hi, known = self._day
        if lo <= min(times) and max(times) < hi:
            yield known, block  # the usual case: all of one day, checked in C
            return
        start = 0
        current = self.day(times[0])
        for i, timestamp_ms in enumerate(times):
            lo, hi, known = self._day
            row_day = known if lo <= timestamp_ms < hi else self.day(timestamp_ms)
            if row_day != current:
                yield current, block.slice(start, i)
                start, current = i, row_day
        yield current, block.slice(start, len(block))

    def _changes_file(self, tp: TopicPartition, day: date, blocks: list[RecordBlock]) -> None:
        table = None if self.decoder is None else self.decoder.block_table(
            blocks, parquet.SCHEMA)
        if table is not None:
            first, last = blocks[0].offsets[0], blocks[-1].offsets[-1]
            self._written()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="export-write")
            self._writing = self._pool.submit(
                lambda: self._store(tp, day, parquet.write(table), first, last, table.num_rows))
            return
        # Another format, or a record the batch decoder left: each record on its own, and
        # those that cannot be exported are rejected (they are not in the file).
        rows = list(self.rows(r for b in blocks for r in b.records()))
        if rows:
            self._file(tp, day, rows)

    def write_latest(self, tp: TopicPartition, rows: Iterator[ExportRow]) -> None:
        latest: dict[bytes, ExportRow] = {}
        newest = 0
        for row in rows:
            self._count(row)
            newest = max(newest, row.record.timestamp_ms)
            key = row.record.key
            if key is None:
                continue  # no key, no state to keep
            if row.record.value is None or row.op == "d":
                latest.pop(key, None)
            else:
                latest.pop(key, None)  # re-insert: rows stay in the order of their last change
                latest[key] = row
        state = list(latest.values())
        day = self.day(newest)
        for i in range(0, len(state), self.max_rows):
            self._file(tp, day, state[i:i + self.max_rows])

    def _count(self, row: ExportRow) -> None:
        self.read += 1
        if self.read % 10_000 == 0:
            self.progress("export", self.read, self.total)

    def _file(self, tp: TopicPartition, day: date, rows: list[ExportRow]) -> None:
        # latest-shape rows are in the order of their last change, not of their offsets
        first, last = min(r.offset for r in rows), max(r.offset for r in rows)
        self._write(tp, day, self.encode(rows), first, last, len(rows))

    def _write(self, tp: TopicPartition, day: date, data: bytes, first: int, last: int,
               count: int) -> None:
        self._written()  # files stay in the order they were read
        self._add(self._store(tp, day, data, first, last, count))

    def _store(self, tp: TopicPartition, day: date, data: bytes, first: int, last: int,
               count: int) -> RunFile:
        """Write one file durably (on the worker for Parquet files of changes)."""
        relative = Path(tp.topic, f"dt={day.isoformat()}",
                        f"{self.run_id}-{tp.partition}-{first}-{last}.{self.extension}")
        write_durably(self.root, relative, data)
        return RunFile(
            file=relative.as_posix(), topic=tp.topic, partition=tp.partition,
            date=day.isoformat(), first_offset=first, last_offset=last, records=count,
            bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
        )

    def _written(self) -> None:
        """Wait for the file the worker is writing, if any (its error is raised here)."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            self._add(writing.result())

    def _add(self, file: RunFile) -> None:
        self.files.append(file)
        self.records += file.records
        self.progress("export", self.read, self.total)


def _write_manifest(root: Path, manifest: Path, config: BatchSinkConfig, run_id: str,
                    plan: list[_Partition], result: ExportResult) -> None:
    body = {
        "run_id": run_id,
        "sink": config.name,
        "shape": config.shape,
        "format": config.format,
        "timezone": config.timezone,
        "partitions": [
            {"topic": p.tp.topic, "partition": p.tp.partition, "committed": p.committed,
             "from": p.read_from, "cutoff": p.cutoff, "lost": p.lost}
            for p in plan
        ],
        "lost": {str(tp): n for tp, n in sorted(result.lost.items())},
        "records": result.records,
        "files": [asdict(f) for f in result.files],
        "finished_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    write_durably(root, manifest.relative_to(root),
                  orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))


def _remove_unfinished(root: Path, finished: dict[str, set[str]]) -> None:
    """Delete run files no finished manifest lists, and temporary files (a killed run's)."""
    keep = set().union(*finished.values()) if finished else set()
    touched: set[Path] = set()
    for path in [*root.glob("*/dt=*/*"), *root.glob(f"{RUNS_DIR}/*")]:
        name = path.name
        is_tmp = name.startswith(".") and name.endswith(TMP_SUFFIX)
        stray = bool(_RUN_FILE.fullmatch(name)) and path.relative_to(root).as_posix() not in keep
        if path.is_file() and (is_tmp or stray):
            path.unlink()
            touched.add(path.parent)
            log.info("export: removed %s (written by a run that did not finish)", path)
    for directory in touched:
        fsync_dir(directory)


def _commit(log_: Log, group: str, committed: Offsets, cutoff: Offsets) -> None:
    new = merge_offsets(committed, cutoff)
    if new != committed:
        log_.commit_offsets(group, new)
