"""Signal latency of the social analysers: a post appears at the (local) service -> its ``Post`` on the
bus (the scanner) -> the ``Signal`` about it on the bus (the sentiment aggregator).

Each scanner, and the sentiment aggregator (``SentimentActor``, default settings), runs as an actor
(``ActorRuntime`` in a thread, as the tests run it) on a real run dir, with a real bus proxy and a
subscriber in this process, against ``tests/analytics/servers.py`` (the services' wire formats on
127.0.0.1). Posts are added at random moments (spread evenly over the poll interval, or for the
long-polled Telegram over the aggregator's flush interval), one at a time; each names a fresh cashtag
(``$LA000``: a subject no other post names, see :mod:`sniperbot.analytics.sentiment.subjects`), so the
first ``mentions`` Signal for that subject is the one this post caused. Per post: **post -> Post** (its
Post's arrival on the bus minus the moment it was added at the server), **Post -> Signal** (the first
``mentions`` Signal's arrival minus the Post's) and their sum **post -> Signal**, the end-to-end figure
of issue 15.

Printed per scanner: the poll interval used here and the floor of what the scanner can do:

* **measured floor**: one bare HTTP round trip to the same local server (aiohttp, same request) plus
  the scanner's hand-over period to the actor loop (``DRAIN_INTERVAL_S``), the most that part takes. A
  polling scanner's expected latency is the round trip plus half the hand-over period (a fetched post
  waits for the next drain) plus half its poll interval on average (a post waits for the next poll), at
  most the floor plus one interval; a long-polling one (Telegram) the round trip plus half the hand-over.
* **production poll floor**: the shortest poll interval per target that the service's documented
  limits allow (approximate; the scanner honours the headers whatever is configured), so the latency to
  expect in production is about half of it.

The aggregator's floor: it does not publish on each post but on a timer every ``flush_interval_s``
(0.2 s; a fixed cadence, not a debounce restarted by each post), journaling the changed buckets first,
so a Post waits for the next tick: uniform in [0, flush interval], mean half of it, plus the journal
write and one bus hop. Printed: that floor, and the split of Post -> Signal at the flush's timestamp
(``Signal.ts_ns``, taken after the journal write): the wait for the tick (+ journal) and the publish ->
bus part. The end-to-end figure to expect is the scanner's expected latency plus half the flush interval.

``--quick``: fewer posts. The last line is the JSON of every figure.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench._common import emit, fmt_latency, latency_ms, parse_args, percentile, ratio, short_tmp

# Documented limits -> the shortest sensible poll per target (approximate, for the printout only).
PRODUCTION_POLL_FLOOR_S = {
    "reddit": 6.0,  # unauthenticated JSON: ~10 requests/min per client
    "x": 15.0,  # recent search, Basic tier: 60 requests / 15 min per app
    "telegram_channel": 0.0,  # long polling: the server answers when a post comes
    "discord": 1.0,  # ~5 requests / 5 s per channel route
}
POLL_S = {"reddit": 0.25, "x": 0.25, "discord": 0.25, "telegram_channel": 0.25}


class Harness:
    """A bus proxy, a subscriber timing each Post and first ``mentions`` Signal, analysers in threads."""

    def __init__(self, run_dir: Path) -> None:
        import zmq

        from sniperbot.messages import topics as topic
        from sniperbot.rundir import RunDir
        from sniperbot.transport.bus import BusProxy, Subscriber

        self.run_dir = run_dir
        RunDir(run_dir).create()
        self.auth_key = os.urandom(32)
        self.zctx = zmq.Context()
        rundir = RunDir(run_dir)
        self.proxy = BusProxy(self.zctx, rundir.bus_in, rundir.bus_out)
        self.proxy.start()
        self.sub = Subscriber(self.zctx, rundir.bus_out, (topic.POSTS, topic.SIGNALS))
        self.arrivals: dict[str, int] = {}  # post_id -> time.time_ns() at arrival
        # subject -> (time.time_ns() at arrival, Signal.ts_ns) of its first ``mentions`` Signal
        self.signals: dict[str, tuple[int, int]] = {}
        self.lock = threading.Lock()
        self.running = True
        self.runtimes: list[tuple[Any, threading.Thread]] = []
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        from sniperbot.messages.signals import Post, Signal

        while self.running:
            if not self.sub.socket.poll(10):
                continue
            _, envelope = self.sub.recv()
            now = time.time_ns()
            payload = envelope.payload
            if isinstance(payload, Post):
                with self.lock:
                    self.arrivals.setdefault(payload.post_id, now)
            elif isinstance(payload, Signal) and payload.kind == "mentions":
                with self.lock:
                    self.signals.setdefault(payload.subject, (now, payload.ts_ns))

    def start(self, actor_id: str, actor: str, args: dict[str, Any]) -> None:
        """One analyser actor (a scanner or the aggregator) in a thread."""
        from sniperbot.actors.runtime import ActorLaunch, run_in_thread

        launch = ActorLaunch(
            actor_id=actor_id,
            actor=actor,
            args=args,
            run_dir=str(self.run_dir),
            incarnation=1,
            heartbeat_interval_s=3600.0,
            journal_durability="process",
            auth_key=self.auth_key,
            node_life="bench",
        )
        self.runtimes.append(run_in_thread(launch))

    def arrived(self, post_id: str) -> int | None:
        """When ``post_id`` reached the bus (None: not yet)."""
        with self.lock:
            return self.arrivals.get(post_id)

    def signalled(self, subject: str) -> tuple[int, int] | None:
        """When the first ``mentions`` Signal about ``subject`` reached the bus, and its ``ts_ns``."""
        with self.lock:
            return self.signals.get(subject)

    def close(self) -> None:
        """Stop the actors, the subscriber and the proxy."""
        for runtime, thread in self.runtimes:
            runtime.stop()
            thread.join(10)
        self.running = False
        self.thread.join(5)
        self.sub.close()
        self.proxy.stop()
        self.zctx.destroy(linger=0)


def _round_trip_ns(url: str, headers: dict[str, str], n: int) -> list[int]:
    """Bare aiohttp GETs of ``url`` (the floor: what one poll costs at least)."""
    import aiohttp

    async def run() -> list[int]:
        out = []
        async with aiohttp.ClientSession(headers=headers) as session:
            for _ in range(n):
                t0 = time.perf_counter_ns()
                async with session.get(url) as r:
                    await r.read()
                out.append(time.perf_counter_ns() - t0)
        return out

    return asyncio.run(run())


def _wait(probe: Any, deadline: float) -> Any:
    """``probe()`` once it is not None, or None at ``deadline`` (``time.monotonic()``)."""
    while (found := probe()) is None and time.monotonic() < deadline:
        time.sleep(0.001)
    return found


def _signal_figures(
    to_signal: list[int],
    parts: list[tuple[int, int, int]],
    scanner_expected_ms: float,
    flush_ms: float,
    n: int,
) -> dict[str, Any]:
    """Print the aggregator's part and the end-to-end latency of one scanner's posts; return the figures."""
    aggregator = latency_ms([whole for whole, _, _ in parts])
    tick = latency_ms([wait for _, wait, _ in parts])
    publish = latency_ms([hop for _, _, hop in parts])
    total = latency_ms(to_signal)
    expected_ms = scanner_expected_ms + flush_ms / 2
    print(fmt_latency("  Post -> Signal (aggregator)", aggregator, "ms"))
    print(
        f"    floor: the next flush tick, 0..{flush_ms:.0f} ms (expected p50 ~{flush_ms / 2:.0f} ms, "
        f"p50/expected {ratio(aggregator['p50'], flush_ms / 2)}); of which to the flush's stamp "
        f"(tick wait + journal) p50 {tick['p50']} ms p99 {tick['p99']} ms, stamp -> bus (publish + hop) "
        f"p50 {publish['p50']} ms p99 {publish['p99']} ms"
    )
    print(fmt_latency("  post -> Signal (end to end)", total, "ms"))
    print(
        f"    expected p50 ~{expected_ms:.1f} ms (scanner's + half the flush interval); "
        f"p50/expected {ratio(total['p50'], expected_ms)}"
    )
    return {
        "post_to_signal": {
            **total,
            "expected_p50_ms": round(expected_ms, 2),
            "ratio_p50_to_expected": ratio(total["p50"], expected_ms),
            "lost": n - len(to_signal),
        },
        "post_msg_to_signal": {
            **aggregator,
            "expected_p50_ms": flush_ms / 2,
            "ratio_p50_to_expected": ratio(aggregator["p50"], flush_ms / 2),
            "to_flush_stamp_p50_ms": tick["p50"],
            "to_flush_stamp_p99_ms": tick["p99"],
            "stamp_to_bus_p50_ms": publish["p50"],
            "stamp_to_bus_p99_ms": publish["p99"],
        },
    }


def main() -> None:
    """Measure each scanner's post latency and the aggregator's signal latency against their floors."""
    import msgspec

    from sniperbot.analytics.config import AnalyserConfig
    from sniperbot.analytics.scanners.base import DRAIN_INTERVAL_S
    from sniperbot.analytics.sentiment.config import SentimentConfig
    from tests.analytics.servers import SocialServer

    args = parse_args(" ".join(__doc__.split("\n\n")[0].split()))
    n = 15 if args.quick else 60
    server = SocialServer().start()
    sentiment = SentimentConfig(id="sentiment")  # the product's defaults: its cadence is what is measured
    flush_ms = sentiment.flush_interval_s * 1e3
    figures: dict[str, Any] = {
        "posts_per_scanner": n,
        "drain_interval_ms": DRAIN_INTERVAL_S * 1e3,
        "flush_interval_ms": flush_ms,
    }
    with short_tmp() as tmp:
        token = tmp / "tg.token"
        token.write_text(server.bot_token)
        xtoken = tmp / "x.token"
        xtoken.write_text(server.x_token)
        entries = {
            "reddit": {"subreddits": ["CryptoCurrency"]},
            "x": {"queries": ["$BTC"], "bearer_token_file": str(xtoken)},
            "discord": {"channel_ids": ["1104568310125531156"], "bot_token": server.discord_token},
            "telegram_channel": {
                "channels": ["@whalealerts"],
                "bot_token_file": str(token),
                "long_poll_s": 10,
            },
        }
        add = {
            "reddit": lambda text: server.add_reddit("CryptoCurrency", text),
            "x": lambda text: server.add_tweet("$BTC", text),
            "discord": lambda text: server.add_discord("1104568310125531156", text),
            "telegram_channel": lambda text: server.add_channel_post("whalealerts", -1001, text),
        }
        floor_urls = {
            "reddit": (f"{server.url}/r/CryptoCurrency/new.json?limit=100", {}),
            "x": (
                f"{server.url}/2/tweets/search/recent?query=%24BTC",
                {"Authorization": f"Bearer {server.x_token}"},
            ),
            "discord": (
                f"{server.url}/api/v10/channels/1104568310125531156/messages?limit=100",
                {"Authorization": f"Bot {server.discord_token}"},
            ),
            "telegram_channel": (f"{server.url}/bot{server.bot_token}/getUpdates?timeout=0", {}),
        }
        harness = Harness(tmp / "run")
        try:
            for kind, extra in entries.items():
                entry = {
                    "kind": kind,
                    "id": kind,
                    "base_url": server.url,
                    "poll_interval_s": POLL_S[kind],
                    **extra,
                }
                section = msgspec.convert(entry, AnalyserConfig)
                harness.start(f"analyser.{kind}", section.actor_path, section.actor_args())
            harness.start(f"analyser.{sentiment.id}", sentiment.actor_path, sentiment.actor_args())
            time.sleep(1.0)  # joined the bus, first polls done
            print(f"social_latency: {n} posts per scanner, local services on {server.url}")
            print(
                f"  aggregator: flush interval {flush_ms:.0f} ms (a fixed timer, not a debounce): a Post "
                f"waits for the next tick, floor 0..{flush_ms:.0f} ms, expected mean ~{flush_ms / 2:.0f} ms, "
                "+ journal write + one bus hop"
            )
            rng = random.Random(7)
            for k, kind in enumerate(entries):
                samples: list[int] = []  # post -> Post
                to_signal: list[int] = []  # post -> Signal
                parts: list[tuple[int, int, int]] = []  # Post -> Signal: whole, to the flush's ts, ts -> bus
                # The wait before each post, from the last one's Signal (just after a flush tick): spread
                # evenly (stratified, in random order) over the period that decides its latency, so n posts
                # sample every phase instead of a lucky or unlucky draw. A polling scanner's post waits
                # for its next poll (its Post then meets the flush timer at the phase the two timers
                # beat to); a long-polled post reaches the bus at once and waits for the next flush tick.
                period = sentiment.flush_interval_s if kind == "telegram_channel" else POLL_S[kind]
                order = rng.sample(range(n), n)
                for i in range(n):
                    time.sleep(period * (order[i] + rng.random()) / n)
                    tag = f"L{chr(ord('A') + k)}{i:03d}"  # a fresh cashtag: this post's own subject
                    t_add = time.time_ns()
                    post_id = add[kind](f"post {i} ${tag} looks strong")
                    deadline = time.monotonic() + 10
                    arrived = _wait(lambda: harness.arrived(post_id), deadline)  # noqa: B023 - called now
                    signalled = _wait(lambda: harness.signalled(tag), deadline)  # noqa: B023 - called now
                    if arrived is not None:
                        samples.append(arrived - t_add)
                    if signalled is not None:
                        to_signal.append(signalled[0] - t_add)
                        if arrived is not None:
                            at, ts = signalled
                            parts.append((at - arrived, ts - arrived, at - ts))
                url, headers = floor_urls[kind]
                rtt = sorted(_round_trip_ns(url, headers, 20))
                floor_ms = percentile(rtt, 50) / 1e6 + DRAIN_INTERVAL_S * 1e3
                stats = latency_ms(samples)
                poll_wait_ms = 0 if kind == "telegram_channel" else POLL_S[kind] * 1e3 / 2
                expected_ms = floor_ms - DRAIN_INTERVAL_S * 1e3 / 2 + poll_wait_ms  # mean waits: half of each
                print(f"  {kind}")
                print(fmt_latency("  post -> Post (scanner)", stats, "ms"))
                print(
                    f"    poll interval used {POLL_S[kind] * 1e3:.0f} ms"
                    f"{' (long poll: the server answers at once)' if kind == 'telegram_channel' else ''}; "
                    f"measured floor {floor_ms:.2f} ms (HTTP round trip + hand-over); "
                    f"expected p50 ~{expected_ms:.1f} ms; p50/expected {ratio(stats['p50'], expected_ms)}; "
                    f"production poll floor {PRODUCTION_POLL_FLOOR_S[kind]:g} s per target"
                )
                figures[kind] = {
                    **stats,
                    "poll_interval_ms": POLL_S[kind] * 1e3,
                    "floor_ms": round(floor_ms, 3),
                    "expected_p50_ms": round(expected_ms, 2),
                    "ratio_p50_to_expected": ratio(stats["p50"], expected_ms),
                    "lost": n - len(samples),
                    "production_poll_floor_s": PRODUCTION_POLL_FLOOR_S[kind],
                }
                figures[kind].update(_signal_figures(to_signal, parts, expected_ms, flush_ms, n))
        finally:
            harness.close()
            server.stop()
    emit("social_latency", figures)


if __name__ == "__main__":
    main()
