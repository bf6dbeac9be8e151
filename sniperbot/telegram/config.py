"""The ``[telegram]`` section: the command bot (alerts to Telegram are ``[alerts.telegram]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

TELEGRAM_ACTOR = "sniperbot.telegram.bot:TelegramBotActor"
TELEGRAM_ACTOR_ID = "telegram"


class TelegramConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The command bot: off unless ``enabled``; answers only ``allowed_chat_ids``.

    The token is best given as ``bot_token_file`` (a 0600 file read by the bot actor), so it never
    appears in the tree's child spec or the journal.
    """

    enabled: bool = False
    bot_token: str = ""
    bot_token_file: str = ""
    allowed_chat_ids: list[int] = []
    api_url: str = "https://api.telegram.org"  # a local Bot API server (or a test) may differ
    confirm_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 60.0

    def __post_init__(self) -> None:
        if not self.enabled:
            return
        import importlib.util

        if importlib.util.find_spec("telegram") is None:
            raise ValueError("enabled: python-telegram-bot is not installed (pip install 'sniperbot[ops]')")
        if bool(self.bot_token) == bool(self.bot_token_file):
            raise ValueError("bot_token_file: give exactly one of bot_token and bot_token_file")
        if self.bot_token_file and not Path(self.bot_token_file).is_file():
            raise ValueError(f"bot_token_file: no such file {self.bot_token_file}")
        if not self.allowed_chat_ids:
            raise ValueError(
                "allowed_chat_ids: at least one chat id is required (the bot answers nobody else)"
            )

    def token(self) -> str:
        """The bot token (read from its file when given as one)."""
        return self.bot_token or Path(self.bot_token_file).read_text().strip()
