"""Topic names for any table name: valid, unchanged where they were valid, never colliding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.topics import (
    MAX_TOPIC_LENGTH,
    escape_part,
    split_topic,
    topic_name,
    unescape_part,
)
from log.files import TOPIC_NAME

# Any name Postgres or MySQL accepts for a schema or table: no NUL, no lone surrogate.
names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                min_size=1, max_size=70)


@pytest.mark.parametrize("table", ["orders", "order_items", "Order-Items2", "_x", "u0020"])
def test_a_plain_name_keeps_the_topic_it_always_had(table: str) -> None:
    assert topic_name("shop", "public", table) == f"shop.public.{table}"


@pytest.mark.parametrize(
    ("table", "escaped"),
    [
        ("order items", "order_u0020items"),
        ('say "hi"', "say_u0020_u0022hi_u0022"),
        ("a_b c", "a_u005fb_u0020c"),  # the underscore is escaped once anything is
        ("dot.ted", "dot_u002eted"),
        ("Заказы", "_u0417_u0430_u043a_u0430_u0437_u044b"),
        ("注文", "_u6ce8_u6587"),
        ("Ω", "_u03a9"),  # always four digits (Debezium writes _u3a9)
        ("😀", "_ud83d_ude00"),  # beyond the BMP: two UTF-16 code units, as Java
        ("tab_u0020", "tab_u005fu0020"),  # plain characters, but it looks escaped
    ],
)
def test_other_names_are_escaped_as_debezium_does(table: str, escaped: str) -> None:
    assert escape_part(table) == escaped
    assert unescape_part(escaped) == table
    assert topic_name("shop", "public", table) == f"shop.public.{escaped}"


def test_a_schema_is_escaped_too_and_left_out_when_there_is_none() -> None:
    assert topic_name("crm", "my db", "t") == "crm.my_u0020db.t"
    assert topic_name("legacy", None, "t t") == "legacy.t_u0020t"


def test_split_topic_gives_back_schema_and_table_but_not_the_source() -> None:
    assert split_topic(topic_name("shop", "Схема", "order items")) == [
        "shop", "Схема", "order items"]
    assert split_topic("shop_u0020x.public.orders") == ["shop_u0020x", "public", "orders"]


def test_parts_not_written_by_escape_part_are_left_alone() -> None:
    for part in ("orders", "a_u00", "_u12g4", "x_y_u0020", "_ud83d"):
        assert unescape_part(part) == part


@given(names, names)
def test_every_name_gives_a_valid_topic_that_splits_back(schema: str, table: str) -> None:
    topic = topic_name("shop", schema, table)
    assert TOPIC_NAME.fullmatch(topic), topic
    if len(escape_part(schema)) + len(escape_part(table)) + len("shop..") <= MAX_TOPIC_LENGTH:
        assert split_topic(topic) == ["shop", schema, table]


@given(names, names)
def test_two_different_tables_never_share_a_topic(a: str, b: str) -> None:
    if a != b:
        assert topic_name("shop", "public", a) != topic_name("shop", "public", b)
        assert topic_name("shop", a, "t") != topic_name("shop", b, "t")


def test_a_name_too_long_once_escaped_is_cut_with_a_hash_and_stays_unique() -> None:
    long_a, long_b = "注" * 63, "注" * 62 + "文"
    a, b = topic_name("shop", "схема" * 12, long_a), topic_name("shop", "схема" * 12, long_b)
    assert len(a) == len(b) == MAX_TOPIC_LENGTH
    assert TOPIC_NAME.fullmatch(a) and a != b
    assert a == topic_name("shop", "схема" * 12, long_a)  # the same every time


def test_sinks_name_targets_from_the_unescaped_table() -> None:
    from connectors.sink.search.mapping import index_name
    from connectors.sink.sql.naming import render

    topic = topic_name("shop", "public", "Заказы 注文")
    source = {"name": "shop", "schema": "public", "table": "Заказы 注文"}
    for block in (source, None):  # from the event's source block, else from the topic
        assert render("{table}", topic, block) == (None, "Заказы_注文")
        assert index_name("i-{table}", topic, block) == "i-заказы_注文"
