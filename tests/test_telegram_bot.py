"""The Telegram command bot (issue #10 point 4): the real python-telegram-bot against a local Bot API.

A real node runs the bot actor under ``ops`` (``[telegram]`` in its config); the local server
(:mod:`tests.ops_servers.botapi`) speaks the Bot API with long polling; users' messages and button
presses are pushed into it, and what the bot said is read back from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAST_CONFIG, RunningNode, eventually
from tests.ops_servers.botapi import BotApiUpdatesServer

TOKEN = "123456:TEST-token-for-the-local-bot-api-0000"
OPERATOR = 4242
STRANGER = 666


@pytest.fixture
def bot(short_tmp: Path) -> Iterator[tuple[RunningNode, BotApiUpdatesServer]]:
    """A node with the command bot on the local Bot API, answering chat OPERATOR only."""
    server = BotApiUpdatesServer(TOKEN).start()
    token_file = short_tmp / "tg.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    config = short_tmp / "tg.toml"
    config.write_text(
        FAST_CONFIG
        + f'\n[telegram]\nenabled = true\nbot_token_file = "{token_file}"\nallowed_chat_ids = [{OPERATOR}]\n'
        + f'api_url = "{server.url}"\n'
    )
    node = RunningNode(short_tmp / "run", config)
    try:
        node.wait_ready()
        yield node, server
    finally:
        try:
            assert node.stop() == 0, node.log()
        finally:
            server.stop()


def ask(server: BotApiUpdatesServer, text: str, chat: int = OPERATOR) -> dict[str, object]:
    """Send ``text`` as chat ``chat``; the bot's next message there."""
    before = len(server.said(chat))
    server.push_text(chat, text)
    return eventually(
        lambda: server.said(chat)[before:] and server.said(chat)[before], 30, what=f"answer to {text}"
    )


def test_read_commands_answer_from_the_node(bot: tuple[RunningNode, BotApiUpdatesServer]) -> None:
    """/status, /positions, /pnl, /tree, /breakers, /orders, /help answer with the node's own figures."""
    node, server = bot
    eventually(lambda: node.admin("status")["fills"] > 0, 30, what="a fill")
    status = ask(server, "/status")["text"]
    assert "Trading: ACTIVE" in str(status) and "Breakers open: none" in str(status), status
    tree = str(ask(server, "/tree")["text"])
    assert "strategy.fast_btc running #1" in tree and "telegram running" in tree, tree
    assert str(ask(server, "/breakers")["text"]) == "All breakers closed."
    assert "fast_" in str(ask(server, "/orders")["text"])
    assert "Net" in str(ask(server, "/pnl")["text"])
    ask(server, "/positions")
    helptext = str(ask(server, "/help")["text"])
    assert all(f"/{c}" in helptext for c in ("status", "halt", "reduce", "resume", "orders"))
    # The token never leaves the bot actor: not in the tree's child spec, not in the log.
    assert TOKEN not in json.dumps(node.admin("tree")) and TOKEN not in node.log()


def test_halt_asks_for_confirmation_then_halts_and_a_stranger_gets_nothing(
    bot: tuple[RunningNode, BotApiUpdatesServer],
) -> None:
    """/halt shows Confirm/Cancel; Cancel changes nothing; Confirm halts; replays and strangers do nothing."""
    node, server = bot
    question = ask(server, "/halt")
    buttons = question["reply_markup"]["inline_keyboard"][0]  # type: ignore[index]
    assert [b["text"] for b in buttons] == ["Confirm", "Cancel"]
    confirm, cancel = buttons[0]["callback_data"], buttons[1]["callback_data"]
    assert node.admin("status")["trading_state"] == "ACTIVE"  # asking changed nothing

    # A stranger presses the operator's button, and writes to the bot: nothing happens, nothing is said.
    server.push_button(STRANGER, int(question["message_id"]), confirm)
    server.push_text(STRANGER, "/halt")
    eventually(lambda: '"telegram_refused"' in node.log(), 30, what="the stranger logged")
    assert node.admin("status")["trading_state"] == "ACTIVE" and not server.said(STRANGER)

    before = len(server.said(OPERATOR))
    server.push_button(OPERATOR, int(question["message_id"]), confirm)
    eventually(lambda: node.admin("status")["trading_state"] == "HALTED", 30, what="HALTED")
    done = eventually(lambda: server.said(OPERATOR)[before:], 30, what="the confirmation's answer")
    assert "HALTED" in str(done[-1]["text"])

    # The same confirmation does not work twice; a cancelled /resume leaves the node halted.
    server.push_button(OPERATOR, int(question["message_id"]), confirm)
    eventually(lambda: "Expired or already answered" in str(server.said(OPERATOR)[-1]["text"]), 30)
    resume = ask(server, "/resume")
    cancel_resume = resume["reply_markup"]["inline_keyboard"][0][1]["callback_data"]  # type: ignore[index]
    server.push_button(OPERATOR, int(resume["message_id"]), cancel_resume)
    eventually(lambda: "cancelled" in str(server.said(OPERATOR)[-1]["text"]), 30)
    assert node.admin("status")["trading_state"] == "HALTED"
    assert cancel  # the halt question had a Cancel button too
