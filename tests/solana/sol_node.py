"""The Solana gateway, the generic executor and an order source in one process of their own (kill -9 tests).

``python -m tests.solana.sol_node '<json spec>'`` with the wallet key in ``SOL_TEST_WALLET_KEY`` (a test-only
key; read once, removed from the environment). Builds the :class:`ActorRuntime`\\s the way
``tests/evm/evm_node.py`` does, queues the spec's orders to the executor (a restarted process queues them
again: the executor's journal drops what it has), prints ``ready`` and runs until SIGTERM (a clean stop) or
until the gateway's fault hook SIGKILLs the whole process.

Its order source (:class:`Source`, with the risk guard's id) and the runtime set-up are small copies of
``tests/venues_ccxt/test_gateway.py``'s ``Driver`` and ``Actors``: importing that module imports ccxt (3-7 s
per process start, twice per kill test), which this process never uses.
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import msgspec

from sniperbot.actors.base import Actor
from sniperbot.actors.runtime import ActorLaunch, ActorRuntime, run_in_thread
from sniperbot.keystore import Credentials
from sniperbot.messages import Envelope, Order, Payload
from sniperbot.rundir import RunDir

KEY_ENV = "SOL_TEST_WALLET_KEY"


_ORDERS: queue.SimpleQueue[tuple[str, Payload]] = queue.SimpleQueue()


class Source(Actor):
    """Sends the queued orders from its own loop (the risk guard's id: the executor takes orders from it)."""

    inbox = True

    def on_start(self) -> None:
        """Poll the queue."""
        self.ctx.every(0.01, self._pump)

    def _pump(self) -> None:
        while not _ORDERS.empty():
            dest, payload = _ORDERS.get()
            self.ctx.send(dest, payload)

    def on_message(self, envelope: Envelope) -> None:
        """Events from the executor: nothing to do."""


def _start(run_dir: Path, auth_key: bytes, actor_id: str, actor: str, args: dict[str, Any],
           credentials: bytes = b"") -> tuple[ActorRuntime, threading.Thread]:  # fmt: skip
    launch = ActorLaunch(
        actor_id=actor_id,
        actor=actor,
        args=args,
        run_dir=str(run_dir),
        incarnation=1,
        heartbeat_interval_s=3600.0,  # no supervisor here: never declare ourselves orphaned
        journal_durability="process",
        auth_key=auth_key,
        node_life="t1",
        credentials=credentials,
    )
    return run_in_thread(launch, step_ms=50)


def main() -> None:
    """Run until SIGTERM (see the module docstring)."""
    spec = json.loads(sys.argv[1])
    key = os.environ.pop(KEY_ENV)
    launch = Credentials("sol-wallet", "solana", "2026-01-01T00:00:00Z", {"secret_key": key}).to_launch()
    del key
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    run_dir = Path(spec["run_dir"])
    RunDir(run_dir).create()
    auth_key = bytes.fromhex(spec["auth_key"])  # the same node secret in every incarnation
    venue = spec["gateway"]["venue"]
    gateway, executor = f"gateway.{venue}", f"executor.{venue}"
    running = [
        _start(run_dir, auth_key, gateway, "sniperbot.venues.solana.gateway:SolanaGateway", spec["gateway"],
               launch),
        _start(run_dir, auth_key, executor, "sniperbot.execution.executor:Executor",
               {"venue": venue, "gateway": gateway}),
        _start(run_dir, auth_key, "risk_guard", "tests.solana.sol_node:Source", {}),
    ]  # fmt: skip
    # The runtime imported this file as tests.solana.sol_node, not as __main__: its queue is that module's.
    orders = importlib.import_module("tests.solana.sol_node")._ORDERS
    for raw in spec["orders"]:
        orders.put((executor, msgspec.json.decode(raw, type=Order)))
    print("ready", flush=True)
    stop.wait()
    for runtime, thread in reversed(running):
        runtime.stop()
        thread.join(30)
    sys.stdout.flush()
    os._exit(0)  # daemon threads of the runtimes must not hold the exit


if __name__ == "__main__":
    main()
