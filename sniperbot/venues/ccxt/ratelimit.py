"""Rate limits shared by every process of a venue: one budget per (venue, API key), kept in the run dir.

An exchange counts what a whole node spends — per IP (Binance request weight), per
account (Binance orders) or per key (Kraken, Coinbase) — while ccxt throttles each
``Exchange`` object on its own, and sniperbot's feed, executor, reconciliation and
balance polls are separate OS processes. So the budget lives in one small file per
(venue, key name), ``<run dir>/limits/<venue>.<key>.lim``, that every process maps and
updates under an exclusive ``flock``:

* **Why a file + flock (measured, see ``bench/ratelimit.py``):** the kernel drops a
  ``flock`` when its holder dies, so a ``kill -9`` in the middle of an update never
  wedges the other processes (a POSIX semaphore in shared memory would stay taken:
  Python has no robust mutex). The state is one fixed ``struct`` (about 400 bytes) in a
  ``mmap`` of that file: lock, read, write, unlock take a few microseconds, the same
  order as an LMDB write transaction without fsync (measured side by side), with no
  map size, lock file or reader table to manage and nothing outside the stdlib. The
  file outlives every process, so an actor restarted after a crash finds what was
  already spent — the exchange does not forget it either. The whole limiter adds about
  10 µs to a REST call (p50), against a network round trip of milliseconds.
* **Budgets are reserved before the request leaves** (a request that then fails still
  counts — as it does at the exchange), so several processes never overspend between
  them. Two kinds of bucket model the exchanges: a clock-aligned fixed window
  (:class:`Window`, Binance's ``REQUEST_WEIGHT`` and ``ORDERS``: the exchange resets at
  interval boundaries) and a decaying counter (:class:`Decay`, Kraken's call counter;
  Coinbase's per-second quotas, set so that any one-second span stays under the quota).
* **Window edges:** a request granted in the last ``guard`` seconds of a window may
  reach the exchange after the window rolled, so it is charged to the next window too.
* **Server's count wins when higher:** responses carrying the exchange's own count
  (Binance ``X-MBX-USED-WEIGHT-1M``, ``X-MBX-ORDER-COUNT-10S``/``-1D``) raise the local
  count to it — other clients on the same IP spend from the same budget — and never
  lower it (requests still in flight from other processes are not in the server's
  figure yet).
* **429** (too many requests): every process of the venue waits the exchange's
  ``Retry-After`` (or the table's default) before its next request.
* **418** (Binance IP ban): the venue is *banned* until ``Retry-After`` (or the
  "banned until" time in the body, whichever is later): every process's next request
  raises :class:`VenueBanned` at once instead of waiting — a ban lasts from 2 minutes
  to 3 days, and an executor must not sit on an order that long. :meth:`SharedLimiter.block`
  shows the ban (status, until, reason) to any process, so the node opens the venue's
  breaker with the reason; ``on_block`` is called in the process that saw the 418.
* **Waiting has a ceiling** (``max_wait``, 30 s by default): a call that would wait
  longer raises ``ccxt.RateLimitExceeded`` naming the bucket, rather than sending an
  order minutes after its decision (a daily ``ORDERS`` budget can mean hours).

Limits per exchange (:data:`LIMITS`, from research §4): Binance spot REQUEST_WEIGHT
6000/min, ORDERS 50/10 s and 160000/day, with a 5 % safety margin (Hummingbot's); the
weight of a call is ccxt's per-endpoint ``cost`` / 0.2 (ccxt: "1 IP weight => cost =
0.2"). Kraken: private counter 15, decaying 0.33/s (Starter tier; ccxt cost 3 = +1,
6 = +2), public ~1 req/s; the per-pair trading-engine counter of AddOrder/CancelOrder
is not modelled (ccxt gives those calls cost 0). Coinbase Advanced: private 30 req/s,
public 10 req/s. Any other exchange: ccxt's own leaky bucket (``rateLimit``, per-endpoint
``cost``), shared across processes. Limits are per IP for Binance's weight: two venues of
the same exchange on one IP each need a ``share`` below 1 (Hummingbot's
``rate_limits_share_pct``). Not limited here: ccxt.pro websocket messages (ccxt
throttles those per connection); ccxt's own ``maxRetriesOnFailure`` retries (ccxt
throttles once per call, not per retry: leave it at 0 — an executor never resends blindly
anyway). A machine crash may lose the last updates (no fsync: they are kept by the page
cache across process deaths, which is what restarts need).

Which key name: every actor of a venue opens the limiter under the venue's ``keys`` entry
name — the feed too, though its calls are public, since Binance counts public and signed
weight together per IP — and under :data:`PUBLIC_KEY_NAME` when the venue has no keys.
"""

from __future__ import annotations

import asyncio
import email.utils
import fcntl
import logging
import math
import mmap
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ccxt

from sniperbot.metrics.registry import Registry
from sniperbot.metrics.registry import current as current_metrics

log = logging.getLogger("sniperbot.ratelimit")

LIMITS_DIR = "limits"
PUBLIC_KEY_NAME = "public"  # the key name of a venue configured without keys


# -- limits tables ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A fixed window aligned on the clock (``floor(t / seconds)``): at most ``limit`` per window."""

    name: str
    limit: float
    seconds: float
    header: str | None = None  # response header with the exchange's own count for this window
    guard: float = 0.0  # grants this close to the window's end are charged to the next one too


@dataclass(frozen=True)
class Decay:
    """A counter that grows by each call's amount and decays at ``per_second``; at most ``limit``."""

    name: str
    limit: float
    per_second: float


Bucket = Window | Decay


@dataclass(frozen=True)
class Call:
    """One REST call as ccxt describes it: API group, HTTP method, path and ccxt's ``cost``."""

    api: tuple[str, ...]
    method: str
    path: str
    cost: float


@dataclass(frozen=True)
class VenueLimits:
    """An exchange's buckets, what each call spends from them, and how 429/418 answers are read."""

    exchange: str
    buckets: tuple[Bucket, ...]
    charge: Callable[[Call], Mapping[str, float]]
    default_retry_after: float = 1.0
    ban_statuses: frozenset[int] = frozenset({418})
    backoff_statuses: frozenset[int] = frozenset({429})
    # Substrings of a response body (exchanges that answer 200 with an error) -> bucket to fill
    # (the exchange says it is full), or "" to back off ``default_retry_after``.
    body_rules: tuple[tuple[str, str], ...] = ()

    def signature(self) -> int:
        """A checksum of the buckets' layout, so a changed table never reads another's state."""
        return zlib.crc32(repr(self.buckets).encode())


def _binance_interval(seconds: float) -> str:
    """Binance's header suffix for an interval: 60 -> ``1m``, 10 -> ``10s``, 86400 -> ``1d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    raise ValueError(f"binance limits: window of {seconds} s is not a whole number of seconds")


# Binance endpoints that count against ORDERS (new orders; cancels and test orders do not).
BINANCE_ORDER_PATHS = frozenset(
    {
        "order",
        "order/oco",
        "orderList/oco",
        "orderList/oto",
        "orderList/otoco",
        "orderList/opo",
        "orderList/opoco",
        "sor/order",
        "order/cancelReplace",
    }
)
# ccxt's Binance cost unit: "1 IP weight => cost = 0.2" (binance.py, api table comments).
BINANCE_COST_PER_WEIGHT = 0.2


def binance_limits(
    *,
    weight_limit: float = 6000,
    weight_window: float = 60.0,
    orders_10s: float = 50,
    orders_day: float = 160000,
    share: float = 1.0,
    margin: float = 0.05,
    guard: float = 1.0,
    default_retry_after: float = 60.0,
) -> VenueLimits:
    """Binance spot: REQUEST_WEIGHT per minute (per IP), ORDERS per 10 s and per day (per account)."""
    frac = share * (1.0 - margin)

    def window(name: str, limit: float, seconds: float, header: str) -> Window:
        hdr = f"{header}-{_binance_interval(seconds)}"
        return Window(name, max(1.0, math.floor(limit * frac)), seconds, hdr, min(guard, seconds / 4))

    buckets = (
        window("weight", weight_limit, weight_window, "x-mbx-used-weight"),
        window("orders_10s", orders_10s, 10.0, "x-mbx-order-count"),
        window("orders_1d", orders_day, 86400.0, "x-mbx-order-count"),
    )

    def charge(call: Call) -> Mapping[str, float]:
        out = {"weight": max(1.0, round(call.cost / BINANCE_COST_PER_WEIGHT))}
        if call.method.upper() == "POST" and call.path in BINANCE_ORDER_PATHS:
            out["orders_10s"] = out["orders_1d"] = 1.0
        return out

    return VenueLimits("binance", buckets, charge, default_retry_after=default_retry_after)


def kraken_limits(
    *, private_max: float = 15, private_decay: float = 0.33, public_per_s: float = 1.0
) -> VenueLimits:
    """Kraken spot: the private call counter (Starter tier by default) and ~1 public call per second."""
    buckets = (Decay("private", private_max, private_decay), Decay("public", 1.0, public_per_s))

    def charge(call: Call) -> Mapping[str, float]:
        if "private" in call.api:
            # ccxt: cost 3 = +1 on Kraken's counter, 6 = +2 (ledgers, trade history); 0 = trading engine.
            units = round(call.cost / 3.0)
            return {"private": float(units)} if units > 0 else {}
        return {"public": 1.0}

    rules = (
        ("EAPI:Rate limit exceeded", "private"),
        ("EOrder:Rate limit exceeded", ""),
        ("EService:Throttled", ""),
    )
    return VenueLimits("kraken", buckets, charge, default_retry_after=1.0, body_rules=rules)


def coinbase_limits(
    *, private_per_s: float = 30, public_per_s: float = 10, margin: float = 0.1
) -> VenueLimits:
    """Coinbase Advanced Trade: private ~30 req/s per key, public ~10 req/s per IP, v2 ~3 req/s."""

    def per_second(name: str, rate: float) -> Decay:
        # burst + decay over one second <= the quota, whatever window the exchange measures
        budget = rate * (1.0 - margin)
        burst = max(1.0, math.floor(budget / 10))
        return Decay(name, burst, budget - burst)

    buckets = (
        per_second("private", private_per_s),
        per_second("public", public_per_s),
        per_second("v2", 3.0),
    )

    def charge(call: Call) -> Mapping[str, float]:
        if "v2" in call.api:
            return {"v2": 1.0}
        return {"private": 1.0} if "private" in call.api else {"public": 1.0}

    return VenueLimits("coinbase", buckets, charge, default_retry_after=1.0)


def generic_limits(exchange: str, rate_limit_ms: float) -> VenueLimits:
    """Any other ccxt exchange: ccxt's own leaky bucket (``rateLimit`` ms per unit of ``cost``), shared."""
    rate = 1000.0 / rate_limit_ms if rate_limit_ms > 0 else 1e9
    return VenueLimits(exchange, (Decay("ccxt", 1.0, rate),), lambda call: {"ccxt": call.cost})


LIMITS: dict[str, Callable[[], VenueLimits]] = {
    "binance": binance_limits,
    "kraken": kraken_limits,
    "coinbase": coinbase_limits,
}


def limits_for(exchange: str, rate_limit_ms: float) -> VenueLimits:
    """The table of a ccxt exchange id: the tested exchanges' own, or ccxt's model for any other."""
    build = LIMITS.get(exchange)
    return build() if build is not None else generic_limits(exchange, rate_limit_ms)


# -- shared state -------------------------------------------------------------------------------


class VenueBanned(ccxt.DDoSProtection):
    """The exchange banned this venue's IP/key (HTTP 418) until ``until``: no request is sent."""

    def __init__(self, venue: str, until: float, reason: str) -> None:
        self.venue = venue
        self.until = until
        self.reason = reason
        super().__init__(f"venue {venue}: requests stopped until {_iso(until)} ({reason})")


@dataclass(frozen=True)
class Block:
    """A venue-wide stop seen by every process: a ban (418) or a back-off (429) until ``until``."""

    status: int
    until: float
    reason: str
    banned: bool  # a ban: open the venue's breaker with ``reason``; else a short back-off


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


_MAGIC = b"SBRL0001"
# magic, layout signature, ban_until, ban_status, backoff_until, backoff_status, reason length, reason;
# then per bucket: window start / last decay time, level, amount carried into the next window
_HEAD = "<8sQdidiH254s"
_BUCKET = "ddd"
_BANNED_UNTIL_MS = re.compile(r"banned until (\d{13})")


@dataclass(slots=True)
class _State:
    ban_until: float
    ban_status: int
    backoff_until: float
    backoff_status: int
    reason_raw: bytes
    buckets: list[list[float]]

    @property
    def reason(self) -> str:
        return self.reason_raw.decode(errors="replace")

    @reason.setter
    def reason(self, text: str) -> None:
        self.reason_raw = text.encode()[:254]


class SharedLimiter:
    """The rate budget of one (venue, key name), shared by every process that opens the same run dir.

    Open one per process (it reopens itself after a fork); ``acquire``/``acquire_async``
    before each request, ``observe`` each response. Safe across threads and processes.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        venue: str,
        key_name: str,
        limits: VenueLimits,
        *,
        max_wait: float = 30.0,
        on_block: Callable[[Block], None] | None = None,
        clock: Callable[[], float] = time.time,
        metrics: Registry | None = None,
    ) -> None:
        for what, value in (("venue", venue), ("key name", key_name)):
            if not value or not re.fullmatch(r"[A-Za-z0-9_.-]+", value) or value.startswith("."):
                raise ValueError(f"rate limiter: {what} {value!r} must be letters, digits, '_', '-', '.'")
        self.venue = venue
        self.key_name = key_name
        self.limits = limits
        self.max_wait = max_wait
        self.on_block = on_block
        self._clock = clock
        # Budget use and 429/418 answers, in the registry of the actor that opened the limiter
        # (on its own thread: ccxt's asyncio thread has none of its own).
        self.metrics = metrics if metrics is not None else current_metrics()
        self.path = Path(run_dir) / LIMITS_DIR / f"{venue}.{key_name}.lim"
        self._struct = struct.Struct(_HEAD + _BUCKET * len(limits.buckets))
        self._size = self._struct.size
        self._index = {b.name: i for i, b in enumerate(limits.buckets)}
        self._signature = limits.signature()
        self._thread_lock = threading.Lock()
        self._pid = -1
        self._fd = -1
        self._map: mmap.mmap | None = None

    # -- file ---------------------------------------------------------------------------------

    def _open(self) -> mmap.mmap:
        if self._pid == os.getpid() and self._map is not None:
            return self._map
        # after a fork the inherited descriptor shares its flock with the parent: open our own
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_size < self._size:
                    os.ftruncate(fd, self._size)
                mapped = mmap.mmap(fd, self._size)
                head = self._struct.unpack_from(mapped, 0)
                if head[0] != _MAGIC or head[1] != self._signature:
                    self._init(mapped, fresh=head[0] != _MAGIC)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._map, self._pid = fd, mapped, os.getpid()
        return mapped

    def _init(self, mapped: mmap.mmap, *, fresh: bool) -> None:
        """A new file starts empty; a file of another table starts full (what was spent is unknown)."""
        now = self._clock()
        state = _State(0.0, 0, 0.0, 0, b"", []) if fresh else self._read(mapped)
        state.buckets = []
        for b in self.limits.buckets:
            if isinstance(b, Window):
                start = math.floor(now / b.seconds) * b.seconds
                state.buckets.append([start, 0.0 if fresh else b.limit, 0.0])
            else:
                state.buckets.append([now, 0.0 if fresh else b.limit, 0.0])
        if not fresh:
            log.warning("rate-limit table changed: budgets start full", extra={"path": str(self.path)})
        self._write(mapped, state)

    def _read(self, mapped: mmap.mmap) -> _State:
        v = self._struct.unpack_from(mapped, 0)
        b = v[8:]
        return _State(v[2], v[3], v[4], v[5], v[7][: v[6]], [list(b[j : j + 3]) for j in range(0, len(b), 3)])

    def _write(self, mapped: mmap.mmap, st: _State) -> None:
        flat = [x for values in st.buckets for x in values]
        head = (st.ban_until, st.ban_status, st.backoff_until, st.backoff_status, len(st.reason_raw))
        # one copy into the shared page: a kill -9 cannot leave half of a bucket written in practice
        self._struct.pack_into(mapped, 0, _MAGIC, self._signature, *head, st.reason_raw, *flat)

    def _locked(self, update: Callable[[_State, float], Any]) -> Any:
        """Run ``update(state, now)`` under the thread and file locks and store the state it leaves."""
        with self._thread_lock:
            mapped = self._open()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                st = self._read(mapped)
                now = self._clock()
                self._roll(st, now)
                result = update(st, now)
                self._write(mapped, st)
                return result
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Release the file (the state stays for the next process)."""
        with self._thread_lock:
            if self._map is not None and self._pid == os.getpid():
                self._map.close()
                os.close(self._fd)
            self._map, self._fd, self._pid = None, -1, -1

    # -- budget -------------------------------------------------------------------------------

    def _roll(self, st: _State, now: float) -> None:
        for b, v in zip(self.limits.buckets, st.buckets, strict=True):
            if isinstance(b, Window):
                start = math.floor(now / b.seconds) * b.seconds
                if start > v[0]:
                    # the next window inherits the grants made at the end of this one
                    carry = v[2] if start - v[0] <= b.seconds * 1.5 else 0.0
                    v[0], v[1], v[2] = start, carry, 0.0
            else:
                if now > v[0]:
                    v[1] = max(0.0, v[1] - (now - v[0]) * b.per_second)
                v[0] = max(v[0], now)

    def reserve(self, call: Call) -> float:
        """Take ``call``'s amounts from every bucket and return 0, or return the seconds to wait.

        Raises :class:`VenueBanned` while the venue is banned.
        """
        amounts = self.limits.charge(call)

        def update(st: _State, now: float) -> float:
            if st.ban_until > now:
                raise VenueBanned(self.venue, st.ban_until, st.reason)
            wait = st.backoff_until - now
            for name, amount in amounts.items():
                i = self._index[name]
                b, v = self.limits.buckets[i], st.buckets[i]
                if amount <= 0 or v[1] <= 0 or v[1] + amount <= b.limit:
                    continue  # fits (one call larger than the whole budget goes alone)
                if isinstance(b, Window):
                    wait = max(wait, v[0] + b.seconds - now)
                else:
                    wait = max(wait, (v[1] + amount - b.limit) / b.per_second)
            if wait > 0:
                return wait
            for name, amount in amounts.items():
                i = self._index[name]
                b, v = self.limits.buckets[i], st.buckets[i]
                v[1] += amount
                if isinstance(b, Window) and now >= v[0] + b.seconds - b.guard:
                    v[2] += amount
                used = v[1] / b.limit
                self.metrics.set("sniperbot_venue_rate_limit_used_ratio", used, venue=self.venue, bucket=name)
            return 0.0

        return float(self._locked(update))

    def _too_long(self, call: Call, wait: float) -> ccxt.RateLimitExceeded:
        return ccxt.RateLimitExceeded(
            f"venue {self.venue}: {call.method} {call.path or '?'} would wait {wait:.1f} s for its rate "
            f"budget (max_wait {self.max_wait:.1f} s); see {self.path}"
        )

    def acquire(self, call: Call) -> None:
        """Block until ``call`` fits the shared budget, then take it (sync ccxt)."""
        waited = 0.0
        while True:
            wait = self.reserve(call)
            if wait <= 0:
                return
            if waited + wait > self.max_wait:
                raise self._too_long(call, waited + wait)
            time.sleep(wait)
            waited += wait

    async def acquire_async(self, call: Call) -> None:
        """Wait (without blocking the loop) until ``call`` fits the shared budget, then take it."""
        waited = 0.0
        while True:
            # the critical section is a few microseconds under a lock never held across an await
            wait = self.reserve(call)
            if wait <= 0:
                return
            if waited + wait > self.max_wait:
                raise self._too_long(call, waited + wait)
            await asyncio.sleep(wait)
            waited += wait

    # -- responses ----------------------------------------------------------------------------

    def observe(self, status: int, headers: Mapping[str, Any] | None, body: str | None) -> None:
        """Read a response: 429 -> back off, 418 -> ban, the exchange's own counts -> re-sync."""
        hdr = {str(k).lower(): v for k, v in (headers or {}).items()}
        lim = self.limits
        counts: list[tuple[int, float]] = []
        for i, b in enumerate(lim.buckets):
            if isinstance(b, Window) and b.header and b.header in hdr:
                try:
                    counts.append((i, float(hdr[b.header])))
                except (TypeError, ValueError):
                    pass
        fill: list[int] = []
        backoff = status in lim.backoff_statuses
        if body and lim.body_rules:
            for text, bucket in lim.body_rules:
                if text in body:
                    if bucket:
                        fill.append(self._index[bucket])
                    else:
                        backoff = True
        banned = status in lim.ban_statuses
        if not (counts or fill or backoff or banned):
            return
        retry_after = _retry_after(hdr.get("retry-after"), self._clock())
        seen: list[Block] = []

        def update(st: _State, now: float) -> None:
            for i, used in counts:
                v = st.buckets[i]
                v[1] = max(v[1], used)  # never lower: requests in flight are not in the server's count
            for i in fill:
                st.buckets[i][1] = max(st.buckets[i][1], self.limits.buckets[i].limit)
            wait = retry_after if retry_after is not None else lim.default_retry_after
            if banned:
                until = now + wait
                m = _BANNED_UNTIL_MS.search(body or "")
                if m:
                    until = max(until, int(m.group(1)) / 1000.0)
                if until > st.ban_until:
                    excerpt = " ".join((body or "").split())[:120]
                    st.ban_until, st.ban_status = until, status
                    st.reason = f"{lim.exchange} HTTP {status} ban until {_iso(until)}: {excerpt}"
                    seen.append(Block(status, until, st.reason, banned=True))
            elif backoff and now + wait > st.backoff_until:
                st.backoff_until, st.backoff_status = now + wait, status or 429

        self._locked(update)
        if backoff or banned:
            answer = str(status or 429)
            self.metrics.inc("sniperbot_venue_rate_limited_total", venue=self.venue, status=answer)
        for block in seen:
            log.error("venue banned by the exchange", extra={"venue": self.venue, "reason": block.reason})
            if self.on_block is not None:
                self.on_block(block)

    def block(self) -> Block | None:
        """The venue-wide stop in force now (a ban first, then a back-off), as every process sees it."""

        def update(st: _State, now: float) -> Block | None:
            if st.ban_until > now:
                return Block(st.ban_status, st.ban_until, st.reason, banned=True)
            if st.backoff_until > now:
                reason = (
                    f"{self.limits.exchange} HTTP {st.backoff_status} back-off until {_iso(st.backoff_until)}"
                )
                return Block(st.backoff_status, st.backoff_until, reason, banned=False)
            return None

        result: Block | None = self._locked(update)
        return result

    def usage(self) -> dict[str, float]:
        """What each bucket has spent now (for ``admin status``)."""
        names = [b.name for b in self.limits.buckets]
        return dict(zip(names, self._locked(lambda st, now: [v[1] for v in st.buckets]), strict=True))


def _retry_after(value: Any, now: float) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(str(value)).timestamp() - now)
    except (TypeError, ValueError):
        return None


# -- ccxt integration ---------------------------------------------------------------------------


class EndpointCost(float):
    """ccxt's cost of a call, carrying which endpoint it is for (``throttle`` only gets a number)."""

    api: tuple[str, ...]
    method: str
    path: str

    def __new__(cls, cost: float, api: Any, method: Any, path: Any) -> EndpointCost:
        """Make a float ``cost`` tagged with its endpoint."""
        obj = super().__new__(cls, cost)
        obj.api = tuple(api) if isinstance(api, list | tuple) else (str(api),)
        obj.method, obj.path = str(method), str(path)
        return obj


def _call(cost: Any) -> Call:
    value = 1.0 if cost is None else float(cost)
    if isinstance(cost, EndpointCost):
        return Call(cost.api, cost.method, cost.path, value)
    return Call((), "", "", value)


class _Limited:
    """Overrides of ccxt's documented extension points; ``_sb_limiter`` is set by :func:`limited_exchange`."""

    _sb_limiter: SharedLimiter

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config or {})  # type: ignore[call-arg]
        self.enableRateLimit = True  # ccxt only calls throttle() when this is on

    def calculate_rate_limiter_cost(
        self, api: Any, method: Any, path: Any, params: Any, config: dict[str, Any] | None = None
    ) -> float:
        """ccxt's per-endpoint cost, tagged with the endpoint so the table can charge ORDERS etc."""
        cost = super().calculate_rate_limiter_cost(api, method, path, params, config or {})  # type: ignore[misc]
        return EndpointCost(1.0 if cost is None else cost, api, method, path)

    def on_rest_response(
        self,
        code: Any,
        reason: Any,
        url: Any,
        method: Any,
        response_headers: Any,
        response_body: Any,
        request_headers: Any,
        request_body: Any,
    ) -> Any:
        """Every REST response, before ccxt maps errors: 429/418 and the exchange's counts."""
        try:
            status = int(code)
        except (TypeError, ValueError):
            status = 0
        self._sb_limiter.observe(status, response_headers, response_body)
        return super().on_rest_response(  # type: ignore[misc]
            code, reason, url, method, response_headers, response_body, request_headers, request_body
        )


class _LimitedSync(_Limited):
    def throttle(self, cost: Any = None) -> None:
        """Take this call's cost from the shared budget (blocks)."""
        self._sb_limiter.acquire(_call(cost))


class _LimitedAsync(_Limited):
    async def throttle(self, cost: Any = None) -> None:
        """Take this call's cost from the shared budget (awaits)."""
        await self._sb_limiter.acquire_async(_call(cost))


def limited_exchange(ccxt_class: type, limiter: SharedLimiter) -> type:
    """A subclass of ``ccxt_class`` (sync, async or pro) whose REST calls take from ``limiter``.

    No monkeypatching: it overrides ``throttle`` (ccxt calls it before every request when
    ``enableRateLimit`` is on, which the subclass forces), ``calculate_rate_limiter_cost``
    (to know the endpoint) and ``on_rest_response`` (to see every status and header).
    """
    mixin = _LimitedAsync if asyncio.iscoroutinefunction(ccxt_class.throttle) else _LimitedSync
    name = f"Limited{ccxt_class.__name__}"
    return type(name, (mixin, ccxt_class), {"_sb_limiter": limiter, "__module__": __name__})


def open_limited(
    ccxt_class: type,
    run_dir: str | os.PathLike[str],
    venue: str,
    key_name: str,
    config: dict[str, Any] | None = None,
    *,
    limits: VenueLimits | None = None,
    **limiter_kw: Any,
) -> Any:
    """An instance of ``ccxt_class`` limited by the venue's shared budget (table from the exchange id)."""
    if limits is None:
        probe = ccxt_class()  # id and rateLimit come from describe(), which needs an instance
        limits = limits_for(str(probe.id), float(probe.rateLimit))
    limiter = SharedLimiter(run_dir, venue, key_name, limits, **limiter_kw)
    return limited_exchange(ccxt_class, limiter)(config)
