"""An actor that crashes once with secrets in its locals and its exception message (Sentry test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sniperbot.actors.base import Actor, ActorContext


class CrashOnceActor(Actor):
    """Raises from a timer in its first incarnation only (a marker file in the run dir says so)."""

    def __init__(self, ctx: ActorContext, *, venue: str, secret_file: str, bot_token: str, **_: Any) -> None:
        super().__init__(ctx)
        self.venue = venue
        self.secret_file = secret_file
        self.bot_token = bot_token

    def on_start(self) -> None:
        """Crash soon after start, once."""
        self.ctx.every(0.2, self._send)

    def _send(self) -> None:
        marker = self.ctx.run_dir / "crashed-once"
        if marker.exists():
            return
        marker.touch()
        api_secret = Path(self.secret_file).read_text().strip()
        url = f"https://api.telegram.org/bot{self.bot_token}/sendMessage"
        raise RuntimeError(f"alert send failed for {url} (signed with {len(api_secret)} bytes)")
