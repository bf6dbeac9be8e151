"""The command layer: the admin commands a node executes for its operator, whatever face asked.

The unix admin socket (and its CLI), the HTTP API and the Telegram bot all hand a typed
command (:data:`sniperbot.admin.protocol.Command`) to :meth:`AdminCommands.execute`. The
layer depends on :class:`NodeControl`, a narrow interface of the node, not on the node
class: the node imports this module, never the other way round.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from sniperbot.actors.runtime import load_actor_class
from sniperbot.admin import protocol as p
from sniperbot.admin.protocol import AdminError, AdminReply, ErrorCode
from sniperbot.config import (
    ConfigError,
    StrategySection,
    check_finite,
    check_strategy,
    validation_message,
)
from sniperbot.messages import Crash, Payload
from sniperbot.supervision import ChildSpec, Supervisor
from sniperbot.supervision.breaker import BreakerBoard
from sniperbot.supervision.supervisor import SupervisorError
from sniperbot.topology import STRATEGIES_SUPERVISOR, strategy_child

log = logging.getLogger("sniperbot.admin")

Reply = Callable[[AdminReply], None]

CHAOS_SIGNALS = {
    "KILL": signal.SIGKILL,
    "STOP": signal.SIGSTOP,
    "TERM": signal.SIGTERM,
    "CONT": signal.SIGCONT,
}


class NodeControl(Protocol):
    """What the command layer needs of a node (the node implements it; tests may too)."""

    config: Any
    root: Supervisor
    breakers: BreakerBoard
    enable_chaos: bool
    start_timeout_s: float

    def ping(self) -> dict[str, Any]:
        """Liveness: pid, uptime."""
        ...

    def tree(self) -> dict[str, Any]:
        """The supervision tree as plain data."""
        ...

    def status(self) -> dict[str, Any]:
        """Positions, P&L, counts, trading state, breakers, venues."""
        ...

    def deferred(self, reply: Reply, timeout_s: float, what: str) -> Reply:
        """``reply`` that answers ``timeout`` by itself unless called within ``timeout_s``."""
        ...

    def set_trading_state(self, state: str, reason: str) -> None:
        """Tell the risk guard the new trading state."""
        ...

    def send_control(self, actor_id: str, incarnation: int, payload: Payload) -> None:
        """A control message to one actor incarnation."""
        ...

    def request_crash(self) -> None:
        """Raise in the node's own loop (chaos only)."""
        ...

    def request_stop(self, reason: str) -> None:
        """Stop in an orderly way."""
        ...


class AdminFailure(Exception):
    """A request that cannot be carried out; ``code`` goes on the wire."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def ok(result: Any = None) -> AdminReply:
    """A success reply."""
    return AdminReply(ok=True, result=result)


def failure(code: ErrorCode, message: str) -> AdminReply:
    """An error reply."""
    return AdminReply(ok=False, error=AdminError(code, message))


class AdminCommands:
    """Runs each admin command against the node; replies may come later (starts, stops)."""

    def __init__(self, node: NodeControl) -> None:
        self.node = node
        self._logged_internal: set[tuple[str, str]] = set()

    def execute(self, command: p.Request, reply: Reply) -> None:
        """Execute ``command``; ``reply`` is called exactly once (now or when the work is done).

        Every command validates all of its input before it changes anything. The last
        ``except`` is a backstop for our own bugs: an operator's request must never stop
        the node, so it answers ``internal_error`` and logs the traceback once per kind.
        """
        name = p.command_name(command)
        handler = getattr(self, "cmd_" + name)
        try:
            handler(command, reply)
        except AdminFailure as e:
            reply(failure(e.code, str(e)))
        except SupervisorError as e:
            reply(failure(e.code, str(e)))
        except Exception as e:
            key = (name, type(e).__name__)
            if key not in self._logged_internal:
                self._logged_internal.add(key)
                log.exception("admin command failed", extra={"event": "admin_internal_error", "cmd": name})
            reply(
                failure(
                    "internal_error",
                    f"{name} failed inside the node ({type(e).__name__}); "
                    "nothing was changed by it past that point; see the node's log",
                )
            )

    # -- views ----------------------------------------------------------------------------
    def cmd_ping(self, cmd: p.Ping, reply: Reply) -> None:
        """Node liveness."""
        reply(ok(self.node.ping()))

    def cmd_tree(self, cmd: p.Tree, reply: Reply) -> None:
        """The supervision tree."""
        reply(ok(self.node.tree()))

    def cmd_status(self, cmd: p.Status, reply: Reply) -> None:
        """Positions, P&L, counts, trading state, breakers."""
        reply(ok(self.node.status()))

    # -- OTP management -------------------------------------------------------------------
    def _supervisor(self, sup_id: str) -> Supervisor:
        sup = self.node.root.find_supervisor(sup_id)
        if sup is None:
            raise AdminFailure("not_found", f"no supervisor {sup_id!r}")
        return sup

    def cmd_which_children(self, cmd: p.WhichChildren, reply: Reply) -> None:
        """Children of a supervisor in start order."""
        reply(ok(self._supervisor(cmd.sup).which_children()))

    def cmd_count_children(self, cmd: p.CountChildren, reply: Reply) -> None:
        """OTP's counts of a supervisor's children."""
        reply(ok(self._supervisor(cmd.sup).count_children()))

    def cmd_get_childspec(self, cmd: p.GetChildspec, reply: Reply) -> None:
        """The full spec of one child."""
        spec = self._supervisor(cmd.sup).get_childspec(cmd.id)
        reply(ok(msgspec.to_builtins(spec)))

    def cmd_start_child(self, cmd: p.StartChild, reply: Reply) -> None:
        """Add and start a child from a full spec (``args["spec"]``)."""
        sup = self._supervisor(cmd.sup)
        raw = cmd.spec
        try:
            spec: ChildSpec | dict[str, Any] = (
                raw if sup.template is not None else msgspec.convert(raw, ChildSpec)
            )
            if isinstance(spec, ChildSpec):
                check_finite(spec, "start-child", "spec")
                for worker in spec.walk():
                    if worker.type == "worker":
                        _check_actor(worker.actor)
        except msgspec.ValidationError as e:
            raise AdminFailure("invalid_spec", "spec." + validation_message(e)) from None
        except (ConfigError, ValueError) as e:
            raise AdminFailure("invalid_spec", str(e)) from None
        except RecursionError:
            raise AdminFailure("invalid_spec", "spec is nested too deeply") from None
        self._start(sup, spec, reply)

    def _start(self, sup: Supervisor, spec: ChildSpec | dict[str, Any], reply: Reply) -> None:
        reply = self.node.deferred(reply, self.node.start_timeout_s + 1.0, "the child did not become ready")
        holder: list[Any] = []

        def ready() -> None:
            child = holder[0] if holder else None
            if child is None or child.state != "running":
                reply(failure("start_failed", "the child could not be started"))
                return
            reply(
                ok(
                    {
                        "id": child.spec.id,
                        "pid": child.handle.pid if child.handle else None,
                        "incarnation": child.incarnation,
                    }
                )
            )

        holder.append(sup.start_child(spec, ready))

    def cmd_terminate_child(self, cmd: p.TerminateChild, reply: Reply) -> None:
        """Stop a child and keep its spec."""
        sup = self._supervisor(cmd.sup)
        reply = self.node.deferred(reply, 60.0, "the child did not stop")
        sup.terminate_child(cmd.id, lambda: reply(ok()))

    def cmd_restart_child(self, cmd: p.RestartChild, reply: Reply) -> None:
        """Start a stopped child again."""
        sup = self._supervisor(cmd.sup)
        child_id = cmd.id
        deferred = self.node.deferred(
            reply, self.node.start_timeout_s + 1.0, "the child did not become ready"
        )

        def ready() -> None:
            child = sup.find(child_id)
            if child is None or child.state != "running":
                deferred(failure("start_failed", f"{child_id} could not be started"))
            else:
                deferred(ok({"id": child_id, "incarnation": child.incarnation}))

        sup.restart_child(child_id, ready)

    def cmd_delete_child(self, cmd: p.DeleteChild, reply: Reply) -> None:
        """Forget a stopped child."""
        self._supervisor(cmd.sup).delete_child(cmd.id)
        reply(ok())

    # -- strategies -----------------------------------------------------------------------
    def cmd_add_strategy(self, cmd: p.AddStrategy, reply: Reply) -> None:
        """Hot-add a strategy actor; its spec is journaled so it survives restarts."""
        config = self.node.config
        sup = self.node.root.find_supervisor(STRATEGIES_SUPERVISOR)
        if sup is None or sup.state != "running":
            raise AdminFailure("not_running", "the strategies supervisor is not running")
        section = _strategy_section(config, cmd.fields())
        existing = sup.find(f"strategy.{section.id}")
        if existing is not None:
            code = "already_started" if existing.active else "already_present"
            raise AdminFailure(code, f"strategy {section.id!r} exists ({existing.state})")
        self._start(sup, strategy_child(config, section), reply)

    def cmd_remove_strategy(self, cmd: p.RemoveStrategy, reply: Reply) -> None:
        """Stop a strategy actor and forget it."""
        strategy_id = cmd.id
        child_id = strategy_id if strategy_id.startswith("strategy.") else f"strategy.{strategy_id}"
        sup = self.node.root.find_supervisor(STRATEGIES_SUPERVISOR)
        if sup is None or sup.find(child_id) is None:
            raise AdminFailure("not_found", f"no strategy {strategy_id!r}")
        deferred = self.node.deferred(reply, 60.0, "the strategy did not stop")

        def stopped() -> None:
            try:
                sup.delete_child(child_id)
            except SupervisorError as e:
                deferred(failure(e.code, str(e)))
                return
            deferred(ok({"id": child_id}))

        sup.terminate_child(child_id, stopped)

    # -- trading and breakers -------------------------------------------------------------
    def cmd_halt(self, cmd: p.Halt, reply: Reply) -> None:
        """Stop trading: HALTED (nothing passes) or REDUCING (only risk-reducing orders)."""
        self.node.set_trading_state(cmd.state, cmd.reason)
        reply(ok({"trading_state": cmd.state}))

    def cmd_resume(self, cmd: p.Resume, reply: Reply) -> None:
        """Trade normally again."""
        self.node.set_trading_state("ACTIVE", cmd.reason)
        reply(ok({"trading_state": "ACTIVE"}))

    def cmd_breaker_status(self, cmd: p.BreakerStatus, reply: Reply) -> None:
        """Every breaker with its state, trips, reason and cooldown."""
        reply(ok(self.node.breakers.details()))

    def cmd_breaker_reset(self, cmd: p.BreakerReset, reply: Reply) -> None:
        """Close a breaker now (operator override) and restart its tripped subtree now.

        Decision (issue #8, point 10): a reset really restarts the subtree at once
        instead of leaving it to wait for the rest of its cooldown, so the ``closed``
        in the reply is the truth: trading through the scope resumes as soon as the
        subtree is up (if it fails again it trips again, with a longer cooldown).
        """
        scope = cmd.scope
        if not self.node.breakers.reset(scope):
            raise AdminFailure("not_found", f"no breaker {scope!r}")  # the board's on_reset restarts it
        reply(ok(self.node.breakers.snapshot()))

    # -- faults and shutdown --------------------------------------------------------------
    def cmd_chaos(self, cmd: p.Chaos, reply: Reply) -> None:
        """Send a signal to one actor process (only on a node started with --enable-chaos)."""
        if not self.node.enable_chaos:
            raise AdminFailure("chaos_disabled", "fault injection needs a node started with --enable-chaos")
        actor_id = cmd.actor
        sig_name = cmd.signal.upper()
        if actor_id == "node" and sig_name == "CRASH":
            # The node itself raises in its loop (after this reply): tests that a crash is not
            # recorded as an orderly stop (exit 71, next start fail-closed).
            self.node.request_crash()
            reply(ok({"actor": "node", "pid": os.getpid(), "signal": sig_name}))
            return
        sig = CHAOS_SIGNALS.get(sig_name)
        if sig is None and sig_name != "CRASH":
            known = ", ".join([*CHAOS_SIGNALS, "CRASH"])
            raise AdminFailure("invalid_message", f"signal must be one of {known}")
        child = next((c for c in self.node.root.workers() if c.spec.id == actor_id), None)
        if child is None or child.handle is None:
            raise AdminFailure("not_found", f"no running actor {actor_id!r}")
        result = {
            "actor": actor_id,
            "pid": child.handle.pid,
            "incarnation": child.incarnation,
            "signal": sig_name,
        }
        if sig is None:  # CRASH: the actor raises in its own loop, whatever its placement
            self.node.send_control(actor_id, child.incarnation, Crash(reason="admin chaos"))
            reply(ok(result))
            return
        if child.spec.placement == "thread" or child.handle.pid in (None, os.getpid()):
            raise AdminFailure("invalid_message", f"{actor_id} does not run in its own process")
        os.kill(child.handle.pid, sig)
        reply(ok(result))

    def cmd_shutdown(self, cmd: p.Shutdown, reply: Reply) -> None:
        """Stop the node in an orderly way."""
        self.node.request_stop("admin shutdown")
        reply(ok())


def _check_actor(path: str) -> None:
    """Raise ValueError naming ``spec.actor`` unless ``path`` is an importable Actor class."""
    try:
        load_actor_class(path)
    except (ImportError, TypeError, ValueError) as e:
        raise ValueError(f"spec.actor: cannot use {path!r}: {e}") from None


def _strategy_section(config: Any, args: dict[str, Any]) -> StrategySection:
    """Validate add-strategy's arguments in full, with the config file's rules; nothing is changed.

    Raises ``invalid_spec`` naming the field for a bad value (which arguments exist is
    :class:`~sniperbot.admin.protocol.AddStrategy`'s to say). A given ``quantity`` or
    ``bar_interval_s`` must be a finite number > 0 (a NaN arrives as JSON ``null``): it is
    never replaced by the default.
    """
    fields = dict(args)
    for name in ("quantity", "bar_interval_s"):
        if name in fields and (fields[name] is None or isinstance(fields[name], bool)):
            raise AdminFailure(
                "invalid_spec", f"{name}: must be a finite number > 0, received {fields[name]!r}"
            )
    if fields.get("symbol") is None:
        # Without --symbol: the first symbol of the strategy's venue (an unknown venue is named below).
        venue = config.venue(fields.get("venue") or config.venues[0].name)
        fields["symbol"] = venue.symbol_names()[0] if venue is not None else ""
    if "quantity" not in fields:
        fields["quantity"] = _default_quantity(config, fields["symbol"])
    try:
        section = msgspec.convert(fields, StrategySection)
        check_strategy(config, section, "add-strategy")
    except msgspec.ValidationError as e:
        raise AdminFailure("invalid_spec", validation_message(e)) from None
    except ConfigError as e:
        raise AdminFailure("invalid_spec", str(e).removeprefix("invalid config add-strategy at ")) from None
    return section


def _default_quantity(config: Any, symbol: Any) -> float:
    """Without --quantity: the quantity of a configured strategy on the same symbol, else 1% of a unit."""
    same = [s.quantity for s in config.strategies if s.symbol == symbol]
    return same[0] if same else 0.01
