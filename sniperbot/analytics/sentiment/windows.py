"""Rolling windows per subject: mention counts, mean sentiment, and the count's z-score.

**Buckets.** Posts are tallied in buckets of ``bucket_s`` seconds (default 60) by the time they were
*posted* (``Post.created_ns``, clamped to now: a platform clock ahead of ours does not make a post from
the future), not by when they reached us: a scanner that backfills an hour of posts at its first start
fills that hour's buckets instead of faking a spike now. A bucket holds, per subject, the number of
posts, the sum of their weights and of their weighted scores, and the sources they came from; it is
the unit journaled (:meth:`Windows.bucket_state`), so the state survives a restart compactly.

**A window** of ``W`` seconds (a multiple of ``bucket_s``) is the current, still open bucket plus the
``W / bucket_s - 1`` closed ones before it: it reaches back between ``W - bucket_s`` and ``W``.

* ``mentions``: the number of distinct posts naming the subject in the window (not weighted:
  engagement figures are not comparable across platforms, a count is).
* ``sentiment``: the posts' mean score, each post weighted ``1 + ln(1 + engagement)``: a post many
  people endorsed says more about the crowd's mood than a bot's, and the logarithm keeps one viral post
  from outvoting the crowd (platforms without engagement weigh every post 1). Its confidence grows
  with the count: ``count / (count + confidence_count)`` (0.5 at ``confidence_count`` posts).
* ``mentions_z``: how unusual the count is against the subject's own history: the ``z_history``
  windows of the same length just before the current one, on the same bucket boundaries. Only history
  this analyser observed counts (windows starting before its first bucket are not zeros, they are
  unknown); with fewer than ``min_history`` such windows there is no z-score (no signal is better than
  a wrong one). The current window is still open, so the history's mean and deviation are scaled to the
  part of it that has elapsed (``coverage``, Poisson-like: the mean by it, the deviation by its square
  root), and the deviation is floored at the Poisson noise of the expected count (at least 1): a
  subject that was never mentioned does not reach z = infinity on its first mention.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec


class Tally(msgspec.Struct, array_like=True):
    """One subject in one bucket: posts, sum of weights, sum of weighted scores, sources."""

    n: int = 0
    w: float = 0.0
    ws: float = 0.0
    src: list[str] = []


class BucketState(msgspec.Struct, array_like=True):
    """One bucket as journaled: its tallies and the dedup keys of the posts it holds."""

    tallies: dict[str, Tally]
    ids: list[bytes]


@dataclass(frozen=True)
class WindowStats:
    """A subject's figures over one window, at one instant."""

    window_s: float
    count: int
    sentiment: float  # weighted mean score in [-1, 1]; 0 without posts
    confidence: float
    sources: tuple[str, ...]
    z: float | None  # None: not enough observed history
    z_confidence: float
    history: int  # how many history windows the z-score rests on


def post_key(platform: str, post_id: str) -> bytes:
    """The dedup key of a post: 8 bytes of a hash of (platform, post id), compact in the journal."""
    return hashlib.blake2b(f"{platform}\0{post_id}".encode(), digest_size=8).digest()


def post_weight(engagement: float) -> float:
    """A post's weight in the mean sentiment (see the module docstring)."""
    return 1.0 + math.log1p(max(0.0, engagement)) if math.isfinite(engagement) else 1.0


@dataclass
class Windows:
    """Per-subject buckets over the horizon (``z_history + 1`` of the longest window)."""

    bucket_s: int = 60
    windows_s: tuple[int, ...] = (300, 3600)
    z_history: int = 24
    min_history: int = 4
    confidence_count: float = 10.0
    #: subject -> bucket index -> tally
    series: dict[str, dict[int, Tally]] = field(default_factory=dict)
    #: bucket index -> dedup keys of its posts (and the reverse index, for lookups)
    bucket_ids: dict[int, list[bytes]] = field(default_factory=dict)
    seen: dict[bytes, int] = field(default_factory=dict)
    #: bucket index -> subjects tallied there (what a bucket's journal entry holds)
    bucket_subjects: dict[int, set[str]] = field(default_factory=dict)
    #: the first bucket this analyser observed (history before it is unknown, not zero)
    since: int | None = None

    def __post_init__(self) -> None:
        for w in self.windows_s:
            if w <= 0 or w % self.bucket_s:
                raise ValueError(f"windows_s: {w} is not a positive multiple of bucket_s = {self.bucket_s}")

    @property
    def horizon(self) -> int:
        """How many buckets are kept: the longest window and its whole history."""
        return (self.z_history + 1) * max(self.windows_s) // self.bucket_s

    def bucket_of(self, ts_ns: int) -> int:
        """The index of the bucket holding instant ``ts_ns``."""
        return ts_ns // (self.bucket_s * 1_000_000_000)

    def observe(self, now_ns: int) -> None:
        """Mark the start of observation (the first call wins; restored state keeps its own)."""
        if self.since is None:
            self.since = self.bucket_of(now_ns)

    def add(
        self,
        key: bytes,
        subjects: Iterable[str],
        score: float,
        weight: float,
        source: str,
        created_ns: int,
        now_ns: int,
    ) -> int | None:
        """Tally one post; the bucket it went to, or None (a duplicate, or older than the horizon)."""
        if key in self.seen:
            return None
        self.observe(now_ns)
        current = self.bucket_of(now_ns)
        bucket = self.bucket_of(min(created_ns, now_ns)) if created_ns > 0 else current
        if bucket <= current - self.horizon:
            return None
        self.seen[key] = bucket
        self.bucket_ids.setdefault(bucket, []).append(key)
        names = self.bucket_subjects.setdefault(bucket, set())
        for subject in subjects:
            tally = self.series.setdefault(subject, {}).setdefault(bucket, Tally(src=[]))
            tally.n += 1
            tally.w += weight
            tally.ws += weight * score
            if source not in tally.src:
                tally.src.append(source)
            names.add(subject)
        return bucket

    def prune(self, now_ns: int) -> list[int]:
        """Drop buckets that left the horizon; the indices dropped (to delete from the journal)."""
        floor = self.bucket_of(now_ns) - self.horizon
        old = [b for b in self.bucket_ids.keys() | self.bucket_subjects.keys() if b <= floor]
        for bucket in old:
            for key in self.bucket_ids.pop(bucket, []):
                self.seen.pop(key, None)
            for subject in self.bucket_subjects.pop(bucket, set()):
                series = self.series.get(subject)
                if series is not None:
                    series.pop(bucket, None)
                    if not series:
                        del self.series[subject]
        return old

    def stats(self, subject: str, now_ns: int) -> list[WindowStats]:
        """The subject's figures over each window at ``now_ns``."""
        series = self.series.get(subject, {})
        current = self.bucket_of(now_ns)
        elapsed = (now_ns / 1e9 - current * self.bucket_s) / self.bucket_s  # of the open bucket, [0, 1)
        out = []
        for window_s in self.windows_s:
            n = window_s // self.bucket_s
            counts = [0] * (self.z_history + 1)  # [0]: the current window, [k]: k windows back
            w = ws = 0.0
            sources: set[str] = set()
            for bucket, tally in series.items():
                k = (current - bucket) // n
                if 0 <= k <= self.z_history:
                    counts[k] += tally.n
                    if k == 0:
                        w += tally.w
                        ws += tally.ws
                        sources.update(tally.src)
            count = counts[0]
            # History window k spans buckets current - (k+1)n + 1 .. current - kn: observed if it
            # starts at or after the first observed bucket.
            since = self.since if self.since is not None else current
            observed = [counts[k] for k in range(1, self.z_history + 1) if current - (k + 1) * n + 1 >= since]
            z, z_conf = None, 0.0
            if len(observed) >= self.min_history:
                coverage = (n - 1 + elapsed) / n
                mean = sum(observed) / len(observed)
                var = sum((x - mean) ** 2 for x in observed) / (len(observed) - 1)
                expected = coverage * mean
                sigma = max(math.sqrt(coverage * var), math.sqrt(max(expected, 1.0)))
                z = (count - expected) / sigma
                z_conf = min(1.0, len(observed) / self.z_history)
            out.append(
                WindowStats(
                    window_s=float(window_s),
                    count=count,
                    sentiment=max(-1.0, min(1.0, ws / w)) if w > 0 else 0.0,
                    confidence=count / (count + self.confidence_count) if count else 0.0,
                    sources=tuple(sorted(sources)),
                    z=z,
                    z_confidence=z_conf,
                    history=len(observed),
                )
            )
        return out

    def active(self, now_ns: int) -> set[str]:
        """Subjects with at least one post in the longest window."""
        floor = self.bucket_of(now_ns) - max(self.windows_s) // self.bucket_s
        return {s for s, series in self.series.items() if any(b > floor for b in series)}

    # -- journal form --------------------------------------------------------------------------------
    def bucket_state(self, bucket: int) -> BucketState | None:
        """One bucket as journaled (None once it holds nothing)."""
        ids = self.bucket_ids.get(bucket)
        if not ids:
            return None
        tallies = {s: self.series[s][bucket] for s in self.bucket_subjects.get(bucket, ())}
        return BucketState(tallies=tallies, ids=list(ids))

    def restore(self, bucket: int, state: BucketState) -> None:
        """Put back one journaled bucket (at start, before any post)."""
        self.bucket_ids[bucket] = list(state.ids)
        for key in state.ids:
            self.seen[key] = bucket
        self.bucket_subjects[bucket] = set(state.tallies)
        for subject, tally in state.tallies.items():
            self.series.setdefault(subject, {})[bucket] = tally
