"""The Solana gateway, the generic executor and an order source in one process of their own (kill -9 tests).

``python -m tests.solana.sol_node '<json spec>'`` with the wallet key in ``SOL_TEST_WALLET_KEY`` (a test-only
key; read once, removed from the environment). Builds the :class:`ActorRuntime`\\s the way
``tests/evm/evm_node.py`` does, queues the spec's orders to the executor (a restarted process queues them
again: the executor's journal drops what it has), prints ``ready`` and runs until SIGTERM (a clean stop) or
until the gateway's fault hook SIGKILLs the whole process.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

import msgspec

from sniperbot.keystore import Credentials
from sniperbot.messages import Order
from tests.venues_ccxt.test_gateway import _OUTGOING, Actors

KEY_ENV = "SOL_TEST_WALLET_KEY"


def main() -> None:
    """Run until SIGTERM (see the module docstring)."""
    spec = json.loads(sys.argv[1])
    key = os.environ.pop(KEY_ENV)
    launch = Credentials("sol-wallet", "solana", "2026-01-01T00:00:00Z", {"secret_key": key}).to_launch()
    del key
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    actors = Actors(Path(spec["run_dir"]))
    actors.auth_key = bytes.fromhex(spec["auth_key"])  # the same node secret in every incarnation
    venue = spec["gateway"]["venue"]
    gateway, executor = f"gateway.{venue}", f"executor.{venue}"
    actors.start(gateway, "sniperbot.venues.solana.gateway:SolanaGateway", spec["gateway"], launch)
    actors.start(executor, "sniperbot.execution.executor:Executor", {"venue": venue, "gateway": gateway})
    actors.start("risk_guard", "tests.venues_ccxt.test_gateway:Driver", {})
    for raw in spec["orders"]:
        _OUTGOING["risk_guard"].put((executor, msgspec.json.decode(raw, type=Order)))
    print("ready", flush=True)
    stop.wait()
    actors.stop_all()
    sys.stdout.flush()
    os._exit(0)  # daemon threads of the runtimes must not hold the exit


if __name__ == "__main__":
    main()
