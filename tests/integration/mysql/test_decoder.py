"""The fast row decoder gives exactly what a snapshot (PyMySQL) reads, on random rows of every
column type it covers, streamed from a real binlog."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from tests.integration.mysql.pipeline import Database, Pipeline, config

pytestmark = pytest.mark.integration

COLUMNS = """
    id INT PRIMARY KEY, i8 TINYINT, u8 TINYINT UNSIGNED, i16 SMALLINT, u16 SMALLINT UNSIGNED,
    i24 MEDIUMINT, u24 MEDIUMINT UNSIGNED, i32 INT, u32 INT UNSIGNED, i64 BIGINT,
    u64 BIGINT UNSIGNED, f FLOAT, d DOUBLE, dec1 DECIMAL(10,2), dec2 DECIMAL(30,12),
    dec3 DECIMAL(4,0), dt DATETIME(6), dt3 DATETIME(3), dt0 DATETIME, ts TIMESTAMP(6) NULL,
    ts0 TIMESTAMP NULL, da DATE, t6 TIME(6), t3 TIME(3), t1 TIME(1), t0 TIME, y YEAR,
    e ENUM('a','b','c'), s SET('x','y','z'), b BIT(13), c CHAR(4), v VARCHAR(300),
    vs VARCHAR(20), tx TEXT, lt LONGTEXT, vb VARBINARY(8), bn BINARY(3), bl BLOB,
    l1 VARCHAR(10) CHARACTER SET latin1
"""


def random_row(rng: random.Random, i: int) -> tuple[Any, ...]:
    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.1 else value

    def time_text(fsp: int) -> str:
        sign = rng.choice(["", "-"])
        frac = f".{rng.randint(0, 10**fsp - 1):0{fsp}d}" if fsp else ""
        return (
            f"{sign}{rng.randint(0, 838)}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}{frac}"
        )

    def dt_text(fsp: int) -> str:
        frac = f".{rng.randint(0, 10**fsp - 1):0{fsp}d}" if fsp else ""
        return (
            f"{rng.randint(1000, 9999)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}{frac}"
        )

    def ts_text(fsp: int) -> str:
        frac = f".{rng.randint(0, 10**fsp - 1):0{fsp}d}" if fsp else ""
        day = f"{rng.randint(1971, 2037)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        return f"{day} 12:00:00{frac}"

    text = "".join(rng.choice("aé🙂z ") for _ in range(rng.randint(0, 30)))
    return (
        i,
        maybe(rng.randint(-128, 127)), maybe(rng.randint(0, 255)),
        maybe(rng.randint(-32768, 32767)), maybe(rng.randint(0, 65535)),
        maybe(rng.randint(-(2**23), 2**23 - 1)), maybe(rng.randint(0, 2**24 - 1)),
        maybe(rng.randint(-(2**31), 2**31 - 1)), maybe(rng.randint(0, 2**32 - 1)),
        maybe(rng.randint(-(2**63), 2**63 - 1)), maybe(rng.randint(0, 2**64 - 1)),
        maybe(rng.choice([0.5, -1.25, 3.0])), maybe(rng.uniform(-1e9, 1e9)),
        maybe(f"{rng.randint(-99999999, 99999999) / 100:.2f}"),
        maybe(f"{rng.choice('-+')}{rng.randint(0, 10**18 - 1)}.{rng.randint(0, 10**12 - 1):012d}"),
        maybe(rng.randint(-9999, 9999)),
        maybe(dt_text(6)), maybe(dt_text(3)), maybe(dt_text(0)), maybe(ts_text(6)),
        maybe(ts_text(0)), maybe(dt_text(0)[:10]),
        maybe(time_text(6)), maybe(time_text(3)), maybe(time_text(1)), maybe(time_text(0)),
        maybe(rng.randint(1901, 2155)),
        maybe(rng.choice(["a", "b", "c"])),
        maybe(",".join(m for m in "xyz" if rng.random() < 0.5)),
        maybe(rng.randint(0, 2**13 - 1)),
        maybe(text[:4]), maybe(text * 5), maybe(text[:20]), maybe(text), maybe(text * 3),
        maybe(rng.randbytes(rng.randint(0, 8))), maybe(rng.randbytes(rng.randint(0, 3))),
        maybe(rng.randbytes(rng.randint(0, 100))), maybe("café"[: rng.randint(0, 4)]),
    )  # fmt: skip


def test_fast_decoder_equals_the_snapshot_on_random_rows_of_every_type(
    db: Database, log_dir: Path
) -> None:
    db.execute(f"CREATE TABLE t ({COLUMNS}) DEFAULT CHARSET=utf8mb4")
    rng = random.Random(11)
    rows = [random_row(rng, i) for i in range(400)]
    marks = ", ".join(["%s"] * len(rows[0]))
    for lo in range(0, 400, 100):
        db.executemany(f"INSERT INTO t VALUES ({marks})", rows[lo : lo + 100])
    p = Pipeline(log_dir, config(db))
    try:
        source = p.start()
        topic = p.topic(db, "t")
        p.run_until(lambda: len(p.events(topic)) >= 400, "the snapshot")
        # A key change gives a delete (the old image) and a create (the new one) per row.
        db.execute("UPDATE t SET id = id + 1000")
        p.run_until(lambda: len(p.events(topic)) >= 1200, "the stream")
        stream = source.stream
        assert stream is not None
        shapes = [s for s in stream._shapes.values() if s is not None]
        assert shapes and all(s.decoder is not None for s in shapes), "fell back"
        events = p.events(topic)
        snapshot = {e["after"]["id"]: e["after"] for e in events[:400]}
        deleted = {e["before"]["id"]: e["before"] for e in events[400:] if e["op"] == "d"}
        created = {e["after"]["id"] - 1000: e["after"] for e in events[400:] if e["op"] == "c"}
        assert deleted == snapshot
        assert {k: {**v, "id": k} for k, v in created.items()} == snapshot
    finally:
        p.close()
