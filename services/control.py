"""The four things done to any server: install, up, down, status.

``up`` is idempotent: a server already running in the directory is reported, not started
twice; one that was stopped is started again on the same data (and the same ports, when they
are still free). A failed start stops whatever it had spawned, so nothing is left behind.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from services import apt, process
from services.errors import ServiceError, ServiceUsageError
from services.lock import file_lock
from services.server import Home, Options, Server
from services.state import ServerState

__all__ = ["SERVERS", "down", "install", "install_all", "server", "status", "up"]

#: Server name -> "module:class"; imported on use, so one broken module does not break all.
SERVERS = {
    "postgres": "services.postgres:Postgres",
    "mariadb": "services.mariadb:MariaDB",
    "opensearch": "services.opensearch:OpenSearch",
    "kafka": "services.kafka:Kafka",
    "elasticsearch": "services.elasticsearch:Elasticsearch",
}

#: How servers say that a port was taken between our check and their bind, and how often
#: a start is retried with fresh ports when that happens.
BIND_RACE = "Address already in use"
BIND_ATTEMPTS = 3

#: What ``install-all`` installs: every server the test suite starts.
TEST_SERVERS = ("postgres", "mariadb", "opensearch", "kafka", "elasticsearch")


def server(name: str) -> Server:
    try:
        target = SERVERS[name]
    except KeyError:
        raise ServiceUsageError(
            f"unknown server {name!r}; choose one of: {', '.join(SERVERS)}"
        ) from None
    module_name, class_name = target.split(":")
    cls: type[Server] = getattr(importlib.import_module(module_name), class_name)
    return cls()


def install(srv: Server) -> None:
    if srv.missing():
        srv.install()
    still = srv.missing()
    if still:
        raise ServiceError(f"{srv.name}: still missing after install: {', '.join(still)}")


def install_all(names: tuple[str, ...] = TEST_SERVERS) -> None:
    """Install every server in ``names``; the apt ones in a single apt-get run."""
    servers = [server(n) for n in names]
    packages = [p for s in servers for p in s.apt_packages]
    if apt.missing_packages(packages):
        apt.install(packages)
    for srv in servers:
        install(srv)


def _home(srv: Server, directory: Path) -> Path:
    home = directory.resolve() / srv.name
    home.mkdir(parents=True, exist_ok=True)
    return home


def up(srv: Server, directory: Path, options: Options) -> dict[str, str]:
    """Start ``srv`` with its data under ``directory`` (if not running yet); return its facts."""
    srv.check_options(options)
    home_path = _home(srv, directory)
    with file_lock(home_path / ".lock"):
        state = ServerState.load(home_path)
        if state is not None and state.running:
            if state.processes and all(p.alive() for p in state.processes):
                main = state.ports.get(srv.main_port)
                if options.port is not None and options.port != main:
                    raise ServiceUsageError(
                        f"{srv.name} already runs in {directory} on port {main}; run "
                        f"`services/run down {srv.name} --dir {directory}` before asking for "
                        f"port {options.port}"
                    )
                return state.facts
            # Part of it died (a crash, a kill -9 by a test): stop the rest, start afresh once
            # the dead are reaped (postgres takes a zombie in its pid file for a live owner).
            process.stop(state.processes, timeout=srv.stop_timeout)
            process.wait_gone(state.processes)
        install(srv)
        if options.port is not None and not process.port_is_free(options.port):
            raise ServiceUsageError(f"port {options.port} is in use; choose another --port")
        state = state or ServerState(name=srv.name)
        for attempt in range(1, BIND_ATTEMPTS + 1):
            try:
                facts = _start(srv, home_path, state, options)
                break
            except ServiceError as exc:
                # A free port picked by the kernel can be taken by someone else before the
                # server binds it; with fresh ports the next attempt starts.
                if BIND_RACE not in str(exc) or attempt == BIND_ATTEMPTS:
                    raise
        state.facts = facts
        state.running = True
        state.options = {"brokers": options.brokers}
        state.save(home_path)
        return facts


def _start(srv: Server, home_path: Path, state: ServerState, options: Options) -> dict[str, str]:
    """One attempt to start ``srv``; whatever it spawned is stopped again if it fails."""
    state.running = False
    state.processes = []
    state.facts = {}
    home = Home(home_path, state, srv.main_port, options.port)
    try:
        return srv.start(home, options)
    except BaseException:
        process.stop(state.processes, timeout=srv.stop_timeout)
        state.running = False
        state.processes = []
        state.save(home_path)
        raise


def down(srv: Server, directory: Path) -> bool:
    """Stop ``srv`` in ``directory``; True if something was running. Safe to repeat."""
    home_path = directory.resolve() / srv.name
    if not home_path.is_dir():
        return False
    with file_lock(home_path / ".lock"):
        state = ServerState.load(home_path)
        if state is None or not state.running:
            return False
        was_running = any(p.alive() for p in state.processes)
        process.stop(state.processes, timeout=srv.stop_timeout)
        state.running = False
        state.processes = []
        state.save(home_path)
        return was_running


def status(srv: Server, directory: Path) -> tuple[bool, dict[str, str]]:
    """Whether ``srv`` runs in ``directory`` (every process alive), and its facts if so."""
    state = ServerState.load(directory.resolve() / srv.name)
    if state is None or not state.running or not state.processes:
        return False, {}
    if not all(p.alive() for p in state.processes):
        return False, {}
    return True, state.facts
