from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
import pytest

from connectors.source.postgres.types import PgType, TypeMap, parse_array, parse_range


def convert(oid: int, text: str | bytes, types: TypeMap | None = None) -> Any:
    raw = text.encode() if isinstance(text, str) else text
    value = (types or TypeMap()).converter(oid)(raw)
    # What a consumer sees: the value after a trip through the envelope's JSON.
    return orjson.loads(orjson.dumps({"v": value}))["v"]


@pytest.mark.parametrize(
    ("oid", "text", "expected"),
    [
        (16, "t", True),
        (16, "f", False),
        (21, "-32768", -32768),
        (23, "2147483647", 2147483647),
        (20, "-9223372036854775808", -9223372036854775808),
        (26, "4294967295", 4294967295),
        (700, "1.5", 1.5),
        (701, "-2.2250738585072014e-308", -2.2250738585072014e-308),
        (701, "NaN", "NaN"),
        (701, "Infinity", "Infinity"),
        (700, "-Infinity", "-Infinity"),
        (
            1700,
            "123456789012345678901234567890.000000000000000000001",
            "123456789012345678901234567890.000000000000000000001",
        ),
        (1700, "NaN", "NaN"),
        (790, "-$1,234,567.89", "-1234567.89"),
        (790, "$0.05", "0.05"),
        (25, "héllo\nworld", "héllo\nworld"),
        (2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        (869, "192.168.0.1/24", "192.168.0.1/24"),
        (650, "10.0.0.0/8", "10.0.0.0/8"),
        (17, "\\x00ff10", "AP8Q"),
        (17, "\\x", ""),
        (1082, "2024-02-29", "2024-02-29"),
        (1082, "0044-03-15 BC", "-0043-03-15"),
        (1082, "0001-01-01 BC", "0000-01-01"),
        (1082, "infinity", "infinity"),
        (1083, "23:59:59.999999", "23:59:59.999999"),
        (1266, "12:00:00+02", "12:00:00+02:00"),
        (1266, "12:00:00-03:30", "12:00:00-03:30"),
        (1114, "2024-01-31 12:00:00.123456", "2024-01-31T12:00:00.123456"),
        (1114, "2024-01-31 12:00:00 BC", "-2023-01-31T12:00:00"),
        (1114, "-infinity", "-infinity"),
        (1184, "2024-01-31 12:00:00.5+00", "2024-01-31T12:00:00.5Z"),
        (1184, "2024-01-31 12:00:00+05:30", "2024-01-31T12:00:00+05:30"),
        (1184, "infinity", "infinity"),
        (1186, "P1Y2M3DT4H5M6.5S", "P1Y2M3DT4H5M6.5S"),
    ],
)
def test_scalar_text_maps_to_faithful_json(oid: int, text: str, expected: Any) -> None:
    assert convert(oid, text) == expected


def test_bytea_in_escape_format_is_decoded_too() -> None:
    assert convert(17, b"a\\\\b\\000\\377") == "YVxiAP8="


def test_json_and_jsonb_are_embedded_verbatim_keeping_number_digits() -> None:
    text = '{"a": [1, 2.000000000000000000001], "b": {"c": null}}'
    value = TypeMap().converter(3802)(text.encode())
    assert orjson.dumps(value) == text.encode()
    assert convert(114, '"just a string"') == "just a string"


@pytest.mark.parametrize(
    ("oid", "text", "expected"),
    [
        (1007, "{}", []),
        (1007, "{1,2,NULL,4}", [1, 2, None, 4]),
        (1007, "{{1,2},{3,4}}", [[1, 2], [3, 4]]),
        (1007, "[0:1]={7,8}", [7, 8]),
        (
            1009,
            '{"a b","with \\"quote\\"","back\\\\slash",NULL,"NULL",plain}',
            ["a b", 'with "quote"', "back\\slash", None, "NULL", "plain"],
        ),
        (1231, "{1.10,NaN}", ["1.10", "NaN"]),
        (1185, '{"2024-01-31 12:00:00+00"}', ["2024-01-31T12:00:00Z"]),
        (3807, '{"{\\"a\\": 1}","[]"}', [{"a": 1}, []]),
        (1000, "{t,f}", [True, False]),
        (1017, '{"(1,2)","(3,4)"}', ["(1,2)", "(3,4)"]),
    ],
)
def test_arrays_become_lists_of_mapped_elements(oid: int, text: str, expected: Any) -> None:
    assert convert(oid, text) == expected


def test_array_of_box_uses_its_semicolon_delimiter() -> None:
    assert convert(1020, "{(1,1),(0,0);(2,2),(1,1)}", TypeMap(_catalog)) == [
        "(1,1),(0,0)",
        "(2,2),(1,1)",
    ]


@pytest.mark.parametrize(
    ("oid", "text", "expected"),
    [
        (3904, "[1,10)", {"lower": 1, "upper": 10, "lower_inc": True, "upper_inc": False}),
        (3904, "empty", {"empty": True}),
        (3926, "(,5]", {"lower": None, "upper": 5, "lower_inc": False, "upper_inc": True}),
        (3906, "[1.5,)", {"lower": "1.5", "upper": None, "lower_inc": True, "upper_inc": False}),
        (
            3910,
            '["2024-01-01 00:00:00+00","2024-02-01 00:00:00+00")',
            {
                "lower": "2024-01-01T00:00:00Z",
                "upper": "2024-02-01T00:00:00Z",
                "lower_inc": True,
                "upper_inc": False,
            },
        ),
        (
            3912,
            "[2024-01-01,2024-01-05)",
            {"lower": "2024-01-01", "upper": "2024-01-05", "lower_inc": True, "upper_inc": False},
        ),
        (
            4451,
            "{[1,3),[5,7)}",
            [
                {"lower": 1, "upper": 3, "lower_inc": True, "upper_inc": False},
                {"lower": 5, "upper": 7, "lower_inc": True, "upper_inc": False},
            ],
        ),
        (4451, "{}", []),
        (
            3905,
            '{"[1,2)",empty}',
            [
                {"lower": 1, "upper": 2, "lower_inc": True, "upper_inc": False},
                {"empty": True},
            ],
        ),
    ],
)
def test_ranges_become_bounds_with_inclusivity(oid: int, text: str, expected: Any) -> None:
    assert convert(oid, text) == expected


def test_range_bounds_unquote_escapes() -> None:
    value, end = parse_range('["a\\"b","c""d")', lambda b: b.decode())
    assert value["lower"] == 'a"b' and value["upper"] == 'c"d'
    assert end == len('["a\\"b","c""d")')


# A fake catalog: an enum, a domain over numeric, an array of that domain, a user range.
_TYPES = {
    17000: PgType(17000, "mood", "e"),
    17001: PgType(17001, "price", "d", base=1700),
    17002: PgType(17002, "_price", "b", element=17001),
    17003: PgType(17003, "floatrange", "r", subtype=701),
    17004: PgType(17004, "positive_int", "d", base=17005),
    17005: PgType(17005, "small_positive", "d", base=23),
    1020: PgType(1020, "_box", "b", element=603, delimiter=";"),
}


def _catalog(oids: Iterable[int]) -> list[PgType]:
    asked.append(sorted(oids))
    return [_TYPES[o] for o in asked[-1] if o in _TYPES]


asked: list[list[int]] = []


def test_user_types_resolve_through_the_catalog() -> None:
    types = TypeMap(_catalog)
    assert convert(17000, "happy", types) == "happy"
    assert convert(17001, "10.50", types) == "10.50"
    assert convert(17002, "{1.1,2.2}", types) == ["1.1", "2.2"]
    assert convert(17003, "[1.5,2.5]", types) == {
        "lower": 1.5,
        "upper": 2.5,
        "lower_inc": True,
        "upper_inc": True,
    }
    assert convert(17004, "7", types) == 7


def test_prefetch_looks_up_a_relations_types_together_and_caches_them() -> None:
    asked.clear()
    types = TypeMap(_catalog)
    types.prefetch([23, 17004, 17002, 25])
    assert asked[0] == [17002, 17004]  # built-ins need no query
    convs = types.converters([17004, 17002])
    assert [c(b) for c, b in zip(convs, [b"3", b"{1}"], strict=True)] == [3, ["1"]]
    before = len(asked)
    types.converter(17004)
    assert len(asked) == before


def test_unknown_types_without_a_catalog_come_out_as_text() -> None:
    assert convert(99999, "(1,abc)") == "(1,abc)"


@pytest.mark.parametrize("bad", ["{1,2", "1,2}", "{1,2}x", "{1;2}"])
def test_malformed_arrays_raise_value_error(bad: str) -> None:
    with pytest.raises((ValueError, IndexError)):
        parse_array(bad, int)


JSON_SAMPLES = [
    (16, "t"), (16, "f"), (20, "-9223372036854775808"), (23, "0"), (700, "NaN"),
    (701, "-2.2250738585072014e-308"), (701, "1e+100"), (1700, "-12.500"), (790, "-$1,234.56"),
    (25, 'quote " backslash \\ newline \n tab \t é \u2028'), (1043, ""),
    (2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    (17, "\\x00ff"), (1082, "2024-02-29"), (1082, "0044-03-15 BC"), (1082, "infinity"),
    (1083, "23:59:59.999999"), (1266, "12:00:00+02"), (1114, "2024-01-31 12:00:00.5"),
    (1114, "0044-03-15 12:00:00 BC"), (1114, "infinity"), (1114, "12345-01-01 00:00:00"),
    (1184, "2024-01-31 12:00:00.123+00"), (1184, "2024-01-31 12:00:00+05:30"),
    (1184, "-infinity"), (1184, "0044-03-15 12:00:00+00 BC"), (1186, "P1Y-2M"),
    (114, '{"a": [1, 2.0]}'),
    (3802, "[]"), (1007, "{1,NULL}"), (3904, "[1,2)"), (869, "::1"), (99999, "(1,x)"),
]  # fmt: skip


@pytest.mark.parametrize(("oid", "text"), JSON_SAMPLES)
def test_json_converters_make_the_bytes_orjson_makes_of_the_value(oid: int, text: str) -> None:
    types = TypeMap()
    raw = text.encode()
    value_converter = types.converter(oid)
    (json_converter,) = types.json_converters([oid])
    got = raw if json_converter is None else json_converter(raw)
    assert got == orjson.dumps(value_converter(raw), option=orjson.OPT_NON_STR_KEYS)
