"""Doctor: free-space thresholds, where a directory will be created, Kafka brokers."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from hub.doctor import LOW_FREE_BYTES, MIN_FREE_BYTES, check_directory

GIB = 1024**3


class Usage(NamedTuple):
    total: int
    used: int
    free: int


def _levels(path: Path, free: int, total: int = 1000 * GIB) -> dict[str, str]:
    found = check_directory("log", path, "log.path",
                            disk_usage=lambda _p: Usage(total, total - free, free))
    return {f.check: f.level for f in found}


def test_a_nearly_full_disk_is_an_error(tmp_path: Path) -> None:
    assert _levels(tmp_path, MIN_FREE_BYTES - 1)["disk space"] == "error"


def test_a_low_disk_is_a_warning(tmp_path: Path) -> None:
    assert _levels(tmp_path, LOW_FREE_BYTES - 1)["disk space"] == "warning"
    assert _levels(tmp_path, 40 * GIB, total=1000 * GIB)["disk space"] == "warning"


def test_a_roomy_disk_is_fine(tmp_path: Path) -> None:
    assert _levels(tmp_path, 100 * GIB, total=200 * GIB) == {"directory": "ok",
                                                            "disk space": "ok"}


def test_a_missing_directory_is_checked_at_its_first_existing_parent(tmp_path: Path) -> None:
    found = check_directory("log", tmp_path / "a" / "b", "log.path",
                            disk_usage=lambda _p: Usage(100 * GIB, 0, 100 * GIB))
    assert found[0].level == "ok"
    assert f"will be created under {tmp_path}" in found[0].message


def test_a_file_where_the_directory_should_be_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    found = check_directory("log", tmp_path / "f", "log.path",
                            disk_usage=lambda _p: Usage(100 * GIB, 0, 100 * GIB))
    assert [(f.level, f.check) for f in found] == [("error", "directory")]


def test_an_unreachable_kafka_broker_is_an_error_with_its_fix(tmp_path: Path) -> None:
    from hub.config import load_pipeline
    from hub.doctor import diagnose

    file = tmp_path / "p.yaml"
    file.write_text("log: {backend: kafka, kafka: {bootstrap: '127.0.0.1:1'}}\n"
                    "api: {enabled: false}\n"
                    "sinks: [{name: f, type: batch, topics: [a], path: ./x}]\n")
    found = [f for f in diagnose(load_pipeline(file)) if f.system == "log (kafka)"]
    assert [(f.level, f.check) for f in found] == [("error", "reachable")]
    assert "log.kafka.bootstrap" in (found[0].fix or "")


def test_a_polled_sqlite_table_is_looked_up_read_only(tmp_path: Path) -> None:
    import sqlite3

    from hub.config import load_pipeline
    from hub.doctor import diagnose

    db = tmp_path / "legacy.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    con.commit()
    con.close()
    file = tmp_path / "p.yaml"
    file.write_text(f"api: {{enabled: false}}\nlog: {{path: {tmp_path}/log}}\n"
                    f"sources: [{{name: s, type: sql_poll, url: 'sqlite:///{db}', table: orders,"
                    " mode: incrementing, incrementing_column: id}]\n")
    found = {f.check: f for f in diagnose(load_pipeline(file)) if f.system.startswith("source")}
    assert found["table"].level == "ok"
    assert found["database file"].level == "ok"
