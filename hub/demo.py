"""``changehub demo``: the main job, working, in a minute, on a fresh machine.

Starts a throwaway PostgreSQL and OpenSearch node (through ``services/run``, which installs
them if missing), creates a small shop (customers, orders, order lines), keeps a writer
changing it several times a second, and runs the Postgres -> search mirror with order
documents that embed their customer and lines. It prints the status page's address and a
search query to try, and runs until Ctrl-C; ``--for SECONDS`` instead stops the writer after
that long, waits until the index has caught up, and checks that it equals the tables.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from hub.config import load_pipeline
from hub.errors import ChangehubError, UsageError

__all__ = ["DemoResult", "ShopWriter", "run_demo"]

SERVICES_RUN = Path(__file__).resolve().parents[1] / "services" / "run"
UP_TIMEOUT_S = 900.0
CATCH_UP_TIMEOUT_S = 120.0

SCHEMA = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text NOT NULL,
                        city text NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,
                     status text NOT NULL, total numeric(10,2) NOT NULL DEFAULT 0,
                     created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE order_lines (id serial PRIMARY KEY,
                          order_id int NOT NULL REFERENCES orders ON DELETE CASCADE,
                          product text NOT NULL, quantity int NOT NULL,
                          price numeric(10,2) NOT NULL);
"""

PIPELINE = """\
# Written by `changehub demo`: Postgres -> embedded log -> OpenSearch, orders embedding
# their customer and lines.
log: {{path: {dir}/log}}
api: {{listen: "{listen}"}}
sources:
  - name: shop
    type: postgres
    dsn: "{dsn}"
    tables: [public.customers, public.orders, public.order_lines]
    snapshot: initial
    heartbeat_interval: 2s
sinks:
  - name: search
    type: opensearch
    topics: [shop.public.orders, shop.public.customers, shop.public.order_lines]
    hosts: ["{search}"]
    index: "{{table}}"
    flush_interval: 200ms
    nested:
      - {{field: customer, topic: shop.public.customers, parent_key: customer_id,
         foreign_key: id, many: false}}
      - {{field: lines, topic: shop.public.order_lines, parent_key: id, foreign_key: order_id}}
"""

NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Leslie",
         "Margaret", "Niklaus", "Radia", "Tony", "Sophie", "Linus", "Guido"]
CITIES = ["Lisbon", "Oslo", "Lyon", "Leeds", "Turin", "Ghent", "Graz", "Porto"]
PRODUCTS = [("keyboard", "49.90"), ("mouse", "19.50"), ("monitor", "189.00"),
            ("cable", "4.99"), ("laptop stand", "34.00"), ("headset", "59.00")]
STATUSES = ["new", "paid", "shipped", "delivered"]


class ShopWriter(threading.Thread):
    """Changes the shop several times a second: new customers and orders with lines, status
    moves, quantity edits, cancelled orders deleted (their lines go with them)."""

    def __init__(self, dsn: str, rate_per_s: float = 8.0, seed: int = 7) -> None:
        super().__init__(name="demo-writer", daemon=True)
        self._dsn = dsn
        self._interval = 1.0 / rate_per_s
        self._rng = random.Random(seed)
        self.stopping = threading.Event()
        self.changes = 0
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self._dsn, autocommit=True) as conn:
                while not self.stopping.wait(self._interval):
                    self.step(conn)
        except Exception as exc:  # reported by the demo; the writer is not the product
            self.error = exc

    def step(self, conn: psycopg.Connection[Any]) -> None:
        rng = self._rng
        roll = rng.random()
        with conn.transaction():
            if roll < 0.1:
                self.new_customer(conn)
            elif roll < 0.5:
                self.new_order(conn)
            elif roll < 0.8:
                conn.execute(
                    "UPDATE orders SET status = CASE status WHEN 'new' THEN 'paid' "
                    "WHEN 'paid' THEN 'shipped' ELSE 'delivered' END "
                    "WHERE id = (SELECT id FROM orders WHERE status <> 'delivered' "
                    "ORDER BY random() LIMIT 1)")
            elif roll < 0.9:
                conn.execute(
                    "UPDATE order_lines SET quantity = quantity + 1 "
                    "WHERE id = (SELECT id FROM order_lines ORDER BY random() LIMIT 1)")
                self._retotal(conn)
            else:
                conn.execute("DELETE FROM orders WHERE id = (SELECT id FROM orders "
                             "WHERE status = 'new' ORDER BY random() LIMIT 1)")
        self.changes += 1

    def new_customer(self, conn: psycopg.Connection[Any]) -> None:
        name = self._rng.choice(NAMES)
        conn.execute("INSERT INTO customers (name, email, city) VALUES (%s, %s, %s)",
                     (name, f"{name.lower()}{self._rng.randint(1, 999)}@example.com",
                      self._rng.choice(CITIES)))

    def new_order(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute("SELECT id FROM customers ORDER BY random() LIMIT 1").fetchone()
        if row is None:
            self.new_customer(conn)
            return
        order = conn.execute("INSERT INTO orders (customer_id, status) VALUES (%s, 'new') "
                             "RETURNING id", (row[0],)).fetchone()
        assert order is not None
        total = Decimal(0)
        for product, price in self._rng.sample(PRODUCTS, self._rng.randint(1, 4)):
            quantity = self._rng.randint(1, 3)
            total += Decimal(price) * quantity
            conn.execute("INSERT INTO order_lines (order_id, product, quantity, price) "
                         "VALUES (%s, %s, %s, %s)", (order[0], product, quantity, price))
        conn.execute("UPDATE orders SET total = %s WHERE id = %s", (total, order[0]))

    def _retotal(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("UPDATE orders o SET total = (SELECT coalesce(sum(quantity * price), 0) "
                     "FROM order_lines l WHERE l.order_id = o.id) "
                     "WHERE o.id IN (SELECT order_id FROM order_lines ORDER BY random() LIMIT 1)")


def create_shop(dsn: str, customers: int = 20, orders: int = 50) -> None:
    writer = ShopWriter(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        with conn.transaction():
            for _ in range(customers):
                writer.new_customer(conn)
            for _ in range(orders):
                writer.new_order(conn)


@dataclass
class _Services:
    root: Path
    started: list[str] = field(default_factory=list)

    def up(self, name: str) -> dict[str, str]:
        if not SERVICES_RUN.exists():
            raise UsageError(f"the demo needs changehub's source tree ({SERVICES_RUN} is "
                             "missing): run it from a checkout, e.g. ./quickstart --demo")
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        result = subprocess.run([str(SERVICES_RUN), "up", name, "--dir", str(directory)],
                                capture_output=True, text=True, timeout=UP_TIMEOUT_S,
                                check=False)
        if result.returncode != 0:
            raise ChangehubError(f"could not start {name} for the demo:\n{result.stderr}")
        self.started.append(name)
        facts = {}
        for line in result.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                facts[key.strip()] = value.strip().strip("'\"")
        return facts

    def down_all(self) -> None:
        for name in reversed(self.started):
            subprocess.run([str(SERVICES_RUN), "down", name, "--dir", str(self.root / name)],
                           capture_output=True, text=True, timeout=120, check=False)
        self.started.clear()


@dataclass
class DemoResult:
    changes: int
    orders_in_db: int
    orders_in_index: int
    lines_in_db: int
    lines_in_index: int

    @property
    def equal(self) -> bool:
        return (self.orders_in_db, self.lines_in_db) == (self.orders_in_index,
                                                         self.lines_in_index)


def run_demo(
    say: Callable[[str], None],
    *,
    directory: Path | None = None,
    listen: str = "127.0.0.1:8083",
    seconds: float | None = None,
    keep: bool = False,
) -> DemoResult | None:
    """Run the demo; with ``seconds``, stop after that long and return the comparison."""
    from hub.runtime import Hub

    root = directory or Path(tempfile.mkdtemp(prefix="changehub-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # the servers run as their own users and must reach their directories
    services = _Services(root)
    writer: ShopWriter | None = None
    result: DemoResult | None = None
    try:
        say("starting PostgreSQL and OpenSearch (the first run installs them) …")
        pg = services.up("postgres")
        search = services.up("opensearch")["OPENSEARCH_URL"]
        dsn = pg["PG_DSN"]
        create_shop(dsn)
        pipeline = root / "demo.yaml"
        pipeline.write_text(PIPELINE.format(dir=root, listen=listen, dsn=dsn, search=search))
        hub = Hub(load_pipeline(pipeline))
        writer = ShopWriter(dsn)

        outcome: list[DemoResult] = []

        def ready() -> None:
            assert writer is not None
            writer.start()
            page = f"{hub.api_url}/" if hub.api_url else "(API not started: port busy)"
            say(f"pipeline {pipeline} running: Postgres {_host(dsn)} -> OpenSearch {search}")
            say(f"status page: {page}")
            say(f"try: curl -s '{search}/orders/_search?q=status:paid&size=1&pretty'")
            say("stop with Ctrl-C" if seconds is None else f"stopping in {seconds:.0f}s")
            if seconds is not None:  # counted from now: starting may take long on a busy host
                threading.Thread(target=_finish_after, daemon=True, name="demo-timer",
                                 args=(hub, writer, dsn, search, seconds, outcome)).start()

        hub.run_until_signalled(ready=ready)
        if seconds is not None:
            result = outcome[0] if outcome else None
        if writer.error is not None:
            say(f"the writer stopped: {writer.error}")
    finally:
        if writer is not None:
            writer.stopping.set()
            if writer.is_alive():
                writer.join(5)
        services.down_all()
        if not keep and directory is None:
            shutil.rmtree(root, ignore_errors=True)
    return result


def _finish_after(hub: Any, writer: ShopWriter, dsn: str, search: str, seconds: float,
                  outcome: list[DemoResult]) -> None:
    """Stop the writer after ``seconds``, wait for the hub to catch up, compare, stop."""
    try:
        if writer.stopping.wait(seconds):
            return
        writer.stopping.set()
        writer.join(10)
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while time.monotonic() < deadline:
            current = _compare(dsn, search, writer.changes)
            if current.equal and hub.caught_up():
                break
            time.sleep(0.5)
        outcome.append(_compare(dsn, search, writer.changes))
    finally:
        hub.stop()


def _compare(dsn: str, search: str, changes: int) -> DemoResult:
    with psycopg.connect(dsn) as conn:
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()
        lines = conn.execute("SELECT count(*) FROM order_lines").fetchone()
    _get(f"{search}/orders/_refresh")
    indexed = _get(f"{search}/orders/_count").get("count", -1)
    nested = _get(f"{search}/orders/_search?size=10000&_source=lines.id")
    embedded = sum(len(h["_source"].get("lines") or [])
                   for h in nested.get("hits", {}).get("hits", []))
    return DemoResult(changes, int(orders[0]) if orders else 0, int(indexed),
                      int(lines[0]) if lines else 0, embedded)


def _get(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            data: dict[str, Any] = json.loads(answer.read())
            return data
    except (OSError, ValueError):
        return {}


def _host(dsn: str) -> str:
    return dsn.rpartition("@")[2]
