"""Local servers on 127.0.0.1 that speak operator services' real wire formats (tests only).

* :class:`BotApiServer`: Telegram Bot API ``POST /bot<token>/sendMessage`` (JSON or form body),
  ``{"ok": true, "result": {message}}``; scripted 429s with ``parameters.retry_after``.
* :class:`DiscordServer`: execute-webhook ``POST /api/webhooks/<id>/<token>`` -> 204 with
  ``X-RateLimit-*`` headers; scripted 429s with ``{"message", "retry_after", "global"}`` and
  ``Retry-After``.
* :class:`WebhookServer`: any ``POST`` -> 200, body and headers recorded.
* :class:`SentryServer`: ``POST /api/<project>/envelope/`` (gzip), envelopes parsed into items.
* :class:`SmtpServer`: aiosmtpd with STARTTLS required, certificate made by ``cryptography``.

Each HTTP server runs an aiohttp app on its own loop thread. ``script`` is a list of canned answers
(``"ok"``; ``("429", seconds)``; ``("exhausted", seconds)``: a Discord success that empties the
bucket; ``"hold"``: keep the request open until :meth:`release`, then answer ok; ``("status", code)``)
consumed one per request; when it is empty requests succeed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web


class HttpStub:
    """An aiohttp server on 127.0.0.1 in a thread, recording every request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[Any] = []
        self.holding = threading.Event()  # set while a "hold" request is open
        self._loop = asyncio.new_event_loop()
        self._release: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    def routes(self) -> list[web.RouteDef]:
        """The app's routes."""
        raise NotImplementedError

    def start(self) -> HttpStub:
        """Serve on an ephemeral port."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._release = asyncio.Event()
        app = web.Application()
        app.add_routes(self.routes())
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def release(self) -> None:
        """Let a held request answer."""
        assert self._release is not None
        self._loop.call_soon_threadsafe(self._release.set)

    def stop(self) -> None:
        """Stop serving."""
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    async def _next(self, record: dict[str, Any]) -> Any:
        """Record the request and return the scripted answer for it."""
        record["t"] = time.monotonic()
        self.requests.append(record)
        answer = self.script.pop(0) if self.script else "ok"
        if answer == "hold":
            assert self._release is not None
            self.holding.set()
            await self._release.wait()
            return "ok"
        return answer

    def bodies(self, field: str) -> list[Any]:
        """``field`` of every recorded JSON body."""
        return [r["json"].get(field) for r in self.requests if isinstance(r.get("json"), dict)]


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    record: dict[str, Any] = {"path": request.path, "headers": dict(request.headers), "raw": raw}
    if request.content_type == "application/json":
        record["json"] = json.loads(raw)
    elif request.content_type == "application/x-www-form-urlencoded":
        record["json"] = dict((await request.post()).items())
    return record


class BotApiServer(HttpStub):
    """Telegram Bot API: sendMessage and getMe, for one bot token."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self._message_id = 0

    def routes(self) -> list[web.RouteDef]:
        """``/bot<token>/<method>``."""
        return [web.post("/bot{token}/{method}", self._method)]

    async def _method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        record = await _body(request)
        method = request.match_info["method"]
        if method == "getMe":
            return web.json_response({"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "t"}})
        if method != "sendMessage":
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        answer = await self._next(record)
        if isinstance(answer, tuple) and answer[0] == "429":
            return web.json_response(
                {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {answer[1]}",
                    "parameters": {"retry_after": answer[1]},
                },
                status=429,
            )
        if isinstance(answer, tuple) and answer[0] == "status":
            return web.json_response(
                {"ok": False, "error_code": answer[1], "description": "Bad Request: scripted"},
                status=answer[1],
            )
        self._message_id += 1
        body = record.get("json") or {}
        return web.json_response(
            {
                "ok": True,
                "result": {
                    "message_id": self._message_id,
                    "date": int(time.time()),
                    "chat": {"id": int(body.get("chat_id", 0)), "type": "private"},
                    "text": body.get("text", ""),
                },
            }
        )


class DiscordServer(HttpStub):
    """Discord execute-webhook for one webhook id and token."""

    def __init__(self, webhook_id: str, token: str) -> None:
        super().__init__()
        self.webhook_id = webhook_id
        self.token = token

    def routes(self) -> list[web.RouteDef]:
        """``/api/webhooks/<id>/<token>``."""
        return [web.post("/api/webhooks/{id}/{token}", self._execute)]

    @property
    def webhook_url(self) -> str:
        """The URL an operator would paste from Discord."""
        return f"{self.url}/api/webhooks/{self.webhook_id}/{self.token}"

    async def _execute(self, request: web.Request) -> web.Response:
        if (request.match_info["id"], request.match_info["token"]) != (self.webhook_id, self.token):
            return web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404)
        answer = await self._next(await _body(request))
        bucket = {"X-RateLimit-Limit": "5", "X-RateLimit-Bucket": "abcd1234"}
        if isinstance(answer, tuple) and answer[0] == "429":
            return web.json_response(
                {"message": "You are being rate limited.", "retry_after": answer[1], "global": False},
                status=429,
                headers={
                    **bucket,
                    "Retry-After": str(int(answer[1]) + 1),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset-After": str(answer[1]),
                    "X-RateLimit-Scope": "user",
                },
            )
        if isinstance(answer, tuple) and answer[0] == "status":
            return web.json_response({"message": "scripted", "code": 50006}, status=answer[1])
        if isinstance(answer, tuple) and answer[0] == "exhausted":  # success, but the bucket is empty now
            return web.Response(
                status=204,
                headers={**bucket, "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": str(answer[1])},
            )
        return web.Response(
            status=204, headers={**bucket, "X-RateLimit-Remaining": "4", "X-RateLimit-Reset-After": "1"}
        )


class WebhookServer(HttpStub):
    """A generic webhook receiver at ``/hook``."""

    def routes(self) -> list[web.RouteDef]:
        """``POST /hook``."""
        return [web.post("/hook", self._hook)]

    async def _hook(self, request: web.Request) -> web.Response:
        answer = await self._next(await _body(request))
        if isinstance(answer, tuple) and answer[0] == "429":
            return web.Response(status=429, headers={"Retry-After": str(answer[1])}, text="slow down")
        if isinstance(answer, tuple) and answer[0] == "status":
            return web.Response(status=answer[1], text="scripted")
        return web.json_response({"received": True})


@pytest.fixture(name="webhook")
def webhook_fixture() -> Iterator[WebhookServer]:
    """A local webhook receiver: where the alerts actor sends its alerts."""
    server = WebhookServer().start()
    try:
        yield server
    finally:
        server.stop()


class SentryServer(HttpStub):
    """Receives the Sentry SDK's envelopes (``/api/<project>/envelope/``)."""

    def routes(self) -> list[web.RouteDef]:
        """``POST /api/<project>/envelope/``."""
        return [web.post("/api/{project}/envelope/", self._envelope)]

    def dsn(self, project: str = "42", key: str = "publickey0123") -> str:
        """A DSN pointing at this server."""
        return f"http://{key}@127.0.0.1:{self.port}/{project}"

    async def _envelope(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if request.headers.get("Content-Encoding") == "gzip" and raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        lines = raw.split(b"\n")
        items = []
        i = 1
        while i < len(lines):
            if not lines[i].strip():
                i += 1
                continue
            header = json.loads(lines[i])
            payload = lines[i + 1] if i + 1 < len(lines) else b""
            items.append((header, payload))
            i += 2
        self.requests.append(
            {"path": request.path, "headers": dict(request.headers), "raw": raw, "items": items}
        )
        return web.json_response({"id": "0" * 32})

    def events(self) -> list[dict[str, Any]]:
        """Every ``event`` item received, decoded."""
        return [
            json.loads(payload)
            for r in self.requests
            for header, payload in r["items"]
            if header.get("type") == "event"
        ]


def self_signed_cert(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for ``host`` (as an IP SAN) made with ``cryptography``; (cert, key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp.crt", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class SmtpServer:
    """aiosmtpd on 127.0.0.1 requiring STARTTLS (and AUTH when ``credentials`` are given)."""

    def __init__(
        self, directory: Path, credentials: tuple[str, str] | None = None, starttls: bool = True
    ) -> None:
        from aiosmtpd.controller import Controller

        self.cert, key = self_signed_cert(directory)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, key)
        self.messages: list[dict[str, Any]] = []
        self.script: list[Any] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                answer = outer.script.pop(0) if outer.script else "ok"
                if isinstance(answer, tuple) and answer[0] == "status":
                    return f"{answer[1]} scripted refusal"
                outer.messages.append(
                    {
                        "from": envelope.mail_from,
                        "to": list(envelope.rcpt_tos),
                        "data": envelope.content.decode("utf8", "replace"),
                        "tls": session.ssl is not None,
                        "auth": getattr(session, "authenticated", False),
                    }
                )
                return "250 Message accepted for delivery"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
            from aiosmtpd.smtp import AuthResult

            ok = (
                credentials is not None
                and (auth_data.login.decode(), auth_data.password.decode()) == credentials
            )
            return AuthResult(success=ok)

        kwargs: dict[str, Any] = {}
        if starttls:
            kwargs.update(tls_context=context, require_starttls=True)
        if credentials is not None:
            kwargs.update(authenticator=authenticator, auth_require_tls=True, auth_required=True)
        with socket.socket() as probe:  # aiosmtpd's controller needs a real port to check itself
            probe.bind(("127.0.0.1", 0))
            self._port = probe.getsockname()[1]
        self.controller = Controller(
            Handler(), hostname="127.0.0.1", port=self._port, server_hostname="127.0.0.1", **kwargs
        )

    def start(self) -> SmtpServer:
        """Serve on an ephemeral port."""
        self.controller.start()
        return self

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self._port

    def stop(self) -> None:
        """Stop serving."""
        self.controller.stop()
