"""``changehub doctor``: is every system a pipeline names ready for it?

:func:`diagnose` checks, without starting anything: the log (directory writable, free disk
space; for Kafka, brokers reachable), each source (Postgres and MySQL/MariaDB with their own
checks: wal_level or binlog settings, privileges, slots, tables; polled SQL databases:
reachable, credentials, the table there) and each sink (SQL targets reachable with their
credentials, search engines answering, export directories writable). Every problem comes
with the exact fix. Nothing here changes any system; file databases (SQLite, DuckDB) are
not opened for writing (SQLite is read for its table list, read-only; DuckDB not at all), so
that doctor neither creates them nor takes their lock from a running hub.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from connectors.api import SinkConfig, SourceConfig
from connectors.doctor import Finding
from hub.config import PipelineConfig
from hub.secrets import mask

__all__ = ["Finding", "check_directory", "diagnose"]

# Free space below which the log (or an export directory) is about to stop the pipeline, and
# below which it should be watched. The log refuses appends on ENOSPC, and sources then stop.
MIN_FREE_BYTES = 512 * 1024 * 1024
LOW_FREE_BYTES = 5 * 1024 * 1024 * 1024
LOW_FREE_RATIO = 0.05
TIMEOUT_S = 5.0

DiskUsage = Callable[[str], Any]  # shutil.disk_usage's shape: .total, .used, .free


def diagnose(config: PipelineConfig) -> list[Finding]:
    """Every check of every system ``config`` names, in the file's order."""
    out = _log(config)
    for src in config.sources:
        out.extend(_source(src))
    for snk in config.sinks:
        out.extend(_sink(snk))
    return [replace(f, message=mask(f.message), fix=f.fix and mask(f.fix)) for f in out]


# -- the log --------------------------------------------------------------------------------


def _log(config: PipelineConfig) -> list[Finding]:
    lc = config.log
    if lc.backend == "kafka":
        assert lc.kafka is not None
        brokers = [b.strip() for b in lc.kafka.bootstrap.split(",")]
        return [_reachable("log (kafka)", b, "check log.kafka.bootstrap and that the broker "
                           "runs; a firewall must let this host reach it") for b in brokers]
    return check_directory("log", Path(lc.path), "log.path")


def check_directory(system: str, path: Path, key: str,
                    disk_usage: DiskUsage = shutil.disk_usage) -> list[Finding]:
    """A directory changehub writes to: creatable or writable, with room on its disk."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    out: list[Finding] = []
    if not existing.is_dir():
        return [Finding("error", "directory", f"{existing} is not a directory",
                        f"point {key} at a directory", system=system)]
    if not os.access(existing, os.W_OK | os.X_OK):
        out.append(Finding("error", "directory",
                           f"{existing} is not writable by this user",
                           f"chown the directory to the user running changehub, or point "
                           f"{key} elsewhere", system=system))
    else:
        what = "exists" if existing == path else f"will be created under {existing}"
        out.append(Finding("ok", "directory", f"{path} {what}", system=system))
    usage = disk_usage(str(existing))
    free, total = int(usage.free), int(usage.total)
    text = f"{_gib(free)} free of {_gib(total)} on the disk of {existing}"
    if free < MIN_FREE_BYTES:
        out.append(Finding("error", "disk space", text,
                           f"free space on that disk, or move {key} to a larger one; "
                           "with a full disk the log refuses appends and sources stop",
                           system=system))
    elif free < LOW_FREE_BYTES or free < total * LOW_FREE_RATIO:
        out.append(Finding("warning", "disk space", text,
                           "free space, shorten retention, or move the directory to a "
                           "larger disk before it fills", system=system))
    else:
        out.append(Finding("ok", "disk space", text, system=system))
    return out


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB"


def _reachable(system: str, host_port: str, fix: str) -> Finding:
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=TIMEOUT_S):
            pass
    except OSError as exc:
        return Finding("error", "reachable", f"{host_port}: {exc}", fix, system=system)
    return Finding("ok", "reachable", host_port, system=system)


# -- sources --------------------------------------------------------------------------------


def _source(cfg: SourceConfig) -> list[Finding]:
    system = f"source {cfg.name} ({cfg.type})"
    if cfg.type == "postgres":
        from connectors.source.postgres.config import PostgresSourceConfig
        from connectors.source.postgres.doctor import diagnose as postgres

        assert isinstance(cfg, PostgresSourceConfig)
        return _adopt(system, postgres(cfg))
    if cfg.type in ("mysql", "mariadb"):
        from connectors.source.mysql.config import MySqlSourceConfig
        from connectors.source.mysql.doctor import diagnose as mysql

        assert isinstance(cfg, MySqlSourceConfig)
        return _adopt(system, mysql(cfg))
    if cfg.type == "sql_poll":
        return _sql_poll(system, cfg)
    return [Finding("warning", "checks", f"doctor has no checks for {cfg.type} sources",
                    system=system)]


def _adopt(system: str, findings: Iterable[Finding]) -> list[Finding]:
    """A connector's own findings, tagged with the system they concern."""
    return [replace(f, system=system) for f in findings]


def _sql_poll(system: str, cfg: Any) -> list[Finding]:
    from connectors.sqldb import split_table_name

    url: str = cfg.url
    file_db = _file_database(url)
    if file_db is not None:
        if not file_db.is_file():
            return [Finding("error", "database file", f"{file_db} does not exist",
                            "fix the path in url (relative paths start at the directory "
                            "changehub runs in)", system=system)]
        found = [Finding("ok", "database file", str(file_db), system=system)]
        if url.startswith("sqlite"):
            found.append(_sqlite_table(system, file_db, cfg.table))
        return found
    found, engine = _connect(system, url, "url")
    if engine is None:
        return found
    try:
        import sqlalchemy as sa

        schema, table = split_table_name(cfg.table)
        with engine.connect() as conn:
            exists = sa.inspect(conn).has_table(table, schema=schema)
    except Exception as exc:
        return [*found, Finding("error", "table", f"cannot look up {cfg.table}: "
                                f"{_first_line(exc)}",
                                "grant this user access to the table's schema", system=system)]
    finally:
        engine.dispose()
    if not exists:
        return [*found, Finding("error", "table", f"{cfg.table} does not exist",
                                "create the table, or fix `table` (schema.table)", system=system)]
    return [*found, Finding("ok", "table", f"{cfg.table} exists", system=system)]


def _sqlite_table(system: str, file: Path, name: str) -> Finding:
    """Look the table up read-only: SQLite readers take no lock a running hub would mind."""
    import sqlite3

    from connectors.sqldb import split_table_name

    schema, table = split_table_name(name)
    master = f'"{schema}".sqlite_master' if schema else "sqlite_master"
    try:
        conn = sqlite3.connect(f"{file.as_uri()}?mode=ro", uri=True, timeout=TIMEOUT_S)
        try:
            row = conn.execute(f"SELECT 1 FROM {master} WHERE type IN ('table', 'view') "
                               "AND name = ?", (table,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Finding("error", "table", f"cannot read {file}: {exc}",
                       "check that the file is a SQLite database readable by this user",
                       system=system)
    if row is None:
        return Finding("error", "table", f"{name} does not exist in {file}",
                       "create the table, or fix `table`", system=system)
    return Finding("ok", "table", f"{name} exists", system=system)


# -- sinks ----------------------------------------------------------------------------------


def _sink(cfg: SinkConfig) -> list[Finding]:
    system = f"sink {cfg.name} ({cfg.type})"
    if cfg.type == "sql":
        url: str = cfg.url  # type: ignore[attr-defined]
        file_db = _file_database(url)
        if file_db is not None:
            return check_directory(system, file_db.parent, "url")
        found, engine = _connect(system, url, "url")
        if engine is not None:
            engine.dispose()
        return found
    if cfg.type in ("elasticsearch", "opensearch"):
        return [_search_host(system, cfg, host) for host in cfg.hosts]  # type: ignore[attr-defined]
    if cfg.type == "batch":
        return check_directory(system, Path(cfg.path), "path")  # type: ignore[attr-defined]
    return [Finding("warning", "checks", f"doctor has no checks for {cfg.type} sinks",
                    system=system)]


def _file_database(url: str) -> Path | None:
    """The file of a SQLite or DuckDB URL (None for servers and in-memory databases)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() not in ("sqlite", "duckdb"):
        return None
    db = parsed.database
    if not db or db == ":memory:":
        return None
    return Path(db).absolute()


def _connect(system: str, url: str, key: str) -> tuple[list[Finding], Any]:
    """Connect once to a database server: reachable, credentials accepted."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from connectors.sqldb import mask_url

    parsed = make_url(url)
    args: dict[str, Any] = {}
    if parsed.get_backend_name() in ("postgresql", "mysql", "mariadb"):
        args["connect_args"] = {"connect_timeout": int(TIMEOUT_S)}
    try:
        engine = sa.create_engine(parsed, poolclass=sa.pool.NullPool, **args)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        reason = _first_line(exc)
        lowered = reason.lower()
        if "password" in lowered or "access denied" in lowered or "authentication" in lowered:
            fix = f"check the user and password in {key}"
        elif "does not exist" in lowered or "unknown database" in lowered:
            fix = f"create the database, or fix its name in {key}"
        elif "no module named" in lowered or "can't load plugin" in lowered:
            fix = f"install the SQLAlchemy driver {parsed.drivername!r} with pip"
        else:
            fix = f"check host and port in {key}, that the server runs, and that a " \
                  "firewall lets this host reach it"
        return [Finding("error", "connection", f"{mask_url(url)}: {reason}", fix,
                        system=system)], None
    ok = Finding("ok", "connection", f"{mask_url(url)} accepts the credentials", system=system)
    return [ok], engine


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return mask(lines[0] if lines else type(original).__name__)


def _search_host(system: str, cfg: Any, host: str) -> Finding:
    shown = mask(host)
    request = urllib.request.Request(host.rstrip("/") + "/")
    if cfg.username is not None:
        pair = f"{cfg.username}:{cfg.password or ''}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
    context = None
    if host.startswith("https"):
        context = ssl.create_default_context(cafile=cfg.ca_certs)
        if not cfg.verify_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as answer:
            body = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return Finding("error", "credentials", f"{shown} answered {exc.code}",
                           "check username and password (the user needs to create indexes "
                           "and write documents)", system=system)
        return Finding("error", "reachable", f"{shown} answered {exc.code}",
                       "check that hosts names the engine's HTTP address", system=system)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLCertVerificationError):
            return Finding("error", "reachable", f"{shown}: {_first_line(reason)}",
                           "set ca_certs to the CA file that signed the engine's certificate "
                           "(and check that hosts uses the name the certificate is for)",
                           system=system)
        return Finding("error", "reachable", f"{shown}: {_first_line(exc)}",
                       "check hosts, that the engine runs, and that a firewall lets this "
                       "host reach it", system=system)
    version = body.get("version", {}) if isinstance(body, dict) else {}
    number = version.get("number", "?") if isinstance(version, dict) else "?"
    engine = "opensearch" if isinstance(version, dict) and \
        version.get("distribution") == "opensearch" else "elasticsearch"
    return Finding("ok", "reachable", f"{shown} is {engine} {number}", system=system)
