"""The Telegram command bot actor (id ``telegram``, under ``ops``), for allow-listed chats only:
``/status``, ``/positions``, ``/pnl``, ``/orders``, ``/tree``, ``/breakers``, ``/halt``, ``/reduce``,
``/resume``, ``/help``.

Freqtrade's bot is the model its users know. Decisions:

* **Same command layer.** Every command is a typed admin command
  (:mod:`sniperbot.admin.protocol`) sent over the node's unix admin socket, exactly what
  ``sniperbot admin`` does; recent orders are read from the journal, read-only.
* **Who may talk to it.** Only chats in ``allowed_chat_ids``. Anyone else gets nothing at all (not
  even "unauthorised": a bot that answers tells a stranger it exists) and is logged once per chat
  (``telegram_refused``) with the chat id only.
* **Control commands ask first.** ``/halt``, ``/reduce`` and ``/resume`` answer with Confirm /
  Cancel buttons; only a press from an allowed chat within ``confirm_timeout_s`` carries the command
  out, and each confirmation works once.
* **Never in the node's loop.** python-telegram-bot runs on an asyncio loop in a thread of this
  actor (long polling); the admin socket is called from a worker thread, so a dead Telegram server
  or a slow node never delays this actor's heartbeats.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from typing import Any

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.admin import admin_request
from sniperbot.admin import protocol as p
from sniperbot.telegram.config import TelegramConfig

COMMANDS = {
    "status": "trading state, P&L, orders, breakers, actors",
    "positions": "open positions by venue and symbol",
    "pnl": "realised, unrealised, fees, net",
    "orders": "the last 10 orders",
    "tree": "the supervision tree",
    "breakers": "circuit breakers",
    "halt": "stop trading (nothing passes) — asks to confirm",
    "reduce": "only risk-reducing orders — asks to confirm",
    "resume": "trade normally again — asks to confirm",
    "help": "this list",
}
# What each control command does once confirmed.
CONTROL: dict[str, p.Request] = {
    "halt": p.Halt(state="HALTED", reason="telegram"),
    "reduce": p.Halt(state="REDUCING", reason="telegram"),
    "resume": p.Resume(reason="telegram"),
}


def _admin(run_dir: Any, command: p.Request) -> Any:
    """Run one typed command through the node's admin socket; raises RuntimeError on a refusal."""
    request = p.to_request(command)
    reply = admin_request(run_dir, request.cmd, 10.0, **request.args)
    if not reply.ok:
        assert reply.error is not None
        raise RuntimeError(f"{reply.error.code}: {reply.error.message}")
    return reply.result


def format_status(status: dict[str, Any]) -> str:
    """``/status``: the few lines an operator reads first."""
    pnl = status["pnl"]
    opened = [scope for scope, state in status["breakers"].items() if state != "closed"]
    return "\n".join(
        [
            f"Trading: {status['trading_state']}",
            f"P&L net {pnl['net']:.2f} (realised {pnl['realized']:.2f}, unrealised {pnl['unrealized']:.2f})",
            f"Orders {status['orders']}, fills {status['fills']}, rejected {status['rejected']}",
            f"Breakers open: {', '.join(opened) if opened else 'none'}",
            f"Actors running {status['actors']}, restarts {status['restarts']}",
        ]
    )


def format_positions(status: dict[str, Any]) -> str:
    """``/positions``."""
    held = {k: v for k, v in status["positions"].items() if abs(v) > 0}
    return "\n".join(f"{k}: {v:+.6g}" for k, v in sorted(held.items())) or "No open positions."


def format_pnl(status: dict[str, Any]) -> str:
    """``/pnl``."""
    pnl = status["pnl"]
    return (
        f"Realised {pnl['realized']:.2f}\nUnrealised {pnl['unrealized']:.2f}\n"
        f"Fees {pnl['fees']:.2f}\nNet {pnl['net']:.2f}"
    )


def format_tree(node: dict[str, Any], depth: int = 0) -> str:
    """``/tree``: one line per child, indented."""
    kind = node["kind"]
    line = f"{'  ' * depth}{node['id']} {node['state']}"
    if kind == "worker":
        line += f" #{node['incarnation']} restarts {node['restarts']}"
    return "\n".join([line, *(format_tree(c, depth + 1) for c in node["children"])])


def format_breakers(rows: list[dict[str, Any]]) -> str:
    """``/breakers``."""
    return (
        "\n".join(
            f"{b['scope']}: {b['state']} (trips {b['trips']}){' — ' + b['reason'] if b['reason'] else ''}"
            for b in rows
        )
        or "All breakers closed."
    )


def format_orders(run_dir: Any, count: int = 10) -> str:
    """``/orders``: the last ``count`` journaled orders."""
    from sniperbot.cli.journal import order_rows
    from sniperbot.journal import Journal

    journal = Journal.open(run_dir, readonly=True)
    try:
        rows = order_rows([record for _, record in journal.records()])[-count:]
    finally:
        journal.close()
    return (
        "\n".join(
            f"{o['client_order_id']} {o['side']} {o['quantity']:g} {o['symbol']} {o['status']}" for o in rows
        )
        or "No orders yet."
    )


class TelegramBotActor(Actor):
    """Long-polls the Bot API and answers allow-listed chats (see the module docstring)."""

    def __init__(self, ctx: ActorContext, *, settings: dict[str, Any]) -> None:
        super().__init__(ctx)
        import msgspec

        self.config = msgspec.convert(settings, TelegramConfig)
        self.allowed = frozenset(self.config.allowed_chat_ids)
        self._refused: set[int] = set()
        self._pending: dict[str, tuple[str, int, float]] = {}  # nonce -> (command, chat, expires)
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._app: Any = None

    def on_start(self) -> None:
        """Start python-telegram-bot's long polling on a loop of our own."""
        token = self.config.token()
        self._thread = threading.Thread(target=self._loop.run_forever, name="telegram", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(token), self._loop)
        del token
        self.ctx.log.info(
            "telegram bot starting", extra={"event": "telegram_start", "chats": len(self.allowed)}
        )

    async def _start(self, token: str) -> None:
        from telegram.ext import (
            ApplicationBuilder,
            CallbackQueryHandler,
            CommandHandler,
            MessageHandler,
            filters,
        )

        app = ApplicationBuilder().token(token).base_url(f"{self.config.api_url}/bot").build()
        allowed = filters.Chat(chat_id=list(self.allowed))
        for name in COMMANDS:
            app.add_handler(CommandHandler(name, self._command, filters=allowed))
        app.add_handler(CallbackQueryHandler(self._button))
        app.add_handler(MessageHandler(~allowed, self._stranger))
        self._app = app
        delay = 1.0
        while True:
            try:
                await app.initialize()
                break
            except Exception as e:  # Telegram down at start: retry with backoff, never crash-loop
                self.ctx.log.warning(
                    "telegram unreachable; retrying",
                    extra={"event": "telegram_retry", "error": type(e).__name__},
                )
                await asyncio.sleep(delay)
                delay = min(60.0, delay * 2)
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(
            poll_interval=0.0, timeout=10, allowed_updates=["message", "callback_query"]
        )

    def on_stop(self) -> None:
        """Stop polling and the loop."""
        if self._app is not None:
            future = asyncio.run_coroutine_threadsafe(self._stop(), self._loop)
            try:
                future.result(10)
            except Exception as e:  # stopping is best effort: the process is going anyway
                self.ctx.log.warning(
                    "telegram stop failed", extra={"event": "telegram_stop", "error": type(e).__name__}
                )
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    async def _stop(self) -> None:
        app = self._app
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()

    # -- handlers (the bot's loop) -----------------------------------------------------------------
    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def _stranger(self, update: Any, context: Any) -> None:
        chat = update.effective_chat.id if update.effective_chat else 0
        if chat not in self._refused:
            self._refused.add(chat)
            self.ctx.log.warning(
                "telegram message from a chat not allowed; ignored",
                extra={"event": "telegram_refused", "chat": chat},
            )

    async def _command(self, update: Any, context: Any) -> None:
        name = (update.effective_message.text or "/help").split()[0].lstrip("/").split("@")[0].lower()
        chat = update.effective_chat.id
        run_dir = self.ctx.run_dir
        try:
            if name in CONTROL:
                await self._ask(update, name)
                return
            if name == "help":
                text = "\n".join(f"/{k} — {v}" for k, v in COMMANDS.items())
            elif name == "orders":
                text = await self._run(format_orders, run_dir)
            elif name == "tree":
                text = format_tree(await self._run(_admin, run_dir, p.Tree()))
            elif name == "breakers":
                text = format_breakers(await self._run(_admin, run_dir, p.BreakerStatus()))
            else:
                status = await self._run(_admin, run_dir, p.Status())
                text = {"status": format_status, "positions": format_positions, "pnl": format_pnl}[name](
                    status
                )
        except Exception as e:
            text = f"Could not {name}: {type(e).__name__}: {e}"
        self.ctx.log.info(
            "telegram command", extra={"event": "telegram_command", "command": name, "chat": chat}
        )
        await update.effective_message.reply_text(text)

    async def _ask(self, update: Any, name: str) -> None:
        from telegram import InlineKeyboardButton, InlineKeyboardMarkup

        nonce = secrets.token_hex(6)
        self._pending[nonce] = (
            name,
            update.effective_chat.id,
            time.monotonic() + self.config.confirm_timeout_s,
        )
        buttons = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Confirm", callback_data=f"ok:{nonce}"),
                    InlineKeyboardButton("Cancel", callback_data=f"no:{nonce}"),
                ]
            ]
        )
        await update.effective_message.reply_text(
            f"/{name}: {COMMANDS[name].split(' — ')[0]}. Confirm?", reply_markup=buttons
        )

    async def _button(self, update: Any, context: Any) -> None:
        query = update.callback_query
        chat = query.message.chat.id if query.message else 0
        if chat not in self.allowed:
            await self._stranger(update, context)
            return
        verdict, _, nonce = (query.data or "").partition(":")
        pending = self._pending.pop(nonce, None)
        await query.answer()
        if pending is None or pending[1] != chat or pending[2] < time.monotonic():
            await query.edit_message_text("Expired or already answered: send the command again.")
            return
        name = pending[0]
        if verdict != "ok":
            await query.edit_message_text(f"/{name} cancelled.")
            return
        try:
            result = await self._run(_admin, self.ctx.run_dir, CONTROL[name])
            text = f"Done: trading state {result['trading_state']}."
        except Exception as e:
            text = f"/{name} failed: {type(e).__name__}: {e}"
        self.ctx.log.warning(
            "telegram control", extra={"event": "telegram_control", "command": name, "chat": chat}
        )
        await query.edit_message_text(text)
