"""Topic names for database tables: ``<source name>.<schema>.<table>``, escaped so that any
table a database allows gets a valid topic name, and no two tables get the same one.

A topic name may hold only ``A-Z a-z 0-9 . _ -`` and at most 249 characters (Kafka's rule,
which the embedded log keeps so that a pipeline moves to Kafka unchanged), while a table
may be called ``order items``, ``say "hi"``, ``Заказы`` or ``注文``. Each schema and table
part is therefore mapped on its own:

* a *plain* part (only ``A-Z a-z 0-9 _ -``, and no ``_u`` followed by four hex digits in
  it) is kept as it is, so every topic name that was valid before stays the same;
* any other part is escaped the way Debezium's unicode topic naming strategy does it
  (``DefaultUnicodeTopicNamingStrategy`` with its ``UnicodeReplacementFunction``): every
  character other than ``A-Z a-z 0-9 -`` becomes ``_u`` and its UTF-16 code unit as four
  lower-case hex digits, the underscore itself and the dot included (``order items`` ->
  ``order_u0020items``, ``a_b c`` -> ``a_u005fb_u0020c``, ``注文`` -> ``_u6ce8_u6587``).
  Debezium writes fewer than four digits for code units from 0x100 to 0xfff (``Ω`` as
  ``_u3a9``), which makes ``_u3a90`` ambiguous; here it is always four (``_u03a9``).

Why no two tables collide: a plain part never contains an escape, an escaped part always
does (its first escaped character, or the escaped underscore of the ``_uXXXX`` that made it
not plain), and within an escaped part every ``_`` starts an escape, so the escaping can be
undone (:func:`split_topic`); a part never contains a dot, so the parts split back apart.
The source name is the user's own (validated by the config) and is kept as written.

A name longer than 249 characters after escaping (a long schema and table in non-Latin
letters) is cut to 231 and ends with ``_h`` and 16 hex digits of a hash of the unescaped
parts, so it stays unique; such a name cannot be split back, and sinks take the schema and
table from the event's ``source`` block anyway (they fall back to the topic only for
events that lack one).
"""

from __future__ import annotations

import functools
import hashlib
import re

__all__ = ["MAX_TOPIC_LENGTH", "escape_part", "split_topic", "topic_name", "unescape_part"]

MAX_TOPIC_LENGTH = 249  # Kafka's limit, kept by the embedded log

_PLAIN = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPE = re.compile(r"_u[0-9a-fA-F]{4}")
_ESCAPED_PART = re.compile(r"(?:[A-Za-z0-9-]|_u[0-9a-f]{4})+")
_KEPT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_HASH_DIGITS = 16


@functools.lru_cache(maxsize=4096)  # called per table map event by the MySQL source
def topic_name(source: str, schema: str | None, table: str) -> str:
    """``<source>.<schema>.<table>`` (schema left out where the database has none), with
    schema and table escaped where they are not plain (see the module doc)."""
    parts = [source, *([escape_part(schema)] if schema else []), escape_part(table)]
    name = ".".join(parts)
    if len(name) <= MAX_TOPIC_LENGTH:
        return name
    original = "\0".join((source, schema or "", table)).encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(original, digest_size=_HASH_DIGITS // 2).hexdigest()
    return f"{name[: MAX_TOPIC_LENGTH - _HASH_DIGITS - 2]}_h{digest}"


def escape_part(part: str) -> str:
    """One schema or table name as it appears in a topic name (see the module doc)."""
    if _PLAIN.fullmatch(part) and not _ESCAPE.search(part):
        return part
    out = []
    for ch in part:
        if ch in _KEPT:
            out.append(ch)
            continue
        units = ch.encode("utf-16-be", "surrogatepass")  # two units beyond the BMP, as Java
        out.extend(f"_u{units[i] << 8 | units[i + 1]:04x}" for i in range(0, len(units), 2))
    return "".join(out)


def unescape_part(part: str) -> str:
    """The name :func:`escape_part` made ``part`` from; a part that is not an escaped one
    (plain, or named by something else) is returned as it is."""
    if not _ESCAPE.search(part) or not _ESCAPED_PART.fullmatch(part):
        return part
    units = bytearray()
    i = 0
    while i < len(part):
        if part[i] == "_":
            units += int(part[i + 2 : i + 6], 16).to_bytes(2, "big")
            i += 6
        else:
            units += part[i].encode("utf-16-be")
            i += 1
    try:
        return units.decode("utf-16-be")
    except UnicodeDecodeError:  # a lone surrogate: not something escape_part wrote
        return part


def split_topic(topic: str) -> list[str]:
    """A topic name's dot-separated parts, all but the first unescaped: ``[source, schema,
    table]`` or ``[source, table]`` for the names :func:`topic_name` makes."""
    first, *rest = topic.split(".")
    return [first, *map(unescape_part, rest)]
