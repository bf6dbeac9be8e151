"""The sentiment aggregator: posts in, per-subject ``sentiment``, ``mentions``, ``mentions_z`` signals out.

It follows ``social.<source>.`` of its configured sources (every scanner's with none) and every
``status.analyser.``; each post is deduplicated by (platform, post id) (two scanners may fetch the same
post; a restarted scanner may send one again), its subjects found (:mod:`.subjects`), scored once
(:mod:`.scorer`) and tallied in each subject's buckets (:mod:`.windows`).

**Published**, per subject and window, on ``sig.<subject>.<kind>.<id>.<window>s.`` (see
:func:`sniperbot.messages.topics.signal`): ``sentiment`` (mean score in [-1, 1], confidence from the
count), ``mentions`` (the count) and ``mentions_z`` (only with enough observed history). Each says
``origin`` (the sources whose posts it rests on) and ``count``. A signal goes out within
``flush_interval_s`` of a post that changed it, and every subject with posts in the longest window is
republished every ``publish_interval_s`` (windows roll, sources go silent); a subject whose last post
left the longest window is published once more with count 0 and confidence 0, then no more.

**Stale.** A signal is ``stale`` when every source it rests on is stale: its last
:class:`~sniperbot.messages.AnalyserStatus` said so, or nothing (neither a post nor a status) came
from it for ``silent_after_s``. A signal resting on no post (count 0) rests on every configured
source (every source that has sent a post, without a configuration). The aggregator's own status goes out on
``status.analyser.<id>`` at the steady cadence: stale when all its sources are.

**Restart.** The buckets (tallies and dedup keys) are journaled under :data:`sniperbot.journal.keys.
SENTIMENT` before any signal computed from them is published, so after a kill -9 the windows, the
z-scores' history and the dedup set are what they were at the last publication; what a kill -9 can lose
is the posts of the last ``flush_interval_s`` (0.2 s), which no published figure counted yet.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.analytics.sentiment.config import SentimentConfig
from sniperbot.analytics.sentiment.scorer import Scorer
from sniperbot.analytics.sentiment.subjects import SubjectExtractor
from sniperbot.analytics.sentiment.windows import BucketState, Windows, WindowStats, post_key, post_weight
from sniperbot.journal import keys
from sniperbot.messages import AnalyserStatus, Envelope, Post, Signal
from sniperbot.messages import topics as topic

_BUCKET_ENCODER = msgspec.msgpack.Encoder()
_BUCKET_DECODER = msgspec.msgpack.Decoder(BucketState)


@dataclass
class SourceHealth:
    """What the aggregator knows of one source: its last stale flag, when it was last heard, whether it
    has sent a post (an analyser that only publishes signals is no source of posts)."""

    stale: bool = False
    heard_ns: int = 0
    posts: bool = False


class SentimentActor(Actor):
    """Aggregates scored posts into per-subject signals over rolling windows (see the module docstring)."""

    kind = "sentiment"

    def __init__(self, ctx: ActorContext, settings: dict[str, Any], traded: list[str] | None = None) -> None:
        super().__init__(ctx)
        self.config = msgspec.convert(settings, SentimentConfig)
        self.source = self.config.id  # what it signs as: actor "analyser.<id>" publishes source "<id>"
        self.sources = frozenset(self.config.sources)
        posts = tuple(topic.posts(s) for s in sorted(self.sources)) or (topic.POSTS,)
        self.topics = (*posts, topic.ANALYSER_STATUS)
        self.scorer = Scorer()
        self.extractor = SubjectExtractor(
            tickers=[*self.config.universe, *(traded or ())],
            aliases=self.config.aliases,
            ambiguous=self.config.ambiguous,
            max_subjects=self.config.max_subjects,
        )
        self.windows = Windows(
            bucket_s=self.config.bucket_s,
            windows_s=tuple(self.config.windows_s),
            z_history=self.config.z_history,
            min_history=self.config.min_history,
            confidence_count=self.config.confidence_count,
        )
        self.health: dict[str, SourceHealth] = {}
        self._dirty_buckets: set[int] = set()
        self._dirty_subjects: set[str] = set()
        self._published: dict[tuple[str, str, float], tuple[Any, ...]] = {}
        self._cadence_subjects: set[str] = set()  # subjects of the last cadence round
        self._started_ns = 0
        self._last_post_ns = 0
        self.items = 0
        self.dropped = 0
        self._prefix = f"{keys.SENTIMENT}{self.source}/"

    # -- lifecycle ------------------------------------------------------------------------------------
    def on_start(self) -> None:
        """Restore the journaled buckets, then flush on change and publish at the steady cadence."""
        self._started_ns = now = time.time_ns()
        self._restore(now)
        self.ctx.every(self.config.flush_interval_s, self._flush)
        self.ctx.every(self.config.publish_interval_s, self._cadence, first_s=self.config.flush_interval_s)

    def on_message(self, envelope: Envelope) -> None:
        """Tally a post, or note a source's health."""
        payload = envelope.payload
        if isinstance(payload, Post):
            self._on_post(payload)
        elif isinstance(payload, AnalyserStatus):
            self._on_status(payload)

    def on_stop(self) -> None:
        """Journal what is not journaled yet (a kill -9 loses the last flush interval's posts instead)."""
        self._journal_dirty()

    # -- input --------------------------------------------------------------------------------------
    def _relevant(self, source: str) -> bool:
        return source != self.source and (not self.sources or source in self.sources)

    def _on_post(self, post: Post) -> None:
        if not self._relevant(post.source):
            return
        now = time.time_ns()
        self._heard(post.source, now)
        self.health[post.source].posts = True
        key = post_key(post.platform, post.post_id)
        if key in self.windows.seen:
            self.dropped += 1
            return
        subjects = self.extractor.subjects(post.text)
        if not subjects:
            return  # about nothing we track: nothing to count (nor to remember)
        score = self.scorer.score(post.text)
        bucket = self.windows.add(
            key, subjects, score, post_weight(post.engagement), post.source, post.created_ns, now
        )
        if bucket is None:
            self.dropped += 1  # older than the horizon
            return
        self.items += 1
        self._last_post_ns = now
        self._dirty_buckets.add(bucket)
        self._dirty_subjects.update(subjects)

    def _on_status(self, status: AnalyserStatus) -> None:
        if not self._relevant(status.source):
            return
        now = time.time_ns()
        health = self.health.setdefault(status.source, SourceHealth())
        was = self._source_stale(status.source, now)
        health.stale = status.stale
        # A status from the node's cache may be old: it was heard when it was said, not now.
        self._heard(status.source, min(now, status.ts_ns) if status.ts_ns > 0 else now)
        if self._source_stale(status.source, now) != was:
            self._dirty_subjects.update(self.windows.active(now))

    def _heard(self, source: str, ts_ns: int) -> None:
        health = self.health.setdefault(source, SourceHealth())
        health.heard_ns = max(health.heard_ns, ts_ns)

    # -- staleness ------------------------------------------------------------------------------------
    def _source_stale(self, source: str, now_ns: int) -> bool:
        health = self.health.get(source)
        # Never heard: silent since this incarnation started.
        heard = self._started_ns if health is None or health.heard_ns == 0 else health.heard_ns
        silent = now_ns - heard > self.config.silent_after_s * 1e9
        return silent or (health is not None and health.stale)

    def _all_sources(self) -> tuple[str, ...]:
        """The configured sources, or without a configuration every source that has sent a post."""
        return tuple(sorted(self.sources or {s for s, h in self.health.items() if h.posts}))

    def _stale(self, sources: tuple[str, ...], now_ns: int) -> bool:
        relied = sources or self._all_sources()
        return bool(relied) and all(self._source_stale(s, now_ns) for s in relied)

    # -- output ---------------------------------------------------------------------------------------
    def _flush(self) -> None:
        """Journal the changed buckets, then publish the signals of the subjects they changed."""
        if not self._dirty_subjects and not self._dirty_buckets:
            return
        self._journal_dirty()
        subjects, self._dirty_subjects = self._dirty_subjects, set()
        now = time.time_ns()
        for subject in sorted(subjects):
            self._publish_subject(subject, now, force=False)

    def _cadence(self) -> None:
        """Every ``publish_interval_s``: prune, republish every active subject, publish our status."""
        now = time.time_ns()
        self._journal_dirty()
        for bucket in self.windows.prune(now):
            self.ctx.journal.put_state(self._bucket_key(bucket), None)
        active = self.windows.active(now)
        # Subjects that just went quiet get one last round (count 0, confidence 0), then none.
        for subject in sorted(active | self._cadence_subjects):
            self._publish_subject(subject, now, force=True)
        self._cadence_subjects = active
        self._dirty_subjects -= active
        sources = self._all_sources()
        self.ctx.publish(
            topic.analyser_status(self.source),
            AnalyserStatus(
                source=self.source,
                stale=self._stale(sources, now),
                items=self.items,
                dropped=self.dropped,
                last_ok_ns=self._last_post_ns,
                ts_ns=now,
            ),
        )

    def _publish_subject(self, subject: str, now_ns: int, force: bool) -> None:
        for stats in self.windows.stats(subject, now_ns):
            stale = self._stale(stats.sources, now_ns)
            for signal in self._signals(subject, stats, stale, now_ns):
                key = (subject, signal.kind, signal.window_s)
                seen = (round(signal.value, 6), signal.count, signal.stale, round(signal.confidence, 4))
                seen += (signal.origin,)
                if not force and self._published.get(key) == seen:
                    continue
                self._published[key] = seen
                self.ctx.publish(topic.signal(subject, signal.kind, self.source, signal.window_s), signal)

    def _signals(self, subject: str, stats: WindowStats, stale: bool, now_ns: int) -> list[Signal]:
        common = {
            "source": self.source,
            "subject": subject,
            "window_s": stats.window_s,
            "ts_ns": now_ns,
            "count": stats.count,
            "stale": stale,
            "origin": ",".join(stats.sources),
        }
        out = [
            Signal(kind="sentiment", value=stats.sentiment, confidence=stats.confidence, **common),
            Signal(kind="mentions", value=float(stats.count), confidence=1.0, **common),
        ]
        if stats.z is not None:
            out.append(Signal(kind="mentions_z", value=stats.z, confidence=stats.z_confidence, **common))
        return out

    # -- journal --------------------------------------------------------------------------------------
    def _bucket_key(self, bucket: int) -> str:
        return f"{self._prefix}b/{bucket * self.windows.bucket_s:012d}"

    def _journal_dirty(self) -> None:
        if not self._dirty_buckets:
            return
        journal = self.ctx.journal
        for bucket in sorted(self._dirty_buckets):
            state = self.windows.bucket_state(bucket)
            value = None if state is None else _BUCKET_ENCODER.encode(state)
            journal.put_state(self._bucket_key(bucket), value)
        self._dirty_buckets.clear()

    def _restore(self, now_ns: int) -> None:
        """Put back the journaled buckets; a changed bucket size starts the history afresh."""
        journal = self.ctx.journal
        since_key = self._prefix + "since"
        raw = journal.get_state(since_key)
        since = json.loads(raw) if raw else None
        if since is not None and since.get("bucket_s") != self.windows.bucket_s:
            self.ctx.log.warning(
                "bucket size changed: sentiment history starts afresh",
                extra={"event": "sentiment_history_reset", "was": since.get("bucket_s")},
            )
            for key, _ in journal.state_items(self._prefix):
                journal.put_state(key, None)
            since = None
        if since is not None:
            self.windows.since = int(since["since_s"]) // self.windows.bucket_s
            for key, value in journal.state_items(self._prefix + "b/"):
                start_s = int(key.rsplit("/", 1)[1])
                self.windows.restore(start_s // self.windows.bucket_s, _BUCKET_DECODER.decode(value))
            for bucket in self.windows.prune(now_ns):
                journal.put_state(self._bucket_key(bucket), None)
        else:
            self.windows.observe(now_ns)
            assert self.windows.since is not None
            bucket_s = self.windows.bucket_s
            record = {"since_s": self.windows.since * bucket_s, "bucket_s": bucket_s}
            journal.put_state(since_key, json.dumps(record).encode())
        self._cadence_subjects = self.windows.active(now_ns)
