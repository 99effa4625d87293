"""Every supported type, from a row in Postgres to the value in the event, both ways the
source reads rows: the snapshot (COPY text) and the stream (pgoutput text)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from log.api import TopicPartition
from tests.integration.postgres.pipeline import Database, Pipeline, config

pytestmark = pytest.mark.integration

TOPIC = "shop.public.everything"

# column, type, SQL literal, expected JSON value
CASES: list[tuple[str, str, str, Any]] = [
    ("i2", "smallint", "-32768", -32768),
    ("i4", "integer", "2147483647", 2147483647),
    ("i8", "bigint", "-9223372036854775808", -9223372036854775808),
    (
        "num",
        "numeric(40,20)",
        "12345678901234567890.12345678901234567890",
        "12345678901234567890.12345678901234567890",
    ),
    ("num_nan", "numeric", "'NaN'", "NaN"),
    ("num_big", "numeric", "1e40", "10000000000000000000000000000000000000000"),
    ("f4", "real", "1.5", 1.5),
    ("f8", "double precision", "0.1", 0.1),
    ("f8_nan", "double precision", "'NaN'", "NaN"),
    ("f8_inf", "double precision", "'-Infinity'", "-Infinity"),
    ("b", "boolean", "true", True),
    ("t", "text", "E'multi\\nline \\\\ tab\\t \"quoted\" é'", 'multi\nline \\ tab\t "quoted" é'),
    ("vc", "varchar(10)", "'short'", "short"),
    ("ch", "char(3)", "'ab'", "ab "),
    ("ts", "timestamp", "'2024-02-29 23:59:59.123456'", "2024-02-29T23:59:59.123456"),
    ("ts_bc", "timestamp", "'0044-03-15 12:00:00 BC'", "-0043-03-15T12:00:00"),
    ("ts_inf", "timestamp", "'infinity'", "infinity"),
    ("tstz", "timestamptz", "'2024-01-31 12:00:00.5+02'", "2024-01-31T10:00:00.5Z"),
    ("d", "date", "'2024-02-29'", "2024-02-29"),
    ("tm", "time", "'13:14:15.5'", "13:14:15.5"),
    ("tmtz", "timetz", "'13:14:15+05:30'", "13:14:15+05:30"),
    ("iv", "interval", "'1 year 2 months 3 days 04:05:06.5'", "P1Y2M3DT4H5M6.5S"),
    ("iv_neg", "interval", "'-3 days'", "P-3D"),
    (
        "js",
        "json",
        """'{"b": [1, 2.50000000000000000001], "a": null}'""",
        {"b": [1, 2.5], "a": None},
    ),
    ("jsb", "jsonb", """'{"k": {"nested": true}, "n": 1}'""", {"k": {"nested": True}, "n": 1}),
    ("u", "uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ("by", "bytea", "'\\x00ff7f'::bytea", "AP9/"),
    ("en", "mood", "'happy'", "happy"),
    ("dom", "price", "19.99", "19.99"),
    ("mon", "money", "-1234.56", "-1234.56"),
    ("ip", "inet", "'192.168.1.10/24'", "192.168.1.10/24"),
    ("ip6", "inet", "'::1'", "::1"),
    ("net", "cidr", "'10.0.0.0/8'", "10.0.0.0/8"),
    ("mac", "macaddr", "'08:00:2b:01:02:03'", "08:00:2b:01:02:03"),
    (
        "r4",
        "int4range",
        "'[1,10)'",
        {"lower": 1, "upper": 10, "lower_inc": True, "upper_inc": False},
    ),
    ("r_empty", "int4range", "'empty'", {"empty": True}),
    (
        "rtz",
        "tstzrange",
        "'[2024-01-01 00:00+00,)'",
        {"lower": "2024-01-01T00:00:00Z", "upper": None, "lower_inc": True, "upper_inc": False},
    ),
    (
        "rd",
        "daterange",
        "'[2024-01-01,2024-01-31]'",
        {"lower": "2024-01-01", "upper": "2024-02-01", "lower_inc": True, "upper_inc": False},
    ),
    (
        "rn",
        "numrange",
        "'(1.5,2.25]'",
        {"lower": "1.5", "upper": "2.25", "lower_inc": False, "upper_inc": True},
    ),
    (
        "mr",
        "int4multirange",
        "'{[1,3), [5,7)}'",
        [
            {"lower": 1, "upper": 3, "lower_inc": True, "upper_inc": False},
            {"lower": 5, "upper": 7, "lower_inc": True, "upper_inc": False},
        ],
    ),
    ("ai", "integer[]", "'{{1,2},{3,NULL}}'", [[1, 2], [3, None]]),
    (
        "at",
        "text[]",
        """ARRAY['a b', 'q"uote', 'back\\slash', NULL, 'NULL', '']""",
        ["a b", 'q"uote', "back\\slash", None, "NULL", ""],
    ),
    ("ajs", "jsonb[]", """ARRAY['{"a": 1}'::jsonb, '[2]']""", [{"a": 1}, [2]]),
    ("aen", "mood[]", "'{sad,happy}'", ["sad", "happy"]),
    ("adom", "price[]", "'{1.10,2.20}'", ["1.10", "2.20"]),
    (
        "ats",
        "timestamptz[]",
        "ARRAY['2024-01-01 00:00:00+00'::timestamptz]",
        ["2024-01-01T00:00:00Z"],
    ),
    ("x", "xml", "'<a>1</a>'", "<a>1</a>"),
    ("bits", "bit(3)", "B'101'", "101"),
    ("pt", "point", "'(1,2)'", "(1,2)"),
    ("nul", "text", "NULL", None),
]


@pytest.fixture
def everything(db: Database) -> Database:
    db.execute("CREATE TYPE mood AS ENUM ('sad', 'happy')")
    db.execute("CREATE DOMAIN price AS numeric(10,2) CHECK (VALUE >= 0)")
    columns = ", ".join(f"{name} {type_}" for name, type_, _, _ in CASES)
    db.execute(f"CREATE TABLE everything (id int PRIMARY KEY, {columns})")
    return db


def insert(db: Database, key: int) -> None:
    names = ", ".join(name for name, _, _, _ in CASES)
    values = ", ".join(literal for _, _, literal, _ in CASES)
    db.execute(f"INSERT INTO everything (id, {names}) VALUES ({key}, {values})")


def expected(key: int) -> dict[str, Any]:
    return {"id": key, **{name: value for name, _, _, value in CASES}}


def test_every_type_maps_the_same_in_snapshot_and_stream(
    everything: Database, log_dir: Path
) -> None:
    insert(everything, 1)  # read by the snapshot
    p = Pipeline(log_dir, config(everything, tables=["public.everything"]))
    try:
        p.start()
        insert(everything, 2)  # streamed
        p.run_until(lambda: len(p.events(TOPIC)) == 2, "both rows")
        snapshot, streamed = p.events(TOPIC)
        assert snapshot["op"] == "r" and streamed["op"] == "c"
        for event, key in ((snapshot, 1), (streamed, 2)):
            want = expected(key)
            wrong = {
                c: (event["after"].get(c), want[c])
                for c in want
                if event["after"].get(c) != want[c]
            }
            assert not wrong, f"{event['op']}: column: (got, expected): {wrong}"
    finally:
        p.close()


def test_json_numbers_keep_their_digits_in_the_event_bytes(
    everything: Database, log_dir: Path
) -> None:
    p = Pipeline(log_dir, config(everything, tables=["public.everything"], snapshot="never"))
    try:
        p.start()
        insert(everything, 3)
        p.run_until(lambda: len(p.events(TOPIC)) == 1, "the row")
        (record,) = p.log.read(TopicPartition(TOPIC, 0), 0)
        assert record.value is not None and b"2.50000000000000000001" in record.value
    finally:
        p.close()
