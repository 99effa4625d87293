"""The source's connections carry TCP keepalives and a user timeout unless the DSN says
otherwise, so a silently partitioned network fails the connection in seconds, not minutes."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict

from connectors.source.postgres.catalog import TCP_DEFAULTS, session_conninfo


def test_tcp_settings_are_added_when_the_dsn_has_none() -> None:
    params = conninfo_to_dict(session_conninfo("postgresql://app@db.example/shop"))
    for key, value in TCP_DEFAULTS.items():
        assert params[key] == value
    assert params["application_name"] == "changehub"
    assert "-c " in params["options"]


def test_the_dsn_keeps_its_own_tcp_settings() -> None:
    dsn = "postgresql://app@db.example/shop?keepalives_idle=60&tcp_user_timeout=0"
    params = conninfo_to_dict(session_conninfo(dsn, replication="database"))
    assert params["keepalives_idle"] == "60"
    assert params["tcp_user_timeout"] == "0"
    assert params["keepalives_count"] == TCP_DEFAULTS["keepalives_count"]
    assert params["replication"] == "database"
