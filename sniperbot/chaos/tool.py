"""The chaos tool: kill and stop actors of a running node at random, then prove no money was lost.

A run (research §8: Chaos Monkey's random kills, Jepsen's nemesis and checker):

1. **Steady state.** The node answers, its actors run, ``fills`` is noted.
2. **Faults.** Every ``interval_s`` for ``duration_s``: a seeded random choice of
   an actor (among the workers that run in their own process, in id order) and
   of a signal (``KILL``: a crash; ``STOP``: a hang the node must detect by
   heartbeat and kill), sent through the admin socket's ``chaos`` command. The
   node refuses unless it was started with ``--enable-chaos``; this tool has no
   other way in, by design. A chosen actor that is not running at that moment
   (restarting, breaker open) is retried until the next slot, then skipped.
3. **Recovery.** A fault is recovered when the actor runs again with a higher
   incarnation; the time from the signal to that is its recovery time (polled
   every 50 ms). Breaker trips and recoveries are counted from
   ``breaker_status``; after the faults the tool waits (``recovery_timeout_s``)
   for every actor and for tripped breakers to close again, since a node whose
   breaker cools down trades only risk-reducing orders. A breaker still open
   then is reported (``breakers_not_closed``), not failed: it is the node
   protecting itself.
4. **Checks.** Every fault recovered; the node still trades (fills increase
   within ``trade_timeout_s``); the money invariants of
   :mod:`sniperbot.chaos.invariants` hold (retried until the journal and the
   venue ledgers have settled, at most ``settle_timeout_s``); the node's reported
   positions equal the sum of journaled fills.

The same seed gives the same sequence of (actor, signal) choices.

**Against an exchange** (a node with live ccxt venues, issue #9 point 8): with ``exchange``
(``sniperbot chaos --config FILE``: the node's config, whose live ccxt venues are checked, the keys
unlocked from the keystore as ``sniperbot run`` does), the account is read through ccxt before the
faults (the baseline: balances, orders, trades) and the money invariants are checked against the
exchange's own records (:mod:`sniperbot.chaos.exchange`) instead of the gateway's ledger; venues
without an exchange keep the ledger check. With ``venue_faults`` (a test exchange's control URL,
``http://127.0.0.1:P/__control__/``: a hook of the local test servers in ``tests/exchanges``, which no
real exchange has), a share ``net_share`` of the fault slots injects a network fault at the exchange
instead of a signal, chosen (seeded) among ``net_faults``: ``drop_streams`` (every websocket reset),
``lose_order_answer`` (the order is placed, its answer lost), ``order_5xx`` (503, not processed),
``lose_lookup_answer`` / ``lookup_5xx`` (the same on the order query). Such a fault recovers when the
server next answers that endpoint successfully (for a drop: when as many streams are open again);
a REST fault stays armed until the node's next request to that endpoint; one never triggered by the
end of the injection is disarmed and counted ``net_unfired`` (not in ``faults``).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any

import msgspec

from sniperbot.admin import AdminUnavailable, admin_request
from sniperbot.chaos.chain import (
    ChainReader,
    ChainReport,
    ChainVenue,
    check_chain,
    journaled_hashes,
)
from sniperbot.chaos.exchange import (
    ExchangeBaseline,
    ExchangeReader,
    ExchangeReport,
    ExchangeVenue,
    check_exchange,
    journal_since_ms,
    read_journal,
)
from sniperbot.chaos.exchange import report_dict as exchange_report_dict
from sniperbot.chaos.invariants import CheckError, InvariantReport, check_run_dir, report_dict, venues_in
from sniperbot.journal import JournalError

SIGNALS = ("KILL", "STOP", "TERM")
_POLL_S = 0.05
_BREAKER_POLL_S = 0.25
_INJECTABLE_PLACEMENTS = ("process", "ray")
# The network faults a test exchange injects (tests/exchanges/_base.py: NET_FAULTS, the same names).
NET_FAULTS = ("drop_streams", "lose_order_answer", "order_5xx", "lose_lookup_answer", "lookup_5xx")
NET_SIGNAL = "NET"


class ChaosUnavailable(Exception):
    """Chaos cannot run against this node; ``code`` says why (no_node, chaos_disabled, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ChaosOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What to inject, for how long, and how long to wait for the node to settle."""

    run_dir: str
    duration_s: float
    interval_s: float
    seed: int = 0
    signals: tuple[str, ...] = ("KILL", "STOP")
    recovery_timeout_s: float = 60.0
    trade_timeout_s: float = 30.0
    settle_timeout_s: float = 15.0
    venue_faults: str | None = None  # a test exchange's control URL (module docstring)
    net_faults: tuple[str, ...] = NET_FAULTS
    net_share: float = 0.3  # share of fault slots that are network faults when venue_faults is set


class Fault(msgspec.Struct, kw_only=True):
    """One injected fault and when (if) the actor came back."""

    at_s: float
    actor: str
    signal: str
    pid: int
    incarnation: int
    recovered: bool = False
    recovery_ms: float | None = None
    fault_id: int = 0  # a network fault's id at the test exchange (0 for a signal)


class ChaosReport(msgspec.Struct, kw_only=True):
    """The outcome of a chaos run; ``ok`` is False if any check failed."""

    ok: bool
    faults: int
    recovered: int
    duplicate_orders: int
    lost_fills: int
    recovery_ms_p50: float | None
    recovery_ms_p99: float | None
    recovery_ms_max: float | None
    breaker_trips: int
    breaker_recoveries: int
    breakers_not_closed: list[str]
    still_trading: bool
    fills_before: int
    fills_after: int
    duplicate_submissions: int
    skipped: int
    seed: int
    signals: list[str]
    duration_s: float
    interval_s: float
    problems: list[str]
    fault_log: list[Fault]
    invariants: dict[str, Any] | None
    net_faults: int = 0  # network faults injected at the exchange (also counted in ``faults``)
    net_unfired: int = 0  # armed at the exchange but never triggered (disarmed; not in ``faults``)
    exchange: list[dict[str, Any]] | None = None  # one ExchangeReport per live venue
    chain: list[dict[str, Any]] | None = None  # one ChainReport per live evm venue


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return round(ordered[rank - 1], 1)


class _Node:
    """The admin socket of the node under test, as the tool uses it."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir

    def call(self, cmd: str, **args: Any) -> Any:
        reply = admin_request(self.run_dir, cmd, **args)
        if not reply.ok:
            assert reply.error is not None
            raise ChaosUnavailable(reply.error.code, reply.error.message)
        return reply.result

    def workers(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}

        def walk(node: dict[str, Any]) -> None:
            if node.get("kind") == "worker":
                out[node["id"]] = node
            for child in node.get("children") or []:
                walk(child)

        walk(self.call("tree"))
        return out


class _BreakerWatch:
    """Counts breaker trips and recoveries from successive ``breaker_status`` polls."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, int]] | None = None
        self.trips = 0
        self.recoveries = 0

    def observe(self, breakers: list[dict[str, Any]]) -> None:
        baseline = self.seen is None
        seen = self.seen if self.seen is not None else {}
        for b in breakers:
            scope, state, trips = b["scope"], b["state"], int(b.get("trips", 0))
            before_state, before_trips = seen.get(scope, ("closed", 0))
            if not baseline:
                # trips only grows, except when a long-closed breaker trips afresh (reset to 1)
                self.trips += trips - before_trips if trips >= before_trips else trips
                if state == "open" and before_state != "open" and trips == before_trips:
                    self.trips += 1  # a trip whose count we could not see move
                if state == "closed" and before_state != "closed":
                    self.recoveries += 1
            seen[scope] = (state, trips)
        self.seen = seen

    def not_closed(self) -> list[str]:
        """Scopes whose breaker was open or half-open at the last poll."""
        return sorted(scope for scope, (state, _) in (self.seen or {}).items() if state != "closed")


def run_chaos(
    options: ChaosOptions,
    say: Callable[[str], None] = lambda _: None,
    exchange: list[tuple[ExchangeVenue, Any]] | None = None,
    chains: list[Any] | None = None,
) -> ChaosReport:
    """Run one chaos session against the node in ``options.run_dir``; ``say`` gets progress lines.

    ``exchange``: the node's live venues with their unlocked credentials (or None), checked against
    the exchange (module docstring). ``chains``: the node's live evm venues, checked against the chain
    (:mod:`sniperbot.chaos.chain`), and its live solana venues (:mod:`sniperbot.chaos.solana_chain`).
    Raises :class:`ChaosUnavailable` if the node is not there, refuses fault injection, or an exchange
    cannot be read at the start.
    """
    bad_net = [f for f in options.net_faults if f not in NET_FAULTS]
    if bad_net or (options.venue_faults and not options.net_faults):
        raise ChaosUnavailable(
            "invalid_message", f"net faults must be among {', '.join(NET_FAULTS)}, got {bad_net}"
        )
    bad = [s for s in options.signals if s not in SIGNALS]
    if bad or not options.signals:
        raise ChaosUnavailable("invalid_message", f"signals must be among {', '.join(SIGNALS)}, got {bad}")
    if not (options.duration_s > 0 and options.interval_s > 0):
        raise ChaosUnavailable("invalid_message", "duration and interval must be > 0")
    node = _Node(options.run_dir)
    try:
        workers = node.workers()
        fills_before = int(node.call("status")["fills"])
    except AdminUnavailable as e:
        raise ChaosUnavailable("no_node", str(e)) from e
    candidates = sorted(a for a, w in workers.items() if w.get("placement") in _INJECTABLE_PLACEMENTS)
    if not candidates:
        raise ChaosUnavailable("not_found", "no actor of this node runs in its own process")
    venues = _open_exchanges(options.run_dir, exchange or [])
    try:
        witnesses = _open_chains(chains or [])
    except Exception:
        for reader, _ in venues:
            reader.close()
        raise
    try:
        session = _Session(node, options, candidates, say, venues, witnesses)
        try:
            session.inject_for(options.duration_s)
            session.await_recovery()
            still_trading, fills_after = session.await_trading()
            invariants = session.check_invariants()
            session.check_exchanges()
            session.check_chains()
        except AdminUnavailable as e:
            session.problems.append(f"the node stopped answering: {e}")
            still_trading, fills_after, invariants = False, fills_before, None
        return session.report(fills_before, still_trading, fills_after, invariants)
    finally:
        for reader, _ in venues:
            reader.close()


def _open_exchanges(
    run_dir: str, exchange: list[tuple[ExchangeVenue, Any]]
) -> list[tuple[ExchangeReader, ExchangeBaseline]]:
    """A reader per live venue and the account's baseline, before any fault."""
    import ccxt

    out: list[tuple[ExchangeReader, ExchangeBaseline]] = []
    for venue, credentials in exchange:
        try:
            reader = ExchangeReader(venue, run_dir, credentials)
        except ValueError as e:
            raise ChaosUnavailable("invalid_message", str(e)) from e
        try:
            # The window every later check reads; a venue with no order yet: the whole history.
            since = journal_since_ms(read_journal(run_dir), venue.name)
            out.append((reader, reader.baseline(since)))
        except (ccxt.BaseError, JournalError) as e:
            reader.close()
            for r, _ in out:
                r.close()
            # By class only: a ccxt message may quote the signed request.
            what = "the journal" if isinstance(e, JournalError) else "the account"
            raise ChaosUnavailable(
                "exchange_unavailable", f"venue {venue.name}: cannot read {what}: {type(e).__name__}"
            ) from e
    return out


def _open_chains(chains: list[Any]) -> list[tuple[Any, Any]]:
    """A reader per live evm or solana venue and the wallet's baseline, before any fault."""
    out: list[tuple[Any, Any]] = []
    for venue in chains:
        reader = ChainReader(venue) if isinstance(venue, ChainVenue) else _solana().SolanaChainReader(venue)
        try:
            out.append((reader, reader.baseline()))
        except Exception as e:  # web3 raises transport and RPC errors of many classes
            raise ChaosUnavailable(
                "chain_unavailable", f"venue {venue.name}: cannot read the chain: {type(e).__name__}"
            ) from e
    return out


def _solana() -> Any:
    """:mod:`sniperbot.chaos.solana_chain`, imported only when a live solana venue is checked."""
    from sniperbot.chaos import solana_chain

    return solana_chain


class _VenueFaults:
    """The control endpoint of a test exchange (``/__control__/``), as the tool uses it."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") + "/"

    def call(self, name: str, *args: Any) -> Any:
        import json
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            self.url + name,
            data=json.dumps({"args": list(args)}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return json.loads(answer.read())["result"]
        except (OSError, ValueError, KeyError) as e:
            raise ChaosUnavailable("venue_faults", f"--venue-faults {self.url}{name}: {e}") from e


class _Session:
    """The state of one chaos run."""

    def __init__(
        self,
        node: _Node,
        options: ChaosOptions,
        candidates: list[str],
        say: Callable[[str], None],
        venues: list[tuple[ExchangeReader, ExchangeBaseline]] | None = None,
        chains: list[tuple[Any, Any]] | None = None,
    ) -> None:
        self.venues = venues or []
        self.chains = chains or []
        self.chain_reports: list[ChainReport] = []
        self.venue_faults = _VenueFaults(options.venue_faults) if options.venue_faults else None
        self.net_unfired = 0
        self.exchange_reports: list[ExchangeReport] = []
        self._next_net_poll = 0.0
        self.node = node
        self.options = options
        self.candidates = candidates
        self.say = say
        self.rng = random.Random(options.seed)
        self.faults: list[Fault] = []
        self.problems: list[str] = []
        self.skipped = 0
        self.breakers = _BreakerWatch()
        self.breakers_supported = True
        self.started = time.monotonic()
        self._injected_at: dict[int, float] = {}
        self._next_breaker_poll = 0.0
        self._poll_breakers(force=True)

    # -- faults -------------------------------------------------------------------------------
    def inject_for(self, duration_s: float) -> None:
        end = self.started + duration_s
        next_slot = self.started
        pending: tuple[str, str] | None = None
        while (now := time.monotonic()) < end:
            if pending is None and now >= next_slot:
                if self.venue_faults is not None and self.rng.random() < self.options.net_share:
                    pending = (self.rng.choice(self.options.net_faults), NET_SIGNAL)
                else:
                    pending = (self.rng.choice(self.candidates), self.rng.choice(self.options.signals))
                next_slot += self.options.interval_s
            workers = self.node.workers()
            if pending is not None:
                if self._try_inject(*pending, workers):
                    pending = None
                elif time.monotonic() >= next_slot:
                    self.skipped += 1
                    self.say(f"skipped {pending[1]} {pending[0]}: not running during its slot")
                    pending = None
            self._update_recoveries(workers)
            self._poll_breakers()
            time.sleep(_POLL_S)

    def _try_inject(self, actor: str, signal: str, workers: dict[str, dict[str, Any]]) -> bool:
        if signal == NET_SIGNAL:
            return self._inject_net(actor)
        worker = workers.get(actor)
        if worker is None or worker.get("state") != "running" or not worker.get("pid"):
            return False
        at = time.monotonic()
        try:
            result = self.node.call("chaos", actor=actor, signal=signal)
        except ChaosUnavailable as e:
            if e.code == "not_found":
                return False  # it went down between the tree and the request; retry
            if e.code == "chaos_disabled":
                raise ChaosUnavailable(
                    e.code,
                    f"the node refuses fault injection ({e}); start it with `sniperbot run --enable-chaos`",
                ) from e
            raise
        fault = Fault(
            at_s=round(at - self.started, 3),
            actor=actor,
            signal=signal,
            pid=int(result.get("pid") or 0),
            incarnation=int(result.get("incarnation") or worker.get("incarnation") or 0),
        )
        self._injected_at[id(fault)] = at
        self.faults.append(fault)
        self.say(
            f"{fault.at_s:7.2f}s  {signal:<4} {actor} (pid {fault.pid}, incarnation {fault.incarnation})"
        )
        return True

    def _inject_net(self, kind: str) -> bool:
        """One network fault at the test exchange (armed until the node's next matching request)."""
        assert self.venue_faults is not None
        at = time.monotonic()
        fault_id = int(self.venue_faults.call("net_fault", kind))
        fault = Fault(
            at_s=round(at - self.started, 3),
            actor=f"exchange:{kind}",
            signal=NET_SIGNAL,
            pid=0,
            incarnation=0,
            fault_id=fault_id,
        )
        self._injected_at[id(fault)] = at
        self.faults.append(fault)
        self.say(f"{fault.at_s:7.2f}s  {NET_SIGNAL:<4} {kind} (fault {fault_id} at the exchange)")
        return True

    def _update_net_recoveries(self, force: bool = False) -> None:
        """Network faults: recovered when the exchange saw the endpoint (or the streams) work again."""
        now = time.monotonic()
        waiting = [f for f in self.faults if f.signal == NET_SIGNAL and not f.recovered]
        if self.venue_faults is None or not waiting or (not force and now < self._next_net_poll):
            return
        self._next_net_poll = now + _BREAKER_POLL_S
        info = {int(f["id"]): f for f in self.venue_faults.call("faults_info")["faults"]}
        for fault in waiting:
            seen = info.get(fault.fault_id)
            if seen is None or seen.get("recovered_at") is None or seen.get("fired_at") is None:
                continue
            fault.recovered = True
            fault.recovery_ms = round((float(seen["recovered_at"]) - float(seen["fired_at"])) * 1000, 1)
            self.say(f"          recovered {fault.actor} in {fault.recovery_ms:.0f} ms")

    def _drop_unfired(self) -> None:
        """Disarm network faults that never triggered; they are counted apart, not as faults."""
        if self.venue_faults is None:
            return
        self.net_unfired += int(self.venue_faults.call("clear_faults"))
        info = {int(f["id"]): f for f in self.venue_faults.call("faults_info")["faults"]}
        unfired = [
            f
            for f in self.faults
            if f.signal == NET_SIGNAL and info.get(f.fault_id, {}).get("fired_at") is None
        ]
        self.faults = [f for f in self.faults if f not in unfired]

    def _update_recoveries(self, workers: dict[str, dict[str, Any]]) -> None:
        self._update_net_recoveries()
        now = time.monotonic()
        for fault in self.faults:
            if fault.recovered or fault.signal == NET_SIGNAL:
                continue
            w = workers.get(fault.actor)
            if (
                w is not None
                and w.get("state") == "running"
                and (w.get("incarnation") or 0) > fault.incarnation
            ):
                fault.recovered = True
                fault.recovery_ms = round((now - self._injected_at[id(fault)]) * 1000, 1)
                self.say(f"          recovered {fault.actor} in {fault.recovery_ms:.0f} ms")

    def _poll_breakers(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.breakers_supported or (not force and now < self._next_breaker_poll):
            return
        self._next_breaker_poll = now + _BREAKER_POLL_S
        try:
            self.breakers.observe(self.node.call("breaker_status"))
        except ChaosUnavailable:
            self.breakers_supported = False  # a node without breakers: nothing to count

    # -- after the faults ------------------------------------------------------------------------
    def await_recovery(self) -> None:
        """Wait for every faulted actor to run again, and for breakers to close (bounded)."""
        self._drop_unfired()
        deadline = time.monotonic() + self.options.recovery_timeout_s
        while time.monotonic() < deadline:
            if all(f.recovered for f in self.faults) and not self.breakers.not_closed():
                break
            self._update_recoveries(self.node.workers())
            self._poll_breakers()
            time.sleep(_POLL_S)
        lost = [f"{f.signal} {f.actor}" for f in self.faults if not f.recovered]
        if lost:
            self.problems.append(
                f"{len(lost)} faults not recovered within {self.options.recovery_timeout_s:g} s: "
                + ", ".join(lost[:5])
            )

    def await_trading(self) -> tuple[bool, int]:
        start = int(self.node.call("status")["fills"])
        deadline = time.monotonic() + self.options.trade_timeout_s
        fills = start
        while time.monotonic() < deadline:
            fills = int(self.node.call("status")["fills"])
            self._poll_breakers()
            if fills > start:
                return True, fills
            time.sleep(0.2)
        self.problems.append(f"no new fill within {self.options.trade_timeout_s:g} s after the faults")
        return False, fills

    def check_invariants(self) -> InvariantReport | None:
        """Journal against venue ledgers until settled, then positions against the node's status."""
        deadline = time.monotonic() + self.options.settle_timeout_s
        report: InvariantReport | None = None
        live = {reader.venue.name for reader, _ in self.venues} | {r.venue.name for r, _ in self.chains}
        if live and not [v for v in venues_in(self.options.run_dir) if v not in live]:
            return None  # every venue is checked against its exchange (check_exchanges)
        try:
            while True:
                report = check_run_dir(self.options.run_dir, exclude=live)
                if (report.ok and report.settled) or time.monotonic() >= deadline:
                    break
                time.sleep(0.2)
            if report.ok:
                # The portfolio publishes snapshots periodically: find a moment when the
                # node's positions and the journal agree on the fill count, then compare.
                while True:
                    status = self.node.call("status")
                    with_positions = check_run_dir(self.options.run_dir, status["positions"], exclude=live)
                    again = self.node.call("status")
                    if with_positions.ok or time.monotonic() >= deadline:
                        report = with_positions
                        break
                    if again["fills"] != status["fills"]:
                        continue  # traded meanwhile: not a consistent moment
                    time.sleep(0.2)
        except CheckError as e:
            self.problems.append(f"invariants could not be checked: {e}")
            return None
        if not report.settled:
            self.problems.append(
                f"journal and venue did not settle within {self.options.settle_timeout_s:g} s: "
                f"{len(report.unreconciled)} unreconciled, {len(report.unsent)} unsent"
            )
        self.problems.extend(report.problems)
        return report

    def check_exchanges(self) -> None:
        """Each live venue's journal against the exchange's records, until settled (bounded)."""
        import ccxt

        deadline = time.monotonic() + self.options.settle_timeout_s
        for reader, baseline in self.venues:
            name = reader.venue.name
            report: ExchangeReport | None = None
            error = ""
            while True:
                try:
                    before = self.node.call("status")
                    since = journal_since_ms(read_journal(self.options.run_dir), name)
                    records = reader.fetch(since)
                    journal = read_journal(self.options.run_dir)  # after the fetch: journal-first
                    after = self.node.call("status")
                    # The node's positions only at a moment it did not trade meanwhile.
                    positions = before["positions"] if before["fills"] == after["fills"] else None
                    report = check_exchange(journal, records, baseline, positions)
                    error = ""
                except ccxt.BaseError as e:
                    error = f"venue {name}: exchange unreadable: {type(e).__name__}"
                if (report is not None and report.ok and report.settled and not error) or (
                    time.monotonic() >= deadline
                ):
                    break
                time.sleep(1.0)  # each fetch spends the venue's shared rate budget
            if report is None:
                self.problems.append(error or f"venue {name}: not checked")
                continue
            self.exchange_reports.append(report)
            if not report.settled:
                self.problems.append(
                    f"venue {name}: journal and exchange did not settle within "
                    f"{self.options.settle_timeout_s:g} s: {len(report.unreconciled)} unreconciled, "
                    f"{len(report.unsent)} unsent"
                )
            self.problems.extend(report.problems)

    def check_chains(self) -> None:
        """Each live evm venue's journal against the chain (the wallet's transactions), until settled."""
        deadline = time.monotonic() + self.options.settle_timeout_s
        for reader, baseline in self.chains:
            name = reader.venue.name
            report: ChainReport | None = None
            error = ""
            while True:
                try:
                    journal = read_journal(self.options.run_dir)
                    evm = isinstance(reader, ChainReader)
                    ids = journaled_hashes if evm else _solana().journaled_signatures
                    check = check_chain if evm else _solana().check_solana
                    records = reader.fetch(baseline, ids(journal, name))
                    # read again after the chain: a fill journaled meanwhile is not taken for a lost one
                    report = check(reader.venue, read_journal(self.options.run_dir), records, baseline)
                    error = ""
                except Exception as e:  # web3's transport / RPC errors
                    error = f"venue {name}: chain unreadable: {type(e).__name__}"
                if (report is not None and report.ok and report.settled and not error) or (
                    time.monotonic() >= deadline
                ):
                    break
                time.sleep(0.5)
            if report is None:
                self.problems.append(error or f"venue {name}: not checked")
                continue
            self.chain_reports.append(report)
            if not report.settled:
                self.problems.append(
                    f"venue {name}: journal and chain did not settle within "
                    f"{self.options.settle_timeout_s:g} s: {'; '.join(report.unsettled[:5])}"
                )
            self.problems.extend(report.problems)

    def report(
        self, fills_before: int, still_trading: bool, fills_after: int, invariants: InvariantReport | None
    ) -> ChaosReport:
        times = [f.recovery_ms for f in self.faults if f.recovery_ms is not None]
        ex = self.exchange_reports
        duplicates = (len(invariants.duplicate_orders) if invariants else 0) + sum(
            len(r.duplicate_orders) for r in ex
        )
        lost = (len(invariants.lost_fills) if invariants else 0) + sum(len(r.lost_fills) for r in ex)
        duplicates += sum(len(r.duplicate_orders) for r in self.chain_reports)
        lost += sum(len(r.lost_fills) for r in self.chain_reports)
        checked = invariants is not None or bool(ex) or bool(self.chain_reports)
        return ChaosReport(
            ok=not self.problems,
            faults=len(self.faults),
            recovered=sum(f.recovered for f in self.faults),
            duplicate_orders=duplicates if checked else -1,
            lost_fills=lost if checked else -1,
            recovery_ms_p50=percentile(times, 50),
            recovery_ms_p99=percentile(times, 99),
            recovery_ms_max=max(times) if times else None,
            breaker_trips=self.breakers.trips,
            breaker_recoveries=self.breakers.recoveries,
            breakers_not_closed=self.breakers.not_closed(),
            still_trading=still_trading,
            fills_before=fills_before,
            fills_after=fills_after,
            duplicate_submissions=invariants.duplicate_submissions if invariants else -1,
            skipped=self.skipped,
            seed=self.options.seed,
            signals=list(self.options.signals),
            duration_s=self.options.duration_s,
            interval_s=self.options.interval_s,
            problems=self.problems,
            fault_log=self.faults,
            invariants=report_dict(invariants) if invariants else None,
            net_faults=sum(f.signal == NET_SIGNAL for f in self.faults),
            net_unfired=self.net_unfired,
            exchange=[exchange_report_dict(r) for r in ex] if self.venues else None,
            chain=[msgspec.to_builtins(r) for r in self.chain_reports] if self.chains else None,
        )


def format_report(report: ChaosReport) -> str:
    """A human summary of a chaos run."""
    inv = report.invariants or {}
    lines = [
        f"chaos: {'OK' if report.ok else 'FAILED'} (seed {report.seed}, {report.duration_s:g} s, "
        f"one fault every {report.interval_s:g} s, signals {','.join(report.signals)})",
        f"  faults            {report.faults} injected, {report.recovered} recovered, "
        f"{report.skipped} skipped",
        f"  recovery          p50 {_ms(report.recovery_ms_p50)}  p99 {_ms(report.recovery_ms_p99)}  "
        f"max {_ms(report.recovery_ms_max)}",
        f"  breakers          {report.breaker_trips} trips, {report.breaker_recoveries} recoveries"
        + (
            f", still not closed: {', '.join(report.breakers_not_closed)}"
            if report.breakers_not_closed
            else ""
        ),
        f"  still trading     {'yes' if report.still_trading else 'NO'} "
        f"(fills {report.fills_before} -> {report.fills_after})",
        f"  duplicate orders  {report.duplicate_orders} executed twice, "
        + (
            f"{report.duplicate_submissions} refused resubmissions"
            if report.duplicate_submissions >= 0
            else "resubmissions not visible at an exchange"
        ),
        f"  lost fills        {report.lost_fills}",
    ]
    if report.net_faults or report.net_unfired:
        lines.append(
            f"  network faults    {report.net_faults} at the exchange "
            f"({report.net_unfired} armed but never triggered)"
        )
    for ex in report.exchange or []:
        lines.append(
            f"  exchange {ex['venue']:<8} {ex['orders_journaled']} / {ex['orders_at_exchange']} orders, "
            f"{ex['fills_journaled']} / {ex['trades_at_exchange']} fills / exchange trades, "
            f"{len(ex['duplicate_orders'])} executed twice, {len(ex['lost_fills'])} lost, "
            f"{len(ex['phantom_fills'])} phantom, {len(ex['foreign_orders'])} foreign orders"
        )
        lines.append(
            f"                    positions {ex['positions']} (exchange trades {ex['exchange_positions']}); "
            f"balance changes {ex['balance_changes']} (journal explains {ex['expected_balance_changes']})"
        )
    for ch in report.chain or []:
        lines.append(
            f"  chain {ch['venue']:<11} {ch['orders_journaled']} orders, {ch['fills_journaled']} fills / "
            f"{ch['swaps_on_chain']} swaps mined ({ch['wallet_txs']} wallet transactions), "
            f"{len(ch['duplicate_orders'])} executed twice, {len(ch['lost_fills'])} lost, "
            f"{len(ch['phantom_fills'])} phantom"
        )
        lines.append(
            f"                    positions {ch['positions']}; wallet changes {ch['wallet_changes']}"
        )
    if inv:
        lines.append(
            f"  journal vs venue  {inv['orders_journaled']} / {inv['orders_at_venue']} orders, "
            f"{inv['fills_journaled']} / {inv['fills_at_venue']} fills, positions {inv['positions']}"
        )
    lines += [f"  problem: {p}" for p in report.problems]
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"
