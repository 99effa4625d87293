"""Every supported column type, read by the snapshot and by the stream, gives the same
envelope value, and that value is the documented one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.mysql.pipeline import Database, Pipeline, config

pytestmark = pytest.mark.integration

COLUMNS = """
    id BIGINT UNSIGNED PRIMARY KEY,
    i TINYINT, u TINYINT UNSIGNED, m MEDIUMINT UNSIGNED, big BIGINT,
    f FLOAT, d DOUBLE,
    dec1 DECIMAL(30,10), dec2 DECIMAL(5,0),
    dt DATETIME(6), dt0 DATETIME, ts TIMESTAMP(3) NULL, da DATE, ti TIME(6), y YEAR,
    j JSON, e ENUM('small','large'), s SET('x','y','z'), s0 SET('x','y') NOT NULL,
    b BIT(10), b1 BIT(1),
    bl BLOB, vb VARBINARY(10), bn BINARY(4),
    tx TEXT, v VARCHAR(20), c CHAR(5), n VARCHAR(5)
"""

VALUES = (
    "(18446744073709551615, -128, 255, 16777215, -9223372036854775808,"
    " 1.5, 2.25,"
    " '12345678901234567890.0123456789', 99999,"
    " '2024-01-02 03:04:05.123456', '1999-12-31 23:59:59', '2024-01-02 03:04:05.120',"
    " '2024-02-29', '-838:59:59.000001', 2024,"
    ' \'{"a": [1, 2, {"b": null}], "c": 1.5, "s": "é"}\', \'large\', \'z,x\', \'\','
    " b'1010101010', b'1',"
    " x'00ff10', x'0102', x'4100',"
    " 'héllo 🙂', '🙂🙂', 'ab', NULL)"
)

EXPECTED = {
    "id": 18446744073709551615,
    "i": -128,
    "u": 255,
    "m": 16777215,
    "big": -9223372036854775808,
    "f": 1.5,
    "d": 2.25,
    "dec1": "12345678901234567890.0123456789",
    "dec2": "99999",
    "dt": "2024-01-02T03:04:05.123456",
    "dt0": "1999-12-31T23:59:59",
    "ts": "2024-01-02T03:04:05.120000Z",
    "da": "2024-02-29",
    "ti": "-838:59:59.000001",
    "y": 2024,
    "j": {"a": [1, 2, {"b": None}], "c": 1.5, "s": "é"},
    "e": "large",
    "s": ["x", "z"],
    "s0": [],
    "b": 0b1010101010,
    "b1": 1,
    "bl": "AP8Q",
    "vb": "AQI=",
    "bn": "QQAAAA==",
    "tx": "héllo 🙂",
    "v": "🙂🙂",
    "c": "ab",
    "n": None,
}


def test_snapshot_and_stream_give_the_documented_values(db: Database, log_dir: Path) -> None:
    db.execute(f"CREATE TABLE types ({COLUMNS}) DEFAULT CHARSET=utf8mb4")
    db.execute(f"INSERT INTO types VALUES {VALUES}")
    p = Pipeline(log_dir, config(db))
    try:
        p.start()
        topic = p.topic(db, "types")
        p.run_until(lambda: len(p.events(topic)) >= 1, "the snapshot row")
        db.execute("DELETE FROM types")
        db.execute(f"INSERT INTO types VALUES {VALUES}")
        p.run_until(lambda: len(p.events(topic)) >= 3, "the streamed rows")
        snap, deleted, streamed = p.events(topic)[:3]
        assert snap["op"] == "r" and deleted["op"] == "d" and streamed["op"] == "c"
        assert snap["after"] == EXPECTED
        assert deleted["before"] == EXPECTED
        assert streamed["after"] == EXPECTED
    finally:
        p.close()


def test_update_of_a_set_column_to_empty_is_an_empty_list_not_null(
    db: Database, log_dir: Path
) -> None:
    db.execute("CREATE TABLE t (id INT PRIMARY KEY, s SET('a','b') NULL)")
    p = Pipeline(log_dir, config(db, snapshot="never"))
    try:
        p.start()
        db.execute("INSERT INTO t VALUES (1, 'a'), (2, NULL)")
        db.execute("UPDATE t SET s = '' WHERE id = 1")
        topic = p.topic(db, "t")
        p.run_until(lambda: len(p.events(topic)) >= 3, "3 events")
        events = p.events(topic)
        assert [e["after"]["s"] for e in events] == [["a"], None, []]
    finally:
        p.close()


TIMES = [
    "-838:59:59.000001",
    "-838:59:59",
    "-12:34:56.000001",
    "-00:00:00.5",
    "-01:00:00.25",
    "00:00:00",
    "12:00:00.000001",
    "838:59:59",
]


def test_negative_times_with_fractions_match_between_snapshot_and_stream(
    db: Database, log_dir: Path
) -> None:
    db.execute("CREATE TABLE t (id INT PRIMARY KEY, t6 TIME(6), t3 TIME(3), t0 TIME)")
    rows = [(i, v, v, v) for i, v in enumerate(TIMES)]
    db.executemany("INSERT INTO t VALUES (%s, %s, %s, %s)", rows)
    p = Pipeline(log_dir, config(db))
    try:
        p.start()
        topic = p.topic(db, "t")
        p.run_until(lambda: len(p.events(topic)) >= len(TIMES), "the snapshot")
        db.execute("UPDATE t SET id = id + 100")
        p.run_until(lambda: len(p.events(topic)) >= 3 * len(TIMES), "the stream")
        events = p.events(topic)
        snapshot = [e["after"] for e in events[: len(TIMES)]]
        streamed = [e["after"] for e in events[len(TIMES) :] if e["op"] == "c"]
        assert [r["t6"] for r in snapshot] == [
            "-838:59:59.000001", "-838:59:59", "-12:34:56.000001", "-00:00:00.500000",
            "-01:00:00.250000", "00:00:00", "12:00:00.000001", "838:59:59",
        ]  # fmt: skip
        for before, after in zip(snapshot, streamed, strict=True):
            assert {k: v for k, v in after.items() if k != "id"} == {
                k: v for k, v in before.items() if k != "id"
            }
    finally:
        p.close()
