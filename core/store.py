"""The ClickHouse history store: chDB in the data directory, or a ClickHouse server over HTTP.

:func:`open_clickhouse` returns a ``clickhouse_connect`` client whose current database is
``settings.clickhouse.database`` (created if missing):

* ``CLICKHOUSE_URL`` unset: chDB, ClickHouse in this process, on ``settings.chdb_path``.
  chDB hosts one data directory per process (a client on another path fails while one is
  open; closing every client releases it), and a data directory has one owner process
  (ClickHouse locks ``<dir>/status``). Both cases become one :class:`StoreError` line.
* ``CLICKHOUSE_URL=http(s)://[user@]host[:port][/database]``: an HTTP client; the password
  comes from ``CLICKHOUSE_PASSWORD`` or the URL, the database from the URL path or
  ``CLICKHOUSE_DATABASE``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.binding import quote_identifier
from clickhouse_connect.driver.client import Client

from heimdall.core.errors import ConfigError, StoreError
from heimdall.core.settings import HeimdallSettings, mask_url

__all__ = ["Client", "http_params", "open_clickhouse"]


def http_params(settings: HeimdallSettings) -> dict[str, Any]:
    """``clickhouse_connect.get_client`` arguments for ``CLICKHOUSE_URL`` (no database created)."""
    url, password = settings.clickhouse.url_and_password()
    if not url:
        raise ConfigError("CLICKHOUSE_URL is not set")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(
            f"CLICKHOUSE_URL must start with http:// or https://, not {mask_url(url)!r}"
        )
    if not parts.hostname:
        raise ConfigError(f"CLICKHOUSE_URL has no host: {mask_url(url)!r}")
    secure = parts.scheme == "https"
    try:
        port = parts.port or (8443 if secure else 8123)
    except ValueError as exc:
        raise ConfigError(f"CLICKHOUSE_URL has a bad port: {mask_url(url)!r}") from exc
    path_db = unquote(parts.path.strip("/").split("/")[0]) if parts.path.strip("/") else ""
    return {
        "host": parts.hostname,
        "port": port,
        "interface": parts.scheme,
        "secure": secure,
        "username": unquote(parts.username) if parts.username else "default",
        "password": password or "",
        "database": path_db or settings.clickhouse.database,
    }


def _status_locked_elsewhere(path: Path) -> bool:
    """True when another process holds ClickHouse's lock on ``<path>/status``."""
    status = path / "status"
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _open_chdb(path: Path) -> Client:
    path.mkdir(parents=True, exist_ok=True)
    try:
        return clickhouse_connect.get_client(dsn=f"chdb://{path}")
    except Exception as exc:
        msg = str(exc)
        if "already initialized with path" in msg:
            raise StoreError(
                f"this process already has another chDB data directory open, so it cannot open "
                f"{path}; chDB hosts one data directory per process (close the other clients first)"
            ) from exc
        if _status_locked_elsewhere(path):
            raise StoreError(
                f"the ClickHouse data directory {path} is in use by another process; "
                "embedded mode allows one owner"
            ) from exc
        first_line = msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__
        raise StoreError(f"cannot open the chDB data directory {path}: {first_line}") from exc


def _open_http(settings: HeimdallSettings) -> tuple[Client, str]:
    params = http_params(settings)
    database = params.pop("database")
    try:
        client = clickhouse_connect.get_client(**params)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(
            f"cannot reach ClickHouse at {mask_url(settings.clickhouse.url)}: {first}"
        ) from exc
    return client, database


def open_clickhouse(settings: HeimdallSettings) -> Client:
    """A client on Heimdall's database, created if missing; the caller closes it."""
    if settings.clickhouse.url:
        client, database = _open_http(settings)
    else:
        client, database = _open_chdb(settings.chdb_path), settings.clickhouse.database
    try:
        client.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}")
        client.database = database
    except Exception:
        with contextlib.suppress(Exception):
            client.close()
        raise
    return client
