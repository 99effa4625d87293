"""``MySqlSourceConfig`` validation and connection settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from connectors.source.mysql.config import MySqlSourceConfig
from connectors.source.mysql.heartbeat import Heartbeat


def test_url_gives_the_connection_settings() -> None:
    cfg = MySqlSourceConfig(
        name="shop", url="mysql://app:p%40ss@db.local:3307/shop", databases=["shop"]
    )
    settings = cfg.connection()
    assert (settings["host"], settings["port"], settings["user"], settings["password"]) == (
        "db.local",
        3307,
        "app",
        "p@ss",
    )
    assert settings["charset"] == "utf8mb4"


def test_something_to_capture_and_somewhere_to_connect_are_required() -> None:
    with pytest.raises(ValidationError, match="name what to capture"):
        MySqlSourceConfig(name="s", host="h")
    with pytest.raises(ValidationError, match="url"):
        MySqlSourceConfig(name="s", databases=["d"])
    with pytest.raises(ValidationError, match=r"db\.table"):
        MySqlSourceConfig(name="s", host="h", tables=["orders"])


def test_captures_whole_databases_and_single_tables() -> None:
    cfg = MySqlSourceConfig(name="s", host="h", databases=["shop"], tables=["crm.people"])
    assert cfg.captures("shop", "anything")
    assert cfg.captures("crm", "people")
    assert not cfg.captures("crm", "other")


def test_server_id_is_stable_per_name_unless_configured() -> None:
    a = MySqlSourceConfig(name="a", host="h", databases=["d"])
    again = MySqlSourceConfig(name="a", host="h", databases=["d"])
    b = MySqlSourceConfig(name="b", host="h", databases=["d"])
    assert a.effective_server_id == again.effective_server_id != b.effective_server_id
    fixed = MySqlSourceConfig(name="a", host="h", databases=["d"], server_id=7)
    assert fixed.effective_server_id == 7


def test_heartbeat_is_due_one_interval_after_the_last_batch() -> None:
    now = [100.0]
    beat = Heartbeat(2000, clock=lambda: now[0])
    assert not beat.due()
    now[0] = 102.0
    assert beat.due()
    beat.postpone()
    assert not beat.due()
