"""Local fake social services on 127.0.0.1, speaking each real wire format (tests and benchmarks only).

One aiohttp app in a thread serves all six services on one port (a scanner's ``base_url`` points at it):

* Reddit ``GET /r/<sub>/new.json?limit=&before=`` -> a ``Listing`` (https://www.reddit.com/dev/api#GET_new,
  children ``t3`` newest first; ``before`` = newer than that fullname, an unknown one answers nothing),
  ``X-Ratelimit-Used/Remaining/Reset`` headers.
* X ``GET /2/tweets/search/recent?query=&since_id=&max_results=&next_token=`` with ``Authorization:
  Bearer`` -> ``{"data": [...], "meta": {newest_id, oldest_id, result_count, next_token}}``
  (https://developer.x.com/en/docs/x-api/tweets/search/api-reference/get-tweets-search-recent),
  ``x-rate-limit-limit/remaining/reset`` headers.
* Telegram ``GET /bot<token>/getUpdates?offset=&timeout=&allowed_updates=`` -> ``{"ok": true, "result":
  [{update_id, channel_post}]}`` with long polling (https://core.telegram.org/bots/api#getupdates); a 429
  is ``{"ok": false, "error_code": 429, "parameters": {"retry_after": N}}``.
* Discord ``GET /api/v10/channels/<id>/messages?after=&limit=`` with ``Authorization: Bot`` -> message
  objects newest first (https://discord.com/developers/docs/resources/message#get-channel-messages),
  ``X-RateLimit-*`` headers; a 429 is ``{"message", "retry_after", "global"}`` (+ ``Retry-After``).
* RSS 2.0 ``GET /feeds/<name>.rss`` and Atom ``GET /feeds/<name>.atom``, with ``ETag`` and
  ``Last-Modified``; a matching ``If-None-Match`` answers 304.
* CoinGecko ``GET /api/v3/search/trending`` and ``GET /api/v3/coins/markets?vs_currency=usd&ids=``
  (https://docs.coingecko.com/reference/trending-search, /coins-markets); a 429 has ``Retry-After``.

Switches: :meth:`SocialServer.fail` scripts the next answers of one service (``("429", seconds)``,
``("503",)``), :meth:`SocialServer.down` / :meth:`SocialServer.up` stop and restart the listener on the
same port (connection refused meanwhile). Every request is recorded (:attr:`SocialServer.requests`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import hashlib
import json
import threading
import time
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

DISCORD_EPOCH_MS = 1_420_070_400_000


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


class SocialServer:
    """The six services on one local port, with posts a test adds and failures it scripts."""

    def __init__(self, x_token: str = "x-bearer-SECRET", bot_token: str = "123:tg-SECRET") -> None:
        self.x_token = x_token
        self.bot_token = bot_token
        self.discord_token = "discord-SECRET"
        self.requests: list[dict[str, Any]] = []
        self.script: dict[str, list[tuple[Any, ...]]] = {}
        self.rate_remaining: dict[str, int | None] = {}  # service -> remaining to report (None: plenty)
        self.rate_reset_s = 1.0
        self.reddit: dict[str, list[dict[str, Any]]] = {}
        # Reddit OAuth (application only): the app's credentials, the tokens handed out, the valid one.
        self.reddit_app = ("app-id", "app-SECRET")
        self.reddit_tokens: list[str] = []
        self.reddit_oauth = False  # True: listings need ``Authorization: bearer <the last token>``
        self.tweets: dict[str, list[dict[str, Any]]] = {}
        self.updates: list[dict[str, Any]] = []
        self.discord: dict[str, list[dict[str, Any]]] = {}
        self.feeds: dict[str, list[dict[str, Any]]] = {}
        self.trending: list[dict[str, Any]] = []
        self.markets: dict[str, dict[str, Any]] = {}
        self._seq = 1000
        self._update_id = 500
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="social-server", daemon=True)
        self._arrived: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.port = 0

    # -- life --------------------------------------------------------------------------------
    def start(self) -> SocialServer:
        """Serve on an ephemeral port."""
        self._thread.start()
        self._call(self._start())
        return self

    async def _start(self) -> None:
        self._arrived = asyncio.Event()
        app = web.Application()
        app.add_routes(
            [
                web.get("/r/{sub}/new.json", self._reddit),
                web.get("/r/{sub}/new", self._reddit),
                web.post("/api/v1/access_token", self._reddit_token),
                web.get("/2/tweets/search/recent", self._x),
                web.get("/bot{token}/getUpdates", self._telegram),
                web.get("/api/v10/channels/{channel}/messages", self._discord),
                web.get("/feeds/{name}.{fmt}", self._feed),
                web.get("/api/v3/search/trending", self._trending),
                web.get("/api/v3/coins/markets", self._markets),
            ]
        )
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        self.port = self._site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def down(self) -> None:
        """Stop listening (connections are refused) and drop open connections."""

        async def stop() -> None:
            assert self._site is not None and self._runner is not None
            await self._site.stop()
            self._runner.server._force_close = True  # type: ignore[union-attr]
            for proto in list(getattr(self._runner.server, "_connections", {})):
                proto.force_close()

        self._call(stop())

    def up(self) -> None:
        """Listen again on the same port."""
        self._call(self._listen())

    def stop(self) -> None:
        """Stop serving (held long polls included) and the thread."""

        async def close() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._call(close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def fail(self, service: str, *answers: tuple[Any, ...]) -> None:
        """The next requests to ``service`` answer these (``("429", retry_after_s)``, ``("503",)``)."""
        with self._lock:
            self.script.setdefault(service, []).extend(answers)

    def of(self, service: str) -> list[dict[str, Any]]:
        """Recorded requests to ``service``."""
        return [r for r in list(self.requests) if r["service"] == service]

    # -- posts (test thread) -----------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _notify(self) -> None:
        if self._arrived is not None:
            self._loop.call_soon_threadsafe(self._arrived.set)

    def add_reddit(self, sub: str, title: str, body: str = "", age_s: float = 0.0) -> str:
        """A new post in r/``sub``; its fullname."""
        with self._lock:
            n = self._next_seq()
            post_id = _b36(n * 7919)
            created = time.time() - age_s
            self.reddit.setdefault(sub, []).insert(
                0,
                {
                    "kind": "t3",
                    "data": {
                        "subreddit": sub,
                        "selftext": body,
                        "author_fullname": "t2_abc",
                        "title": title,
                        "name": f"t3_{post_id}",
                        "id": post_id,
                        "score": 3,
                        "author": "satoshi_fan",
                        "num_comments": 0,
                        "permalink": f"/r/{sub}/comments/{post_id}/slug/",
                        "url": f"https://www.reddit.com/r/{sub}/comments/{post_id}/slug/",
                        "created": created,
                        "created_utc": created,
                    },
                },
            )
        return f"t3_{post_id}"

    def add_tweet(self, query: str, text: str, age_s: float = 0.0) -> str:
        """A new tweet matching ``query``; its id."""
        with self._lock:
            tweet_id = str(1_790_000_000_000_000_000 + self._next_seq())
            self.tweets.setdefault(query, []).insert(
                0,
                {
                    "id": tweet_id,
                    "text": text,
                    "author_id": "2244994945",
                    "created_at": _iso(time.time() - age_s),
                    "edit_history_tweet_ids": [tweet_id],
                    "public_metrics": {
                        "retweet_count": 1,
                        "reply_count": 0,
                        "like_count": 5,
                        "quote_count": 0,
                        "bookmark_count": 0,
                        "impression_count": 40,
                    },
                },
            )
        return tweet_id

    def add_channel_post(self, username: str, chat_id: int, text: str) -> str:
        """A post in a Telegram channel; its ``chat_id:message_id``."""
        with self._lock:
            self._update_id += 1
            message_id = self._next_seq()
            self.updates.append(
                {
                    "update_id": self._update_id,
                    "channel_post": {
                        "message_id": message_id,
                        "sender_chat": {"id": chat_id, "title": username.title(), "type": "channel"},
                        "chat": {
                            "id": chat_id,
                            "title": username.title(),
                            "username": username,
                            "type": "channel",
                        },
                        "date": int(time.time()),
                        "text": text,
                    },
                }
            )
        self._notify()
        return f"{chat_id}:{message_id}"

    def add_discord(self, channel: str, content: str, age_s: float = 0.0) -> str:
        """A message in a Discord channel; its snowflake."""
        with self._lock:
            ts = time.time() - age_s
            snowflake = str(((int(ts * 1000) - DISCORD_EPOCH_MS) << 22) | (self._next_seq() & 0xFFF))
            self.discord.setdefault(channel, []).insert(
                0,
                {
                    "id": snowflake,
                    "type": 0,
                    "channel_id": channel,
                    "guild_id": "81384788765712384",
                    "content": content,
                    "timestamp": dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(),
                    "edited_timestamp": None,
                    "tts": False,
                    "author": {"id": "80351110224678912", "username": "nelly", "discriminator": "0"},
                    "reactions": [{"count": 2, "me": False, "emoji": {"id": None, "name": "🚀"}}],
                    "attachments": [],
                    "embeds": [],
                    "mentions": [],
                    "pinned": False,
                },
            )
        return snowflake

    def add_entry(self, feed: str, title: str, summary: str = "", age_s: float = 0.0) -> str:
        """A new entry in feed ``feed`` (served as RSS and Atom); its id."""
        with self._lock:
            entry_id = f"urn:uuid:entry-{self._next_seq()}"
            self.feeds.setdefault(feed, []).insert(
                0, {"id": entry_id, "title": title, "summary": summary, "ts": time.time() - age_s}
            )
        return entry_id

    # -- handlers ----------------------------------------------------------------------------
    def _scripted(self, service: str, request: web.Request) -> tuple[Any, ...] | None:
        self.requests.append(
            {
                "service": service,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "t": time.monotonic(),
            }
        )
        with self._lock:
            queue = self.script.get(service)
            return queue.pop(0) if queue else None

    def _limit_headers(self, service: str) -> dict[str, str]:
        remaining = self.rate_remaining.get(service)
        left = 99 if remaining is None else remaining
        if service == "reddit":
            return {
                "X-Ratelimit-Used": str(100 - left),
                "X-Ratelimit-Remaining": f"{left:.1f}",
                "X-Ratelimit-Reset": str(int(self.rate_reset_s)),
            }
        if service == "x":
            return {
                "x-rate-limit-limit": "450",
                "x-rate-limit-remaining": str(left),
                "x-rate-limit-reset": str(int(time.time() + self.rate_reset_s)),
            }
        if service == "discord":
            return {
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": str(left),
                "X-RateLimit-Reset": f"{time.time() + self.rate_reset_s:.3f}",
                "X-RateLimit-Reset-After": f"{self.rate_reset_s:.3f}",
                "X-RateLimit-Bucket": "abcd1234",
            }
        return {}

    def _failure(self, service: str, answer: tuple[Any, ...]) -> web.Response:
        if answer[0] == "429":
            wait = float(answer[1])
            if service == "telegram":
                body = {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {wait:g}",
                    "parameters": {"retry_after": wait},
                }
                return web.json_response(body, status=429)
            if service == "discord":
                body = {"message": "You are being rate limited.", "retry_after": wait, "global": False}
                headers = {
                    **self._limit_headers(service),
                    "X-RateLimit-Remaining": "0",
                    "Retry-After": f"{wait:g}",
                }
                return web.json_response(body, status=429, headers=headers)
            if service == "reddit":
                headers = {
                    "X-Ratelimit-Remaining": "0.0",
                    "X-Ratelimit-Used": "100",
                    "X-Ratelimit-Reset": f"{wait:g}",
                }
                return web.Response(status=429, text="Too Many Requests", headers=headers)
            if service == "x":
                headers = {
                    "x-rate-limit-limit": "450",
                    "x-rate-limit-remaining": "0",
                    "x-rate-limit-reset": str(int(time.time() + wait + 0.999)),
                }
                body = {
                    "title": "Too Many Requests",
                    "detail": "Too Many Requests",
                    "type": "about:blank",
                    "status": 429,
                }
                return web.json_response(body, status=429, headers=headers)
            return web.json_response(
                {"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit."}},
                status=429,
                headers={"Retry-After": f"{wait:g}"},
            )
        return web.Response(status=int(answer[0]), text="Service Unavailable")

    async def _reddit_token(self, request: web.Request) -> web.StreamResponse:
        """``POST /api/v1/access_token``, basic auth, ``grant_type=client_credentials``."""
        self._scripted("reddit_token", request)
        import base64

        form = await request.post()
        expected = "Basic " + base64.b64encode(":".join(self.reddit_app).encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"message": "Unauthorized", "error": 401}, status=401)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        with self._lock:
            token = f"tok-{len(self.reddit_tokens) + 1}"
            self.reddit_tokens.append(token)
        return web.json_response(
            {"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"}
        )

    async def _reddit(self, request: web.Request) -> web.StreamResponse:
        if self.reddit_oauth:
            valid = self.reddit_tokens[-1:] if self.reddit_tokens else []
            if request.path.endswith(".json") or request.headers.get("Authorization") not in [
                f"bearer {t}" for t in valid
            ]:
                self._scripted("reddit", request)
                return web.json_response({"message": "Unauthorized", "error": 401}, status=401)
        if (failed := self._scripted("reddit", request)) is not None:
            return self._failure("reddit", failed)
        sub = request.match_info["sub"]
        limit = min(100, int(request.query.get("limit", "25")))
        with self._lock:
            posts = list(self.reddit.get(sub, []))
        before = request.query.get("before")
        if before:
            names = [p["data"]["name"] for p in posts]
            posts = posts[: names.index(before)] if before in names else []
            posts = posts[-limit:]  # the ones right after the anchor
        else:
            posts = posts[:limit]
        listing = {
            "kind": "Listing",
            "data": {
                "after": posts[-1]["data"]["name"] if posts else None,
                "dist": len(posts),
                "modhash": "",
                "geo_filter": None,
                "children": posts,
                "before": None,
            },
        }
        return web.json_response(listing, headers=self._limit_headers("reddit"))

    async def _x(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.x_token}":
            self._scripted("x", request)
            return web.json_response(
                {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"},
                status=401,
            )
        if (failed := self._scripted("x", request)) is not None:
            return self._failure("x", failed)
        q = request.query
        with self._lock:
            tweets = list(self.tweets.get(q["query"], []))
        if "since_id" in q:
            tweets = [t for t in tweets if int(t["id"]) > int(q["since_id"])]
        size = max(10, min(100, int(q.get("max_results", "10"))))
        start = int(q.get("next_token", "0") or 0)
        page = tweets[start : start + size]
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta |= {"newest_id": page[0]["id"], "oldest_id": page[-1]["id"]}
            fields = set(q.get("tweet.fields", "").split(","))
            page = [
                {k: v for k, v in t.items() if k in {"id", "text", "edit_history_tweet_ids"} | fields}
                for t in page
            ]
        if start + size < len(tweets):
            meta["next_token"] = str(start + size)
        body: dict[str, Any] = {"meta": meta}
        if page:
            body["data"] = page
        return web.json_response(body, headers=self._limit_headers("x"))

    async def _telegram(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.bot_token:
            self._scripted("telegram", request)
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        if (failed := self._scripted("telegram", request)) is not None:
            return self._failure("telegram", failed)
        q = request.query
        offset = int(q.get("offset", "0") or 0)
        allowed = json.loads(q.get("allowed_updates", "[]"))
        deadline = time.monotonic() + float(q.get("timeout", "0") or 0)
        assert self._arrived is not None
        while True:
            with self._lock:
                if offset:
                    self.updates = [
                        u for u in self.updates if u["update_id"] >= offset
                    ]  # confirmed: forgotten
                result = [u for u in self.updates if not allowed or any(k in u for k in allowed)][:100]
            left = deadline - time.monotonic()
            if result or left <= 0:
                return web.json_response({"ok": True, "result": result})
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                pass

    async def _discord(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bot {self.discord_token}":
            self._scripted("discord", request)
            return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        if (failed := self._scripted("discord", request)) is not None:
            return self._failure("discord", failed)
        channel = request.match_info["channel"]
        limit = max(1, min(100, int(request.query.get("limit", "50"))))
        with self._lock:
            messages = list(self.discord.get(channel, []))  # newest first
        after = request.query.get("after")
        # ``after``: the ``limit`` messages right after it (still newest first), else the newest ones.
        newer = [m for m in messages if int(m["id"]) > int(after)][-limit:] if after else messages[:limit]
        return web.json_response(newer, headers=self._limit_headers("discord"))

    async def _feed(self, request: web.Request) -> web.StreamResponse:
        if (failed := self._scripted("rss", request)) is not None:
            return self._failure("rss", failed)
        name, fmt = request.match_info["name"], request.match_info["fmt"]
        with self._lock:
            entries = list(self.feeds.get(name, []))
        body = (_atom if fmt == "atom" else _rss)(name, entries, self.url)
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        modified = email.utils.formatdate(max((e["ts"] for e in entries), default=0), usegmt=True)
        headers = {"ETag": etag, "Last-Modified": modified}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        ctype = "application/atom+xml" if fmt == "atom" else "application/rss+xml"
        return web.Response(body=body, headers=headers, content_type=ctype, charset="utf-8")

    async def _trending(self, request: web.Request) -> web.StreamResponse:
        if (failed := self._scripted("coingecko", request)) is not None:
            return self._failure("coingecko", failed)
        with self._lock:
            coins = [{"item": dict(c)} for c in self.trending]
        return web.json_response({"coins": coins, "nfts": [], "categories": []})

    async def _markets(self, request: web.Request) -> web.StreamResponse:
        if (failed := self._scripted("coingecko", request)) is not None:
            return self._failure("coingecko", failed)
        assert request.query.get("vs_currency") == "usd"
        ids = request.query.get("ids", "").split(",")
        with self._lock:
            rows = [dict(self.markets[i]) for i in ids if i in self.markets]
        return web.json_response(rows)


def trending_item(coin_id: str, symbol: str, rank: int, score: int) -> dict[str, Any]:
    """One ``coins[].item`` of ``/search/trending``, shaped like CoinGecko's."""
    return {
        "id": coin_id,
        "coin_id": 1000 + score,
        "name": coin_id.title(),
        "symbol": symbol,
        "market_cap_rank": rank,
        "thumb": f"https://coin-images.coingecko.com/coins/images/1/thumb/{coin_id}.png",
        "slug": coin_id,
        "price_btc": 1e-6,
        "score": score,
        "data": {"price": 0.01, "market_cap": "$1,000,000", "total_volume": "$100,000"},
    }


def market_row(coin_id: str, symbol: str, rank: int, change: float, volume: float) -> dict[str, Any]:
    """One row of ``/coins/markets``, shaped like CoinGecko's."""
    return {
        "id": coin_id,
        "symbol": symbol,
        "name": coin_id.title(),
        "current_price": 1.23,
        "market_cap": 1e9,
        "market_cap_rank": rank,
        "total_volume": volume,
        "high_24h": 1.3,
        "low_24h": 1.1,
        "price_change_24h": 0.05,
        "price_change_percentage_24h": change,
        "last_updated": _iso(time.time()),
    }


def _rss(name: str, entries: list[dict[str, Any]], base: str) -> bytes:
    items = "".join(
        f"<item><title>{escape(e['title'])}</title><link>{base}/news/{escape(e['id'][9:])}</link>"
        f"<description>{escape(e['summary'])}</description>"
        f"<pubDate>{email.utils.formatdate(e['ts'], usegmt=True)}</pubDate>"
        f'<guid isPermaLink="false">{escape(e["id"])}</guid><dc:creator>desk</dc:creator></item>'
        for e in entries
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        f"<title>{escape(name)}</title><link>{base}</link><description>news</description>{items}"
        "</channel></rss>"
    ).encode()


def _atom(name: str, entries: list[dict[str, Any]], base: str) -> bytes:
    items = "".join(
        f'<entry><title>{escape(e["title"])}</title><link href="{base}/news/{escape(e["id"][9:])}"/>'
        f"<id>{escape(e['id'])}</id><updated>{_iso(e['ts'])}</updated><published>{_iso(e['ts'])}</published>"
        f"<summary>{escape(e['summary'])}</summary><author><name>desk</name></author></entry>"
        for e in entries
    )
    updated = _iso(max((e["ts"] for e in entries), default=0))
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f'<title>{escape(name)}</title><link href="{base}/"/><updated>{updated}</updated>'
        f"<id>urn:feed:{escape(name)}</id>{items}</feed>"
    ).encode()
