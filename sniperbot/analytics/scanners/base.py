"""The shared social-scanner actor: polling off the actor's loop, rate limits, backoff, stale flag, dedup.

A service module (``reddit``, ``x``, ``telegram``, ``discord``, ``rss``, ``coingecko``) subclasses
:class:`ScannerActor` with the service's wire format (:meth:`ScannerActor.fetch`) and rate-limit headers
(:meth:`ScannerActor.limit_wait`). Decisions (a trader relies on these):

- **Never in the actor's loop.** HTTP runs on an asyncio loop (aiohttp) in a daemon thread of the actor,
  like the alerts dispatcher and the pool watcher; results reach the actor thread through a
  ``queue.SimpleQueue`` drained every :data:`DRAIN_INTERVAL_S`. A hung service never delays a heartbeat.
- **Targets in turn.** Each poll asks the service about every target (subreddit, query, channel, feed)
  one after another, then waits ``poll_interval_s`` (Telegram's long poll waits at the server instead).
- **Rate limits.** After every answer the service's own headers say how long to pause before the next
  request (Reddit ``X-Ratelimit-Remaining/Reset``, X ``x-rate-limit-remaining/reset``, Discord
  ``X-RateLimit-Remaining/Reset-After``); a 429 pauses for what it says (Discord ``retry_after``,
  Telegram ``parameters.retry_after``, ``Retry-After``), at most :data:`MAX_PAUSE_S`, and the request is
  then made again. A 429 is not an error: it neither grows the backoff nor counts in ``errors``.
- **Errors.** A failed request (connection refused, timeout, 5xx, 4xx other than 429, an answer that
  does not parse) is counted and reported; when no target of a poll got an answer the scanner waits with
  exponential backoff and jitter: ``backoff_start_s`` (1 s) doubling to ``backoff_max_s`` (300 s), each
  wait drawn uniformly from [half, all] of it (no herd of scanners retrying in step, and never a zero
  wait). A poll with an answer resets it. Every change of the backoff is published in the status.
- **Stale flag.** Stale while there was no successful exchange with the service for the section's
  ``stale_limit_s()`` (counted from the start at first). :class:`~sniperbot.messages.AnalyserStatus` is
  published on ``status.analyser.<id>`` when ``stale`` changes and every ``status_interval_s``.
- **Dedup across restarts: never twice, at worst lost on a kill.** Per target, the service's cursor
  (Reddit's newest fullname, X's ``newest_id``, Discord's newest snowflake, Telegram's update offset,
  a feed's ETag / Last-Modified) and the last :data:`RECENT_IDS` published post ids are journaled
  (``keys.SCANNER_CURSOR``, :class:`TargetCursor`) *before* the posts are published. A restart resumes
  from the cursor and drops any id it has published. A kill -9 between the journal write and the publish
  loses that batch; publishing first would risk a post published twice, and a duplicated post is a fake
  mention spike to the sentiment aggregator. (Bus delivery is at-most-once anyway.)
- **Old posts are not news.** A post created more than ``max_age_s`` before it was fetched is not
  published (counted in ``dropped``): a first start or a long outage does not dump a backlog. A post
  seen before (a listing read again) is skipped silently.
- **Joining the bus.** Nothing is published before the actor hears its own bus probe back (ZeroMQ's slow
  joiner: a PUB drops what it sends before the proxy's subscriptions reach it); posts wait meanwhile.
- **Secrets** (tokens, keys) are never logged: every error text has them replaced by ``<secret>``
  before it is logged or put in ``AnalyserStatus.detail``, and URLs are logged without query strings.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import email.utils
import hashlib
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import msgspec

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.actors.bus_join import BusJoin
from sniperbot.analytics.scanners.config import ScannerSection
from sniperbot.journal import keys
from sniperbot.messages import Envelope
from sniperbot.messages import topics as topic
from sniperbot.messages.signals import AnalyserStatus, Post

DRAIN_INTERVAL_S = 0.01  # hand-over period from the HTTP thread to the actor loop
PROBE_INTERVAL_S = 0.05  # bus-echo probes until the publisher has joined the bus
RECENT_IDS = 256  # published post ids remembered per target (journaled with its cursor)
MAX_PAUSE_S = 3600.0  # a rate-limit pause longer than this is a broken header, not a plan
_STOP_JOIN_S = 5.0


class RateLimited(Exception):
    """The service said to wait (429): ``retry_after_s`` seconds (0: it did not say how long)."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"rate limited, retry after {retry_after_s:g} s")
        self.retry_after_s = retry_after_s


class ServiceError(Exception):
    """A request to the service failed (its text may hold a URL: scrubbed before it is shown).

    ``status``: the HTTP status the service answered (0: no answer, or not an HTTP matter).
    """

    def __init__(self, text: str, status: int = 0) -> None:
        super().__init__(text)
        self.status = status


class Response(msgspec.Struct, frozen=True):
    """One HTTP answer: status, headers (case-insensitive keys lowered) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON; :class:`ServiceError` when it is not."""
        try:
            return msgspec.json.decode(self.body)
        except msgspec.DecodeError as e:
            raise ServiceError(f"HTTP {self.status}: the answer is not JSON ({e})") from None


class TargetCursor(msgspec.Struct, kw_only=True):
    """Where a scanner is in one target (JSON under ``keys.SCANNER_CURSOR``), see the module doc."""

    target: str  # journaled without its query string (informative: the key is a hash of the whole)
    cursor: str = ""  # the service's position (fullname, newest id, snowflake, update offset)
    etag: str = ""  # conditional GET (feeds)
    last_modified: str = ""
    recent: list[str] = []  # the last RECENT_IDS published post ids, oldest first


class Fetched(msgspec.Struct):
    """What one request cycle about one target gave: items (oldest first) and the cursor after them.

    ``malformed``: items of the answer that did not parse (skipped, counted in ``dropped``).
    """

    target: str
    items: list[Any]
    cursor: TargetCursor
    malformed: int = 0


#: What a malformed item of an otherwise valid answer raises while it is read.
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def parse_each(raw: Any, parse: Callable[[Any], Any]) -> tuple[list[Any], int]:
    """``parse`` of every item of the list ``raw`` (None results left out), and how many did not parse.

    One malformed item must not fail the whole answer: the next poll would get it again, for ever.
    """
    if not isinstance(raw, list):
        raise ServiceError(f"expected a list of items, got {type(raw).__name__}")
    out, bad = [], 0
    for item in raw:
        try:
            parsed = parse(item)
        except MALFORMED:
            bad += 1
            continue
        if parsed is not None:
            out.append(parsed)
    return out, bad


def cursor_key(analyser_id: str, target: str) -> str:
    """The journal key of one target's cursor (hashed: a feed URL may be longer than an LMDB key)."""
    return f"{keys.SCANNER_CURSOR}{analyser_id}/{hashlib.sha256(target.encode()).hexdigest()[:24]}"


def retry_after_header(headers: Mapping[str, str]) -> float:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date); 0 when absent or unreadable."""
    raw = headers.get("retry-after", "").strip()
    if not raw:
        return 0.0
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - time.time())


def header_float(headers: Mapping[str, str], name: str) -> float | None:
    """A numeric header, or None when absent or not a number."""
    try:
        return float(headers[name])
    except (KeyError, ValueError):
        return None


class ScannerActor(Actor):
    """Polls one service for its targets off the actor loop; publishes its posts once (see the module doc)."""

    #: The section type of the kind (its ``[[analysers]]`` variant).
    config_type: ClassVar[type[ScannerSection]] = ScannerSection
    #: ``Post.platform``.
    platform: ClassVar[str] = ""
    #: The service's public address, when ``base_url`` is "".
    default_base_url: ClassVar[str] = ""

    def __init__(self, ctx: ActorContext, *, settings: dict[str, Any]) -> None:
        super().__init__(ctx)
        self.config = msgspec.convert(settings, self.config_type)
        self.source = self.config.id
        self.base_url = (self.config.base_url or self.default_base_url).rstrip("/")
        self.bus = BusJoin(ctx)
        self.topics = (self.bus.topic,)
        self.status_topic = topic.analyser_status(self.source)
        self.cursors: dict[str, TargetCursor] = {}
        self._recent: dict[str, collections.deque[str]] = {}
        self._recent_set: dict[str, set[str]] = {}
        self.items = 0
        self.dropped = 0
        self.errors = 0
        self.backoff_s = 0.0
        self.detail = ""
        self.last_ok_ns = 0
        self._last_ok_mono = time.monotonic()  # the start counts: stale only once the limit has passed
        self.stale = False
        self._held: list[Any] = []  # events waiting for the bus to be joined
        self._out: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._secrets: list[str] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = threading.Event()

    # -- what a service module provides ------------------------------------------------------
    def targets(self) -> list[str]:
        """What to ask about in each poll (subreddits, queries, channels, feeds)."""
        raise NotImplementedError

    def secrets(self) -> list[str]:
        """Secret strings to keep out of every log line and status (read once, at start)."""
        return []

    def request_headers(self) -> dict[str, str]:
        """Headers of every request (auth, User-Agent)."""
        return {}

    async def fetch(self, http: Http, cursor: TargetCursor) -> Fetched:
        """One cycle about ``cursor.target`` (on the HTTP thread: touch only config and ``cursor``)."""
        raise NotImplementedError

    def limit_wait(self, response: Response) -> float:
        """Seconds to pause before this service's next request, from its rate-limit headers (0: none).

        Called for every answer, the 429s included; the default reads ``Retry-After``.
        """
        return retry_after_header(response.headers)

    def cycle_pause_s(self) -> float:
        """The wait between two polls of every target."""
        return self.config.poll_interval_s

    # -- lifecycle ---------------------------------------------------------------------------
    def on_start(self) -> None:
        """Read the journaled cursors, start the HTTP thread, the hand-over timer and the bus probe."""
        self._secrets = [s for s in self.secrets() if s]
        for target in self.targets():
            key = cursor_key(self.source, target)
            raw = self.ctx.journal.get_state(key)
            cursor = TargetCursor(target=target)
            if raw:
                try:
                    cursor = msgspec.structs.replace(
                        msgspec.json.decode(raw, type=TargetCursor), target=target
                    )
                except msgspec.DecodeError as e:
                    # Starting afresh could publish posts again: fail (the breaker says so) rather than guess.
                    raise RuntimeError(f"{self.source}: journaled cursor {key} is unreadable ({e})") from None
            self.cursors[target] = cursor
            self._recent[target] = collections.deque(cursor.recent, maxlen=RECENT_IDS)
            self._recent_set[target] = set(cursor.recent)
        start = {t: msgspec.structs.replace(c) for t, c in self.cursors.items()}
        self._thread = threading.Thread(target=self._run, args=(start,), name="scanner-io", daemon=True)
        self._thread.start()
        self.ctx.every(DRAIN_INTERVAL_S, self._drain)
        self.ctx.every(PROBE_INTERVAL_S, self.bus.probe)
        self.ctx.every(self.config.status_interval_s, self.publish_status)
        self.bus.probe()

    def on_stop(self) -> None:
        """Stop the HTTP thread, a request in flight included (cursors are journaled as they move)."""
        self._stopping.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed already
                loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None:
            self._thread.join(_STOP_JOIN_S)

    def on_message(self, envelope: Envelope) -> None:
        """Our own bus probe came back: the publisher has joined the bus."""
        if self.bus.heard(envelope):
            self.publish_status()

    # -- actor thread ------------------------------------------------------------------------
    def scrub(self, text: str) -> str:
        """``text`` without any secret."""
        for secret in self._secrets:
            text = text.replace(secret, "<secret>")
        return text

    def _drain(self) -> None:
        while True:
            try:
                kind, item = self._out.get_nowait()
            except queue.Empty:
                break
            if kind == "fetched":
                if self.bus.joined:
                    self.on_fetched(item)
                else:
                    self._held.append(item)
            elif kind == "ok":
                self._on_ok()
            elif kind == "error":
                self._on_error(item)
            elif kind == "backoff":
                self._on_backoff(item)
            elif kind == "limited":
                self.ctx.log.info(
                    "service rate limit: pausing",
                    extra={"event": "scanner_rate_limited", "source": self.source, "pause_s": round(item, 3)},
                )
        if self.bus.joined and self._held:
            held, self._held = self._held, []
            for fetched in held:
                self.on_fetched(fetched)
        self._check_stale()

    def _on_ok(self) -> None:
        self._last_ok_mono = time.monotonic()
        self.last_ok_ns = time.time_ns()
        if self.backoff_s:
            self.ctx.log.info("service answering again", extra={"event": "scanner_ok", "source": self.source})
            self.backoff_s = 0.0
            self.detail = ""
            self.publish_status()

    def _on_error(self, detail: str) -> None:
        self.errors += 1
        detail = self.scrub(detail)[:300]
        if detail != self.detail:  # an error repeated by every retry is logged once
            self.ctx.log.warning(
                "scanner request failed",
                extra={"event": "scanner_error", "source": self.source, "detail": detail},
            )
        self.detail = detail

    def _on_backoff(self, wait_s: float) -> None:
        if wait_s != self.backoff_s:
            self.backoff_s = wait_s
            self.publish_status()

    def _check_stale(self) -> None:
        stale = time.monotonic() - self._last_ok_mono > self.config.stale_limit_s()
        if stale != self.stale:
            self.stale = stale
            self.ctx.log.warning(
                "scanner stale" if stale else "scanner fresh again",
                extra={"event": "scanner_stale" if stale else "scanner_fresh", "source": self.source},
            )
            self.on_stale_change(stale)
            self.publish_status()

    def on_stale_change(self, stale: bool) -> None:
        """Hook: the service went stale (True) or answered again (False)."""

    def publish_status(self) -> None:
        """Publish this scanner's :class:`AnalyserStatus` (once the bus is joined)."""
        if not self.bus.joined:
            return
        self.ctx.publish(
            self.status_topic,
            AnalyserStatus(
                source=self.source,
                stale=self.stale,
                errors=self.errors,
                backoff_s=self.backoff_s,
                items=self.items,
                dropped=self.dropped,
                last_ok_ns=self.last_ok_ns,
                ts_ns=time.time_ns(),
                detail=self.detail,
            ),
        )

    def on_fetched(self, fetched: Fetched) -> None:
        """Posts: drop those published before or too old, journal the cursor, then publish the rest."""
        target = fetched.target
        self.dropped += fetched.malformed
        recent, seen = self._recent[target], self._recent_set[target]
        oldest_ns = time.time_ns() - int(self.config.max_age_s * 1e9)
        fresh: list[Post] = []
        for post in fetched.items:
            if post.post_id in seen:
                continue  # published (or refused) before: a re-read listing, not news
            if len(recent) == recent.maxlen:
                seen.discard(recent[0])
            recent.append(post.post_id)
            seen.add(post.post_id)
            if post.created_ns < oldest_ns:
                self.dropped += 1  # remembered as seen, never published: old news
                continue
            fresh.append(post)
        cursor = msgspec.structs.replace(fetched.cursor, target=target, recent=list(recent))
        if cursor != self.cursors.get(target):
            # Journaled first: a kill from here on loses these posts, it never publishes them twice.
            # The target as journaled has no query string (a feed URL may carry a key there).
            stored = msgspec.structs.replace(cursor, target=target.split("?", 1)[0])
            self.ctx.journal.put_state(cursor_key(self.source, target), msgspec.json.encode(stored))
            self.cursors[target] = cursor
        topic_ = topic.posts(self.source)
        for post in fresh:
            self.ctx.publish(topic_, msgspec.structs.replace(post, ts_ns=time.time_ns()))
        self.items += len(fresh)

    # -- HTTP thread -------------------------------------------------------------------------
    def _run(self, cursors: dict[str, TargetCursor]) -> None:
        loop = asyncio.new_event_loop()
        self._task = task = loop.create_task(self._poll(cursors))
        self._loop = loop
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass  # stopped
        finally:
            loop.close()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, in short steps so a stop is seen within 0.1 s."""
        end = time.monotonic() + seconds
        while not self._stopping.is_set() and (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.1))

    async def _poll(self, cursors: dict[str, TargetCursor]) -> None:
        import aiohttp

        http = Http(self)
        start = backoff = self.config.backoff_start_s
        async with aiohttp.ClientSession(headers=self.request_headers()) as session:
            http.session = session
            while not self._stopping.is_set():
                answered = failed = 0
                for target in self.targets():
                    try:
                        fetched = await self._fetch_honouring_limits(http, cursors[target])
                    except _Stopping:
                        return
                    except Exception as e:  # every failure of one request: counted, backed off, never a crash
                        failed += 1
                        self._out.put(("error", _describe(e)))
                        continue
                    answered += 1
                    cursors[target] = fetched.cursor
                    self._out.put(("fetched", fetched))
                    self._out.put(("ok", None))
                if failed and not answered:
                    # The service is down (or refuses us): wait longer each time, with jitter.
                    self._out.put(("backoff", backoff))
                    await self._sleep(random.uniform(backoff / 2, backoff))
                    backoff = min(backoff * 2, self.config.backoff_max_s)
                else:
                    # It answered (a target it refuses is reported, not a reason to slow the others).
                    backoff = start
                    await self._sleep(self.cycle_pause_s())

    async def _fetch_honouring_limits(self, http: Http, cursor: TargetCursor) -> Fetched:
        while True:
            await self._sleep(http.not_before - time.monotonic())
            if self._stopping.is_set():
                raise _Stopping
            try:
                return await self.fetch(http, cursor)
            except RateLimited as e:
                pause = min(MAX_PAUSE_S, e.retry_after_s or self.config.backoff_start_s)
                http.pause(pause)
                self._out.put(("limited", pause))


class _Stopping(Exception):
    """The actor is stopping: leave the poll."""


class Http:
    """GETs to one service (on the HTTP thread), with its rate-limit pause."""

    def __init__(self, scanner: ScannerActor) -> None:
        self.scanner = scanner
        self.session: Any = None
        self.not_before = 0.0  # monotonic time before which no request goes out

    def pause(self, seconds: float) -> None:
        """No request for ``seconds`` (the longer of this and a pause already set wins)."""
        self.not_before = max(self.not_before, time.monotonic() + min(MAX_PAUSE_S, seconds))

    async def get(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        extra_timeout_s: float = 0.0,
        ok: tuple[int, ...] = (200,),
    ) -> Response:
        """GET ``url``: the answer when its status is in ``ok``; RateLimited on a 429, else ServiceError."""
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.scanner.config.timeout_s + extra_timeout_s)
        try:
            async with self.session.get(url, params=params, headers=headers, timeout=timeout) as r:
                body = await r.read()
                response = Response(r.status, {k.lower(): v for k, v in r.headers.items()}, body)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise ServiceError(f"{url.split('?', 1)[0]}: {_describe(e)}") from None
        wait = self.scanner.limit_wait(response)
        if response.status == 429:
            raise RateLimited(wait)
        if wait > 0:
            self.pause(wait)
        if response.status not in ok:
            raise ServiceError(
                f"{url.split('?', 1)[0]}: HTTP {response.status} {body[:200]!r}", response.status
            )
        return response

    async def post(
        self, url: str, data: Mapping[str, str], headers: Mapping[str, str] | None = None
    ) -> Response:
        """POST a form to ``url`` (a token endpoint): the answer if 200, else like :meth:`get`."""
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.scanner.config.timeout_s)
        try:
            async with self.session.post(url, data=dict(data), headers=headers, timeout=timeout) as r:
                body = await r.read()
                response = Response(r.status, {k.lower(): v for k, v in r.headers.items()}, body)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise ServiceError(f"{url.split('?', 1)[0]}: {_describe(e)}") from None
        if response.status == 429:
            raise RateLimited(self.scanner.limit_wait(response))
        if response.status != 200:
            raise ServiceError(
                f"{url.split('?', 1)[0]}: HTTP {response.status} {body[:200]!r}", response.status
            )
        return response


def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
