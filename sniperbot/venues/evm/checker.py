"""The token checker: every new pool of an EVM venue goes through the token safety check.

``checker.<venue>``, in the venue's subtree (after its executor), subscribes to the venue's
:class:`~sniperbot.messages.NewPool` topic and runs :func:`sniperbot.venues.evm.safety.check_token` on
the pool's token with the venue's rules (``[venues.safety]``), simulating a buy of the size the sniper
will really spend (``[venues.sniper] budget``; the rules' ``probe_quote`` without a sniper). For each
report, in this order:

1. it is **journaled** (the journal keeps every report: ``sniperbot journal`` shows why a token was
   refused, long after the log rotated);
2. it is **published** on ``chain.<venue>.token_safety.<token>.`` (:func:`sniperbot.messages.topics.
   token_safety`): the sniper buys on a "buy", the feed starts quoting the pair;
3. one structured log line, ``event = "token_safety"``: INFO for a "buy", WARNING for a "refuse", with
   ``verdict``, ``reasons``, the token, pair, simulated block and the check's duration (``ms``).

A report carries authority (a forged "buy" would spend money): only a ``checker`` actor of the same
venue may publish it (:data:`sniperbot.transport.auth.AUTHORITY`).

**A pool without liquidity yet** (launch contracts often create their pair first and add the liquidity in
a later transaction): the check would refuse it for that alone, so a report whose pool holds no quote at
all is not published; the pool is checked again in each new block (the chain's head is polled every
:data:`RECHECK_S`: liquidity can only arrive with a block) until its liquidity arrives (then
the first full report counts) or ``wait_liquidity_s`` (default an hour) has passed (then the refusal is
reported). Checked "when the liquidity is there", the simulation runs in the block a buy would land in.

**As the wallet** (``wallet_pass``, on for a live venue): the check also simulates the wallet's own buy
and sell (a token can trap ordinary accounts and let the probe contract through). The wallet's address
(public; the key stays in the gateway) comes from the gateway's ``VenueStatus.account``; until the
checker has heard it, pools wait as empty ones do, and one still unknown after ``wait_liquidity_s`` is
refused (``wallet_unknown``).

Decisions: a pool is checked once per incarnation (the watcher publishes each pool once; a repeat is
ignored). A check that raises is a "refuse" with reason ``rpc`` (when in doubt, do not buy). The checks
run one at a time in a daemon thread (an RPC that hangs must not stop the actor's heartbeats); reports
reach the actor's loop through a queue drained every :data:`DRAIN_INTERVAL_S`.
"""

from __future__ import annotations

import queue
import time
from typing import Any

import msgspec

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.messages import Envelope, NewPool, TokenSafetyReport, VenueStatus
from sniperbot.messages import topics as topic
from sniperbot.venues.dex.worker import CheckerWorker

DRAIN_INTERVAL_S = 0.005
RECHECK_S = 0.05  # while pools wait for liquidity, the head is polled this often; they are checked per block
RPC_TIMEOUT_S = 10.0
_JOIN_TIMEOUT_S = 10.0


class TokenChecker(CheckerWorker, Actor):
    """NewPool in, TokenSafetyReport journaled, published and logged (see the module docstring)."""

    def __init__(
        self,
        ctx: ActorContext,
        *,
        venue: str,
        rpc_url: str,
        router: str,
        factory: str,
        quote_token: str,
        rules: dict[str, Any] | None = None,
        buy_quote: float | None = None,
        wait_liquidity_s: float = 3600.0,
        wallet_pass: bool = False,
    ) -> None:
        super().__init__(ctx)
        from sniperbot.venues.dex import SafetyRules

        self.venue = venue
        self.rpc_url = rpc_url
        self.router = router
        self.factory = factory
        self.quote_token = quote_token
        self.rules = msgspec.convert(rules or {}, SafetyRules)
        if buy_quote is not None and not buy_quote > 0:
            raise ValueError(f"checker {venue!r}: buy_quote must be > 0, got {buy_quote!r}")
        self.buy_quote = buy_quote
        self.wait_liquidity_s = wait_liquidity_s
        self._decimals: int | None = None
        self.wallet_pass = wallet_pass
        self._wallet = ""  # VenueStatus.account: written by the actor, read by the thread
        self.topics = (topic.new_pool(venue), topic.venue_status(venue))
        self._seen: set[str] = set()
        self._init_worker()  # pools to check (None: stop) in, reports out

    def on_start(self) -> None:
        """Start the checking thread and the hand-over timer."""
        self._start_checks(DRAIN_INTERVAL_S)

    def on_stop(self) -> None:
        """End the checking thread (a check under way is abandoned: nothing was bought)."""
        self._stop_worker(_JOIN_TIMEOUT_S, wake=True)

    def on_message(self, envelope: Envelope) -> None:
        """A new pool of this venue against its quote token: check it (once)."""
        pool = envelope.payload
        if isinstance(pool, VenueStatus) and pool.venue == self.venue and pool.account:
            self._wallet = pool.account
            return
        if not isinstance(pool, NewPool) or pool.venue != self.venue:
            return
        if pool.quote_token.lower() != self.quote_token.lower() or pool.pair in self._seen:
            return
        self._seen.add(pool.pair)
        self._jobs.put(pool)

    def _run(self) -> None:
        from web3 import Web3

        w3 = Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": RPC_TIMEOUT_S}))
        waiting: dict[str, tuple[NewPool, float]] = {}  # pair -> (pool, give up at): no liquidity yet
        last_head, last_wallet = -1, ""  # the block (and wallet) the waiting pools were last checked with
        while True:
            try:
                pool = self._jobs.get(timeout=RECHECK_S if waiting else None)
            except queue.Empty:
                pool = None
                try:
                    head = w3.eth.block_number
                except Exception:  # the RPC: the waiting pools are checked (and refused on time) regardless
                    head = -1
                    time.sleep(10 * RECHECK_S)  # not 20 checks a second against an endpoint that is down
                if head == last_head and head >= 0 and self._wallet == last_wallet:
                    continue  # no new block (nor the wallet's address): nothing can have changed
                last_head, last_wallet = head, self._wallet
                for pair, (pending, give_up_at) in list(waiting.items()):
                    del waiting[pair]
                    self._check(w3, pending, waiting, give_up_at)
                continue
            if pool is None:
                return
            self._check(w3, pool, waiting, time.monotonic() + self.wait_liquidity_s)

    def _check(
        self, w3: Any, pool: NewPool, waiting: dict[str, tuple[NewPool, float]], give_up_at: float
    ) -> None:
        """One check of ``pool``'s token; an empty pool waits (see the module doc), else the report."""
        from web3 import Web3

        from sniperbot.venues.evm.safety import check_token

        started = time.perf_counter()
        wallet = self._wallet or None
        if self.wallet_pass and wallet is None:
            if time.monotonic() < give_up_at:
                waiting[pool.pair] = (pool, give_up_at)  # the gateway has not said its account yet
                return
            report = TokenSafetyReport(
                venue=self.venue,
                token=pool.token,
                pair=pool.pair,
                verdict="refuse",
                reasons=["wallet_unknown: the gateway never said the wallet's address"],
                ts_ns=time.time_ns(),
            )
            self._reported(pool, report, (time.perf_counter() - started) * 1000)
            return
        try:
            amount = None
            if self.buy_quote is not None:
                if self._decimals is None:
                    quote = Web3.to_checksum_address(self.quote_token)
                    raw = w3.eth.call({"to": quote, "data": "0x313ce567"})  # decimals()
                    self._decimals = int.from_bytes(bytes(raw)[:32], "big")
                amount = int(self.buy_quote * 10**self._decimals)
            report = check_token(
                w3,
                self.router,
                self.factory,
                self.quote_token,
                pool.token,
                self.rules,
                venue=self.venue,
                amount_in_wei=amount,
                wallet=wallet if self.wallet_pass else None,
            )
        except Exception as e:  # when in doubt, do not buy; the class only (a URL may hold a key)
            report = TokenSafetyReport(
                venue=self.venue,
                token=pool.token,
                pair=pool.pair,
                verdict="refuse",
                reasons=[f"rpc: the safety check failed: {type(e).__name__}"],
                ts_ns=time.time_ns(),
            )
        empty = report.verdict == "refuse" and report.liquidity_quote == 0 and bool(report.pair)
        if empty and time.monotonic() < give_up_at:
            # No quote in the pool (or no answer about it) yet: checked again, not reported.
            waiting[pool.pair] = (pool, give_up_at)
            return
        self._reported(pool, report, (time.perf_counter() - started) * 1000)
