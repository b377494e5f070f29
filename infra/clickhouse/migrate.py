"""ClickHouse DDL of Heimdall's history tables (``schema.sql``, next to this file).

:func:`apply_schema` creates the database and the tables that do not exist yet; running it
again changes nothing. The tables are ReplacingMergeTree, idempotent on ``event_id``: read
them with ``FINAL``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.binding import quote_identifier

__all__ = ["SCHEMA_SQL", "TABLES", "apply_schema", "schema_statements"]

SCHEMA_SQL = Path(__file__).with_name("schema.sql")

#: The history tables, by the topic role (a field of ``TopicNames``) whose events they hold.
TABLES: dict[str, str] = {
    "features": "features",
    "observations": "observations",
    "localizations": "localizations",
    "truth": "truth",
}


@cache
def _statements_template() -> tuple[str, ...]:
    lines = [
        line for line in SCHEMA_SQL.read_text().splitlines() if not line.lstrip().startswith("--")
    ]
    return tuple(s.strip() for s in "\n".join(lines).split(";") if s.strip())


def schema_statements(database: str) -> list[str]:
    """The DDL statements of ``schema.sql`` for ``database``."""
    db = quote_identifier(database)
    return [s.replace("{db}", db) for s in _statements_template()]


def apply_schema(client: Any, database: str) -> list[str]:
    """Create ``database`` and its tables if missing (idempotent); return the table names."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}")
    for statement in schema_statements(database):
        client.command(statement)
    return list(TABLES.values())
