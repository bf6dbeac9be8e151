"""Issue #8 point 9: a quick restart does not adopt old actors; identities are unique across node lives.

The reproduction: kill -9 the node, start a new one on the same run dir within a second,
while an actor of the old life (here played by this test, speaking as ``feed.sim#1``
with real zmq sockets) is still alive, heartbeating on the control socket and
publishing prices on the bus.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from sniperbot.messages import Envelope, Heartbeat, Quote, Stop, decode_envelope, encode_envelope
from sniperbot.rundir import RunDir
from tests.conftest import FAST_CONFIG, RunningNode, eventually, sniperbot

# Short breaker times: the new life starts fail-closed (unclean shutdown) and must trade again soon.
CONFIG = FAST_CONFIG + "\n[breakers]\ncooldown_s = 0.5\nprobe_s = 0.5\n"
FAKE_BID = 1.0  # a price no real BTC quote of the sim market comes near


class OldFeed:
    """What a ``feed.sim#1`` of the killed node would do: heartbeat to the node and publish prices."""

    def __init__(self, run_dir: Path) -> None:
        self.rundir = RunDir(run_dir)
        self.received: list[Any] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        """Start heartbeating and publishing in a thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop and close the sockets."""
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        ctx = zmq.Context()
        control = ctx.socket(zmq.DEALER)
        control.setsockopt(zmq.ROUTING_ID, b"feed.sim#1")
        control.setsockopt(zmq.RECONNECT_IVL, 10)
        control.connect(self.rundir.control)
        pub = ctx.socket(zmq.PUB)
        pub.setsockopt(zmq.RECONNECT_IVL, 10)
        pub.connect(self.rundir.bus_in)
        topic = "md.sim.quote.BTC/USDT."
        seq = 0
        next_hb = 0.0
        try:
            while not self._stop.is_set():
                seq += 1
                now = time.time_ns()
                quote = Quote(
                    venue="sim",
                    symbol="BTC/USDT",
                    bid=FAKE_BID,
                    bid_size=50.0,
                    ask=FAKE_BID + 0.01,
                    ask_size=50.0,
                    ts_ns=now,
                )
                pub.send_multipart(
                    [topic.encode(), encode_envelope(Envelope(topic, "feed.sim", 1, seq, now, quote))]
                )
                if time.monotonic() >= next_hb:
                    next_hb = time.monotonic() + 0.1
                    hb = Envelope("ctl", "feed.sim", 1, 0, now, Heartbeat(seq=seq, ts_ns=now))
                    control.send(encode_envelope(hb), zmq.NOBLOCK)
                while control.poll(0):
                    self.received.append(decode_envelope(control.recv()).payload)
                time.sleep(0.002)
        finally:
            control.close(0)
            pub.close(0)
            ctx.term()


def _fills(run_dir: Path) -> list[dict[str, Any]]:
    result = sniperbot("journal", "--run-dir", str(run_dir), "fills", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_quick_restart_does_not_adopt_an_old_actor(short_tmp: Path) -> None:
    config = short_tmp / "fast.toml"
    config.write_text(CONFIG)
    run_dir = short_tmp / "run"
    first = RunningNode(run_dir, config)
    second: RunningNode | None = None
    old = OldFeed(run_dir)
    try:
        assert first.wait_ready(60)["feed.sim"]["incarnation"] == 1
        eventually(lambda: _fills(run_dir), 60, what="the first life trades")
        first.process.kill()  # kill -9 the node alone: its actors may outlive it for a moment
        first.process.wait(10)
        first.stop()
        before = len(_fills(run_dir))
        second = RunningNode(run_dir, config)
        old.start()
        workers = second.wait_ready(60)
        # Identities are unique across node lives: the new feed is not #1 again.
        assert workers["feed.sim"]["incarnation"] > 1
        # The old identity is told to end itself.
        eventually(lambda: any(isinstance(p, Stop) for p in old.received), 30, what="a Stop for feed.sim#1")
        # Its prices are not taken: every new BTC fill is at a real market price.
        eventually(
            lambda: len([f for f in _fills(run_dir)[before:] if f["symbol"] == "BTC/USDT"]) >= 3,
            90,
            what="the new life trades BTC",
        )
        new_btc = [f for f in _fills(run_dir)[before:] if f["symbol"] == "BTC/USDT"]
        assert all(f["price"] > 1000 for f in new_btc), [(f["client_order_id"], f["price"]) for f in new_btc]
        assert second.workers()["feed.sim"]["restarts"] == 0
    finally:
        old.stop()
        for running in (first, second):
            if running is not None and running.process.poll() is None:
                running.stop()
