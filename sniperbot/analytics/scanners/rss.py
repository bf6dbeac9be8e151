"""RSS 2.0 and Atom news feeds, with conditional GETs.

Wire formats: RSS 2.0 (https://www.rssboard.org/rss-specification: ``rss/channel/item`` with ``title``,
``link``, ``description``, ``pubDate`` RFC 822, ``guid``, ``author`` or ``dc:creator``) and Atom
(RFC 4287: ``feed/entry`` with ``id``, ``title``, ``link@href``, ``summary`` or ``content``,
``published`` or ``updated`` RFC 3339, ``author/name``). Each poll sends the ETag and Last-Modified the
feed gave last (``If-None-Match`` / ``If-Modified-Since``, RFC 9110); a ``304 Not Modified`` costs
nothing. Any other status than 200/304 is an error (backoff).

Parsed with the standard library's ElementTree rather than ``feedparser`` (no new dependency for two
well-specified formats); a feed with a DOCTYPE is refused (a news feed never needs one, and it is the
door to entity-expansion attacks). Dedup is by entry id (``guid``, Atom ``id``, else the link) against the
ids journaled per feed. An entry without a date counts as created when first seen, except on a feed's
first fetch (its backlog: not news).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import xml.etree.ElementTree as ET
from typing import Any, ClassVar

import msgspec

from sniperbot.analytics.scanners.base import Fetched, Http, ScannerActor, TargetCursor
from sniperbot.analytics.scanners.config import RssConfig
from sniperbot.messages.signals import Post

ATOM = "{http://www.w3.org/2005/Atom}"
DC = "{http://purl.org/dc/elements/1.1/}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"


def _date_ns(text: str | None) -> int | None:
    """An RFC 822 (RSS) or RFC 3339 (Atom) date in ns; None when absent or unreadable."""
    if not text or not text.strip():
        return None
    text = text.strip()
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        try:
            when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1e9)


def _text(el: ET.Element | None) -> str:
    return "".join(el.itertext()).strip() if el is not None else ""


def parse_feed(body: bytes) -> list[dict[str, Any]]:
    """Entries of an RSS 2.0 or Atom document: id, title, summary, link, author, created_ns (or None)."""
    if b"<!doctype" in body[:4096].lower():
        raise ValueError("a feed with a DOCTYPE is refused")
    root = ET.fromstring(body)
    out: list[dict[str, Any]] = []
    if root.tag == f"{ATOM}feed":
        for e in root.iter(f"{ATOM}entry"):
            links = e.findall(f"{ATOM}link")
            link = next((x.get("href", "") for x in links if x.get("rel", "alternate") == "alternate"), "")
            summary = e.find(f"{ATOM}summary")
            date = _text(e.find(f"{ATOM}published")) or _text(e.find(f"{ATOM}updated"))
            out.append(
                {
                    "id": _text(e.find(f"{ATOM}id")) or link,
                    "title": _text(e.find(f"{ATOM}title")),
                    "summary": _text(summary if summary is not None else e.find(f"{ATOM}content")),
                    "link": link,
                    "author": _text(e.find(f"{ATOM}author/{ATOM}name")),
                    "created_ns": _date_ns(date),
                }
            )
        return out
    if root.tag != "rss" and root.find("channel") is None:
        raise ValueError(f"neither RSS nor Atom (root element {root.tag!r})")
    for item in root.iter("item"):
        link = _text(item.find("link"))
        title = _text(item.find("title"))
        out.append(
            {
                "id": _text(item.find("guid")) or link or hashlib.sha256(title.encode()).hexdigest()[:32],
                "title": title,
                "summary": _text(item.find("description")) or _text(item.find(f"{CONTENT}encoded")),
                "link": link,
                "author": _text(item.find("author")) or _text(item.find(f"{DC}creator")),
                "created_ns": _date_ns(_text(item.find("pubDate")) or _text(item.find(f"{DC}date"))),
            }
        )
    return out


class RssScanner(ScannerActor):
    """Entries of ``urls`` as :class:`Post` (``channel`` = the feed URL, ``text`` = title and summary)."""

    config_type: ClassVar[type[RssConfig]] = RssConfig
    platform: ClassVar[str] = "rss"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fetched: set[str] = set()  # feeds fetched by this incarnation (HTTP thread only)

    def targets(self) -> list[str]:
        """One per feed."""
        return list(self.config.urls)  # type: ignore[attr-defined]

    def request_headers(self) -> dict[str, str]:
        """A User-Agent (some feeds refuse an empty one)."""
        return {"User-Agent": self.config.user_agent}  # type: ignore[attr-defined]

    async def fetch(self, http: Http, cursor: TargetCursor) -> Fetched:
        """A conditional GET of the feed."""
        import time

        headers = {}
        if cursor.etag:
            headers["If-None-Match"] = cursor.etag
        if cursor.last_modified:
            headers["If-Modified-Since"] = cursor.last_modified
        r = await http.get(cursor.target, headers=headers, ok=(200, 304))
        if r.status == 304:
            return Fetched(cursor.target, [], cursor)
        first = not (cursor.recent or cursor.etag or cursor.last_modified or cursor.target in self._fetched)
        self._fetched.add(cursor.target)
        now = time.time_ns()
        posts = []
        for e in parse_feed(r.body):
            created = e["created_ns"] if e["created_ns"] is not None else (0 if first else now)
            text = f"{e['title']}\n\n{e['summary']}" if e["summary"] else e["title"]
            posts.append(
                Post(
                    source=self.source,
                    platform=self.platform,
                    post_id=e["id"],
                    text=text,
                    created_ns=created,
                    ts_ns=0,
                    author=e["author"],
                    channel=cursor.target.split("?", 1)[0],  # a query may carry a key
                    url=e["link"],
                )
            )
        posts.sort(key=lambda p: p.created_ns)
        after = msgspec.structs.replace(
            cursor, etag=r.headers.get("etag", ""), last_modified=r.headers.get("last-modified", "")
        )
        return Fetched(cursor.target, posts, after)
