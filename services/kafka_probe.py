"""Ask a Kafka broker which brokers are alive: a Metadata request on a raw socket.

``services`` runs on the standard library alone, so its health check for Kafka speaks the
wire protocol itself, just enough of it: ApiVersions v0 (every broker answers it) to learn
the Metadata versions the broker accepts, then Metadata v4..v8 (the non-flexible encodings,
which share the layout read here) for all topics, and the number of brokers in the answer.
Kafka 4 lists only registered, unfenced brokers there, so "N brokers" means the cluster can
serve N-way replicated topics.
"""

from __future__ import annotations

import socket
import struct

__all__ = ["alive_brokers"]

API_METADATA = 3
API_VERSIONS = 18
# Non-flexible Metadata versions; v9+ use compact encodings this reader does not parse.
METADATA_VERSIONS = range(4, 9)
CLIENT_ID = b"changehub-services"


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def skip_string(self) -> None:
        length = self.take(">h")
        self.pos += max(length, 0)


def _request(sock: socket.socket, api_key: int, version: int, body: bytes) -> _Reader:
    header = struct.pack(">hhih", api_key, version, 1, len(CLIENT_ID)) + CLIENT_ID
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", _recv(sock, 4))[0]
    reader = _Reader(_recv(sock, size))
    reader.take(">i")  # correlation id
    return reader


def _recv(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks += chunk
    return bytes(chunks)


def _metadata_version(sock: socket.socket) -> int:
    reader = _request(sock, API_VERSIONS, 0, b"")
    if reader.take(">h") != 0:
        raise ConnectionError("ApiVersions failed")
    for _ in range(reader.take(">i")):
        key, low, high = reader.take(">h"), reader.take(">h"), reader.take(">h")
        if key == API_METADATA:
            usable = [v for v in METADATA_VERSIONS if low <= v <= high]
            if usable:
                return max(usable)
    raise ConnectionError("broker offers no Metadata version between v4 and v8")


def alive_brokers(host: str, port: int, timeout: float = 2.0) -> int:
    """How many brokers the broker at host:port reports; 0 if it does not answer (yet)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            version = _metadata_version(sock)
            # topics = null (all), allow_auto_topic_creation = false, and from v8 the two
            # include_*_authorized_operations flags = false.
            body = struct.pack(">ib", -1, 0) + (b"\x00\x00" if version >= 8 else b"")
            reader = _request(sock, API_METADATA, version, body)
            reader.take(">i")  # throttle time
            return reader.take(">i")
    except (OSError, ConnectionError, struct.error):
        return 0
