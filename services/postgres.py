"""PostgreSQL from Debian's packages, set up for logical replication.

The cluster lives in ``DIR/postgres/data`` and listens on 127.0.0.1 only, with
``wal_level=logical`` and room for 20 slots and WAL senders. Authentication on loopback is
``trust`` for the ``postgres`` superuser and a real password check (scram-sha-256) for every
other role, so that tests can use a normal application login: the role ``changehub``
(password ``changehub``, LOGIN, REPLICATION, CREATEDB) owns the database ``changehub``.

postgres and initdb refuse to run as root, so as root they run as the ``postgres`` account
(the Debian package creates it) and that account is given the data directory.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import ClassVar

from services import apt
from services.errors import ServiceError
from services.process import RunAs
from services.server import Home, Options, Server
from services.tls import make_tls_files

__all__ = ["Postgres"]

USER = "changehub"
PASSWORD = "hub-pass-73"
DATABASE = "changehub"
START_TIMEOUT = 60.0
# A unix socket path must fit in sun_path (108 bytes); a longer DIR gets no socket.
MAX_SOCKET_PATH = 100
RUN_AS = RunAs("postgres")

HBA = """\
# Written by services/postgres.py: superuser trusted on loopback, every other role must
# give its password, for normal and replication connections alike.
local   all          all                     trust
local   replication  all                     trust
host    all          postgres  127.0.0.1/32  trust
host    replication  postgres  127.0.0.1/32  trust
host    all          all       127.0.0.1/32  scram-sha-256
host    replication  all       127.0.0.1/32  scram-sha-256
"""

SETTINGS = """
# Added by services/postgres.py
listen_addresses = '127.0.0.1'
unix_socket_directories = '{socket_dir}'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
password_encryption = 'scram-sha-256'
"""

SETUP_SQL = f"""\
SELECT 'CREATE ROLE {USER} LOGIN REPLICATION CREATEDB PASSWORD ''{PASSWORD}'''
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{USER}') \\gexec
SELECT 'CREATE DATABASE {DATABASE} OWNER {USER}'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{DATABASE}') \\gexec
"""


def bin_dir() -> Path | None:
    """The newest installed server's bin directory (/usr/lib/postgresql/<major>/bin)."""
    candidates = [
        d / "bin"
        for d in Path("/usr/lib/postgresql").glob("*")
        if d.name.isdigit() and (d / "bin" / "postgres").exists()
    ]
    return max(candidates, key=lambda p: int(p.parent.name), default=None)


class Postgres(Server):
    name = "postgres"
    serves_tls = True
    apt_packages: ClassVar[tuple[str, ...]] = ("postgresql", "postgresql-contrib")

    def missing(self) -> list[str]:
        missing = apt.missing_packages(self.apt_packages)
        if not missing and bin_dir() is None:
            missing.append("/usr/lib/postgresql/<version>/bin/postgres")
        return missing

    def install(self) -> None:
        apt.install(self.apt_packages)

    def start(self, home: Home, options: Options) -> dict[str, str]:
        bindir = bin_dir()
        if bindir is None:
            raise ServiceError("no PostgreSQL server under /usr/lib/postgresql; run install")
        data = home.path / "data"
        socket_dir = home.path / "run"
        if not (data / "PG_VERSION").exists():
            self._init(home, bindir, data, socket_dir)
        port = home.port(self.main_port)
        tls_args: list[str] = []
        tls_facts: dict[str, str] = {}
        if options.tls:
            # postgres insists that its key is private to its own account.
            tls = make_tls_files(home.path / "tls")
            home.give_to(RUN_AS, tls.directory)
            tls_args = ["-c", "ssl=on", "-c", f"ssl_cert_file={tls.cert}",
                        "-c", f"ssl_key_file={tls.key}"]
            tls_facts = tls.facts()
        home.spawn(
            [str(bindir / "postgres"), "-D", str(data), "-p", str(port), *tls_args],
            run_as=RUN_AS,
            # SIGINT is postgres' "fast" shutdown: it does not wait for clients to leave.
            stop_signal=signal.SIGINT,
        )
        home.wait_until_ready(
            f"postgres on port {port}",
            lambda: _psql(bindir, _superuser_dsn(port), "SELECT 1").returncode == 0,
            timeout=START_TIMEOUT,
        )
        result = _psql(bindir, _superuser_dsn(port), SETUP_SQL)
        if result.returncode != 0:
            raise ServiceError(f"creating role and database {USER} failed:\n{result.stderr}")
        facts = {
            "PG_DSN": f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}",
            "PG_SUPERUSER_DSN": _superuser_dsn(port),
            "PG_HOST": "127.0.0.1",
            "PG_PORT": str(port),
            "PG_USER": USER,
            "PG_PASSWORD": PASSWORD,
            "PG_DATABASE": DATABASE,
            "PG_BIN": str(bindir),
            "PG_DATA": str(data),
            **tls_facts,
        }
        login = _psql(bindir, facts["PG_DSN"], "SELECT 1")
        if login.returncode != 0:
            raise ServiceError(f"password login as {USER} failed:\n{login.stderr}")
        return facts

    def _init(self, home: Home, bindir: Path, data: Path, socket_dir: Path) -> None:
        data.mkdir(mode=0o700, exist_ok=True)
        socket_dir.mkdir(exist_ok=True)
        home.give_to(RUN_AS, data, socket_dir)
        init = RUN_AS.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--locale=C"],
        )  # fmt: skip
        if init.returncode != 0:
            raise ServiceError(
                f"initdb in {data} failed (exit {init.returncode}). If it cannot reach the "
                "directory, every parent of --dir must be searchable by the postgres user "
                f"(pytest's /tmp/pytest-of-* is not; use a directory under /tmp):\n"
                f"{init.stdout}{init.stderr}"
            )
        socket = str(socket_dir) if len(str(socket_dir)) <= MAX_SOCKET_PATH else ""
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(SETTINGS.format(socket_dir=socket))
        (data / "pg_hba.conf").write_text(HBA)
        home.give_to(RUN_AS, data)


def _superuser_dsn(port: int) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def _psql(bindir: Path, dsn: str, sql: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", "-"],
        input=sql,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
