"""The object store: the local file system or S3 through fsspec, chosen by ``OBJECT_STORE_URL``."""

from __future__ import annotations

from typing import Any

import fsspec

from heimdall.core.settings import HeimdallSettings


def storage_options(settings: HeimdallSettings) -> dict[str, Any]:
    """fsspec options for the configured store (credentials and endpoint for ``s3://``)."""
    o = settings.object_store
    if not settings.object_store_url.startswith("s3://"):
        return {}
    opts: dict[str, Any] = {}
    if o.key:
        opts["key"] = o.key
    if o.secret is not None:
        opts["secret"] = o.secret.get_secret_value()
    if o.endpoint_url:
        opts["client_kwargs"] = {"endpoint_url": o.endpoint_url}
    return opts


def filesystem(url: str, options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """``(fs, path)`` of a URL: ``file:///x`` → local, ``/x``; ``s3://b/p`` → S3, ``b/p``."""
    fs, path = fsspec.core.url_to_fs(url, **(options or {}))
    return fs, path
