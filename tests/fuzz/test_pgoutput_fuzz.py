"""Fuzzed pgoutput streams through the whole streaming path (decoder, hot path, converters).

Valid messages built from random rows round-trip: the event's row equals the row, for every
common type (NaN and ±Infinity included). Mutated messages (flipped, cut, grown, spliced
bytes) end in a typed :class:`hub.errors.ChangehubError` or in events that are still
well-formed — valid JSON whose rows have exactly the columns of the relation as decoded —
never in another exception, a hang, or a broken event.

What a fuzzer cannot ask of any decoder: pgoutput carries no checksum, so a flipped digit
inside a value is a different valid value. The hot path also embeds the server's text of
integers, numeric, json/jsonb and timestamps verbatim (Postgres' output functions make it
valid JSON; re-checking it would cost every change), so the mutation test uses a table
whose every value is re-encoded (text, float, bool, bytea, arrays) and asserts structure.
"""

from __future__ import annotations

import base64
import contextlib
import math
import struct
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.source.postgres.checkpoint import Checkpoint
from connectors.source.postgres.pgoutput import Relation
from connectors.source.postgres.schema import TableSchema
from connectors.source.postgres.streaming import ChangeStream
from connectors.source.postgres.types import TypeMap
from hub.errors import ChangehubError
from tests.unit.postgres import wire
from tests.unit.postgres.test_streaming import Filler

OID = 16400
TS = 765_000_000_000_000
COLUMNS = [
    (True, "id", 23), (False, "name", 25), (False, "price", 1700), (False, "score", 701),
    (False, "ok", 16), (False, "blob", 17), (False, "at", 1184), (False, "doc", 3802),
    (False, "tags", 1009),
]  # fmt: skip
NAMES = [c[1] for c in COLUMNS]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8,
)
pg_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)


@st.composite
def rows(draw: st.DrawFn) -> tuple[list[bytes | None], dict[str, Any]]:
    """A row's pgoutput text values and the event row they must become."""
    texts: list[bytes | None] = []
    want: dict[str, Any] = {}

    def put(name: str, text: bytes | None, value: Any) -> None:
        texts.append(text)
        want[name] = None if text is None else value

    nullable = st.booleans()
    ident = draw(st.integers(-(2**31), 2**31 - 1))
    put("id", str(ident).encode(), ident)
    name = draw(pg_text)
    put("name", None if draw(nullable) else name.encode(), name)
    price = draw(st.decimals(allow_nan=False, allow_infinity=False, places=4) |
                 st.sampled_from(["NaN", "Infinity", "-Infinity"]))
    put("price", format(price, "f").encode() if isinstance(price, Decimal) else price.encode(),
        format(price, "f") if isinstance(price, Decimal) else price)
    score = draw(st.floats())
    spelled = ("NaN" if math.isnan(score) else "Infinity" if score == math.inf
               else "-Infinity" if score == -math.inf else repr(score))
    put("score", spelled.encode(), spelled if not math.isfinite(score) else score)
    ok = draw(st.booleans())
    put("ok", b"t" if ok else b"f", ok)
    blob = draw(st.binary(max_size=40))  # NUL bytes included: bytea holds any byte
    put("blob", b"\\x" + blob.hex().encode(), base64.b64encode(blob).decode())
    y, mo, d = draw(st.integers(1, 9999)), draw(st.integers(1, 12)), draw(st.integers(1, 28))
    h, mi, s = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    put("at", f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}+00".encode(),
        f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z")
    doc = draw(json_values)
    put("doc", orjson.dumps(doc), doc)
    tags = draw(st.lists(st.none() | pg_text, max_size=4))
    put("tags", _array(tags), tags)
    return texts, want


def _array(items: list[str | None]) -> bytes:
    """Postgres' text form of a text[]: every element quoted, NULL bare."""
    parts = [
        "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for v in items
    ]
    return ("{" + ",".join(parts) + "}").encode()


def xlog(payload: bytes, lsn: int) -> bytes:
    return b"w" + struct.pack(">QQq", lsn, lsn, 0) + payload


# Every value re-encoded on the way to JSON: see the module doc.
ESCAPED = [
    (True, "id", 25), (False, "name", 25), (False, "score", 701), (False, "ok", 16),
    (False, "blob", 17), (False, "tags", 1009),
]  # fmt: skip


def new_stream() -> ChangeStream:
    types = TypeMap()

    def schema_for(rel: Relation) -> TableSchema:
        return TableSchema.from_relation(
            rel, source_name="shop", db="db", types=types, key_for=lambda r: ("id",)
        )

    return ChangeStream(
        start=Checkpoint(0), schema_for=schema_for, toast=Filler(), clock_ms=lambda: 0
    )


def transaction(changes: list[bytes], columns: list[Any] = COLUMNS) -> list[bytes]:
    """Relation, Begin, the changes, Commit: as XLogData messages."""
    payloads = [
        wire.relation(OID, "public", "items", columns),
        wire.begin(0x5000, TS, 812),
        *changes,
        wire.commit(0x5000, 0x5030, TS),
    ]
    return [xlog(p, 0x100 + i) for i, p in enumerate(payloads)]


def events(stream: ChangeStream) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in stream.cut()[0] if r.value is not None]


@settings(max_examples=150, deadline=None)
@given(st.lists(rows(), min_size=1, max_size=4), st.booleans())
def test_valid_messages_round_trip(
    batch: list[tuple[list[bytes | None], dict[str, Any]]], then_update: bool
) -> None:
    changes = [wire.insert(OID, texts) for texts, _ in batch]
    if then_update:
        changes += [wire.update(OID, texts) for texts, _ in batch]
    stream = new_stream()
    for message in transaction(changes):
        stream.feed(message)
    got = events(stream)
    wanted = [want for _, want in batch] * (2 if then_update else 1)
    assert [e["after"] for e in got] == wanted
    assert [e["op"] for e in got] == ["c"] * len(batch) + (["u"] * len(batch) if then_update
                                                           else [])


@st.composite
def mutated_transactions(draw: st.DrawFn) -> list[bytes]:
    texts = []
    for _ in range(draw(st.integers(1, 2))):
        row = draw(rows())[0]
        # id as text; name, score, ok, blob, tags as above
        texts.append([draw(pg_text).encode(), row[1], row[3], row[4], row[5], row[8]])
    kind = draw(st.sampled_from(["insert", "update", "delete", "update_key"]))
    if kind == "insert":
        changes = [wire.insert(OID, t) for t in texts]
    elif kind == "update":
        changes = [wire.update(OID, t) for t in texts]
    elif kind == "update_key":
        changes = [wire.update(OID, t, old=[t[0], *[None] * 5]) for t in texts]
    else:
        changes = [wire.delete(OID, [t[0], *[None] * 5]) for t in texts]
    messages = transaction(changes, ESCAPED)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(messages) - 1))
        m = bytearray(messages[i])
        # Mutate the pgoutput payload (the 25-byte XLogData header is the transport's).
        at = draw(st.integers(25, max(25, len(m) - 1)))
        op = draw(st.sampled_from(["flip", "set", "cut", "grow", "drop", "splice"]))
        if op == "flip" and at < len(m):
            m[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and at < len(m):
            m[at] = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, ord("n"), ord("u"), ord("b"),
                                          ord("t"), ord("N"), ord("K"), ord("O")]))
        elif op == "cut":
            del m[at:]
        elif op == "grow":
            m[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "drop" and at < len(m):
            del m[at : at + draw(st.integers(1, 4))]
        else:
            m[at:at] = messages[draw(st.integers(0, len(messages) - 1))][25:]
        messages[i] = bytes(m)
    return messages


@settings(max_examples=300, deadline=None)
@given(mutated_transactions())
def test_mutated_messages_raise_a_typed_error_or_make_well_formed_events(
    messages: list[bytes],
) -> None:
    stream = new_stream()
    try:
        for message in messages:
            stream.feed(message)
    except ChangehubError as e:
        assert str(e), "a typed error without a message"
    tables = {t.topic: t for t in stream.relations.values()}
    for record in stream.records:
        table = tables[record.topic]
        if record.key is not None:
            assert list(orjson.loads(record.key)) == list(table.key or ())
        if record.value is None:
            continue
        event = orjson.loads(record.value)  # raises on a broken event
        for image in (event["before"], event["after"]):
            if image is not None:
                assert set(image) <= set(table.columns), image
        if event["after"] is not None:
            assert list(event["after"]) == list(table.columns)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=80))
def test_random_payloads_after_a_relation_raise_a_typed_error_or_nothing(payload: bytes) -> None:
    stream = new_stream()
    stream.feed(xlog(wire.relation(OID, "public", "items", COLUMNS), 0x100))
    stream.feed(xlog(wire.begin(0x5000, TS, 812), 0x101))
    with contextlib.suppress(ChangehubError):
        stream.feed(xlog(payload, 0x102))
    for record in stream.records:
        if record.value is not None:
            orjson.loads(record.value)
