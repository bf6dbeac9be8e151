"""The admin socket's wire format: one JSON request, one JSON reply.

Request ``{"cmd": <command>, "args": {...}}`` whose ``args`` are the fields of the
command's typed request (:data:`Command`, a union of msgspec structs tagged by name);
reply ``{"ok": true, "result": ...}``
or ``{"ok": false, "error": {"code", "message"}}``. Error codes are OTP's where
they apply (``not_found``, ``running``, ``restarting``, ``already_present``,
``already_started``, ``invalid_spec``, ``not_running``) plus ``invalid_message``
(not a valid request; the message says where), ``chaos_disabled``,
``start_failed``, ``timeout`` and ``internal_error`` (a bug in the node: the
command was not carried out, the node keeps running).

A request is at most :data:`MAX_REQUEST_BYTES`; the admin sockets refuse larger
frames (ZeroMQ ``MAXMSGSIZE`` disconnects the sender).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import msgspec

from sniperbot.messages import InvalidFrame

# The largest request is a start-child spec: a few hundred bytes. 64 KiB leaves room
# for any real spec and bounds what one hostile request can make the node allocate.
MAX_REQUEST_BYTES = 64 * 1024

#: Every error code a reply can carry: a closed set (clients switch on it).
ErrorCode = Literal[
    "not_found",
    "running",
    "restarting",
    "already_present",
    "already_started",
    "invalid_spec",
    "not_running",
    "invalid_message",
    "chaos_disabled",
    "start_failed",
    "timeout",
    "internal_error",
]
ERROR_CODES: frozenset[str] = frozenset(get_args(ErrorCode))


class Request(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="cmd"):
    """Base of the typed admin commands; the tag is the command's name (``cmd`` on the wire).

    Every face (the unix socket and its CLI, the HTTP API, the Telegram bot) builds one of
    these and hands it to the one command layer (:class:`sniperbot.admin.commands.AdminCommands`).
    Decision: values that the config also takes (a strategy's fields, a child spec) are typed
    ``Any`` here and validated by the config's own rules, so they have one home and their
    errors name the field with ``invalid_spec``; the request type fixes which arguments exist
    (an unknown one is ``invalid_message``).
    """


class Ping(Request, tag="ping"):
    """Node liveness: pid and uptime."""


class Tree(Request, tag="tree"):
    """The supervision tree with every actor's state."""


class Status(Request, tag="status"):
    """Positions, P&L, counts, trading state, breakers, venues."""


class WhichChildren(Request, tag="which_children"):
    """A supervisor's children in start order."""

    sup: str


class CountChildren(Request, tag="count_children"):
    """OTP's counts of a supervisor's children."""

    sup: str


class _ChildOf(Request):
    """A command about one child ``id`` of supervisor ``sup``."""

    sup: str
    id: str


class GetChildspec(_ChildOf, tag="get_childspec"):
    """The full spec of one child."""


class StartChild(Request, tag="start_child"):
    """Add and start a child from a full spec (or args, under a template supervisor)."""

    sup: str
    spec: dict[str, Any]


class TerminateChild(_ChildOf, tag="terminate_child"):
    """Stop a child and keep its spec."""


class RestartChild(_ChildOf, tag="restart_child"):
    """Start a stopped child again."""


class DeleteChild(_ChildOf, tag="delete_child"):
    """Forget a stopped child."""


class AddStrategy(Request, tag="add_strategy"):
    """Hot-add a strategy actor (fields as in ``[[strategies]]``; unset ones take the defaults)."""

    id: Any = msgspec.UNSET
    strategy: Any = msgspec.UNSET
    venue: Any = msgspec.UNSET
    symbol: Any = msgspec.UNSET
    quantity: Any = msgspec.UNSET
    bar_interval_s: Any = msgspec.UNSET
    params: Any = msgspec.UNSET

    def fields(self) -> dict[str, Any]:
        """The arguments that were given (an explicit ``null`` included: it is refused, not defaulted)."""
        return {
            name: getattr(self, name)
            for name in self.__struct_fields__
            if getattr(self, name) is not msgspec.UNSET
        }


class RemoveStrategy(Request, tag="remove_strategy"):
    """Stop a strategy actor and forget it."""

    id: str


class Halt(Request, tag="halt"):
    """Stop trading: HALTED (nothing passes) or REDUCING (only risk-reducing orders)."""

    state: Literal["HALTED", "REDUCING"] = "HALTED"
    reason: str = "operator"


class Resume(Request, tag="resume"):
    """Trade normally again."""

    reason: str = "operator"


class BreakerStatus(Request, tag="breaker_status"):
    """Every breaker with its state, trips, reason and cooldown."""


class BreakerReset(Request, tag="breaker_reset"):
    """Close a breaker now and restart its tripped subtree."""

    scope: str


class Chaos(Request, tag="chaos"):
    """Send a signal to one actor process (a node started with --enable-chaos only)."""

    actor: str
    signal: str = "KILL"


class Shutdown(Request, tag="shutdown"):
    """Stop the node in an orderly way."""


Command = (
    Ping
    | Tree
    | Status
    | WhichChildren
    | CountChildren
    | GetChildspec
    | StartChild
    | TerminateChild
    | RestartChild
    | DeleteChild
    | AddStrategy
    | RemoveStrategy
    | Halt
    | Resume
    | BreakerStatus
    | BreakerReset
    | Chaos
    | Shutdown
)
#: Command name -> its request type (the closed set of commands).
COMMANDS: dict[str, type[Request]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in get_args(Command)
}


def command_name(command: Request) -> str:
    """The wire name (``cmd``) of a typed command."""
    return str(type(command).__struct_config__.tag)


class AdminRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One operator request on the socket: ``{"cmd": name, "args": {...}}`` (see :func:`to_command`)."""

    cmd: str
    args: dict[str, Any] = {}


def to_command(request: AdminRequest) -> Request:
    """The typed command of a socket request; raises :class:`InvalidFrame` naming what is wrong."""
    cls = COMMANDS.get(request.cmd)
    if cls is None:
        raise InvalidFrame(f"unknown command {request.cmd[:40]!r} (commands: {', '.join(sorted(COMMANDS))})")
    try:
        return msgspec.convert(request.args, cls)
    except msgspec.ValidationError as e:
        raise InvalidFrame(f"{request.cmd}: {e}".replace("`$`", "args").replace("`$.", "`args.")) from None


def to_request(command: Request) -> AdminRequest:
    """The socket request of a typed command (what :func:`to_command` reverses)."""
    args = msgspec.to_builtins(command)
    args.pop("cmd", None)
    return AdminRequest(cmd=command_name(command), args=args)


class AdminError(msgspec.Struct, frozen=True):
    """Why a request failed: a stable code and a sentence."""

    code: ErrorCode
    message: str


class AdminReply(msgspec.Struct, frozen=True, omit_defaults=True):
    """The answer to one request."""

    ok: bool
    result: Any = None
    error: AdminError | None = None


request_decoder = msgspec.json.Decoder(AdminRequest)


def decode_request(frame: bytes) -> AdminRequest:
    """Decode one request, raising :class:`InvalidFrame` (with the reason) for *any* bad frame.

    Like ``decode_envelope``: deep nesting raises ``RecursionError`` in msgspec, not
    ``DecodeError``, and it must not reach the node's loop.
    """
    try:
        return request_decoder.decode(frame)
    except msgspec.DecodeError as e:
        raise InvalidFrame(str(e)) from None
    except RecursionError:
        raise InvalidFrame("request nested too deeply") from None
    except Exception as e:  # MemoryError, OverflowError, ValueError, ...
        raise InvalidFrame(f"undecodable request ({type(e).__name__})") from None


reply_decoder = msgspec.json.Decoder(AdminReply)
encoder = msgspec.json.Encoder()
