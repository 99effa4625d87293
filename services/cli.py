"""``services/run``: install, start, stop and inspect the real servers.

    services/run up NAME --dir DIR [--port P] [--brokers N]   start; print KEY=VALUE lines
    services/run down NAME --dir DIR                          stop (safe to repeat)
    services/run status NAME --dir DIR                        STATUS=running|stopped (+ facts)
    services/run install NAME                                 install only
    services/run install-all                                  install what the tests need

Stdout carries only ``KEY=VALUE`` lines, shell-quoted, so that ``eval "$(services/run up
postgres --dir /tmp/pg)"`` works; progress and errors go to stderr. Exit codes: 0 success,
1 failure (the message says what to do), 2 bad usage, 3 ``status`` of a stopped server.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from services import control
from services.errors import ServiceError, ServiceUsageError
from services.server import Options

__all__ = ["main"]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_STOPPED = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="services/run", description="Install and run the real servers changehub tests use."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    names = list(control.SERVERS)

    up = commands.add_parser("up", help="install if missing, start, wait until it answers")
    up.add_argument("name", choices=names)
    up.add_argument("--dir", required=True, type=Path, help="directory for the server's data")
    up.add_argument("--port", type=int, help="main port (default: a free loopback port)")
    up.add_argument("--brokers", type=int, default=1, help="kafka only: 1 or 3 brokers")
    up.add_argument("--tls", action="store_true",
                    help="postgres, mariadb, kafka, opensearch: serve TLS with a certificate from "
                         "a throw-away CA "
                         "(facts TLS_CA, TLS_OTHER_CA)")

    for command, text in (("down", "stop the server (safe to repeat)"), ("status", "is it up")):
        sub = commands.add_parser(command, help=text)
        sub.add_argument("name", choices=names)
        sub.add_argument("--dir", required=True, type=Path)

    install = commands.add_parser("install", help="install a server without starting it")
    install.add_argument("name", choices=names)
    commands.add_parser("install-all", help="install every server the test suite uses")
    return parser


def _print_facts(facts: dict[str, str]) -> None:
    for key, value in facts.items():
        print(f"{key}={shlex.quote(value)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "install-all":
            control.install_all()
            return 0
        srv = control.server(args.name)
        if args.command == "install":
            control.install(srv)
        elif args.command == "up":
            _print_facts(control.up(srv, args.dir, Options(
                port=args.port, brokers=args.brokers, tls=args.tls)))
        elif args.command == "down":
            stopped = control.down(srv, args.dir)
            print(f"{srv.name} {'stopped' if stopped else 'was not running'}", file=sys.stderr)
        else:
            running, facts = control.status(srv, args.dir)
            print(f"STATUS={'running' if running else 'stopped'}")
            _print_facts(facts)
            return 0 if running else EXIT_STOPPED
    except ServiceUsageError as exc:
        print(f"services/run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ServiceError as exc:
        print(f"services/run {args.command} {getattr(args, 'name', '')}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    return 0
