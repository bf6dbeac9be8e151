"""The six social scanners (issue #15 point 2) against local servers speaking each wire format.

Real components: each scanner actor in an :class:`ActorRuntime` (a thread of this process, the harness of
the gateway and pool watcher tests; its own OS process where a kill -9 is needed) on a real run dir with
a real LMDB journal, a real bus (the node's ``BusProxy``, started here as a node does) that the test
subscribes to, real HTTP over 127.0.0.1 to :mod:`tests.analytics.servers`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from sniperbot.actors.runtime import ActorLaunch, process_journal
from sniperbot.analytics.config import AnalyserConfig
from sniperbot.journal import keys
from sniperbot.messages import decode_envelope
from sniperbot.messages import topics as topic
from sniperbot.messages.signals import AnalyserStatus, Post, Signal
from sniperbot.rundir import RunDir
from sniperbot.transport.bus import BusProxy, Subscriber, split_message
from tests.analytics.servers import SocialServer, market_row, trending_item
from tests.conftest import FAST_CONFIG, ROOT, RunningNode, eventually
from tests.venues_ccxt.test_gateway import Actors, actors  # noqa: F401  (fixture)

ACTORS = {
    "reddit": "sniperbot.analytics.scanners.reddit:RedditScanner",
    "x": "sniperbot.analytics.scanners.x:XScanner",
    "telegram_channel": "sniperbot.analytics.scanners.telegram:TelegramChannelScanner",
    "discord": "sniperbot.analytics.scanners.discord:DiscordScanner",
    "rss": "sniperbot.analytics.scanners.rss:RssScanner",
    "coingecko": "sniperbot.analytics.scanners.coingecko:CoinGeckoScanner",
}
CHAT_ID = -1001234567890
DISCORD_CHANNEL = "1104568310125531156"


class Bus:
    """Every Post, Signal and AnalyserStatus on a real bus (proxy started here, as a node does)."""

    def __init__(self, run_dir: Path, proxy: bool = True) -> None:
        self.zctx = zmq.Context()
        rundir = RunDir(run_dir)
        self.proxy = BusProxy(self.zctx, rundir.bus_in, rundir.bus_out) if proxy else None
        if self.proxy is not None:
            self.proxy.start()
        self.sub = Subscriber(self.zctx, rundir.bus_out, (topic.POSTS, topic.SIGNALS, topic.ANALYSER_STATUS))
        self.seen: list[tuple[str, str, Any]] = []  # (topic, sender, payload)
        self.incarnations: dict[str, set[int]] = {}  # status source -> incarnations heard
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._receive, name="test-bus", daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        while self.running:
            if not self.sub.socket.poll(20):
                continue
            _, frame = split_message(self.sub.socket.recv())
            env = decode_envelope(frame)
            with self.lock:
                self.seen.append((env.topic, env.sender, env.payload))
                if isinstance(env.payload, AnalyserStatus):
                    self.incarnations.setdefault(env.payload.source, set()).add(env.incarnation)

    def sources_of_incarnation(self, incarnation: int) -> set[str]:
        """Analysers heard from (a status) in ``incarnation``."""
        with self.lock:
            return {source for source, seen in self.incarnations.items() if incarnation in seen}

    def posts(self, source: str) -> list[Post]:
        """Posts of ``source`` so far, in arrival order."""
        with self.lock:
            return [p for _, _, p in self.seen if isinstance(p, Post) and p.source == source]

    def statuses(self, source: str) -> list[AnalyserStatus]:
        """AnalyserStatus of ``source`` so far."""
        with self.lock:
            return [p for _, _, p in self.seen if isinstance(p, AnalyserStatus) and p.source == source]

    def signals(self, source: str) -> list[tuple[str, Signal]]:
        """(topic, Signal) of ``source`` so far."""
        with self.lock:
            return [(t, p) for t, _, p in self.seen if isinstance(p, Signal) and p.source == source]

    def wait_posts(self, source: str, n: int, timeout_s: float = 20.0) -> list[Post]:
        """Once at least ``n`` posts of ``source`` arrived, all of them."""
        return eventually(
            lambda: len(p := self.posts(source)) >= n and p, timeout_s, 0.01, what=f"{n} posts of {source}"
        )

    def close(self) -> None:
        """Stop receiving, close the subscriber and the proxy."""
        self.running = False
        self.thread.join(5)
        self.sub.close()
        if self.proxy is not None:
            self.proxy.stop()
        self.zctx.destroy(linger=0)


@pytest.fixture
def bus(actors: Actors) -> Iterator[Bus]:  # noqa: F811
    b = Bus(actors.run_dir)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def server() -> Iterator[SocialServer]:
    s = SocialServer().start()
    try:
        yield s
    finally:
        s.stop()


def settings(kind: str, server: SocialServer, tmp: Path, **extra: Any) -> dict[str, Any]:
    """The actor args of a valid ``[[analysers]]`` entry of ``kind`` (id = kind) aimed at the local server."""
    base: dict[str, Any] = {
        "kind": kind,
        "id": kind,
        "base_url": server.url,
        "poll_interval_s": 0.05,
        "status_interval_s": 0.2,
    }
    if kind == "reddit":
        base |= {"subreddits": ["CryptoCurrency", "SatoshiStreetBets"]}
    elif kind == "x":
        token = tmp / "x.token"
        token.write_text(server.x_token + "\n")
        base |= {"queries": ["$PEPE lang:en", "bitcoin"], "bearer_token_file": str(token)}
    elif kind == "telegram_channel":
        token = tmp / "tg.token"
        token.write_text(server.bot_token)
        base |= {"channels": ["@whalealerts", str(CHAT_ID)], "bot_token_file": str(token), "long_poll_s": 1}
    elif kind == "discord":
        base |= {"channel_ids": [DISCORD_CHANNEL], "bot_token": server.discord_token}
    elif kind == "rss":
        # A feed URL may carry a key in its query: it must not leak into posts, logs or the journal.
        base |= {
            "urls": [
                f"{server.url}/feeds/coindesk.rss?apikey=feed-SECRET",
                f"{server.url}/feeds/decrypt.atom",
            ]
        }
        del base["base_url"]
    elif kind == "coingecko":
        base |= {"coin_ids": ["bitcoin"]}
    base |= extra
    # What the node does: the [[analysers]] entry validated, then its actor_args() in the child spec.
    return msgspec.convert(base, AnalyserConfig).actor_args()


def seed(server: SocialServer, kind: str, tag: str, age_s: float = 0.0) -> list[str]:
    """One post per target of ``kind`` (texts carry ``tag``); their ids, as the scanner names them."""
    if kind == "reddit":
        return [
            server.add_reddit(s, f"{tag} {s}", "to the moon", age_s)
            for s in ("CryptoCurrency", "SatoshiStreetBets")
        ]
    if kind == "x":
        return [server.add_tweet(q, f"{tag} {q}", age_s) for q in ("$PEPE lang:en", "bitcoin")]
    if kind == "telegram_channel":
        return [server.add_channel_post("whalealerts", CHAT_ID - 1, f"{tag} whales")]
    if kind == "discord":
        return [server.add_discord(DISCORD_CHANNEL, f"{tag} gm", age_s)]
    if kind == "rss":
        return [server.add_entry(f, f"{tag} {f}", "ETF news", age_s) for f in ("coindesk", "decrypt")]
    raise AssertionError(kind)


POST_KINDS = ["reddit", "x", "telegram_channel", "discord", "rss"]


def test_each_post_scanner_publishes_new_posts_once_with_the_service_auth_and_not_old_news(
    server: SocialServer,
    actors: Actors,  # noqa: F811
    bus: Bus,
    tmp_path: Path,
) -> None:
    """Reddit, X, Telegram, Discord, RSS+Atom: a new post is a Post on social.<id>. with its fields."""
    old = {k: seed(server, k, "old", age_s=7200) for k in POST_KINDS if k != "telegram_channel"}
    # A Telegram post of a channel not listed is skipped (the listed one is CHAT_ID, or @whalealerts).
    server.add_channel_post("otherchannel", -100999, "not ours")
    # A malformed item (no creation time) is skipped and counted; it does not block the listing.
    server.reddit["CryptoCurrency"].insert(0, {"kind": "t3", "data": {"name": "t3_bad", "title": "?"}})
    server.updates.append({"update_id": 1, "channel_post": {"text": "no chat"}})
    for kind in POST_KINDS:
        actors.start(f"analyser.{kind}", ACTORS[kind], settings(kind, server, tmp_path, max_age_s=3600))
    new = {k: seed(server, k, "new") for k in POST_KINDS}
    for kind in POST_KINDS:
        posts = bus.wait_posts(kind, len(new[kind]))
        assert sorted(p.post_id for p in posts) == sorted(new[kind]), kind
        for p in posts:
            assert p.platform == ("telegram" if kind == "telegram_channel" else kind)
            assert p.text.startswith("new ") and p.ts_ns >= p.created_ns > time.time_ns() - 60e9
    time.sleep(0.3)  # several more polls: anything else would be a repeat or old news
    for kind in POST_KINDS:
        ids = [p.post_id for p in bus.posts(kind)]
        assert sorted(ids) == sorted(new[kind]), f"{kind}: repeated or old posts published: {ids}"
        assert not set(ids) & set(old.get(kind, [])), kind
    reddit = bus.posts("reddit")[0]
    assert reddit.url.startswith("https://www.reddit.com/r/") and reddit.engagement == 3
    assert "to the moon" in reddit.text and reddit.author == "satoshi_fan"
    tweet = bus.posts("x")[0]
    assert (
        tweet.engagement == 6
        and tweet.author == "2244994945"
        and tweet.channel in ("$PEPE lang:en", "bitcoin")
    )
    tg = bus.posts("telegram_channel")[0]
    assert tg.channel == "@whalealerts" and tg.url.startswith("https://t.me/whalealerts/")
    assert bus.posts("discord")[0].engagement == 2 and bus.posts("discord")[0].author == "nelly"
    assert {p.channel.rsplit(".", 1)[1] for p in bus.posts("rss")} == {"rss", "atom"}
    # The service's auth and identification on the wire.
    assert all(r["headers"]["Authorization"] == f"Bearer {server.x_token}" for r in server.of("x"))
    assert all(r["headers"]["Authorization"] == f"Bot {server.discord_token}" for r in server.of("discord"))
    assert all("sniperbot" in r["headers"]["User-Agent"] for r in server.of("reddit"))
    assert any(r["query"].get("since_id") for r in server.of("x"))
    assert any(r["query"].get("before", "").startswith("t3_") for r in server.of("reddit"))
    assert any(r["query"].get("after") for r in server.of("discord"))
    assert any(r["query"].get("offset") for r in server.of("telegram"))
    assert any("If-None-Match" in r["headers"] for r in server.of("rss"))
    assert all(r["query"]["allowed_updates"] == '["channel_post"]' for r in server.of("telegram"))
    # The cursors are journaled, without secrets.
    journal = process_journal(actors.run_dir, "process")
    cursors = journal.state_items(keys.SCANNER_CURSOR)
    assert {k.split("/")[2] for k, _ in cursors} == set(POST_KINDS)
    assert not [v for _, v in cursors if b"SECRET" in v]
    assert not [p for p in bus.posts("rss") if "SECRET" in p.channel]
    # Health: fresh, and counting what it published and refused (the old posts).
    status = eventually(
        lambda: [s for s in bus.statuses("reddit") if s.items == 2], 10, what="reddit status"
    )[-1]
    assert not status.stale and status.dropped >= 3 and status.errors == 0 and status.last_ok_ns > 0


def test_a_429_pauses_the_scanner_for_the_time_the_service_says(
    server: SocialServer,
    actors: Actors,  # noqa: F811
    bus: Bus,
    tmp_path: Path,
) -> None:
    """Each service's own 429 shape: Reddit/X headers, Discord and Telegram bodies, Retry-After."""
    wait = 1.0
    services = {
        "reddit": "reddit",
        "x": "x",
        "telegram_channel": "telegram",
        "discord": "discord",
        "rss": "rss",
    }
    for service in services.values():
        server.fail(service, ("429", wait))
    server.fail("coingecko", ("429", wait))
    server.trending = [trending_item("pepe", "pepe", 30, 0)]
    server.markets = {"pepe": market_row("pepe", "pepe", 30, 12.5, 3e8)}
    # Discord's and Reddit's successes also say nothing is left (Remaining 0, reset after 1 s).
    server.rate_remaining["discord"] = 0
    server.rate_remaining["reddit"] = 0
    server.rate_reset_s = wait
    for kind in [*services, "coingecko"]:
        # The pause must come from the service alone: the scanner polls every 0.05 s otherwise, and a
        # 429 that says nothing would wait backoff_start_s.
        args = settings(kind, server, tmp_path, backoff_start_s=0.05, backoff_max_s=0.1)
        actors.start(f"analyser.{kind}", ACTORS[kind], args)
    for kind in services:
        seed(server, kind, "after429")
    for kind in services:
        bus.wait_posts(kind, 1)
    eventually(lambda: bus.signals("coingecko"), 10, what="coingecko signals")
    for service in [*services.values(), "coingecko"]:
        times = [r["t"] for r in server.of(service)]
        assert len(times) >= 2, service
        gap = times[1] - times[0]
        assert gap >= wait * 0.95, f"{service}: asked again {gap:.3f} s after a 429 saying {wait} s"
    for service in ("discord", "reddit"):
        eventually(lambda s=service: len(server.of(s)) >= 3, 10, what=f"a third {service} request")
        times = [r["t"] for r in server.of(service)]
        assert times[2] - times[1] >= wait * 0.95, f"{service} asked again with nothing left"
    # A 429 is not an error: no backoff, no error count.
    assert all(s.errors == 0 for s in bus.statuses("discord"))


def test_a_scanner_goes_stale_while_the_service_is_down_and_recovers_without_secrets_in_sight(
    server: SocialServer,
    actors: Actors,  # noqa: F811
    bus: Bus,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Down: backoff, stale status; a 5xx naming the token's URL shows no token; up: fresh, posts flow."""
    caplog.set_level(logging.INFO, logger="sniperbot")
    kinds = ["telegram_channel", "reddit"]
    for kind in kinds:
        extra: dict[str, Any] = {"stale_after_s": 0.4, "backoff_start_s": 0.05, "backoff_max_s": 0.4}
        if kind == "telegram_channel":
            extra["long_poll_s"] = 0  # short polls: the stale limit is not stretched by a long poll
        actors.start(f"analyser.{kind}", ACTORS[kind], settings(kind, server, tmp_path, **extra))
    for kind in kinds:
        seed(server, kind, "before")
        bus.wait_posts(kind, 1)
    server.fail("telegram", ("503",))  # the error names /bot<token>/getUpdates: scrubbed
    eventually(lambda: any(s.errors for s in bus.statuses("telegram_channel")), 10, what="telegram error")
    seen = {k: len(bus.statuses(k)) for k in kinds}  # a loaded machine may flap before: only what follows
    server.down()
    for kind in kinds:
        stale = eventually(
            lambda k=kind: [s for s in bus.statuses(k)[seen[k] :] if s.stale], 10, what=f"{kind} stale"
        )[0]
        assert stale.errors >= 1 and stale.backoff_s > 0 and stale.detail
    for s in bus.statuses("telegram_channel"):
        assert server.bot_token not in s.detail and "tg-SECRET" not in s.detail
    assert any("<secret>" in s.detail for s in bus.statuses("telegram_channel"))
    time.sleep(0.3)  # a few backoff rounds
    server.up()
    for kind in kinds:
        seed(server, kind, "after")
        bus.wait_posts(kind, 2)
        fresh = eventually(
            lambda k=kind: (st := bus.statuses(k)) and not st[-1].stale and st[-1], 10, what=f"{kind} fresh"
        )
        assert fresh.backoff_s == 0
    # While down, the waits between attempts doubled up to the cap: a down server is not hammered.
    every = [s.backoff_s for s in bus.statuses("reddit")]
    waits = [w for i, w in enumerate(every) if i == 0 or w != every[i - 1]]  # the periodic ones repeat
    down = waits[waits.index(0.05) : waits.index(0.4) + 1]
    assert down == [0.05, 0.1, 0.2, 0.4], waits
    assert max(waits) == 0.4 and waits[-1] == 0
    logged = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert "tg-SECRET" not in logged and "x-bearer-SECRET" not in logged


def test_coingecko_signals_trending_and_markets_and_republishes_them_stale_when_down(
    server: SocialServer,
    actors: Actors,  # noqa: F811
    bus: Bus,
    tmp_path: Path,
) -> None:
    """trending_rank, price_change_24h, volume_24h by symbol; a coin leaving the list: 0; stale when down."""
    server.trending = [
        trending_item("pepe", "pepe", 30, 0),
        trending_item("fake-pepe", "pepe", 900, 1),  # shares the ticker: the bigger coin speaks for it
        trending_item("dogwifcoin", "wif", 50, 2),
    ]
    server.markets = {
        "bitcoin": market_row("bitcoin", "btc", 1, -1.5, 3.2e10),
        "pepe": market_row("pepe", "pepe", 30, 12.5, 3e8),
        "fake-pepe": market_row("fake-pepe", "pepe", 900, 400.0, 1e3),
        "dogwifcoin": market_row("dogwifcoin", "wif", 50, 3.0, 1e8),
    }
    key = tmp_path / "cg.key"
    key.write_text("CG-demo-SECRET")
    args = settings(
        "coingecko",
        server,
        tmp_path,
        api_plan="demo",
        api_key_file=str(key),
        stale_after_s=0.5,
        backoff_start_s=0.05,
        backoff_max_s=0.3,
    )
    actors.start("analyser.coingecko", ACTORS["coingecko"], args)

    def latest() -> dict[str, Signal]:
        return {t: s for t, s in bus.signals("coingecko")}

    eventually(lambda: len(latest()) >= 7, 10, what="7 signal topics")
    sig = latest()
    assert sig[topic.signal("PEPE", "trending_rank", "coingecko")].value == 1
    assert sig[topic.signal("PEPE", "trending_rank", "coingecko")].origin == "coingecko:pepe"
    assert sig[topic.signal("WIF", "trending_rank", "coingecko")].value == 3
    assert sig[topic.signal("PEPE", "price_change_24h", "coingecko")].value == 12.5
    assert sig[topic.signal("BTC", "volume_24h", "coingecko")].value == 3.2e10
    assert sig[topic.signal("BTC", "price_change_24h", "coingecko")].window_s == 86_400
    assert topic.signal("BTC", "trending_rank", "coingecko") not in sig
    assert all(r["headers"].get("x-cg-demo-api-key") == "CG-demo-SECRET" for r in server.of("coingecko"))
    server.trending = server.trending[:2]  # WIF leaves the list: said once, as rank 0
    eventually(
        lambda: latest()[topic.signal("WIF", "trending_rank", "coingecko")].value == 0, 10, what="WIF 0"
    )
    server.down()
    eventually(lambda: any(s.stale for s in bus.statuses("coingecko")), 10, what="coingecko stale")
    stale = eventually(
        lambda: (s := latest()[topic.signal("PEPE", "price_change_24h", "coingecko")]).stale and s,
        10,
        what="stale",
    )
    assert stale.value == 12.5
    server.up()
    eventually(
        lambda: not latest()[topic.signal("PEPE", "price_change_24h", "coingecko")].stale, 10, what="fresh"
    )
    assert not bus.statuses("coingecko")[-1].stale


def test_reddit_with_an_app_uses_oauth_client_credentials_and_renews_a_revoked_token(
    server: SocialServer,
    actors: Actors,  # noqa: F811
    bus: Bus,
    tmp_path: Path,
) -> None:
    """Application-only OAuth: token by basic auth, listings with the bearer, a 401 fetches a new token."""
    server.reddit_oauth = True
    secret = tmp_path / "reddit.secret"
    secret.write_text(server.reddit_app[1])
    args = settings(
        "reddit",
        server,
        tmp_path,
        client_id=server.reddit_app[0],
        client_secret_file=str(secret),
        auth_url=server.url,
        backoff_start_s=0.05,
    )
    actors.start("analyser.reddit", ACTORS["reddit"], args)
    first = seed(server, "reddit", "oauth")
    bus.wait_posts("reddit", 2)
    assert server.reddit_tokens == ["tok-1"]
    assert all(r["headers"].get("Authorization") == "bearer tok-1" for r in server.of("reddit"))
    assert all(r["path"].endswith("/new") for r in server.of("reddit"))
    server.reddit_tokens.append("tok-revoked-by-the-server")  # tok-1 no longer valid: 401, then a new one
    second = seed(server, "reddit", "renewed")
    posts = bus.wait_posts("reddit", 4)
    assert sorted(p.post_id for p in posts[:2]) == sorted(first)
    assert sorted(p.post_id for p in posts[2:]) == sorted(second)
    assert server.reddit_tokens[-1] == "tok-3"
    assert any(r["headers"].get("Authorization") == "bearer tok-3" for r in server.of("reddit"))


class ScannerProcess:
    """A scanner in an OS process of its own (what a node does with placement ``process``), to kill -9."""

    def __init__(self, actors: Actors, actor_id: str, actor: str, args: dict[str, Any]) -> None:  # noqa: F811
        incarnation = actors.incarnations.get(actor_id, 0) + 1
        actors.incarnations[actor_id] = incarnation
        launch = ActorLaunch(
            actor_id=actor_id,
            actor=actor,
            args=args,
            run_dir=str(actors.run_dir),
            incarnation=incarnation,
            heartbeat_interval_s=3600.0,  # no supervisor here: never declare itself orphaned
            journal_durability="fsync",
            auth_key=actors.auth_key,
            node_life="t1",
        )
        code = (
            "import sys; from sniperbot.actors.runtime import run_actor_process as run; "
            "run(sys.stdin.buffer.read())"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, cwd=ROOT, env=env)
        assert self.proc.stdin is not None
        self.proc.stdin.write(msgspec.msgpack.encode(launch))
        self.proc.stdin.close()

    def kill(self) -> None:
        """SIGKILL: no on_stop, no flush."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def test_no_post_is_published_twice_across_a_kill_9_restart(
    server: SocialServer,
    actors: Actors,  # noqa: F811
    bus: Bus,
    tmp_path: Path,
) -> None:
    """X, Discord, RSS killed -9 after publishing, restarted on their journal: no repeat, nothing new lost.

    (Reddit and Telegram: the same on a real node, in the next test.)
    """
    kinds = ["x", "discord", "rss"]
    first = {k: seed(server, k, "first") for k in kinds}
    procs = {
        k: ScannerProcess(actors, f"analyser.{k}", ACTORS[k], settings(k, server, tmp_path)) for k in kinds
    }
    try:
        for kind in kinds:
            bus.wait_posts(kind, len(first[kind]), 30)
        time.sleep(0.2)  # more polls of the same listings, while alive
    finally:
        for p in procs.values():
            p.kill()
    during = {k: seed(server, k, "during") for k in kinds}  # created while the scanners are dead
    for kind in kinds:
        actors.start(f"analyser.{kind}", ACTORS[kind], settings(kind, server, tmp_path))
    after = {k: seed(server, k, "after") for k in kinds}
    for kind in kinds:
        want = first[kind] + during[kind] + after[kind]
        bus.wait_posts(kind, len(want))
    time.sleep(0.3)  # anything still to come would be a repeat
    for kind in kinds:
        ids = [p.post_id for p in bus.posts(kind)]
        assert len(ids) == len(set(ids)), f"{kind}: a post was published twice: {ids}"
        assert set(ids) == set(first[kind] + during[kind] + after[kind]), kind


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ({"kind": "reddit", "id": "r", "subreddits": []}, "subreddits"),
        ({"kind": "reddit", "id": "r", "subreddits": ["a b"]}, "subreddits"),
        ({"kind": "x", "id": "x", "queries": ["btc"]}, "bearer_token"),
        (
            {
                "kind": "x",
                "id": "x",
                "queries": ["btc"],
                "bearer_token": "a",
                "bearer_token_file": "/etc/hostname",
            },
            "bearer_token",
        ),
        ({"kind": "telegram_channel", "id": "t", "channels": ["whales"], "bot_token": "1:a"}, "channels"),
        (
            {"kind": "discord", "id": "d", "channel_ids": ["12"], "bot_token_file": "/nonexistent"},
            "bot_token_file",
        ),
        ({"kind": "rss", "id": "n", "urls": ["ftp://feed"]}, "urls"),
        ({"kind": "coingecko", "id": "c", "api_plan": "pro"}, "api_key"),
        ({"kind": "reddit", "id": "r", "subreddits": ["btc"], "client_id": "app"}, "client_secret"),
        ({"kind": "reddit", "id": "r", "subreddits": ["btc"], "base_url": "reddit.com"}, "base_url"),
    ],
)
def test_a_bad_scanner_entry_is_refused_naming_the_field(entry: dict[str, Any], named: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=named):
        msgspec.convert(entry, AnalyserConfig)


def test_on_a_real_node_scanners_run_from_the_config_and_a_kill_9_repeats_no_post(
    server: SocialServer, short_tmp: Path
) -> None:
    """``[[analysers]]`` entries run as ``analyser.<id>`` (``analysis``); killed -9, restarted: no repeat."""
    token = short_tmp / "tg.token"
    token.write_text(server.bot_token)
    config = short_tmp / "node.toml"
    common = f'base_url = "{server.url}"\npoll_interval_s = 0.05\nstatus_interval_s = 0.2\n'
    config.write_text(
        FAST_CONFIG
        + f'\n[[analysers]]\nkind = "reddit"\nid = "reddit"\nsubreddits = ["CryptoCurrency"]\n{common}'
        + '\n[[analysers]]\nkind = "telegram_channel"\nid = "tg"\nchannels = ["@whalealerts"]\n'
        + f'bot_token_file = "{token}"\nlong_poll_s = 1\n{common}'
    )
    first = [
        server.add_reddit("CryptoCurrency", "ETH to 10k"),
        server.add_channel_post("whalealerts", 1, "whale"),
    ]
    node = RunningNode(short_tmp / "run", config)
    bus = Bus(node.run_dir, proxy=False)  # connects once the node binds its bus
    try:
        for source, post_id in zip(("reddit", "tg"), first, strict=True):
            assert [p.post_id for p in bus.wait_posts(source, 1, 60)] == [post_id]
        pids = {a: w["pid"] for a, w in node.workers().items() if a.startswith("analyser.")}
        assert set(pids) == {"analyser.reddit", "analyser.tg"}
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)
        # The supervisor's next incarnations, on the same journal: their statuses come from incarnation 2.
        eventually(lambda: {"reddit", "tg"} <= bus.sources_of_incarnation(2), 30, what="restarted scanners")
        second = [
            server.add_reddit("CryptoCurrency", "BTC ATH"),
            server.add_channel_post("whalealerts", 1, "w2"),
        ]
        for source, post_id in zip(("reddit", "tg"), second, strict=True):
            bus.wait_posts(source, 2, 30)
            time.sleep(0.2)  # anything still to come would be a repeat
            assert [p.post_id for p in bus.posts(source)] == [first[0 if source == "reddit" else 1], post_id]
        assert node.stop() == 0
    finally:
        bus.close()
        if node.process.poll() is None:
            node.stop()


def test_a_feed_with_a_doctype_is_refused_and_undated_entries_have_no_date() -> None:
    """Entity expansion is refused at the door; an entry without a date is not given one by the parser."""
    from sniperbot.analytics.scanners.rss import parse_feed

    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;">]>'
        b"<rss><channel><item><title>&b;</title><guid>1</guid></item></channel></rss>"
    )
    with pytest.raises(ValueError, match="DOCTYPE"):
        parse_feed(laughs)
    undated = b"<rss><channel><item><title>t</title><link>https://n/1</link></item></channel></rss>"
    assert parse_feed(undated) == [
        {
            "id": "https://n/1",
            "title": "t",
            "summary": "",
            "link": "https://n/1",
            "author": "",
            "created_ns": None,
        }
    ]
