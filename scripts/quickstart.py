"""Helpers for ./quickstart: make the demo SQLite table, then report what the pipeline did."""

from __future__ import annotations

import argparse
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

BASE = Path("data/quickstart")
CUSTOMERS = ["ada", "grace", "linus", "barbara", "ken", "margaret", "dennis", "edsger"]


def make(rows: int) -> None:
    BASE.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(BASE / "legacy.db")
    db.execute(
        "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, "
        "amount NUMERIC NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL)"
    )
    (start,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM orders").fetchone()
    rng = random.Random(start)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    db.executemany(
        "INSERT INTO orders VALUES (?, ?, ?, ?, ?)",
        [
            (
                i,
                rng.choice(CUSTOMERS),
                f"{rng.randint(100, 99_999) / 100:.2f}",
                rng.choice(["new", "paid", "shipped"]),
                (t0 + timedelta(minutes=i)).isoformat(),
            )
            for i in range(start + 1, start + rows + 1)
        ],
    )
    db.commit()
    (total,) = db.execute("SELECT COUNT(*) FROM orders").fetchone()
    print(f"source: {BASE / 'legacy.db'} table orders now has {total} rows (+{rows})")


def report() -> None:
    (src,) = sqlite3.connect(BASE / "legacy.db").execute("SELECT COUNT(*) FROM orders").fetchone()
    files = sorted((BASE / "exports").rglob("*.parquet"))
    in_files = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    con = duckdb.connect(str(BASE / "warehouse.duckdb"), read_only=True)
    (in_duck,) = con.execute("SELECT COUNT(*) FROM orders").fetchone()  # type: ignore[misc]
    sample = con.execute("SELECT * FROM orders ORDER BY id DESC LIMIT 3").fetchall()
    print()
    print(f"source rows (SQLite)          : {src}")
    print(f"change events in Parquet files: {in_files} in {len(files)} file(s) under "
          f"{BASE / 'exports'}")
    print(f"rows in DuckDB warehouse      : {in_duck} in {BASE / 'warehouse.duckdb'} "
          "(table orders)")
    print("latest rows in DuckDB         :")
    for row in sample:
        print("   ", row)
    print()
    print("Look around:")
    print("  .venv/bin/changehub topics -c configs/quickstart.yaml")
    print("  .venv/bin/changehub tail legacy.orders --from earliest -n 5 "
          "-c configs/quickstart.yaml")
    print("  .venv/bin/changehub offsets -c configs/quickstart.yaml")
    print("Run ./quickstart again: it adds rows, and only the new ones flow (offsets persist).")
    if not (src == in_duck == in_files or in_files >= src == in_duck):
        raise SystemExit("the warehouse does not match the source: that is a bug, please report")


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--rows", type=int, default=10_000)
    sub.add_parser("report")
    a = p.parse_args()
    if a.cmd == "make":
        make(a.rows)
    else:
        report()


if __name__ == "__main__":
    main()
