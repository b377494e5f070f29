"""The dashboard's web server (aiohttp): the page, its JSON API and the WebSocket push.

Routes
------
``GET /``                      the page (``static/index.html``), its scripts and style
``GET /api/state``             what the page shows now, as JSON (:meth:`DashboardState.api_state`)
``GET /api/config``            the map tile template and the history length
``GET /api/receivers/{id}``    a receiver's status and recent measurements
``GET /api/history?from_ns=&to_ns=``  the fixes and truth of a past period (replay): from
                               the store when there is one, else from the ring buffers
``GET /ws``                    WebSocket: a snapshot, then every change as it happens; the page
                               sends ``{"select": receiver_id}`` to follow a receiver's
                               measurements

Push: the feed thread calls :meth:`DashboardServer.notify` when the state changed; the
event loop then waits ``coalesce_s`` (so a burst becomes one message), takes the state's
delta and writes the same text to every page. Each page has a bounded outbox: a page too slow
to keep up is closed (it reconnects and gets a fresh snapshot), so memory stays bounded.

Access: when a token is configured every request must carry it — an ``Authorization:
Bearer`` header, the ``heimdall_token`` cookie, or ``?token=`` (which sets the cookie, so a
browser opens ``http://host:port/?token=…`` once, and is redirected to ``/`` so the token
leaves the address bar). The token is compared in constant time and never logged (aiohttp's
access log is off: it would print the query string). A WebSocket opened by a page of another
origin is refused (403), token or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from heimdall.consumers.dashboard.state import DashboardState

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
COOKIE = "heimdall_token"
#: Messages waiting for one page before it is deemed too slow and closed.
OUTBOX = 64


def dumps(obj: Any) -> str:
    """JSON for the page; any non-finite float left becomes ``null`` (JSON has no NaN)."""
    try:
        return json.dumps(obj, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return json.dumps(_finite(obj), allow_nan=False, separators=(",", ":"))


def _finite(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return v


class _Page:
    """One open WebSocket and its bounded outbox."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.selected: str | None = None
        self.outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=OUTBOX)

    def offer(self, text: str) -> bool:
        try:
            self.outbox.put_nowait(text)
            return True
        except asyncio.QueueFull:
            return False


class DashboardServer:
    """Serves ``state`` to any number of pages.

    Parameters
    ----------
    state
        The state the feed fills.
    token
        The access token (None: no check; the caller refuses non-loopback hosts without one).
    tiles_url
        XYZ tile template for the map, or None (the page draws a lat/lon grid and a scale).
    history_s
        How far back the feed read the topics (shown by the page).
    coalesce_s
        How long a change waits for others before the push (bounds the push rate).
    history
        Past periods from a store (:class:`~heimdall.consumers.dashboard.history.StoreHistory`):
        ``/api/history`` then reaches every stored period, not only the ring buffers.
    """

    def __init__(
        self,
        state: DashboardState,
        *,
        token: str | None = None,
        tiles_url: str | None = None,
        history_s: float = 600.0,
        coalesce_s: float = 0.05,
        history: Any = None,
    ) -> None:
        self.state = state
        self.history = history
        self._token = token or None
        self.tiles_url = tiles_url
        self.history_s = history_s
        self.coalesce_s = coalesce_s
        self.pages: set[_Page] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_pending = False
        self._closing: set[asyncio.Future[Any]] = set()
        self.pushed = 0

    # -- access ----------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        if self._token is None:
            return True
        offered = []
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            offered.append(auth[7:])
        if COOKIE in request.cookies:
            offered.append(request.cookies[COOKIE])
        if "token" in request.query:
            offered.append(request.query["token"])
        want = self._token.encode()
        return any(hmac.compare_digest(o.encode(), want) for o in offered)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response(
                {"error": "this dashboard needs its token (HEIMDALL_DASHBOARD_TOKEN)"}, status=401
            )
        origin = request.headers.get("Origin")
        if request.path == "/ws" and origin and urlsplit(origin).netloc != request.host:
            # another site's page must not read this dashboard through the user's browser
            return web.json_response(
                {"error": f"WebSocket from another origin {origin}"}, status=403
            )
        if self._token is not None and "token" in request.query and request.path == "/":
            # keep the token out of the address bar and history: a cookie carries it from here
            response: web.StreamResponse = web.HTTPSeeOther("/")
        else:
            response = await handler(request)
        if self._token is not None and request.query.get("token") and not response.prepared:
            response.set_cookie(COOKIE, request.query["token"], httponly=True, samesite="Strict")
        return response

    # -- app -------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/", self._index)
        app.router.add_get("/api/state", self._api_state)
        app.router.add_get("/api/config", self._api_config)
        app.router.add_get("/api/receivers/{receiver_id}", self._api_receiver)
        app.router.add_get("/api/history", self._api_history)
        app.router.add_get("/ws", self._ws)
        app.router.add_static("/static", STATIC)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_startup(self, app: web.Application) -> None:
        self._loop = asyncio.get_running_loop()

    async def _on_shutdown(self, app: web.Application) -> None:
        for page in list(self.pages):
            with contextlib.suppress(Exception):
                await page.ws.close()

    async def config(self) -> dict[str, Any]:
        """The page's settings; ``history_from_ns``: the first stored fix (None: no store)."""
        extent = None
        if self.history is not None:
            try:
                extent = await asyncio.get_running_loop().run_in_executor(
                    None, self.history.extent_ns
                )
            except Exception as exc:  # the store is down: replay from the rings only
                log.warning("dashboard: reading the history's extent failed: %s", exc)
        return {
            "tiles_url": self.tiles_url,
            "history_s": self.history_s,
            "history_from_ns": extent[0] if extent else None,
        }

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _api_state(self, request: web.Request) -> web.Response:
        return web.Response(text=dumps(self.state.api_state()), content_type="application/json")

    async def _api_config(self, request: web.Request) -> web.Response:
        return web.Response(text=dumps(await self.config()), content_type="application/json")

    async def _api_receiver(self, request: web.Request) -> web.Response:
        rid = request.match_info["receiver_id"]
        return web.Response(
            text=dumps(self.state.receiver_history(rid)), content_type="application/json"
        )

    async def _api_history(self, request: web.Request) -> web.Response:
        try:
            from_ns = int(request.query["from_ns"])
            to_ns = int(request.query["to_ns"])
        except (KeyError, ValueError):
            return web.json_response(
                {"error": "history needs integer from_ns and to_ns (event time, ns)"}, status=400
            )
        out = self.state.history(from_ns, to_ns)
        if self.history is not None:
            try:
                out = await asyncio.get_running_loop().run_in_executor(
                    None, self.history, from_ns, to_ns
                )
            except Exception as exc:
                log.warning("dashboard: history from the store failed: %s", exc)
        return web.Response(text=dumps(out), content_type="application/json")

    # -- push ------------------------------------------------------------------------------
    def notify(self) -> None:
        """Something changed (called from any thread): push it soon."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(self._schedule_flush)

    def _schedule_flush(self) -> None:
        if self._flush_pending:
            return
        self._flush_pending = True
        assert self._loop is not None
        self._loop.call_later(self.coalesce_s, self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        delta = self.state.take_delta()
        points = self.state.take_points()
        rows = self.state.take_rows()
        if delta is not None:
            self._broadcast(dumps(delta))
        for page in list(self.pages):
            sel = page.selected
            if sel is not None and (sel in points or sel in rows):
                msg = {
                    "type": "measurements",
                    "receiver_id": sel,
                    "points": points.get(sel, []),
                    "psd": self.state.latest_psd(sel),
                    "waterfall": rows.get(sel, []),
                    "reset": False,
                }
                self._offer(page, dumps(msg))

    def _broadcast(self, text: str) -> None:
        self.pushed += 1
        for page in list(self.pages):
            self._offer(page, text)

    def _offer(self, page: _Page, text: str) -> None:
        if not page.offer(text):
            log.warning("dashboard: a page fell %d messages behind: closing it", OUTBOX)
            self.pages.discard(page)
            task = asyncio.ensure_future(page.ws.close(message=b"too slow: reload"))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _writer(self, page: _Page) -> None:
        while not page.ws.closed:
            text = await page.outbox.get()
            await page.ws.send_str(text)

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0)
        await ws.prepare(request)
        page = _Page(ws)
        page.offer(dumps({"type": "config", **(await self.config())}))
        page.offer(dumps(self.state.snapshot()))
        self.pages.add(page)
        writer = asyncio.ensure_future(self._writer(page))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = json.loads(msg.data)
                except ValueError:
                    continue
                if isinstance(req, dict) and "select" in req:
                    sel = req["select"]
                    page.selected = str(sel) if sel else None
                    if page.selected:
                        page.offer(dumps(self.state.receiver_history(page.selected)))
        finally:
            self.pages.discard(page)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        return ws


class ServerThread:
    """Runs a :class:`DashboardServer` on its own event loop in a thread (tests, embedding).

    ``port=0`` picks a free port; :attr:`port` is the bound one once :meth:`start` returns.
    """

    def __init__(self, server: DashboardServer, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = server
        self.host = host
        self.port = port
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="heimdall-dashboard", daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            runner = self._runner = web.AppRunner(self.server.app(), access_log=None)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self.host, self.port)
            loop.run_until_complete(site.start())
            if runner.addresses:
                self.port = int(runner.addresses[0][1])
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=15)
