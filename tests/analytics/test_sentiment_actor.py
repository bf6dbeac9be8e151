"""The sentiment aggregator in a real node: posts in, signals out, dedup, stale, kill -9 keeps the windows.

The node runs the ``[[analysers]] kind = "sentiment"`` entry from its config; the posts come from a
stand-in scanner (:mod:`tests.analytics.sentiment_feeder`) hot-added as ``analyser.feed``, so every post
and status crosses the real bus signed by a real analyser, and the test reads the signals off the bus.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from sniperbot.messages import AnalyserStatus, Signal, decode_envelope
from sniperbot.messages import topics as topic
from sniperbot.rundir import RunDir
from sniperbot.transport.bus import Subscriber, split_message
from tests.analytics.sentiment_feeder import FEEDER_ACTOR
from tests.conftest import FAST_CONFIG, RunningNode, eventually, sniperbot

SENTIMENT = """
[[analysers]]
kind = "sentiment"
id = "sentiment"
bucket_s = 1
windows_s = [1, 300]
z_history = 4
min_history = 2
flush_interval_s = 0.05
publish_interval_s = 0.3
silent_after_s = 1.0  # the feeder reports every 0.2 s
universe = ["PEPE"]  # a bare PEPE counts (BTC and ETH are traded: known already)
"""


class Bus:
    """Every signal and the aggregator's statuses, as (incarnation, payload), read off the node's bus."""

    def __init__(self, run_dir: Path) -> None:
        self.zctx = zmq.Context()
        self.sub = Subscriber(
            self.zctx, RunDir(run_dir).bus_out, (topic.SIGNALS, topic.analyser_status("sentiment"))
        )
        self.seen: list[tuple[int, str, Any]] = []

    def poll(self) -> list[tuple[int, str, Any]]:
        while self.sub.socket.poll(0):
            name, frame = split_message(self.sub.socket.recv())
            envelope = decode_envelope(frame)
            self.seen.append((envelope.incarnation, name.decode(), envelope.payload))
        return self.seen

    def last(self, name: str, since: int = 0, incarnation: int = 0) -> Signal | None:
        """The last signal on topic ``name`` among the ones seen after index ``since``."""
        found = [p for inc, n, p in self.poll()[since:] if n == name and inc >= incarnation]
        return found[-1] if found else None

    def close(self) -> None:
        self.sub.close()
        self.zctx.term()


@pytest.fixture
def sentiment_node(short_tmp: Path) -> Iterator[tuple[RunningNode, Path]]:
    config = short_tmp / "node.toml"
    config.write_text(FAST_CONFIG + SENTIMENT)
    node = RunningNode(short_tmp / "run", config)
    try:
        yield node, short_tmp / "feed.jsonl"
    finally:
        node.stop()


def _admin(node: RunningNode, *args: str) -> dict[str, Any]:
    result = sniperbot("admin", "--run-dir", str(node.run_dir), *args, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def _feed(script: Path, *orders: dict[str, Any]) -> None:
    with script.open("a") as f:
        f.write("".join(json.dumps(o) + "\n" for o in orders))


def _post(post_id: str, text: str, engagement: float = 0.0, platform: str = "reddit") -> dict[str, Any]:
    return {"post": {"platform": platform, "post_id": post_id, "text": text, "engagement": engagement}}


PEPE_MENTIONS = topic.signal("PEPE", "mentions", "sentiment", 300)
PEPE_SENTIMENT = topic.signal("PEPE", "sentiment", "sentiment", 300)
PEPE_Z_1S = topic.signal("PEPE", "mentions_z", "sentiment", 1)
BTC_SENTIMENT = topic.signal("BTC", "sentiment", "sentiment", 300)


def test_posts_in_signals_out_dedup_stale_and_kill_9(sentiment_node: tuple[RunningNode, Path]) -> None:
    node, script = sentiment_node
    bus = Bus(node.run_dir)
    try:
        # The aggregator's own status on the bus: the analysis supervisor is up.
        eventually(lambda: bus.last(topic.analyser_status("sentiment")), 60, what="the aggregator's status")
        feeder = {"id": "analyser.feed", "actor": FEEDER_ACTOR, "args": {"script": str(script)}}
        _admin(node, "start-child", "--sup", "analysis", "--spec", json.dumps(feeder))
        # Posts in -> per-subject signals out, each saying where it came from.
        _feed(
            script,
            _post("p1", "$PEPE to the moon 🚀", engagement=120),
            _post("p2", "wagmi, PEPE holders eating good", engagement=3),
            _post("p3", "pepe coin? $PEPE bullish breakout"),
            _post("b1", "bitcoin dumping, longs rekt"),
            _post("n1", "nothing to see here"),
        )
        mentions = eventually(
            lambda: (s := bus.last(PEPE_MENTIONS)) and s.count == 3 and not s.stale and s, 20, what="3 PEPE"
        )
        assert (mentions.value, mentions.source, mentions.origin, mentions.window_s) == (
            3.0,
            "sentiment",
            "feed",
            300,
        )
        sentiment = eventually(lambda: bus.last(PEPE_SENTIMENT), 5, what="PEPE sentiment")
        assert sentiment.value > 0.3 and sentiment.confidence == pytest.approx(3 / 13)
        assert eventually(lambda: bus.last(BTC_SENTIMENT), 5, what="BTC sentiment").value < -0.3

        # The same posts again (a second scanner, a re-sent page) count once; a new one counts.
        _feed(script, _post("p1", "$PEPE to the moon 🚀"), _post("p2", "wagmi PEPE"), _post("p4", "$PEPE gm"))
        eventually(lambda: (s := bus.last(PEPE_MENTIONS)) and s.count == 4, 10, what="4 PEPE mentions")
        status = eventually(
            lambda: (s := bus.last(topic.analyser_status("sentiment"))) and s.dropped >= 2 and s, 10
        )
        assert isinstance(status, AnalyserStatus) and status.items == 5 and not status.stale

        # The only source says it is stale: every signal resting on it says so, and recovers with it.
        _feed(script, {"stale": True})
        eventually(lambda: (s := bus.last(PEPE_MENTIONS)) and s.stale, 10, what="stale PEPE signals")
        _feed(script, {"stale": False})
        eventually(lambda: (s := bus.last(PEPE_MENTIONS)) and not s.stale, 10, what="fresh PEPE signals")

        # kill -9: the new incarnation's first signals are the windows as they were, z-score history
        # included (without the journal: no PEPE signal at all, then a z-score only after 2 more windows).
        eventually(lambda: bus.last(PEPE_Z_1S), 15, what="a 1 s mentions_z for PEPE")
        victim = node.workers()["analyser.sentiment"]
        os.kill(victim["pid"], signal.SIGKILL)
        incarnation = victim["incarnation"] + 1  # the restarted one's signals carry it in their envelope
        first = eventually(
            lambda: next((p for i, n, p in bus.poll() if i == incarnation and n == PEPE_MENTIONS), None),
            30,
            what="the restarted aggregator's first PEPE signal",
        )
        assert first.count == 4
        first_round = [
            p
            for inc, n, p in bus.poll()
            if inc == incarnation and isinstance(p, Signal) and p.ts_ns == first.ts_ns
        ]
        assert any(p.kind == "mentions_z" and p.window_s == 1 for p in first_round), first_round
        # ... and the dedup set: the old posts again plus one new one make 5, not 9.
        _feed(script, *(_post(f"p{i}", "$PEPE") for i in range(1, 6)))
        eventually(lambda: (s := bus.last(PEPE_MENTIONS)) and s.count == 5, 10, what="5 PEPE mentions")

        # A source silent beyond silent_after_s is stale too.
        _feed(script, {"silent": True})
        eventually(lambda: (s := bus.last(PEPE_MENTIONS)) and s.stale, 10, what="stale after silence")
    finally:
        bus.close()
