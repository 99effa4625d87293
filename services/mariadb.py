"""MariaDB from Debian's packages, set up for row-based binlog replication.

The server keeps its data in ``DIR/mariadb/data``, listens on 127.0.0.1 only and writes a
binlog with ``binlog_format=ROW``, ``binlog_row_image=FULL`` and
``binlog_row_metadata=FULL`` (without the last one, binlog readers see no column names),
``server_id=1``; MariaDB tags every transaction with a GTID (domain 0), which readers resume
from. Host names are not resolved, so users match by IP.

``mariadb-install-db`` creates anonymous users that would shadow a ``'user'@'%'`` login
from 127.0.0.1 ("Access denied"), and users named for the host name that only produce
warnings without name resolution: they are dropped. The login for tests is ``changehub``
(password ``changehub``), owner of the database ``changehub`` with the privileges a CDC
reader needs (REPLICATION SLAVE, REPLICATION CLIENT, SELECT, RELOAD, LOCK TABLES, SHOW
DATABASES); ``root``/``root`` from 127.0.0.1 can do everything. As root, mariadbd runs as the
``mysql`` account, which is given the data directory.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import ClassVar

from services import apt
from services.errors import ServiceError
from services.process import RunAs
from services.server import Home, Options, Server
from services.tls import make_tls_files

__all__ = ["MariaDB"]

USER = "changehub"
PASSWORD = "hub-pass-73"
DATABASE = "changehub"
ROOT_PASSWORD = "root"
START_TIMEOUT = 90.0
MAX_SOCKET_PATH = 100
RUN_AS = RunAs("mysql")
SERVER = Path("/usr/sbin/mariadbd")
INSTALL_DB = Path("/usr/bin/mariadb-install-db")
CLIENT = Path("/usr/bin/mariadb")
ADMIN = Path("/usr/bin/mariadb-admin")

SETUP_SQL = f"""\
DELETE FROM mysql.global_priv WHERE User = '' OR Host NOT IN ('localhost', '127.0.0.1', '%');
DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '%');
FLUSH PRIVILEGES;
CREATE DATABASE IF NOT EXISTS {DATABASE};
CREATE OR REPLACE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}';
GRANT ALL PRIVILEGES ON {DATABASE}.* TO '{USER}'@'%';
GRANT SELECT, RELOAD, LOCK TABLES, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT
  ON *.* TO '{USER}'@'%';
CREATE OR REPLACE USER 'root'@'127.0.0.1' IDENTIFIED BY '{ROOT_PASSWORD}';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
"""


class MariaDB(Server):
    name = "mariadb"
    serves_tls = True
    apt_packages: ClassVar[tuple[str, ...]] = ("mariadb-server", "mariadb-client")
    stop_timeout: ClassVar[float] = 60.0

    def missing(self) -> list[str]:
        missing = apt.missing_packages(self.apt_packages)
        missing += [str(p) for p in (SERVER, INSTALL_DB, CLIENT, ADMIN) if not p.exists()]
        return missing

    def install(self) -> None:
        apt.install(self.apt_packages)

    def start(self, home: Home, options: Options) -> dict[str, str]:
        data = home.path / "data"
        sock = _socket_path(home.path)
        if not (data / "mysql").is_dir():
            self._init(home, data)
        port = home.port(self.main_port)
        tls_args: list[str] = []
        tls_facts: dict[str, str] = {}
        if options.tls:
            tls = make_tls_files(home.path / "tls")
            home.give_to(RUN_AS, tls.directory)
            tls_args = [f"--ssl-ca={tls.ca}", f"--ssl-cert={tls.cert}", f"--ssl-key={tls.key}"]
            tls_facts = tls.facts()
        home.spawn(
            [
                str(SERVER), "--no-defaults", f"--datadir={data}", f"--port={port}",
                "--bind-address=127.0.0.1", f"--socket={sock}",
                f"--pid-file={home.path / 'run' / 'mariadbd.pid'}", "--skip-name-resolve",
                "--log-bin=mysql-bin", "--binlog-format=ROW", "--binlog-row-image=FULL",
                "--binlog-row-metadata=FULL", "--server-id=1", "--log-slave-updates",
                *tls_args,
            ],
            run_as=RUN_AS,
        )  # fmt: skip
        home.wait_until_ready(
            f"mariadb on port {port}",
            lambda: _client(ADMIN, sock, "ping").returncode == 0,
            timeout=START_TIMEOUT,
        )
        setup = _client(CLIENT, sock, input=SETUP_SQL)
        if setup.returncode != 0:
            raise ServiceError(f"creating user and database {USER} failed:\n{setup.stderr}")
        login = subprocess.run(
            [str(CLIENT), "--no-defaults", "-h", "127.0.0.1", "-P", str(port), f"-u{USER}",
             f"-p{PASSWORD}", DATABASE, "-e", "SELECT 1"],
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
        if login.returncode != 0:
            raise ServiceError(f"password login as {USER} over TCP failed:\n{login.stderr}")
        return {
            "MYSQL_URL": f"mysql://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}",
            "MYSQL_ROOT_URL": f"mysql://root:{ROOT_PASSWORD}@127.0.0.1:{port}/",
            "MYSQL_HOST": "127.0.0.1",
            "MYSQL_PORT": str(port),
            "MYSQL_USER": USER,
            "MYSQL_PASSWORD": PASSWORD,
            "MYSQL_DATABASE": DATABASE,
            "MYSQL_SOCKET": str(sock),
            **tls_facts,
        }

    def _init(self, home: Home, data: Path) -> None:
        run_dir = home.path / "run"
        data.mkdir(mode=0o750, exist_ok=True)
        run_dir.mkdir(exist_ok=True)
        home.give_to(RUN_AS, data, run_dir)
        init = subprocess.run(
            [str(INSTALL_DB), "--no-defaults", f"--datadir={data}",
             "--auth-root-authentication-method=normal", "--skip-test-db",
             *([f"--user={RUN_AS.user}"] if os.geteuid() == 0 else [])],
            capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
        if init.returncode != 0:
            raise ServiceError(
                f"mariadb-install-db in {data} failed (exit {init.returncode}). Every parent "
                "of --dir must be searchable by the mysql user (pytest's /tmp/pytest-of-* is "
                f"not; use a directory under /tmp):\n{init.stdout}{init.stderr}"
            )


def _socket_path(home: Path) -> Path:
    """The server's unix socket: in DIR when the path fits in sun_path, else in /tmp."""
    sock = home / "run" / "mysqld.sock"
    if len(str(sock)) <= MAX_SOCKET_PATH:
        return sock
    digest = hashlib.sha1(str(home).encode()).hexdigest()[:12]
    return Path("/tmp") / f"changehub-mariadb-{digest}.sock"


def _client(
    binary: Path, sock: Path, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a client as root over the socket (root@localhost has no password there)."""
    return subprocess.run(
        [str(binary), "--no-defaults", f"--socket={sock}", "-uroot", *args],
        input=input,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
