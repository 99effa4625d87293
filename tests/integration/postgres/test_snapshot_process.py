"""The snapshot read by a worker process (snapshot_process.py) makes exactly the chunks of the
in-process read, in the caller's snapshot; a worker that dies fails the snapshot retriably."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import replace
from functools import partial
from typing import Any

import psutil
import psycopg
import pytest

from connectors.api import SourceColumns
from connectors.source.postgres import arrow_json, snapshot_process
from connectors.source.postgres.catalog import load_types, session_conninfo, table_info
from connectors.source.postgres.checkpoint import SnapshotProgress
from connectors.source.postgres.columnar import ChunkEncoder
from connectors.source.postgres.copy_out import CopyOut
from connectors.source.postgres.encoding import READ_HEAD
from connectors.source.postgres.schema import TableSchema
from connectors.source.postgres.snapshot import SnapshotChunk, read_snapshot
from connectors.source.postgres.types import JsonConverter, TypeMap, column_kind
from hub.errors import FatalError, RetriableError
from tests.integration.postgres.pipeline import Database
from tests.integration.postgres.test_types import CASES

pytestmark = pytest.mark.integration

HERE = 1 << 62  # process_min_bytes: every table read in process
WORKER = 0  # every table read by the worker process


@pytest.fixture
def tables(db: Database) -> Database:
    db.execute("CREATE TYPE mood AS ENUM ('sad', 'happy')")
    db.execute("CREATE DOMAIN price AS numeric(10,2) CHECK (VALUE >= 0)")
    columns = ", ".join(f"{name} {type_}" for name, type_, _, _ in CASES)
    db.execute(f"CREATE TABLE everything (id int PRIMARY KEY, {columns})")
    names = ", ".join(name for name, _, _, _ in CASES)
    values = ", ".join(literal for _, _, literal, _ in CASES)
    for key in range(1, 41):
        db.execute(f"INSERT INTO everything (id, {names}) VALUES ({key}, {values})")
    # Rows with NULLs and escapes in columns that are otherwise plain.
    db.execute("UPDATE everything SET t = NULL, i4 = NULL, js = NULL WHERE id % 3 = 0")
    db.execute("UPDATE everything SET vc = E'a\\tb\\\\' WHERE id % 5 = 0")
    db.execute("CREATE TABLE pairs (a int, b text, c numeric, PRIMARY KEY (b, a))")
    db.execute(
        "INSERT INTO pairs SELECT g % 4, 'k' || (g / 4), g / 7.0 FROM generate_series(1, 33) g"
    )
    db.execute("CREATE TABLE keyless (v text, n int)")
    db.execute("INSERT INTO keyless SELECT 'v' || g, g FROM generate_series(1, 19) g")
    db.execute("ALTER TABLE keyless REPLICA IDENTITY FULL")
    return db


def snapshot_conn(db: Database) -> psycopg.Connection[Any]:
    conn = psycopg.connect(session_conninfo(db.dsn))
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.execute("SELECT 1")  # the transaction, and its snapshot, start here
    return conn


def read(
    conn: psycopg.Connection[Any],
    *,
    process_min_bytes: int,
    after: tuple[str, ...] | None = None,
    chunk_size: int = 7,
    read_while_starting: bool = False,  # False: the worker reads every chunk
) -> Iterator[SnapshotChunk]:
    types = TypeMap(partial(load_types, conn))
    catalog: dict[str, Any] = {}
    for name, key in (("everything", ("id",)), ("pairs", ("b", "a")), ("keyless", None)):
        info = table_info(conn, "public", name)
        schema = TableSchema.from_catalog(info, source_name="shop", db="shop", types=types, key=key)
        catalog[f"public.{name}"] = (info, schema)
    progress = SnapshotProgress(lsn=77, exact=True, pending=tuple(catalog), after=after)
    return read_snapshot(
        conn,
        progress=progress,
        tables=catalog,
        chunk_size=chunk_size,
        clock_ms=lambda: 1_700_000_000_000,
        process_min_bytes=process_min_bytes,
        read_while_starting=read_while_starting,
    )


def plain(chunks: Iterable[SnapshotChunk]) -> list[SnapshotChunk]:
    """The chunks with their records as lists (they come laid out as columns)."""
    return [replace(c, records=list(c.records)) for c in chunks]


def test_the_worker_makes_the_chunks_of_the_in_process_read_in_the_callers_snapshot(
    tables: Database,
) -> None:
    with snapshot_conn(tables) as conn:
        # Changed after the snapshot began: neither read may see the change.
        tables.execute("DELETE FROM everything WHERE id = 2")
        tables.execute("INSERT INTO pairs VALUES (9, 'late', 1)")
        here = list(read(conn, process_min_bytes=HERE))
        worker = list(read(conn, process_min_bytes=WORKER))
        # Chunks read here while the worker starts, then by the worker, whichever it is.
        mixed = list(read(conn, process_min_bytes=WORKER, read_while_starting=True))
        resumed = list(read(conn, process_min_bytes=HERE, after=("30",), chunk_size=4))
    # Both ways, the chunks go to the log laid out as its columns, whole.
    assert all(isinstance(c.records, SourceColumns) for c in here + worker + mixed)
    assert plain(worker) == plain(here)
    assert plain(mixed) == plain(here)
    assert sum(len(c.records) for c in here) == 40 + 33 + 19
    assert [c.progress.after for c in here[:2]] == [("7",), ("14",)]
    assert len(resumed[0].records) == 4 and resumed[0].progress.after == ("34",)
    assert here[-1].done and here[-1].progress.rows == 92
    values = b"\n".join(r.value or b"" for c in here for r in c.records)
    assert b'"after":{"id":2,' in values and b'"late"' not in values


def test_a_worker_that_dies_fails_the_snapshot_retriably(tables: Database) -> None:
    tables.execute("INSERT INTO keyless SELECT 'v' || g, g FROM generate_series(1, 20000) g")
    with snapshot_conn(tables) as conn:
        chunks = read(conn, process_min_bytes=WORKER, chunk_size=10)
        next(chunks)
        (child,) = psutil.Process().children()
        child.kill()
        with pytest.raises(RetriableError, match="worker process ended unexpectedly"):
            for _ in chunks:
                pass


def test_a_query_failing_in_the_worker_fails_as_it_does_in_process(tables: Database) -> None:
    tables.execute(f"REVOKE SELECT ON pairs FROM {tables.user}")
    for process_min_bytes in (HERE, WORKER):
        with (
            snapshot_conn(tables) as conn,
            pytest.raises(FatalError, match=r"reading public\.pairs .*permission denied"),
        ):
            for _ in read(conn, process_min_bytes=process_min_bytes):
                pass


def test_arrow_kernels_make_the_bytes_of_the_converters_for_every_type(
    tables: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every type of the type round-trip test, as Postgres writes it: the laid-out chunks
    (Arrow's reader and kernels where a type has one) hold exactly the events of the
    value-by-value path, in chunks of all rows (NULLs and escapes in some columns) and of
    one row each (most columns plain)."""
    made_by_kernel: set[str] = set()
    value_column = arrow_json.value_column

    def spy(convert: JsonConverter, raw: object, *, escaped: bool) -> object:
        column = value_column(convert, raw, escaped=escaped)
        if column is not None:
            made_by_kernel.add(column_kind(convert))
        return column

    monkeypatch.setattr(arrow_json, "value_column", spy)
    with snapshot_conn(tables) as conn:
        types = TypeMap(partial(load_types, conn))
        info = table_info(conn, "public", "everything")
        schema = TableSchema.from_catalog(
            info, source_name="shop", db="shop", types=types, key=("id",)
        )
        block, count = CopyOut(conn, b"COPY everything TO STDOUT").read_block(1000)
    assert count == 40
    encoder = ChunkEncoder(schema)
    lines = block.splitlines(keepends=True)
    suffix = b',"op":"r"}'
    for chunk in ([block], lines):
        for part in chunk:
            nrows = part.count(b"\n")
            keys, values = encoder.laid_out(part, nrows, READ_HEAD, suffix)
            want_keys, want_values = encoder.encode(
                part.splitlines(keepends=True), READ_HEAD, suffix
            )
            assert items(values) == want_values
            assert items(keys) == want_keys
    assert made_by_kernel == {"same", "quoted", "text", "bool", "timestamptz", "timestamp", "date"}


def items(laid: tuple[bytes, object]) -> list[bytes]:
    """The items of a laid-out column (little-endian i32 lengths, items back to back)."""
    lengths, blob = laid
    data = bytes(blob)  # type: ignore[call-overload]
    out, pos = [], 0
    for (n,) in struct.iter_unpack("<i", lengths):
        out.append(data[pos : pos + n])
        pos += n
    assert pos == len(data)
    return out


def test_without_shared_memory_slots_the_chunks_cross_the_pipe_alike(
    tables: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where memfd_create is missing (or a chunk is larger than a slot), the keys and values
    follow their message on the pipe: the same chunks."""
    with snapshot_conn(tables) as conn:
        here = list(read(conn, process_min_bytes=HERE))
        monkeypatch.setattr(snapshot_process, "_memfds", tuple)
        piped = list(read(conn, process_min_bytes=WORKER))
    assert plain(piped) == plain(here)
