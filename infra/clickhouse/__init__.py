"""ClickHouse DDL of Heimdall's history tables: ``schema.sql`` and :mod:`.migrate`."""

from heimdall.infra.clickhouse.migrate import SCHEMA_SQL, TABLES, apply_schema, schema_statements

__all__ = ["SCHEMA_SQL", "TABLES", "apply_schema", "schema_statements"]
