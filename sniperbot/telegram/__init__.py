"""The Telegram command bot: the node's admin commands from a phone, for allow-listed chats only."""
