"""PGSync beside changehub: the same rows, the same PostgreSQL, the same search node, one run.

PGSync (PyPI ``pgsync``) mirrors Postgres tables into Elasticsearch or OpenSearch: triggers
on the tables send notifications, its daemon queues them in Redis, reads the changed rows
back from Postgres with SQL and bulk-indexes the documents. This benchmark runs, one after
the other on one PostgreSQL (``services/run up postgres``) and one search node (``services/run
up opensearch`` or ``elasticsearch``; or the servers given by ``--dsn``/``--superuser-dsn``
and ``--search-url``):

* changehub: the workload of :mod:`search_bench` (``--rows`` rows in 1,000-row transactions,
  then ``--latency-rows`` single-row transactions 20 ms apart) with the pipeline in this
  process, into index ``items``;
* PGSync: the same workload into index ``items_pgsync``, with PGSync's daemon (``pgsync
  --daemon``, its defaults) in a subprocess from its own virtualenv (``--pgsync-venv``,
  default ``~/.cache/changehub/bench/pgsync-venv``, made with ``python3 -m venv`` and
  ``pip install pgsync``) and Redis from Debian (``redis-server``) on a free loopback port.

Both indexes are created beforehand with the same settings and mappings (refresh interval
``--refresh``), and searchable counts are polled without forcing a refresh. The engine is
warmed up first as in :mod:`search_bench` (a fresh JVM's JIT would otherwise be paid for by
whichever pipeline ran first, here changehub). PGSync needs a
superuser (it creates triggers, functions and a replication slot): ``--superuser-dsn``.

Prints a table and writes ``bench/results/pgsync.json``::

    .venv/bin/python bench/pgsync_bench.py --rows 20000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import opensearchpy
import psycopg
from search_bench import (
    ROOT,
    CpuMeter,
    end_to_end,
    fresh_table,
    index_body,
    listener_pid,
    postgres_pid,
    service,
    started,
    wait_for,
    warm_up,
    workload,
)

RESULTS = ROOT / "bench" / "results" / "pgsync.json"
DEFAULT_VENV = Path.home() / ".cache" / "changehub" / "bench" / "pgsync-venv"
INDEX = "items_pgsync"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis(work: Path) -> Iterator[tuple[int, int]]:
    """A throw-away Redis on a free loopback port, no persistence."""
    port = free_port()
    directory = work / "redis"
    directory.mkdir()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory)],
        stdout=(directory / "redis.log").open("w"), stderr=subprocess.STDOUT,
    )
    try:
        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    return conn.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_for(answers, 30, "redis-server to answer")
        yield port, server.pid
    finally:
        server.terminate()
        server.wait(30)


def pgsync_env(superuser_dsn: str, database: str, url: str, engine: str,
               redis_port: int, work: Path) -> dict[str, str]:
    info = psycopg.conninfo.conninfo_to_dict(superuser_dsn)
    env = {
        **os.environ,
        "PG_HOST": str(info.get("host", "127.0.0.1")),
        "PG_PORT": str(info.get("port", 5432)),
        "PG_USER": str(info.get("user", "postgres")),
        "PG_DATABASE": database,
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(redis_port),
        "ELASTICSEARCH_URL": url,
        "OPENSEARCH": "true" if engine == "opensearch" else "false",
        "ELASTICSEARCH": "true" if engine == "elasticsearch" else "false",
        "CHECKPOINT_PATH": str(work),
        "LOG_INTERVAL": "10",
    }
    if info.get("password"):
        env["PG_PASSWORD"] = str(info["password"])
    return env


def run_pgsync(args: argparse.Namespace, dsn: str, superuser_dsn: str, url: str,
               work: Path) -> dict[str, Any]:
    venv = Path(args.pgsync_venv)
    if not (venv / "bin" / "pgsync").exists():
        raise SystemExit(f"no PGSync in {venv}: python3 -m venv {venv} && "
                         f"{venv}/bin/pip install pgsync")
    database = str(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])
    fresh_table(dsn)
    client = opensearchpy.OpenSearch([url], timeout=60)
    client.indices.delete(index=INDEX, ignore_unavailable=True)
    client.indices.create(index=INDEX, body=index_body(args.refresh))
    schema = work / "schema.json"
    schema.write_text(json.dumps([{
        "database": database, "index": INDEX,
        "nodes": {"table": "items", "schema": "public",
                  "columns": ["id", "name", "qty", "price", "updated_at"]},
    }]))
    log = (work / "pgsync.log").open("w")
    with redis(work) as (redis_port, server_pid):
        env = pgsync_env(superuser_dsn, database, url, args.engine, redis_port, work)
        bin_dir = venv / "bin"
        subprocess.run([str(bin_dir / "bootstrap"), "--config", str(schema)], env=env,
                       check=True, stdout=log, stderr=subprocess.STDOUT, cwd=work)
        # PGSync's triggers read its catalogue view as whoever writes to the table.
        user = str(psycopg.conninfo.conninfo_to_dict(dsn)["user"])
        with psycopg.connect(superuser_dsn, dbname=database, autocommit=True) as conn:
            conn.execute(f'GRANT SELECT ON public._view TO "{user}"')
        daemon = subprocess.Popen([str(bin_dir / "pgsync"), "--config", str(schema), "--daemon"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
        engine_pid = listener_pid(url)
        meter = CpuMeter({"pgsync": [daemon.pid], "redis": [server_pid],
                          "engine": [engine_pid], "postgres": [postgres_pid(dsn)]},
                         jvm=engine_pid)
        try:
            figures = workload(dsn, client, INDEX, args.rows, args.latency_rows, meter)
        finally:
            daemon.terminate()
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(30)
            subprocess.run([str(bin_dir / "bootstrap"), "--config", str(schema), "--teardown"],
                           env=env, check=False, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    client.indices.delete(index=INDEX, ignore_unavailable=True)
    client.close()
    version = subprocess.run([str(venv / "bin" / "pgsync"), "--version"], env=env,
                             capture_output=True, text=True, check=False).stdout.strip()
    return {**figures, "refresh_interval": args.refresh, "pgsync": version}


@contextmanager
def postgres(args: argparse.Namespace, work: Path) -> Iterator[tuple[str, str]]:
    """The DSNs of the given PostgreSQL, or of one started for the run."""
    if args.dsn:
        yield args.dsn, args.superuser_dsn
        return
    with started("postgres", work) as facts:
        yield facts["PG_DSN"], facts["PG_SUPERUSER_DSN"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["opensearch", "elasticsearch"], default="opensearch")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--latency-rows", type=int, default=100)
    parser.add_argument("--refresh", default="1s", help="index refresh_interval")
    parser.add_argument("--flush-interval", default="1s", help="changehub's flush_interval")
    parser.add_argument("--dsn", help="a PostgreSQL with wal_level=logical (default: start one)")
    parser.add_argument("--superuser-dsn", help="a superuser of that PostgreSQL, for PGSync")
    parser.add_argument("--search-url", help="a search node (default: start one)")
    parser.add_argument("--pgsync-venv", default=str(DEFAULT_VENV))
    parser.add_argument("--warmup-rounds", type=int, default=12,
                        help="at most this many engine warm-up rounds (see search_bench)")
    parser.add_argument("--warmup-s", type=float, default=150,
                        help="no warm-up round starts after this many seconds")
    args = parser.parse_args()
    if bool(args.dsn) != bool(args.superuser_dsn):
        parser.error("--dsn and --superuser-dsn go together")
    logging.basicConfig(level=logging.WARNING)
    load_at_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="changehub-pgsyncbench-"))
    os.chmod(work, 0o755)
    key = "OPENSEARCH_URL" if args.engine == "opensearch" else "ELASTICSEARCH_URL"
    try:
        with postgres(args, work) as (dsn, superuser_dsn), \
                service(args.engine, args.search_url, key, work) as url:
            # changehub runs first: without a warm-up it alone would pay for the engine's JIT
            # (see search_bench's module doc).
            warm_up(args, url)
            (work / "changehub").mkdir()
            changehub = end_to_end(args, dsn, url, work / "changehub")
            (work / "pgsync").mkdir()
            pgsync = run_pgsync(args, dsn, superuser_dsn, url, work / "pgsync")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "engine": args.engine,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_at_start": load_at_start, "load_avg_at_end": os.getloadavg()},
        "changehub": changehub,
        "pgsync": pgsync,
        "ratio_changehub_to_pgsync": round(changehub["end_to_end_changes_per_s"]
                                           / pgsync["end_to_end_changes_per_s"], 2),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"engine {args.engine}, {args.rows} rows, refresh_interval {args.refresh}, "
          f"{pgsync['pgsync']}")
    for name, r in (("changehub", changehub), ("pgsync", pgsync)):
        print(f"  {name:<10} {r['end_to_end_changes_per_s']:>8,} changes/s   "
              f"commit->searchable p50 {r['latency_p50_ms']} ms, p99 {r['latency_p99_ms']} ms")
    print(f"  ratio changehub/pgsync {result['ratio_changehub_to_pgsync']}x")
    for name, r in (("changehub", changehub), ("pgsync", pgsync)):
        print(f"  {name:<10} CPU s per 1,000 changes {r['cpu_s_per_1000_docs']} (engine JIT "
              f"{r['engine_jit_cpu_s']} s)")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
