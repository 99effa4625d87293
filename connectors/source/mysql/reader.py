"""mysql-replication's event loop with TableMap events parsed once per distinct definition.

Every transaction in the binlog carries a TableMap event for each table it changes, and
mysql-replication parses each one in full (columns, optional metadata, a ``Table`` whose
primary key it finds by building every column's ``data`` dict twice): with single-row
transactions that was half of the source's CPU time (see the MySQL section of
``bench/README.md``). A TableMap's bytes after the event header — table id, names, column
types, column metadata, and with ``binlog_row_metadata=FULL`` the names, keys and charsets —
are all it says, so :class:`CachingStreamReader` keeps the ``Table`` parsed from each distinct
byte string and puts it back into the table map when the same bytes come again, without
building an event. The two other events of every transaction, MariaDB's GTID event and the
XID event, are read straight from the packet into the library's event classes (the same
attributes, without the packet wrapper's generic set-up). So are the row events' headers
(:func:`_rows_event`): table id, flags, column count and bitmaps, and where the rows lie in
the packet, which is all the source's own decoder (:mod:`decoder`) needs; only when the
library's ``rows`` is asked for (a table the decoder does not cover) is the packet wrapped
and decoded by the library. With single-row transactions the wrapper and ``RowsEvent``'s
set-up were a quarter of the reader's time. Everything else is the library's
``fetchone``, minus what this source never
asks for (``end_log_pos``, ``skip_to_timestamp``, the library's own retry on a lost
connection, which :mod:`binlog` turns off).

What the bytes do not say is looked up elsewhere and kept per ``Table`` like the library's
``use_column_name_cache``: without FULL metadata the column names come from the server's
catalog when the map is first parsed, and the source renames them from its schema history
(:mod:`streaming`). The cache is emptied at every rotation (table ids are reused after a
server restart, which always starts a new binlog file), on DDL (:meth:`forget`) and when it
holds ``limit`` definitions.
"""

from __future__ import annotations

import struct
from typing import Any

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.constants.BINLOG import (
    DELETE_ROWS_EVENT_V1,
    DELETE_ROWS_EVENT_V2,
    FORMAT_DESCRIPTION_EVENT,
    MARIADB_GTID_EVENT,
    ROTATE_EVENT,
    TABLE_MAP_EVENT,
    UPDATE_ROWS_EVENT_V1,
    UPDATE_ROWS_EVENT_V2,
    WRITE_ROWS_EVENT_V1,
    WRITE_ROWS_EVENT_V2,
    XID_EVENT,
)
from pymysqlreplication.event import MariadbGtidEvent, XidEvent
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

__all__ = ["CachingStreamReader", "LightDelete", "LightUpdate", "LightWrite"]

_HEADER = 20  # OK byte + the event header (timestamp, type, server id, size, log_pos, flags)
_CHECKSUM = 4  # CRC32 after the event when binlog_checksum=CRC32
_EVENT_HEADER = struct.Struct("<xIBIIIH")
_GTID = struct.Struct("<QIB")  # MariaDB GTID event: sequence number, domain id, flags
_XID = struct.Struct("<Q")


class _Header:
    """What the streaming side reads of an event's ``packet``: its header fields."""

    __slots__ = ("event_size", "event_type", "flags", "log_pos", "server_id", "timestamp")

    def __init__(self, data: bytes) -> None:
        (
            self.timestamp, self.event_type, self.server_id, self.event_size, self.log_pos,
            self.flags,
        ) = _EVENT_HEADER.unpack_from(data)  # fmt: skip


def _light(cls: Any, data: bytes) -> Any:
    """An event of ``cls`` with the header attributes ``BinLogEvent.__init__`` sets."""
    event = cls.__new__(cls)
    header = _Header(data)
    event.packet = header
    event.event_type = header.event_type
    event.timestamp = header.timestamp
    event.event_size = header.event_size
    event._processed = True
    event.complete = True
    return event


def _gtid_event(data: bytes) -> Any:
    event = _light(MariadbGtidEvent, data)
    event.server_id = event.packet.server_id
    event.gtid_seq_no, event.domain_id, event.flags = _GTID.unpack_from(data, _HEADER)
    event.gtid = f"{event.domain_id}-{event.server_id}-{event.gtid_seq_no}"
    return event


def _xid_event(data: bytes) -> Any:
    event = _light(XidEvent, data)
    event.xid = _XID.unpack_from(data, _HEADER)[0]
    return event


class _LightRows:
    """A row event read by :func:`_rows_event`: the library's attributes but ``rows``, which
    wraps the packet and lets the library decode it when asked (``rows_span`` is what the
    source's decoder reads instead)."""

    rows_span: tuple[bytes, int, int]  # the packet's bytes, where the rows start and end
    _wrap: Any  # () -> the library's event of the same packet

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self._wrap().rows  # type: ignore[no-any-return]


class LightWrite(_LightRows, WriteRowsEvent):  # type: ignore[misc]
    pass


class LightUpdate(_LightRows, UpdateRowsEvent):  # type: ignore[misc]
    pass


class LightDelete(_LightRows, DeleteRowsEvent):  # type: ignore[misc]
    pass


# event type -> (the library's class, its light class, post-header length without
# extra data, is an update (two bitmaps))
_ROWS = {
    WRITE_ROWS_EVENT_V1: (WriteRowsEvent, LightWrite, 8, False),
    UPDATE_ROWS_EVENT_V1: (UpdateRowsEvent, LightUpdate, 8, True),
    DELETE_ROWS_EVENT_V1: (DeleteRowsEvent, LightDelete, 8, False),
    WRITE_ROWS_EVENT_V2: (WriteRowsEvent, LightWrite, 10, False),
    UPDATE_ROWS_EVENT_V2: (UpdateRowsEvent, LightUpdate, 10, True),
    DELETE_ROWS_EVENT_V2: (DeleteRowsEvent, LightDelete, 10, False),
}
_V2 = {WRITE_ROWS_EVENT_V2, UPDATE_ROWS_EVENT_V2, DELETE_ROWS_EVENT_V2}


def _rows_event(data: bytes, table: Any, post_header: int | None, checksum: bool) -> Any:
    """The row event in ``data`` (the packet, OK byte first) of ``table``, as the library
    reads its header (``RowsEvent.__init__``); None when it is not the simple case (a
    column count of 251 or more, extra data the library would read) and the library reads
    it."""
    kind = data[5]
    _, cls, known, update = _ROWS[kind]
    declared = known if post_header is None else post_header
    if declared < known:
        return None  # the library raises its MalformedBinLogEvent
    at = _HEADER + declared
    if kind in _V2:
        extra = int.from_bytes(data[_HEADER + 8 : _HEADER + 10], "little")
        if extra > 2:
            return None  # NDB or partition information: the library reads it
    count = data[at]
    if count >= 251:  # a longer length-coded number
        return None
    at += 1
    width = (count + 7) // 8
    event = _light(cls, data)
    event.table_map = None
    event.table_id = int.from_bytes(data[_HEADER : _HEADER + 6], "little")
    event.flags = int.from_bytes(data[_HEADER + 6 : _HEADER + 8], "little")
    event.primary_key = table.primary_key
    event.schema = table.schema
    event.table = table.table
    event.columns = table.columns
    event.number_of_columns = count
    event.columns_present_bitmap = data[at : at + width]
    at += width
    if update:
        event.columns_present_bitmap2 = data[at : at + width]
        at += width
    end = 1 + event.event_size - (_CHECKSUM if checksum else 0)
    if at > end:
        return None
    # As the library's: the size after the common header (and before the checksum).
    event.event_size -= 19 + (_CHECKSUM if checksum else 0)
    event.rows_span = (data, at, end)
    return event


_LIGHT = {MARIADB_GTID_EVENT: (MariadbGtidEvent, _gtid_event), XID_EVENT: (XidEvent, _xid_event)}


class CachingStreamReader(BinLogStreamReader):  # type: ignore[misc]
    """A ``BinLogStreamReader`` whose TableMap events are parsed once per definition.
    Not thread-safe (as the library's reader)."""

    table_map: dict[int, Any]  # the library's: table id -> Table, for the row events

    def __init__(self, *args: Any, table_map_limit: int = 1000, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tables: dict[bytes, Any] = {}  # TableMap bytes -> pymysqlreplication Table
        self._table_limit = table_map_limit
        allowed = self._BinLogStreamReader__allowed_events
        self._light = {t: read for t, (cls, read) in _LIGHT.items() if cls in allowed}
        self._light_rows = {t for t, (cls, *_) in _ROWS.items() if cls in allowed}
        self.table_map_hits = 0  # for tests and benchmarks: maps not parsed again
        self.light_row_events = 0  # ... and row events read without the library's wrapper

    def forget(self) -> None:
        """Parse every TableMap again from now on (a DDL statement went by)."""
        self._tables.clear()

    def fetchone(self) -> Any:
        # The library keeps its state in name-mangled attributes; read them once.
        get = self.__dict__.get
        while True:
            if not get("_BinLogStreamReader__connected_stream"):
                self._BinLogStreamReader__connect_to_stream()
            if not get("_BinLogStreamReader__connected_ctl"):
                self._BinLogStreamReader__connect_to_ctl()
            pkt = self._stream_connection._read_packet()
            if pkt.is_eof_packet():
                self.close()
                return None
            if not pkt.is_ok_packet():
                continue
            data: bytes = pkt._data
            light = self._light.get(data[5])
            if light is not None and get("_BinLogStreamReader__verify_checksum") is not True:
                event = light(data)
                if event.packet.log_pos:
                    self.log_pos = event.packet.log_pos
                return event
            verify = get("_BinLogStreamReader__verify_checksum") is True
            if data[5] in self._light_rows and not verify:
                event = self._rows(pkt, data)
                if event is not None:
                    self.light_row_events += 1
                    if event.packet.log_pos:
                        self.log_pos = event.packet.log_pos
                    return event
            key = None
            if data[5] == TABLE_MAP_EVENT:
                end = len(data) - _CHECKSUM if get("_BinLogStreamReader__use_checksum") else None
                key = data[_HEADER:end]
                table = self._tables.get(key)
                if table is not None:
                    self.table_map_hits += 1
                    log_pos = int.from_bytes(data[14:18], "little")
                    if log_pos:
                        self.log_pos = log_pos
                    self.table_map[table.table_id] = table
                    continue
            event = self._wrap(pkt)  # a wrapper, holding the event
            if event.event_type == ROTATE_EVENT:
                self.log_pos = event.event.position
                self.log_file = event.event.next_binlog
                if event.timestamp != 0:  # a real rotation, maybe after a restart: ids reused
                    self.table_map = {}
                    self._tables.clear()
            elif event.log_pos:
                self.log_pos = event.log_pos
            if event.event_type == FORMAT_DESCRIPTION_EVENT and event.event is not None:
                self.mysql_version = event.event.mysql_version
                self._BinLogStreamReader__post_header_lengths = event.event.post_header_len
            if key is not None and event.event is not None:
                table = event.event.get_table()
                self.table_map[event.event.table_id] = table
                if len(self._tables) >= self._table_limit:
                    self._tables.clear()
                self._tables[key] = table
            if event.event is None or (
                event.event.__class__ not in self._BinLogStreamReader__allowed_events
            ):
                continue
            return event.event

    def _rows(self, pkt: Any, data: bytes) -> Any:
        """A light row event of a captured table, or None: the library reads it (and skips
        it when its table was filtered out)."""
        table = self.table_map.get(int.from_bytes(data[_HEADER : _HEADER + 6], "little"))
        if table is None:
            return None
        p = "_BinLogStreamReader__"
        d = self.__dict__
        only, ignored = d[p + "only_schemas"], d[p + "ignored_schemas"]
        if (only is not None and table.schema not in only) or (
            ignored is not None and table.schema in ignored
        ):
            return None
        only, ignored = d[p + "only_tables"], d[p + "ignored_tables"]
        if (only is not None and table.table not in only) or (
            ignored is not None and table.table in ignored
        ):
            return None
        lengths = d[p + "post_header_lengths"]
        kind = data[5]
        post_header = lengths[kind - 1] if lengths and kind - 1 < len(lengths) else None
        event = _rows_event(data, table, post_header, bool(d[p + "use_checksum"]))
        if event is not None:
            # The library's event of the same packet, when its ``rows`` are asked for.
            table_id = event.table_id
            event._wrap = lambda: self._wrap(pkt, {table_id: table}).event
        return event

    def _wrap(self, pkt: Any, table_map: dict[int, Any] | None = None) -> Any:
        p = "_BinLogStreamReader__"
        d = self.__dict__
        pkt._position = 0  # read from the start (again, for a light row event's ``rows``)
        return BinLogPacketWrapper(
            pkt,
            self.table_map if table_map is None else table_map,
            self._ctl_connection,
            self.mysql_version,
            d[p + "use_checksum"],
            d[p + "allowed_events_in_packet"],
            d[p + "only_tables"],
            d[p + "ignored_tables"],
            d[p + "only_schemas"],
            d[p + "ignored_schemas"],
            d[p + "freeze_schema"],
            d[p + "ignore_decode_errors"],
            d[p + "verify_checksum"],
            d[p + "optional_meta_data"],
            d[p + "enable_logging"],
            d[p + "use_column_name_cache"],
            d[p + "post_header_lengths"],
        )
