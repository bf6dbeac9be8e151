"""The API actor (``api``, under the ``ops`` supervisor): serves the HTTP API and the web dashboard.

It follows the bus for what the journal does not hold (portfolio snapshots for the equity curve,
quotes for the price chart, feed health) and runs the HTTP server (:class:`ApiServer`) on its own
loop in its own thread; the server reaches the node only through the admin socket and the journal
(read-only). A server that cannot start (port in use, unreadable certificate or token file) raises
in ``on_start``: the supervisor restarts the actor and, if it keeps failing, the ``ops`` breaker
opens; trading is never affected.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import secrets
from pathlib import Path
from typing import Any

import msgspec

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.api.config import API_ACTOR, API_ACTOR_ID, TOKEN_FILE, ApiSection
from sniperbot.api.server import ApiServer, LiveData
from sniperbot.messages import Envelope, FeedStatus, PortfolioSnapshot, Quote
from sniperbot.messages import topics as topic
from sniperbot.observability.endpoints import remove_endpoints, update_endpoints

__all__ = ["API_ACTOR", "API_ACTOR_ID", "ApiActor", "resolve_token_sha256"]


def resolve_token_sha256(section: ApiSection, token_sha256: str, run_dir: Path) -> str:
    """The SHA-256 (hex) of the token the API accepts: the config's, ``token_file``'s, or ``api.token``'s.

    ``api.token`` is created (mode 0600, 256 random bits) when neither is configured, and kept across
    restarts so that open dashboards and scripts keep working; delete it to rotate the token.
    """
    if token_sha256:
        return token_sha256
    if section.token_file:
        try:
            token = Path(section.token_file).expanduser().read_text().strip()
        except OSError as e:
            raise ValueError(f"api.token_file: cannot read {section.token_file}: {e.strerror}") from None
        if len(token) < 16:
            raise ValueError(f"api.token_file: {section.token_file} must hold a token of 16+ characters")
        return hashlib.sha256(token.encode()).hexdigest()
    path = run_dir / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)  # ours (the run dir is 0700 and ours); never wider than the owner
        token = path.read_text().strip()
        if len(token) >= 16:
            return hashlib.sha256(token.encode()).hexdigest()
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC, 0o600)  # empty or damaged: a new one
    token = secrets.token_urlsafe(32)
    try:
        os.write(fd, (token + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return hashlib.sha256(token.encode()).hexdigest()


class ApiActor(Actor):
    """Runs the API server; feeds it the equity curve, prices and feed health from the bus."""

    def __init__(self, ctx: ActorContext, *, settings: dict[str, Any]) -> None:
        super().__init__(ctx)
        settings = dict(settings)
        self._token_sha256 = str(settings.pop("token_sha256", ""))
        venues = list(settings.pop("venues", []))
        self.section = msgspec.convert(settings, ApiSection)
        self.topics = (topic.STATUS_PORTFOLIO, topic.FEED_STATUS, *(topic.quotes(v) for v in venues))
        self.live = LiveData()
        self.server: ApiServer | None = None

    def on_start(self) -> None:
        """Start the server; publish its URL in ``endpoints.json``."""
        run_dir = Path(self.ctx.run_dir)
        token_sha256 = resolve_token_sha256(self.section, self._token_sha256, run_dir)
        # Placement "thread": the node's process has the journal open already (one per process).
        in_node = multiprocessing.parent_process() is None
        shared = (lambda: self.ctx.journal) if in_node else None
        self.server = ApiServer(self.section, token_sha256, run_dir, self.live, self.ctx.log, shared)
        url = self.server.start()
        update_endpoints(run_dir, api=url)
        self.ctx.log.info("api serving", extra={"event": "api_serving", "url": url})

    def on_message(self, envelope: Envelope) -> None:
        """Keep the latest equity, prices and feed health for the dashboard."""
        payload = envelope.payload
        if isinstance(payload, Quote):
            self.live.price(f"{payload.venue}:{payload.symbol}", payload.ts_ns / 1e9, payload.mid)
        elif isinstance(payload, PortfolioSnapshot):
            self.live.equity(payload.ts_ns / 1e9, payload.realized_pnl, payload.unrealized_pnl, payload.fees)
        elif isinstance(payload, FeedStatus):
            self.live.feed(payload.venue, msgspec.to_builtins(payload))

    def on_stop(self) -> None:
        """Stop serving; the URL leaves ``endpoints.json``."""
        if self.server is not None:
            self.server.stop()
            remove_endpoints(Path(self.ctx.run_dir), "api")
