"""The schema registry client sends ``SCHEMA_REGISTRY_BASIC_AUTH`` (a local HTTP server that
plays the registry records the requests; no broker)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from heimdall.core.settings import load_settings
from heimdall.schemas.serde import CONFLUENT_MAGIC, Serde
from tests.unit.schemas.examples import iq_chunk

AUTH = "heimdall:reg-pw-41be"
SCHEMA_ID = 4242


class _Registry(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, str | None]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(("POST", self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != "Basic " + base64.b64encode(AUTH.encode()).decode():
            self._reply(401, {"error_code": 40101, "message": "Unauthorized"})
            return
        self._reply(200, {"id": SCHEMA_ID, "schema": body["schema"]})

    def _reply(self, code: int, obj: dict[str, object]) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def registry_url() -> Iterator[str]:
    _Registry.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, name="fake-registry", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_basic_auth_is_sent_to_the_registry(registry_url: str) -> None:
    settings = load_settings(schema_registry={"url": registry_url, "basic_auth": AUTH})
    wire = Serde.from_settings(settings).encode(iq_chunk())
    assert wire[:1] == CONFLUENT_MAGIC
    assert int.from_bytes(wire[1:5], "big") == SCHEMA_ID
    expected = "Basic " + base64.b64encode(AUTH.encode()).decode()
    assert _Registry.seen and all(auth == expected for _, _, auth in _Registry.seen)
    assert _Registry.seen[0][1].startswith("/subjects/")


def test_without_basic_auth_the_registry_refuses(registry_url: str) -> None:
    from heimdall.core.errors import SchemaError

    settings = load_settings(schema_registry={"url": registry_url})
    with pytest.raises(SchemaError) as err:
        Serde.from_settings(settings).encode(iq_chunk())
    assert "\n" not in str(err.value)
    assert _Registry.seen and _Registry.seen[0][2] is None
