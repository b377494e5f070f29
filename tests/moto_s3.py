"""A local S3 server (moto) with one bucket, for the object-store tests (never a mock of S3:
moto speaks the S3 protocol over HTTP, and s3fs talks to it as to AWS)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def moto_s3(bucket: str) -> Iterator[dict[str, Any]]:
    """Start moto on a free loopback port, create ``bucket``; yield s3fs storage options."""
    import s3fs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        opts = {
            "key": "test",
            "secret": "test",
            "client_kwargs": {"endpoint_url": f"http://{host}:{port}"},
        }
        s3fs.S3FileSystem(**opts).mkdir(bucket)
        yield opts
    finally:
        server.stop()
