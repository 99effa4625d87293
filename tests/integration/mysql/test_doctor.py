"""``doctor`` against a real, misconfigured MariaDB: every problem found, each with its fix;
and the source refuses to start on such a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.source.mysql.doctor import diagnose
from hub.errors import FatalError
from tests.fixtures.services import MariaDBServer, ServiceFactory
from tests.integration.mysql.conftest import make_database
from tests.integration.mysql.pipeline import Database, Pipeline, config

pytestmark = pytest.mark.integration


def test_a_well_configured_server_has_no_errors(db: Database) -> None:
    findings = diagnose(config(db))
    assert [f for f in findings if f.level == "error"] == []
    checks = {f.check for f in findings}
    assert {"log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata"} <= checks
    assert {"privilege REPLICATION SLAVE", "privilege REPLICATION CLIENT"} <= checks


def test_every_misconfiguration_is_reported_with_its_fix(
    start_service: ServiceFactory, log_dir: Path
) -> None:
    server = start_service("mariadb")
    assert isinstance(server, MariaDBServer)
    databases = make_database(server)
    db = next(databases)
    root = Database.root(server)
    try:
        root.execute("SET GLOBAL binlog_format = 'STATEMENT'")
        root.execute("SET GLOBAL binlog_row_image = 'MINIMAL'")
        root.execute("SET GLOBAL binlog_row_metadata = 'MINIMAL'")
        root.execute("CREATE OR REPLACE USER 'weak'@'%' IDENTIFIED BY 'weakpass'")
        root.execute(f"GRANT SELECT ON `{db.name}`.* TO 'weak'@'%'")
        url = f"mysql://weak:weakpass@{server.host}:{server.port}/"
        cfg = config(db, url=url, server_id=1)
        findings = diagnose(cfg)
        errors = {f.check: f for f in findings if f.level == "error"}
        assert set(errors) == {
            "binlog_format",
            "binlog_row_image",
            "server_id",
            "privilege REPLICATION SLAVE",
            "privilege REPLICATION CLIENT",
        }
        assert errors["binlog_format"].fix is not None
        assert "SET GLOBAL binlog_format = 'ROW'" in errors["binlog_format"].fix
        assert "binlog_row_image = 'FULL'" in (errors["binlog_row_image"].fix or "")
        assert "GRANT REPLICATION SLAVE ON *.* TO 'weak'" in (
            errors["privilege REPLICATION SLAVE"].fix or ""
        )
        assert "BINLOG MONITOR" in (errors["privilege REPLICATION CLIENT"].fix or "")
        # Without column names in the binlog the source keeps a schema history: a warning.
        metadata = next(f for f in findings if f.check == "binlog_row_metadata")
        assert metadata.level == "warning"
        assert "binlog_row_metadata = 'FULL'" in (metadata.fix or "")
        p = Pipeline(log_dir, cfg)
        with pytest.raises(FatalError, match="binlog_format"):
            p.start()
        p.close()
    finally:
        root.execute("SET GLOBAL binlog_format = 'ROW'")
        root.execute("SET GLOBAL binlog_row_image = 'FULL'")
        root.execute("SET GLOBAL binlog_row_metadata = 'FULL'")
        root.execute("DROP USER IF EXISTS 'weak'@'%'")
        root.close()
        databases.close()


def test_an_unreachable_server_is_one_finding(db: Database) -> None:
    cfg = config(db, url="mysql://changehub:changehub@127.0.0.1:1/")
    (finding,) = diagnose(cfg)
    assert finding.level == "error" and finding.check == "connection"
