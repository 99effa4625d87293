"""A large table's snapshot chunks read and encoded in a child process, on the second core.

In one process the snapshot is bound by the GIL: receiving COPY rows from libpq (one call a
row) and encoding them run on the source's reader thread while the hub's thread routes and
appends the previous chunk, and only one of them runs at a time. Here a child process does
the receiving and the encoding (:class:`~connectors.source.postgres.copy_out.CopyOut` and
:class:`~connectors.source.postgres.columnar.ChunkEncoder`, the same code as in process)
and sends each chunk back laid out as the log's batch columns (key and value lengths, then
the keys and the values concatenated): the parent hands them to the log as they are
(:class:`~connectors.api.SourceColumns`), with no Python object per row, and is left with
the log's work (a checksum and a write).

Transport: each chunk's answer is a small pickled message (last key, the length columns,
the sizes, the slot) on a pipe; the keys' and values' raw bytes, written straight from the
encoder's buffers (no pickle of the bulk), are in one of two shared memory files (memfd,
"slots") that the parent reads at once (see :func:`_memfds`), or where there are none, or a
chunk is larger than a slot, follow the message on the pipe (widened to 1 MiB where Linux
allows). The child writes its answers on a second thread, so it encodes the next chunk
meanwhile.

Consistency: the child reads in the parent's snapshot. The parent exports the snapshot of
its transaction (``pg_export_snapshot()``, valid while that transaction lives) and the child
imports it (``SET TRANSACTION SNAPSHOT``) in a REPEATABLE READ, READ ONLY transaction, on a
connection with the parent's settings (so the text of every value is the same).

Order and memory: one child, one request per chunk, answered in order; the parent keeps at
most :data:`REQUESTS_AHEAD` requests out, so at most four chunks are in flight (and the
slots hold three, in shared memory that neither process maps, so neither's RSS shows it).
Each request carries the envelope's suffix (its ``ts_ms``), so the events are those the
parent would have made.

The child is a new interpreter (``python -m`` this module; a fork of a process with threads
can inherit a lock another thread held), talking over two pipes. It exits when the parent
tells it or when the parent goes away (its pipe closes).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import subprocess
import sys
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Final

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from connectors.source.postgres.catalog import catalog_error, load_types
from connectors.source.postgres.columnar import (
    Blob,
    ChunkEncoder,
    import_arrow,
    last_line,
    parse_copy_line,
)
from connectors.source.postgres.copy_out import CopyOut
from connectors.source.postgres.schema import TableSchema
from connectors.source.postgres.types import TypeMap
from hub.errors import ConnectorError, FatalError, RetriableError, SchemaError

if TYPE_CHECKING:
    from connectors.api import SourceColumns

__all__ = ["REQUESTS_AHEAD", "ChunkProcess", "TableSpec", "conninfo_of"]

_PIPE_BYTES: Final = 1 << 20  # Linux's default ceiling for an unprivileged process
# A chunk's keys and values cross in one of two shared memory files (memfd) when they fit.
# Requests the parent keeps out: the child goes on with the next chunks while the parent's
# hub appends (a chunk's write and fdatasync of ~3.5 MB); with two, the child waited for
# requests ~15% of its time (py-spy --idle, load 6). As many slots, so that one is free.
REQUESTS_AHEAD: Final = 3
_SLOTS: Final = REQUESTS_AHEAD
_READS_AHEAD: Final = 2  # chunks of COPY rows read ahead in the child (see _Table)
_SLOT_BYTES: Final = 64 << 20
_ERRORS: Final[dict[str, type[ConnectorError]]] = {
    "RetriableError": RetriableError,
    "FatalError": FatalError,
    "SchemaError": SchemaError,
}
_CONVERSION_FAILS: Final = (ValueError, IndexError, TypeError)


@dataclass(frozen=True)
class TableSpec:
    """What the child needs of a table: its columns and types (to rebuild the converters
    from its own catalog reads), key, name for messages, and the COPY to run."""

    schema: str
    table: str
    oid: int
    columns: tuple[str, ...]
    type_oids: tuple[int, ...]
    key: tuple[str, ...] | None
    identity: str
    copy_query: bytes

    @classmethod
    def of(cls, schema: TableSchema, copy_query: bytes) -> TableSpec:
        return cls(
            schema=schema.schema,
            table=schema.table,
            oid=schema.oid,
            columns=schema.columns,
            type_oids=schema.type_oids,
            key=schema.key,
            identity=schema.identity,
            copy_query=copy_query,
        )


@dataclass(frozen=True)
class EncodedChunk:
    records: SourceColumns
    last_key: tuple[str, ...] | None  # the text of the last row's key (pageable tables)


def conninfo_of(conn: psycopg.Connection[Any]) -> str:
    """A conninfo string for a connection like ``conn`` (its host, credentials, TLS and
    session ``options``), for the child's own connection. Never logged."""
    params = {
        o.keyword.decode(): o.val.decode()
        for o in conn.pgconn.info
        if o.val is not None and o.keyword not in (b"replication", b"fallback_application_name")
    }
    params["application_name"] = params.get("application_name", "changehub") + " worker"
    return make_conninfo("", **params)


class ChunkProcess:
    """The child process and its pipe. Used by one thread at a time."""

    def __init__(self, conninfo: str, snapshot_id: str) -> None:
        # A plain interpreter running this module, not multiprocessing's spawn: that one
        # runs the parent's main script again in the child, which breaks any script
        # without an ``if __name__ == "__main__"`` guard.
        down_r, down_w = os.pipe()  # parent -> child
        up_r, up_w = os.pipe()  # child -> parent
        _widen(up_r)
        self._slots = _memfds()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(down_r), str(up_w), *map(str, self._slots)],
                pass_fds=(down_r, up_w, *self._slots),
                stdin=subprocess.DEVNULL,
                env=env,
                # Not in the terminal's process group: a Ctrl-C is the hub's to handle (it
                # stops the snapshot, which stops the child), not a traceback in the child.
                start_new_session=True,
            )
        except OSError as exc:
            for fd in (down_r, down_w, up_r, up_w, *self._slots):
                os.close(fd)
            raise FatalError(f"starting the snapshot's worker process: {exc}") from None
        os.close(down_r)  # the child's ends: its death then reads as end-of-file here
        os.close(up_w)
        self._out = Connection(down_w, readable=False)
        self._in = Connection(up_r, writable=False)
        self._outstanding: list[int] = []  # ts_ms of each request sent, oldest first
        self._ready = False
        # The connection string (with its password) goes through the pipe, not the
        # command line that any local user can see.
        self._send(("start", conninfo, snapshot_id))

    def ready(self) -> bool:
        """Whether the child has started (imported, connected, in the snapshot), without
        waiting; raises its failure to start."""
        if not self._ready and self._in.poll(0):
            self._receive()
            self._ready = True
        return self._ready

    def open_table(self, spec: TableSpec) -> None:
        if not self._ready:
            self._receive()  # "ok", or the child's failure to start
            self._ready = True
        self._drain()
        self._send(("table", spec))
        self._receive()

    def request(self, n: int, head: bytes, suffix: bytes, ts_ms: int) -> None:
        """Ask for the next ``n`` rows as events ``head + row + suffix`` (sent at once; the
        child works on it while the caller does something else)."""
        self._send(("chunk", n, head, suffix))
        self._outstanding.append(ts_ms)

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)

    def receive(self, topic: str) -> EncodedChunk:
        """The oldest request's chunk (fewer than ``n`` records: the table's end)."""
        # Here, not at the top: the worker, which imports this module too, starts faster
        # without them (connectors.api's pydantic models took ~0.3 s of its start).
        from connectors.api import SourceColumns
        from log.batch import RecordColumns

        ts_ms = self._outstanding.pop(0)
        (last_key, klens, vlens), keys, values = self._receive()
        columns = RecordColumns(klens, keys, vlens, values, ts_ms)
        return EncodedChunk(SourceColumns(topic, columns), last_key)

    def close(self) -> None:
        """Stop the child (its transaction ends with it)."""
        if not self._ready:
            self._process.kill()  # still starting: nothing of it to wait for
        # Answers still on their way first: a child blocked writing one would not read
        # "exit".
        with contextlib.suppress(ConnectorError):
            self._drain()
            self._send(("exit",))
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._out.close()
        self._in.close()
        for fd in self._slots:
            os.close(fd)

    def _drain(self) -> None:
        """Read the answers still to come, errors among them included (the caller has seen
        the one that matters), so the child is free to read the next message."""
        while self._outstanding:
            self._outstanding.pop(0)
            self._receive(errors=False)

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            self._out.send(message)
        except (OSError, ValueError) as exc:
            raise self._died(exc) from None

    def _receive(self, *, errors: bool = True) -> Any:
        try:
            kind, payload = self._in.recv()
            if kind == "chunk":  # its keys and values: in a slot, or following, raw
                meta, ksize, vsize, slot = payload
                if slot is None:
                    fd = self._in.fileno()
                    payload = (meta, _read_exact(fd, ksize), _read_exact(fd, vsize))
                else:
                    fd = self._slots[slot]
                    payload = (meta, _pread_exact(fd, ksize, 0), _pread_exact(fd, vsize, ksize))
        except (EOFError, OSError) as exc:
            raise self._died(exc) from None
        if kind == "error" and errors:
            name, message = payload
            raise _ERRORS.get(name, FatalError)(message)
        return payload

    def _died(self, exc: BaseException) -> RetriableError:
        try:
            code: int | None = self._process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            code = None
        return RetriableError(
            f"the snapshot's worker process ended unexpectedly (exit code {code}, {exc!r}); "
            "the snapshot resumes from its last chunk"
        )


def _widen(fd: int) -> None:
    """Make the pipe at ``fd`` hold :data:`_PIPE_BYTES` (fewer system calls a chunk) where
    the system lets it; a narrower pipe only costs more calls."""
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


def _memfds() -> tuple[int, ...]:
    """The slots: :data:`_SLOTS` anonymous shared memory files, or none where the system
    has no ``memfd_create`` (then every chunk crosses the pipe).

    Through the pipe a chunk's ~3.5 MB cost ~0.45 µs a row of CPU in both processes
    together (the kernel's copies in 1 MiB turns, and the parent's buffer copied once
    more into bytes); written and read at once (``pwrite``, ``pread``) in a file the
    two share, ~0.1 µs, and its pages, once touched, are reused by every later chunk.
    The child writes its n-th chunk into slot n % 3. The parent asks for chunk n only
    after it has read chunk n - 3 out (it keeps three requests out at most, and reads a
    chunk before it asks for the next), so a slot is never written while it is read.
    """
    if not hasattr(os, "memfd_create"):
        return ()
    fds: list[int] = []
    try:
        for _ in range(_SLOTS):
            fds.append(os.memfd_create("changehub-snapshot-chunk"))  # close-on-exec
    except OSError:
        for fd in fds:
            os.close(fd)
        return ()
    return tuple(fds)


def _pread_exact(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes at ``offset`` of the file ``fd``."""
    data = os.pread(fd, size, offset)
    if len(data) == size:
        return data  # one read, one copy: the common case
    parts = [data]
    got = len(data)
    while got < size:
        more = os.pread(fd, size - got, offset + got)
        if not more:
            raise EOFError(f"a chunk's slot ended {size - got} bytes short")
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _read_exact(fd: int, size: int) -> bytes:
    """``size`` bytes from ``fd``, in as many reads as the pipe needs."""
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = os.readv(fd, [view[got:]])
        if n == 0:
            raise EOFError(f"the pipe closed {size - got} bytes before the end of a chunk")
        got += n
    view.release()
    return bytes(buf)


def _write_all(fd: int, data: Blob) -> None:
    with memoryview(data) as view:
        rest = view.cast("B")
        while rest:
            rest = rest[os.write(fd, rest) :]


# -- the child ----------------------------------------------------------------------------


def _serve(down: Connection, up: Connection, slots: tuple[int, ...]) -> None:
    """The child's loop: one answer per message, in order, until "exit" or the pipe closes."""
    try:
        _, conninfo, snapshot_id = down.recv()
        import_arrow()  # before "ok": the parent reads chunks itself until then
        conn = _connect(conninfo, snapshot_id)
    except EOFError:
        return
    except Exception as exc:
        _answer_error(up, exc, "starting the snapshot's worker process")
        return
    up.send(("ok", None))
    answers = _Answers(up, slots)
    table: _Table | None = None
    spec: TableSpec | None = None
    try:
        while True:
            try:
                message = down.recv()
            except EOFError:
                return  # the parent is gone
            if message[0] == "exit":
                answers.wait()
                return
            try:
                if message[0] == "table":
                    if table is not None:
                        table.close()
                    table = None
                    spec = message[1]
                    table = _Table(conn, spec)
                    answers.send(("ok", None))
                else:
                    assert table is not None, "a chunk asked for before a table"
                    _, n, head, suffix = message
                    meta, keys, values = table.chunk(n, head, suffix)
                    answers.chunk(meta, keys, values)
            except (BrokenPipeError, ConnectionResetError):
                raise
            except Exception as exc:
                name = "a table" if spec is None else f"{spec.schema}.{spec.table}"
                answers.wait()
                _answer_error(up, exc, f"reading {name} for the snapshot")
    except (BrokenPipeError, ConnectionResetError):
        return  # the parent is gone
    finally:
        answers.close()
        if table is not None:  # its read ahead ends before the connection does
            with contextlib.suppress(Exception):
                table.close()
        conn.close()


class _Answers:
    """The child's answers, written to the parent's pipe on a second thread, in order.

    A chunk's ~3.5 MB cross a 1 MiB pipe only as fast as the parent reads them, and the
    parent reads them after it handed the chunk before to the hub: written on the main
    thread, the next chunk waited for that (a quarter of the child's time, py-spy).
    Here the next chunk is encoded meanwhile. One answer at most is being written while
    the next is made, so at most two chunks are held here."""

    def __init__(self, up: Connection, slots: tuple[int, ...]) -> None:
        self._up = up
        self._slots = slots
        self._chunks = 0  # chunks written into slots: the next goes into slot n % len
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="answer-writer")
        self._pending: Future[None] | None = None

    def send(self, message: tuple[Any, ...]) -> None:
        """Write ``message``, once the answer before is out."""
        self.wait()
        self._pending = self._writer.submit(self._write, message, ())

    def chunk(self, meta: Any, keys: Blob, values: Blob) -> None:
        """A chunk's answer: its keys and values in a slot (see :func:`_memfds`) if they
        fit, else raw after the message."""
        self.wait()
        ksize, vsize = len(keys), len(values)
        if self._slots and ksize + vsize <= _SLOT_BYTES:
            slot = self._chunks % len(self._slots)
            self._chunks += 1
            self._pending = self._writer.submit(self._write_slot, meta, slot, keys, values)
        else:
            message = ("chunk", (meta, ksize, vsize, None))
            self._pending = self._writer.submit(self._write, message, (keys, values))

    def wait(self) -> None:
        """Until the answer being written is out; raises its failure (a closed pipe)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.wait()
        self._writer.shutdown()

    def _write(self, message: tuple[Any, ...], blobs: tuple[Blob, ...]) -> None:
        self._up.send(message)
        for blob in blobs:
            _write_all(self._up.fileno(), blob)

    def _write_slot(self, meta: Any, slot: int, keys: Blob, values: Blob) -> None:
        fd = self._slots[slot]
        try:
            _pwrite_all(fd, keys, 0)
            _pwrite_all(fd, values, len(keys))
        except OSError:  # no memory for the slot's pages: this one goes by the pipe
            self._write(("chunk", (meta, len(keys), len(values), None)), (keys, values))
            return
        # After the data: the parent reads the slot when this arrives.
        self._up.send(("chunk", (meta, len(keys), len(values), slot)))


def _pwrite_all(fd: int, data: Blob, offset: int) -> None:
    with memoryview(data) as view:
        rest = view.cast("B")
        while rest:
            n = os.pwrite(fd, rest, offset)
            rest, offset = rest[n:], offset + n


def _connect(conninfo: str, snapshot_id: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(conninfo)
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot_id)))
    # Rows in key order straight from the key's index, as in process (snapshot.py).
    conn.execute("SET LOCAL enable_sort = off")
    return conn


class _Table:
    """One table's COPY in the child, and its encoder.

    The next chunks' rows are read on a second thread while this one encodes: Postgres
    only gets as far ahead as the socket's buffers (a few thousand rows), so read in turn
    with encoding, every chunk waited for most of its rows to be produced. Two reads are
    kept out (:data:`_READS_AHEAD`): with one, the reading thread waited for its next read
    ~80% of the time (py-spy --idle) and Postgres with it, once the socket was full. The
    threads take turns on the GIL for their Python work, but the waits overlap. Only that
    thread uses the connection while a read is out (the converters were built before the
    COPY began).
    """

    def __init__(self, conn: psycopg.Connection[Any], spec: TableSpec) -> None:
        self.spec = spec
        # The envelope's source block comes from the parent: only the values are mapped
        # here, so the schema needs no source name or database.
        self._schema = TableSchema(
            source_name="",
            db="",
            oid=spec.oid,
            schema=spec.schema,
            table=spec.table,
            columns=spec.columns,
            type_oids=spec.type_oids,
            key=spec.key,
            identity=spec.identity,
            types=TypeMap(partial(load_types, conn)),
        )
        self._encoder = ChunkEncoder(self._schema)
        self._key_index = self._schema.key_index
        self._copy = CopyOut(conn, spec.copy_query)
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="copy-reader")
        self._ahead: deque[Future[tuple[bytes, int]]] = deque()
        self._n = 0  # rows a chunk, the same for every chunk of the table

    def chunk(
        self, n: int, head: bytes, suffix: bytes
    ) -> tuple[tuple[tuple[str, ...] | None, bytes, bytes], Blob, Blob]:
        """The next ``n`` rows' events: (last key, key lengths, value lengths), the keys
        and the values back to back."""
        assert self._n in (0, n), "every chunk of a table asks for the same number of rows"
        self._n = n
        if not self._ahead:
            self._ahead.append(self._reader.submit(self._copy.read_block, n))
        block, count = self._ahead.popleft().result()
        # Not the end yet: read on while this chunk is encoded. (Reads past the end, out
        # already, give no rows.)
        while count == n and len(self._ahead) < _READS_AHEAD:
            self._ahead.append(self._reader.submit(self._copy.read_block, n))
        try:
            (klens, keys), (vlens, values) = self._encoder.laid_out(block, count, head, suffix)
        except _CONVERSION_FAILS:
            for line in block.split(b"\n")[:-1]:
                # A SchemaError naming the column.
                self._schema.row(parse_copy_line(line))
            raise
        last_key = None
        if count and self._key_index is not None:
            last = parse_copy_line(last_line(block))
            last_key = tuple(_text(last[i]) for i in self._key_index)
        return (last_key, klens, vlens), keys, values

    def close(self) -> None:
        try:
            for read in self._ahead:
                read.exception()  # wait: the connection is free after them
        finally:
            self._reader.shutdown()
            self._copy.close()


def _text(value: bytes | None) -> str:
    assert value is not None, "key columns are NOT NULL"
    return value.decode("utf-8")


def _answer_error(up: Connection, exc: Exception, doing: str) -> None:
    if isinstance(exc, psycopg.Error):
        exc = catalog_error(exc, doing)
    name = type(exc).__name__ if isinstance(exc, ConnectorError) else "FatalError"
    message = str(exc) if isinstance(exc, ConnectorError) else f"{doing}: {exc!r}"
    with contextlib.suppress(OSError):
        up.send(("error", (name, message)))


if __name__ == "__main__":
    # A chunk makes tens of thousands of short-lived objects and no cycles: collect seldom,
    # and never walk the modules' objects again (still collected, so nothing can leak).
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    _serve(
        Connection(int(sys.argv[1]), writable=False),
        Connection(int(sys.argv[2]), readable=False),
        tuple(int(fd) for fd in sys.argv[3:]),
    )
