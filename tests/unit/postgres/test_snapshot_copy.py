from __future__ import annotations

import pytest

from connectors.source.postgres.snapshot import parse_copy_line


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        (b"1\tabc\t\\N", [b"1", b"abc", None]),
        (b"", [b""]),
        (b"a\\tb\tc\\nd\\\\e", [b"a\tb", b"c\nd\\e"]),
        (b"\\b\\f\\r\\v", [b"\b\f\r\v"]),
        (b"oct\\101\\0\tx\\x41", [b"octA\x00", b"xA"]),
        (b"\\\\N\t\\N", [b"\\N", None]),
    ],
)
def test_copy_text_lines_split_and_unescape(line: bytes, fields: list[bytes | None]) -> None:
    assert parse_copy_line(line) == fields
