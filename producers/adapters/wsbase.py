"""What the websocket receivers (OpenWebRX, KiwiSDR) share: connect, errors, measurements.

* :class:`WebSocketAdapter` — a :class:`~heimdall.producers.adapters.base.ReceiverAdapter`
  that opens one websocket (``websockets`` asyncio client, no compression extension: neither
  OpenWebRX's ``owrx/websocket.py`` nor KiwiSDR's mongoose server negotiates one), turns the
  library's handshake errors into one-line :class:`ProtocolError` s (an HTTP status instead of
  the upgrade: wrong path, a proxy, a server that is not the expected one) and its close
  frames into the end of a session, and closes idempotently.
* :meth:`WebSocketAdapter.emit_event` — a :class:`~heimdall.schemas.models.Measurement`,
  :class:`~heimdall.schemas.models.WaterfallRow` or :class:`~heimdall.schemas.models.AudioChunk`
  goes through the same bounded buffer as the IQ chunks (one buffer per receiver keeps the
  drop-oldest policy and the stall/status machinery unchanged); the pump
  (``producers/adapters/pump.py``) routes each by its type: measurements to rf.features,
  waterfall rows to rf.waterfall, audio to rf.audio, IQ to rf.iq.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, cast
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from heimdall.producers.adapters.base import ProtocolError, ReceiverAdapter, StreamClosedError
from heimdall.schemas.models import AudioChunk, IqChunk, Measurement, WaterfallRow

__all__ = ["WebSocketAdapter", "ws_address"]

log = logging.getLogger(__name__)


def ws_address(url: str) -> tuple[str, int]:
    """``(host, port)`` of a ``ws://`` / ``wss://`` / ``http(s)://`` URL (default 80/443)."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not a ws:// or wss:// URL")
    default = 443 if parts.scheme in ("wss", "https") else 80
    return parts.hostname, parts.port or default


class WebSocketAdapter(ReceiverAdapter):
    """A receiver adapter speaking over one websocket (see the module docstring).

    Subclasses call :meth:`connect_ws` in ``open()`` and :meth:`recv` in ``stream()``.
    """

    #: Largest message accepted, bytes (an OpenWebRX FFT row of 65536 float bins is 256 KiB).
    max_message_bytes: int = 1 << 20

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ws: ClientConnection | None = None

    async def connect_ws(self, url: str, *, ping_interval_s: float | None = 20.0) -> None:
        """Open the websocket to ``url`` (``open()`` runs under the connect timeout)."""
        try:
            self._ws = await connect(
                url,
                compression=None,
                max_size=self.max_message_bytes,
                open_timeout=None,  # the base class's connect timeout is in charge
                ping_interval=ping_interval_s,
                ping_timeout=ping_interval_s,
                close_timeout=1.0,
                proxy=None,
                user_agent_header="heimdall",
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise ProtocolError(
                f"{self.label} at {self.address} answered HTTP {status} instead of a websocket "
                f"upgrade: is the URL (path included) that of a {self.label} server?"
            ) from None
        except InvalidURI as exc:
            raise ProtocolError(f"{self.label}: {exc}") from None
        except InvalidHandshake as exc:
            raise ProtocolError(
                f"{self.label} at {self.address} failed the websocket handshake ({exc}): "
                f"is this a {self.label} server?"
            ) from None

    async def send_text(self, text: str) -> None:
        """Send one text message; a connection already closed is left to :meth:`recv`.

        A server that turns a client away (OpenWebRX's ``backoff``) sends its reason and
        closes at once; what it said is still queued for :meth:`recv`, which reports the
        close after it.
        """
        ws = self._require()
        with contextlib.suppress(ConnectionClosed):
            await ws.send(text)

    async def recv(self) -> str | bytes | None:
        """The next message, or None when the peer has closed the connection.

        An abnormal close (no close frame: the TCP connection dropped, possibly in the middle
        of a frame) raises :class:`StreamClosedError` with the reason.
        """
        ws = self._require()
        try:
            return await ws.recv()
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            if rcvd is not None:  # a close frame: a normal end of the session
                return None
            raise StreamClosedError(
                f"{self.label} at {self.address} dropped the connection without a close frame"
            ) from None

    def _require(self) -> ClientConnection:
        if self._ws is None:
            raise ProtocolError("stream() before open()")
        return self._ws

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()

    def emit_event(self, event: Measurement | WaterfallRow | AudioChunk) -> None:
        """Queue an event in the receiver's buffer; the pump routes it by type (module doc)."""
        # The buffer is typed for chunks; the pump only needs ``t_ns`` and routes by type.
        self.emit(cast(IqChunk, event))

    def emit_measurement(self, m: Measurement) -> None:
        """Queue a measurement in the receiver's buffer; the pump routes it to rf.features."""
        self.emit_event(m)
