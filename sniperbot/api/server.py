"""The HTTP server of the API actor: REST under ``/api/v1``, a WebSocket stream, the dashboard page.

It runs on its own asyncio loop in its own thread of the API actor's process (aiohttp's
``AppRunner``, no signal handling of its own) and reaches the node only through the admin socket
(typed commands of :mod:`sniperbot.admin.protocol`, each in a worker thread) and the journal opened
read-only: nothing of it runs in the node's loop, so a hung HTTP client never delays a heartbeat.

Authentication: every ``/api/`` request carries ``Authorization: Bearer <token>`` (the WebSocket may
give it as ``?token=`` or as its first message ``{"token": "..."}``), compared in constant time
through its SHA-256. The dashboard's static files hold no data and are served without a token, so the
page can ask for one. Decisions: a loopback bind accepts only loopback ``Host`` headers (DNS
rebinding); CORS headers only for ``[api] cors_origins``, and a WebSocket from any other origin than
the page's own is refused; responses forbid framing (the control buttons cannot be clickjacked) and
send no referrer (a ``?token=`` URL never leaks). Control requests are logged with the client's
address. Errors are ``{"error": {"code", "message"}}`` with the admin socket's codes
(:data:`sniperbot.admin.protocol.ERROR_CODES`) plus ``unauthorized`` (401), ``invalid_request``
(400: the body or a parameter) and ``node_unavailable`` (503: the admin socket did not answer).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import json
import os
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web

from sniperbot.admin import protocol as p
from sniperbot.admin.client import AdminUnavailable, admin_request
from sniperbot.api.config import ApiSection, is_loopback
from sniperbot.cli.journal import fill_rows, update_order_rows
from sniperbot.journal import Journal, JournalError
from sniperbot.messages import Fill, Order, OrderUpdate

STATIC_DIR = Path(__file__).resolve().parent / "static"
API_PREFIX = "/api/v1"
#: How many recent orders and fills the stream's snapshot and the list endpoints return by default.
RECENT = 100
#: How much lower the server's threads run than the rest of the actor (``nice`` increment).
SERVER_NICE = 5
#: How many new fills and changed orders one stream message carries at most (the latest ones).
PUSH_ROWS = 20
#: How many of the latest orders and fills the API holds (and a ``limit`` may ask for).
MAX_ROWS = 10_000
_HTTP_STATUS = {
    "not_found": 404,
    "running": 409,
    "restarting": 409,
    "already_present": 409,
    "already_started": 409,
    "not_running": 409,
    "invalid_spec": 400,
    "invalid_message": 400,
    "chaos_disabled": 403,
    "start_failed": 500,
    "timeout": 504,
    "internal_error": 500,
}
# A dashboard that cannot take this many queued messages is too slow: it is closed (1013), never
# allowed to hold memory or to slow the broadcast to the others.
_CLIENT_QUEUE = 64
_SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; frame-ancestors 'none'",
}


class LiveData:
    """What the API actor follows on the bus, handed to the server thread (under one lock).

    Decision: the equity curve (net P&L after fees, from the portfolio's snapshots) and the price
    series (quote mids) are sampled once a second and kept in memory for the last
    :attr:`points` samples (an hour): they start when the API actor starts (the journal holds
    orders and fills, not marks).
    """

    points = 3600

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._equity: collections.deque[dict[str, float]] = collections.deque(maxlen=self.points)
        self._prices: dict[str, collections.deque[tuple[float, float]]] = {}
        self._feeds: dict[str, dict[str, Any]] = {}
        self.version = 0

    def equity(self, ts: float, realized: float, unrealized: float, fees: float) -> None:
        """One portfolio snapshot (kept at most once a second)."""
        point = {
            "t": round(ts, 3),
            "net": realized + unrealized - fees,
            "realized": realized,
            "unrealized": unrealized,
            "fees": fees,
        }
        with self._lock:
            if self._equity and ts - self._equity[-1]["t"] < 1.0:
                self._equity[-1] = {**point, "t": self._equity[-1]["t"]}
            else:
                self._equity.append(point)
            self.version += 1

    def price(self, key: str, ts: float, mid: float) -> None:
        """One quote mid of ``venue:symbol`` (kept at most once a second)."""
        with self._lock:
            series = self._prices.get(key)
            if series is None:
                series = self._prices[key] = collections.deque(maxlen=self.points)
            if series and ts - series[-1][0] < 1.0:
                series[-1] = (series[-1][0], mid)
            else:
                series.append((round(ts, 3), mid))
            self.version += 1

    def feed(self, venue: str, status: dict[str, Any]) -> None:
        """A venue feed's latest health."""
        with self._lock:
            self._feeds[venue] = status
            self.version += 1

    def feeds(self) -> dict[str, Any]:
        """Feeds' health by venue."""
        with self._lock:
            return dict(self._feeds)

    def snapshot(self) -> tuple[list[dict[str, float]], dict[str, list[list[float]]], dict[str, Any]]:
        """(equity points, prices by ``venue:symbol`` as ``[t, mid]``, feeds by venue)."""
        with self._lock:
            return (
                list(self._equity),
                {k: [list(point) for point in v] for k, v in self._prices.items()},
                dict(self._feeds),
            )


class JournalView:
    """The journal's orders and fills, read-only and incrementally (only new records are decoded).

    Decision: the API keeps the latest :data:`MAX_ROWS` orders and fills in memory (what a dashboard
    and a script polling the API need); the whole history is ``sniperbot journal orders|fills --json``.
    """

    def __init__(self, run_dir: Path, shared: Callable[[], Journal] | None = None) -> None:
        self.run_dir = run_dir
        # In the node's own process (thread placement) the journal is already open there: borrow it.
        self._shared = shared
        self._journal: Journal | None = None
        self._orders: dict[str, dict[str, Any]] = {}
        self._fills: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_ROWS)
        self._seq = 0
        self._lock = threading.Lock()

    def poll(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Read what was journaled since the last call: (new fills' rows, changed orders' rows)."""
        with self._lock:
            if self._journal is None:
                self._journal = self._shared() if self._shared else Journal.open(self.run_dir, readonly=True)
            new: list[Any] = []
            for seq, record in self._journal.records(self._seq, kinds=(Order, OrderUpdate, Fill)):
                self._seq = seq
                new.append(record)
            if not new:
                return [], []
            changed = update_order_rows(self._orders, new)
            while len(self._orders) > MAX_ROWS:
                changed.discard(next(iter(self._orders)))
                del self._orders[next(iter(self._orders))]
            fills = fill_rows(new)
            self._fills.extend(fills)
            ids = dict.fromkeys(r.client_order_id for r in new if r.client_order_id in changed)
            return fills, [dict(self._orders[k]) for k in ids]

    def orders(self, limit: int) -> list[dict[str, Any]]:
        """The latest ``limit`` orders (``journal orders --json`` rows), newest last."""
        with self._lock:
            rows = list(self._orders.values())
            return [dict(r) for r in rows[-limit:]] if limit else []

    def fills(self, limit: int) -> list[dict[str, Any]]:
        """The latest ``limit`` fills (``journal fills --json`` rows), newest last."""
        with self._lock:
            return list(self._fills)[-limit:] if limit else []

    def close(self) -> None:
        """Close the journal."""
        with self._lock:
            if self._journal is not None and self._shared is None:
                self._journal.close()
            self._journal = None


class ApiFailure(Exception):
    """An error answer: HTTP status, a stable code, a sentence."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class Route:
    """One documented endpoint (the OpenAPI document is built from these)."""

    method: str
    path: str
    summary: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    body: type[p.Request] | None = None
    tag: str = "info"
    params: list[dict[str, Any]] = field(default_factory=list)


def _limit_param() -> list[dict[str, Any]]:
    return [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 0, "default": RECENT},
            "description": "how many of the latest rows (newest last)",
        }
    ]


def _path_param(name: str, description: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": description,
        }
    ]


# Counters that move all the time; a view whose only change is one of these is not pushed again.
_RUNNING_COUNTERS = frozenset({"uptime_s", "handled"})


def _strip(value: Any) -> Any:
    """``value`` without :data:`_RUNNING_COUNTERS` (anywhere): what a change is judged on."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _RUNNING_COUNTERS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


class _Client:
    """One WebSocket dashboard: a bounded queue and the task that drains it."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str] = asyncio.Queue(_CLIENT_QUEUE)


class ApiServer:
    """The aiohttp application and its thread; :meth:`start` returns the URL actually served."""

    def __init__(
        self,
        section: ApiSection,
        token_sha256: str,
        run_dir: Path,
        live: LiveData,
        log: Any,
        shared_journal: Callable[[], Journal] | None = None,
    ) -> None:
        self.section = section
        self._token_sha256 = bytes.fromhex(token_sha256)
        self.run_dir = run_dir
        self.live = live
        self.log = log
        self.journal = JournalView(run_dir, shared_journal)
        self.url = ""
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="api-admin")
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopping: asyncio.Event | None = None
        self._clients: set[_Client] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._last: dict[str, str] = {}
        self.routes = self._routes()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout_s: float = 15.0) -> str:
        """Bind and serve in a thread; raise what prevented it (a port in use, a bad certificate)."""
        self._thread = threading.Thread(target=self._run, name="api-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError(f"the API server did not start within {timeout_s} s")
        if self._error is not None:
            raise self._error
        return self.url

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close every connection and the listening socket; wait for the thread."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.journal.close()

    def _run(self) -> None:
        # Operator traffic yields the CPU to trading: this thread (and the admin-request threads it
        # starts, which inherit it) runs at a lower priority (Linux: per thread; never raised back).
        with contextlib.suppress(OSError):
            os.nice(SERVER_NICE)
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:
            self._error = e
        finally:
            self._ready.set()
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        app = self.app()
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        ssl_context = None
        if self.section.tls_cert:
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(self.section.tls_cert, self.section.tls_key)
        site = web.TCPSite(runner, self.section.address, self.section.port, ssl_context=ssl_context)
        try:
            await site.start()
            server = site._server  # the bound socket: port 0 becomes the kernel's choice
            assert server is not None
            host, port = server.sockets[0].getsockname()[:2]  # type: ignore[union-attr]
            host = f"[{host}]" if ":" in host else host
            self.url = f"{'https' if ssl_context else 'http'}://{host}:{port}"
            self._ready.set()
            await self._stopping.wait()
        finally:
            for client in list(self._clients):
                with contextlib.suppress(Exception):
                    await client.ws.close(code=WSCloseCode.GOING_AWAY, message=b"node stopping")
            await runner.cleanup()

    # -- the application ---------------------------------------------------------------------
    def app(self) -> web.Application:
        """The aiohttp application: middlewares, the documented routes, the stream and the page."""
        app = web.Application(middlewares=[self._guard], client_max_size=p.MAX_REQUEST_BYTES)
        for route in self.routes:
            app.router.add_route(route.method, API_PREFIX + route.path, route.handler)
        app.router.add_get(API_PREFIX + "/openapi.json", self.openapi_handler)
        app.router.add_get(API_PREFIX + "/ws", self.ws_handler)
        app.router.add_get("/", self.index)
        app.router.add_get("/favicon.ico", self.favicon)
        app.router.add_static("/static/", STATIC_DIR, show_index=False, follow_symlinks=False)
        return app

    def _routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/status",
                "Positions, P&L, counts, trading state, breakers (= admin status --json)",
                self.get_status,
            ),
            Route(
                "GET",
                "/tree",
                "The supervision tree with every actor's state (= admin tree --json)",
                self.get_tree,
            ),
            Route("GET", "/positions", "Positions by venue:symbol and P&L", self.get_positions),
            Route(
                "GET",
                "/orders",
                "Orders with their latest status (= journal orders --json rows)",
                self.get_orders,
                params=_limit_param(),
            ),
            Route(
                "GET", "/fills", "Fills (= journal fills --json rows)", self.get_fills, params=_limit_param()
            ),
            Route("GET", "/equity", "Equity curve: net P&L after fees, one point a second", self.get_equity),
            Route("GET", "/prices", "Quote mids by venue:symbol, one point a second", self.get_prices),
            Route(
                "GET", "/breakers", "Circuit breakers with state, trips, reason, cooldown", self.get_breakers
            ),
            Route("GET", "/venues", "Venues: subtree state, breaker, feed health", self.get_venues),
            Route(
                "POST",
                "/halt",
                "Stop trading: HALTED (nothing passes)",
                self.post_halt,
                body=p.Resume,
                tag="control",
            ),
            Route(
                "POST",
                "/reduce",
                "Only risk-reducing orders pass: REDUCING",
                self.post_reduce,
                body=p.Resume,
                tag="control",
            ),
            Route(
                "POST",
                "/resume",
                "Trade normally again: ACTIVE",
                self.post_resume,
                body=p.Resume,
                tag="control",
            ),
            Route(
                "POST",
                "/strategies",
                "Hot-add a strategy actor (fields as in [[strategies]])",
                self.post_strategy,
                body=p.AddStrategy,
                tag="control",
            ),
            Route(
                "DELETE",
                "/strategies/{id}",
                "Stop a strategy actor and forget it",
                self.delete_strategy,
                tag="control",
                params=_path_param("id", "strategy id"),
            ),
            Route(
                "POST",
                "/breakers/{scope}/reset",
                "Close a breaker now and restart its subtree",
                self.post_breaker_reset,
                tag="control",
                params=_path_param("scope", "e.g. venue:sim"),
            ),
        ]

    def _authorized(self, presented: str) -> bool:
        digest = hashlib.sha256(presented.encode()).digest()
        return hmac.compare_digest(digest, self._token_sha256)

    def _host_allowed(self, request: web.Request) -> bool:
        """On a loopback bind, only a loopback Host header (a DNS-rebinding page sends its own name)."""
        if not is_loopback(self.section.address):
            return True
        host = (request.host or "").rsplit(":", 1)[0].strip("[]")
        return is_loopback(host)

    def _origin_allowed(self, request: web.Request) -> bool:
        """The page's own origin, or one listed in ``cors_origins``; no Origin: not a browser."""
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        own = f"{request.scheme}://{request.host}"
        return origin == own or origin in self.section.cors_origins

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Host check, CORS, bearer token on ``/api/``, uniform JSON errors, security headers."""
        try:
            if not self._host_allowed(request):
                raise ApiFailure(421, "invalid_request", "this server answers only to a loopback host name")
            origin = request.headers.get("Origin")
            cors = origin is not None and origin in self.section.cors_origins
            if request.method == "OPTIONS" and cors:
                response: web.StreamResponse = web.Response(status=204)
                response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE"
                response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
                response.headers["Access-Control-Max-Age"] = "600"
            else:
                if request.path.startswith("/api/") and request.path != API_PREFIX + "/ws":
                    header = request.headers.get("Authorization", "")
                    scheme, _, token = header.partition(" ")
                    if scheme.lower() != "bearer" or not token or not self._authorized(token.strip()):
                        raise ApiFailure(
                            401, "unauthorized", "missing or wrong token (Authorization: Bearer ...)"
                        )
                response = await handler(request)
            if cors:
                response.headers["Access-Control-Allow-Origin"] = origin  # type: ignore[assignment]
                response.headers["Vary"] = "Origin"
        except ApiFailure as e:
            response = _error(e.status, e.code, str(e))
            if e.status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="sniperbot"'
        except web.HTTPException as e:
            response = _error(e.status, "not_found" if e.status == 404 else "invalid_request", e.reason)
        if not response.prepared:
            response.headers.update(_SECURITY_HEADERS)
        return response

    # -- talking to the node -----------------------------------------------------------------
    async def command(self, command: p.Request, timeout_s: float = 10.0) -> Any:
        """Run one typed admin command on the node (in a worker thread); the reply's result."""
        request = p.to_request(command)
        loop = asyncio.get_running_loop()
        try:
            reply = await loop.run_in_executor(
                self._pool, lambda: admin_request(self.run_dir, request.cmd, timeout_s, **request.args)
            )
        except AdminUnavailable as e:
            raise ApiFailure(503, "node_unavailable", str(e)) from None
        if not reply.ok:
            assert reply.error is not None
            raise ApiFailure(_HTTP_STATUS.get(reply.error.code, 500), reply.error.code, reply.error.message)
        return reply.result

    async def control(
        self, request: web.Request, command: p.Request, timeout_s: float = 30.0
    ) -> web.Response:
        """A control command, logged with who asked (the node journals and logs the change itself)."""
        self.log.info(
            "api control request",
            extra={"event": "api_control", "cmd": p.command_name(command), "remote": request.remote},
        )
        return web.json_response(await self.command(command, timeout_s))

    async def _journal_poll(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, self.journal.poll)
        except JournalError as e:
            raise ApiFailure(503, "node_unavailable", f"the journal cannot be read: {e}") from None

    # -- handlers ----------------------------------------------------------------------------
    async def get_status(self, request: web.Request) -> web.Response:
        """``admin status --json``."""
        return web.json_response(await self.command(p.Status()))

    async def get_tree(self, request: web.Request) -> web.Response:
        """``admin tree --json``."""
        return web.json_response(await self.command(p.Tree()))

    async def get_positions(self, request: web.Request) -> web.Response:
        """Positions by ``venue:symbol`` and P&L."""
        status = await self.command(p.Status())
        return web.json_response({"positions": status["positions"], "pnl": status["pnl"]})

    async def get_orders(self, request: web.Request) -> web.Response:
        """The latest orders."""
        limit = _limit(request)
        await self._journal_poll()
        return web.json_response(self.journal.orders(limit))

    async def get_fills(self, request: web.Request) -> web.Response:
        """The latest fills."""
        limit = _limit(request)
        await self._journal_poll()
        return web.json_response(self.journal.fills(limit))

    async def get_equity(self, request: web.Request) -> web.Response:
        """The equity curve."""
        return web.json_response(self.live.snapshot()[0])

    async def get_prices(self, request: web.Request) -> web.Response:
        """Quote mids."""
        return web.json_response(self.live.snapshot()[1])

    async def get_breakers(self, request: web.Request) -> web.Response:
        """``admin breaker-status --json``."""
        return web.json_response(await self.command(p.BreakerStatus()))

    async def get_venues(self, request: web.Request) -> web.Response:
        """Every venue with its subtree, breaker and feed."""
        tree, status = await asyncio.gather(self.command(p.Tree()), self.command(p.Status()))
        return web.json_response(self._venues(tree, status))

    def _venues(self, tree: dict[str, Any], status: dict[str, Any]) -> list[dict[str, Any]]:
        feeds = self.live.feeds()
        out = []
        for child in tree.get("children", []):
            if not child["id"].startswith("venue."):
                continue
            name = child["id"].removeprefix("venue.")
            out.append(
                {
                    "name": name,
                    "state": child["state"],
                    "restarts": child["restarts"],
                    "breaker": status["breakers"].get(f"venue:{name}", "closed"),
                    "feed": feeds.get(name),
                }
            )
        return out

    async def _body(self, request: web.Request, cls: type[p.Request], **path: str) -> p.Request:
        """The typed command of a JSON body (an empty body: the command's defaults) plus path fields."""
        raw = await request.read()
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError as e:
            raise ApiFailure(400, "invalid_request", f"the body is not JSON: {e}") from None
        if not isinstance(data, dict):
            raise ApiFailure(400, "invalid_request", "the body must be a JSON object")
        try:
            return msgspec.convert({**data, **path}, cls)
        except msgspec.ValidationError as e:
            raise ApiFailure(400, "invalid_request", f"body: {e}") from None

    async def post_halt(self, request: web.Request) -> web.Response:
        """HALTED."""
        body = await self._body(request, p.Resume)
        return await self.control(request, p.Halt(state="HALTED", reason=body.reason))  # type: ignore[attr-defined]

    async def post_reduce(self, request: web.Request) -> web.Response:
        """REDUCING."""
        body = await self._body(request, p.Resume)
        return await self.control(request, p.Halt(state="REDUCING", reason=body.reason))  # type: ignore[attr-defined]

    async def post_resume(self, request: web.Request) -> web.Response:
        """ACTIVE."""
        return await self.control(request, await self._body(request, p.Resume))

    async def post_strategy(self, request: web.Request) -> web.Response:
        """Hot-add a strategy."""
        return await self.control(request, await self._body(request, p.AddStrategy), timeout_s=60.0)

    async def delete_strategy(self, request: web.Request) -> web.Response:
        """Remove a strategy."""
        return await self.control(request, p.RemoveStrategy(id=request.match_info["id"]), timeout_s=60.0)

    async def post_breaker_reset(self, request: web.Request) -> web.Response:
        """Reset a breaker."""
        return await self.control(request, p.BreakerReset(scope=request.match_info["scope"]))

    async def index(self, request: web.Request) -> web.FileResponse:
        """The dashboard page."""
        return web.FileResponse(STATIC_DIR / "index.html")

    async def favicon(self, request: web.Request) -> web.Response:
        """No icon (browsers ask for one)."""
        return web.Response(status=204)

    async def openapi_handler(self, request: web.Request) -> web.Response:
        """The OpenAPI 3.1 document."""
        return web.json_response(self.openapi())

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document of :attr:`routes` (request bodies from the typed admin commands)."""
        bodies = sorted({r.body for r in self.routes if r.body is not None}, key=lambda c: c.__name__)
        schemas, components = msgspec.json.schema_components(
            bodies, ref_template="#/components/schemas/{name}"
        )
        error = {
            "description": "an error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        components["Error"] = {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    "required": ["code", "message"],
                }
            },
        }
        paths: dict[str, Any] = {}
        for route in self.routes:
            op: dict[str, Any] = {
                "summary": route.summary,
                "tags": [route.tag],
                "operationId": f"{route.method.lower()}_{route.handler.__name__.split('_', 1)[-1]}",
                "responses": {
                    "200": {"description": "OK", "content": {"application/json": {"schema": {}}}},
                    "401": error,
                    "default": error,
                },
            }
            if route.params:
                op["parameters"] = route.params
            if route.body is not None:
                schema = schemas[bodies.index(route.body)]
                op["requestBody"] = {"required": False, "content": {"application/json": {"schema": schema}}}
            paths.setdefault(API_PREFIX + route.path, {})[route.method.lower()] = op
        paths[API_PREFIX + "/ws"] = {
            "get": {
                "summary": "WebSocket stream: tree, status, breakers, venues, orders, fills, equity, prices "
                '(token as ?token= or a first message {"token": ...}); see sniperbot.api.server',
                "tags": ["stream"],
                "operationId": "get_ws",
                "responses": {"101": {"description": "Switching Protocols"}},
            }
        }
        from sniperbot import __version__

        return {
            "openapi": "3.1.0",
            "info": {"title": "sniperbot node API", "version": __version__},
            "paths": paths,
            "components": {
                "schemas": components,
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            },
            "security": [{"bearer": []}],
        }

    # -- the stream --------------------------------------------------------------------------
    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        """``/api/v1/ws``: authenticate, send a full snapshot, then every change.

        Messages are ``{"type": T, "data": ...}`` with T one of ``snapshot`` (first: every view, the
        latest :data:`RECENT` orders and, under ``fills_recent``, fills), ``tree``, ``status``,
        ``venues``, ``orders`` (the rows that changed, by ``client_order_id``), ``fills`` (the new
        ones), ``equity`` and ``prices`` (the points from the last one sent on: a point with the
        time of a client's last one replaces it) and ``error``; orders and fills carry at most the latest
        :data:`PUSH_ROWS` per message. Tree, status and the journal are polled every
        ``[api] poll_interval_s`` (1 s) while a client is connected, once for all clients; only
        what changed is sent. A client that cannot keep up is closed (1013).
        """
        if not self._origin_allowed(request):
            raise ApiFailure(403, "unauthorized", "WebSocket from a foreign origin")
        if len(self._clients) >= self.section.max_ws_clients:
            raise ApiFailure(503, "node_unavailable", "too many WebSocket clients")
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096)
        await ws.prepare(request)
        token = request.query.get("token", "")
        if not token:
            with contextlib.suppress(asyncio.TimeoutError, ValueError, TypeError, AttributeError):
                msg = await ws.receive(timeout=10.0)
                if msg.type == WSMsgType.TEXT:
                    token = str(json.loads(msg.data).get("token", ""))
        if not token or not self._authorized(token):
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"unauthorized")
            return ws
        client = _Client(ws)
        try:
            await ws.send_str(await self._snapshot_message())
        except ApiFailure as e:
            await ws.send_str(json.dumps({"type": "error", "data": {"code": e.code, "message": str(e)}}))
        self._clients.add(client)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_loop())
        sender = asyncio.create_task(self._send_loop(client))
        try:
            async for _ in ws:  # the client only listens; reading keeps pings and close handled
                pass
        finally:
            self._clients.discard(client)
            sender.cancel()
        return ws

    async def _send_loop(self, client: _Client) -> None:
        with contextlib.suppress(Exception):
            while True:
                await client.ws.send_str(await client.queue.get())

    def _broadcast(self, kind: str, data: Any) -> None:
        text = json.dumps({"type": kind, "data": data})
        for client in list(self._clients):
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                self._clients.discard(client)
                task = asyncio.create_task(
                    client.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow")
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _views(self) -> dict[str, Any]:
        tree, status, _ = await asyncio.gather(
            self.command(p.Tree()), self.command(p.Status()), self._journal_poll()
        )
        return {"tree": tree, "status": status, "venues": self._venues(tree, status)}

    async def _snapshot_message(self) -> str:
        views = await self._views()
        equity, prices, _ = self.live.snapshot()
        data = {
            **views,
            "orders": self.journal.orders(RECENT),
            "fills_recent": self.journal.fills(RECENT),
            "equity": equity,
            "prices": prices,
        }
        return json.dumps({"type": "snapshot", "data": data})

    async def _poll_loop(self) -> None:
        """While dashboards are connected: poll, compare, push what changed."""
        live_version = -1
        last_push = 0.0
        # The time of the last equity point ("") and price point (by key) sent to the clients; a
        # client that connects later gets everything in its snapshot.
        sent_t: dict[str, float] = {}
        while self._clients:
            started = time.monotonic()
            try:
                tree, status, (new_fills, changed_orders) = await asyncio.gather(
                    self.command(p.Tree()), self.command(p.Status()), self._journal_poll()
                )
            except ApiFailure as e:
                self._broadcast("error", {"code": e.code, "message": str(e)})
                await asyncio.sleep(1.0)
                continue
            views = {"tree": tree, "status": status, "venues": self._venues(tree, status)}
            for kind, value in views.items():
                key = json.dumps(_strip(value), sort_keys=True)
                if self._last.get(kind) != key:
                    self._last[kind] = key
                    self._broadcast(kind, value)
            # At most the last PUSH_ROWS of each per poll (what a dashboard shows); a node trading
            # hundreds of orders a second must not make 50 dashboards cost megabytes a second.
            if new_fills:
                self._broadcast("fills", new_fills[-PUSH_ROWS:])
            if changed_orders:
                self._broadcast("orders", changed_orders[-PUSH_ROWS:])
            if self.live.version != live_version and started - last_push >= 1.0:
                # Once a second, the samples from the last one sent on (it may have been updated).
                live_version, last_push = self.live.version, started
                equity, prices, _ = self.live.snapshot()
                fresh = [point for point in equity if point["t"] >= sent_t.get("", 0.0)]
                if fresh:
                    sent_t[""] = fresh[-1]["t"]
                    self._broadcast("equity", fresh)
                moved = {}
                for key, series in prices.items():
                    points = [point for point in series if point[0] >= sent_t.get(key, 0.0)]
                    if points:
                        sent_t[key] = points[-1][0]
                        moved[key] = points
                if moved:
                    self._broadcast("prices", moved)
            await asyncio.sleep(max(0.0, self.section.poll_interval_s - (time.monotonic() - started)))
        self._last.clear()


def _limit(request: web.Request) -> int:
    text = request.query.get("limit", str(RECENT))
    try:
        value = int(text)
    except ValueError:
        raise ApiFailure(
            400, "invalid_request", f"limit: expected an integer >= 0, received {text[:20]!r}"
        ) from None
    if value < 0:
        raise ApiFailure(400, "invalid_request", f"limit: expected an integer >= 0, received {value}")
    return value


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
