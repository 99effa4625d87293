"""The publication: which tables' changes the pgoutput plugin sends.

Created when missing (``CREATE PUBLICATION <name> FOR TABLE …``, which needs the CREATE
privilege on the database and ownership of the tables), reused when present. Tables in the
config that the publication lacks are added if this user owns it; otherwise the error names
the owner and the statement for them to run. Tables the publication has beyond the config
are captured too (a table added to the publication while the source runs shows up from its
next change on, with its own topic); to stop capturing a table, remove it from the
publication and from the config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from connectors.source.postgres.catalog import catalog_error, quote_table
from connectors.source.postgres.config import TableName
from hub.errors import FatalError

__all__ = ["ensure_publication", "published_tables"]

_ACTIONS = ("insert", "update", "delete", "truncate")


def published_tables(conn: psycopg.Connection[Any], name: str) -> set[str]:
    rows = conn.execute(
        "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = %s",
        (name,),
    ).fetchall()
    return {r[0] for r in rows}


def _table_list(tables: Sequence[TableName]) -> sql.Composed:
    return sql.SQL(", ").join(quote_table(t.schema, t.table) for t in tables)


def ensure_publication(
    conn: psycopg.Connection[Any], name: str, tables: Sequence[TableName]
) -> None:
    """Make sure publication ``name`` exists and publishes every change of ``tables``."""
    try:
        row = conn.execute(
            "SELECT pg_get_userbyid(pubowner), pubowner = (SELECT oid FROM pg_roles "
            " WHERE rolname = current_user), puballtables, pubinsert, pubupdate, pubdelete, "
            " pubtruncate FROM pg_publication WHERE pubname = %s",
            (name,),
        ).fetchone()
        if row is None:
            _create(conn, name, tables)
            return
        owner, ours, all_tables, *actions = row
        missing = [] if all_tables else sorted(set(tables) - published_tables(conn, name))
        missing_actions = [a for a, on in zip(_ACTIONS, actions, strict=True) if not on]
        if not missing and not missing_actions:
            return
        if not ours:
            fixes = []
            if missing:
                fixes.append(f"ALTER PUBLICATION {name} ADD TABLE {', '.join(missing)};")
            if missing_actions:
                fixes.append(f"ALTER PUBLICATION {name} SET (publish = '{', '.join(_ACTIONS)}');")
            lacks = ", ".join(
                ([f"tables {', '.join(missing)}"] if missing else [])
                + ([f"{', '.join(missing_actions)} changes"] if missing_actions else [])
            )
            raise FatalError(
                f"publication {name} belongs to {owner} and lacks {lacks}: ask {owner} to run "
                f"{' '.join(fixes)} — or set `publication:` in the config to a new name and "
                "changehub creates its own"
            )
        if missing:
            conn.execute(
                sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(
                    sql.Identifier(name), _table_list([TableName(t) for t in missing])
                )
            )
        if missing_actions:
            conn.execute(
                sql.SQL("ALTER PUBLICATION {} SET (publish = {})").format(
                    sql.Identifier(name), sql.Literal(", ".join(_ACTIONS))
                )
            )
    except psycopg.errors.InsufficientPrivilege as exc:
        raise FatalError(
            f"cannot set up publication {name}: {exc}. Creating a publication needs the "
            "CREATE privilege on the database (GRANT CREATE ON DATABASE … TO <user>) and "
            "ownership of the tables; or have their owner run "
            f"CREATE PUBLICATION {name} FOR TABLE {', '.join(tables)};"
        ) from None
    except psycopg.Error as exc:
        raise catalog_error(exc, f"setting up publication {name}") from None


def _create(conn: psycopg.Connection[Any], name: str, tables: Sequence[TableName]) -> None:
    conn.execute(
        sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
            sql.Identifier(name), _table_list(tables)
        )
    )
