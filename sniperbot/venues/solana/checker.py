"""The token checker: every new pool of a Solana venue goes through the token safety check.

``checker.<venue>``, in the venue's subtree (after its executor), subscribes to the venue's
:class:`~sniperbot.messages.NewPool` topic and runs :func:`sniperbot.venues.solana.safety.check_token` on
the pool's mint with the venue's rules (``[venues.safety]``), simulating a buy of the size the sniper
will really spend (``[venues.sniper] budget``, in SOL) and the sell of what it buys. For each report,
exactly as the EVM checker (:mod:`sniperbot.venues.evm.checker`), in this order:

1. it is **journaled** (``sniperbot journal`` shows why a token was refused, long after the log rotated);
2. it is **published** on ``chain.<venue>.token_safety.<mint>.`` (:func:`sniperbot.messages.topics.
   token_safety`): the sniper buys on a "buy", the feed starts quoting the pool;
3. one structured log line, ``event = "token_safety"``: INFO for a "buy", WARNING for a "refuse", with
   ``verdict``, ``reasons``, the mint, pool, slot and the check's duration (``ms``).

A report carries authority (a forged "buy" would spend money): only a ``checker`` actor of the same
venue may publish it (:data:`sniperbot.transport.auth.AUTHORITY`).

**A pool without liquidity yet** (its SOL vault empty): the check would refuse it for that alone, so a
report whose pool holds no SOL is not published; the pool is checked again in each new slot (the slot is
polled every :data:`RECHECK_S`) until its liquidity arrives (then the first full report counts) or
``wait_liquidity_s`` (default an hour) has passed (then the refusal is reported).

**As the wallet** (``wallet_pass``, on for a live venue): the check simulates the buy and the sell as the
wallet itself (the wallet's public key comes from the gateway's ``VenueStatus.account``; the secret stays
in the gateway). Until the checker has heard it, pools wait as empty ones do, and one still unknown after
``wait_liquidity_s`` is refused (``wallet_unknown``). **Decision:** on Solana a swap can only be simulated
as an account that holds the SOL it spends (there is no probe contract as on EVM), so a paper venue, which
has no wallet, gets the check's ``simulation`` refusal for every token: its sniper never buys (when in
doubt, do not buy); the other rules are still checked and reported.

Decisions: a pool is checked once per incarnation (the watcher publishes each pool once; a repeat is
ignored). A pool quoted in another mint than ``quote_mint`` is not checked. A check that raises is a
"refuse" with reason ``rpc`` (when in doubt, do not buy), naming the error's class only (a URL may carry
a key). The checks run one at a time in a daemon thread (an RPC that hangs must not stop the actor's
heartbeats); reports reach the actor's loop through a queue drained every :data:`DRAIN_INTERVAL_S`.
"""

from __future__ import annotations

import asyncio
import queue
import time
from typing import Any

import msgspec

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.messages import Envelope, NewPool, TokenSafetyReport, VenueStatus
from sniperbot.messages import topics as topic
from sniperbot.venues.dex.worker import CheckerWorker

DRAIN_INTERVAL_S = 0.005
RECHECK_S = 0.05  # while pools wait for liquidity, the slot is polled this often; they are checked per slot
RPC_TIMEOUT_S = 10.0
_JOIN_TIMEOUT_S = 10.0


def refusal(venue: str, pool: NewPool, reason: str) -> TokenSafetyReport:
    """A "refuse" report on ``pool``'s mint for ``reason`` (``"<code>: <detail>"``)."""
    return TokenSafetyReport(
        venue=venue,
        token=pool.token,
        pair=pool.pair,
        verdict="refuse",
        reasons=[reason],
        ts_ns=time.time_ns(),
    )


class TokenChecker(CheckerWorker, Actor):
    """NewPool in, TokenSafetyReport journaled, published and logged (see the module docstring)."""

    def __init__(
        self,
        ctx: ActorContext,
        *,
        venue: str,
        rpc_url: str,
        aggregator_url: str,
        pools_program: str,
        quote_mint: str,
        rules: dict[str, Any] | None = None,
        buy_quote: float | None = None,
        commitment: str = "confirmed",
        wait_liquidity_s: float = 3600.0,
        wallet_pass: bool = False,
    ) -> None:
        super().__init__(ctx)
        from sniperbot.venues.dex import SafetyRules

        self.venue = venue
        self.rpc_url = rpc_url
        self.aggregator_url = aggregator_url
        self.pools_program = pools_program
        self.quote_mint = quote_mint
        self.rules = msgspec.convert(rules or {}, SafetyRules)
        if buy_quote is not None and not buy_quote > 0:
            raise ValueError(f"checker {venue!r}: buy_quote must be > 0, got {buy_quote!r}")
        self.buy_quote = buy_quote
        if commitment not in ("processed", "confirmed", "finalized"):
            raise ValueError(
                f"checker {venue!r}: commitment = {commitment!r} is not processed/confirmed/finalized"
            )
        self.commitment = commitment
        self.wait_liquidity_s = wait_liquidity_s
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
        """A new pool of this venue against its quote mint: check it (once)."""
        pool = envelope.payload
        if isinstance(pool, VenueStatus) and pool.venue == self.venue and pool.account:
            self._wallet = pool.account
            return
        if not isinstance(pool, NewPool) or pool.venue != self.venue:
            return
        if pool.quote_token != self.quote_mint or pool.pair in self._seen:
            return
        self._seen.add(pool.pair)
        self._jobs.put(pool)

    # -- the checking thread -------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from solana.rpc.async_api import AsyncClient

        client = AsyncClient(self.rpc_url, timeout=RPC_TIMEOUT_S, http2=False)
        loop = asyncio.get_running_loop()
        waiting: dict[str, tuple[NewPool, float]] = {}  # pool -> (NewPool, give up at): no liquidity yet
        last_slot, last_wallet = -1, ""  # the slot (and wallet) the waiting pools were last checked with
        try:
            while True:
                try:
                    timeout = RECHECK_S if waiting else None
                    pool = await loop.run_in_executor(None, self._jobs.get, True, timeout)
                except queue.Empty:
                    try:
                        slot = int((await client.get_slot()).value)
                    except Exception:  # the RPC: the waiting pools are checked (and refused on time) anyway
                        slot = -1
                        await asyncio.sleep(10 * RECHECK_S)  # not 20 checks a second against a dead endpoint
                    if slot == last_slot and slot >= 0 and self._wallet == last_wallet:
                        continue  # no new slot (nor the wallet's key): nothing can have changed
                    last_slot, last_wallet = slot, self._wallet
                    for key, (pending, give_up_at) in list(waiting.items()):
                        del waiting[key]
                        await self._check(pending, waiting, give_up_at)
                    continue
                if pool is None:
                    return
                await self._check(pool, waiting, time.monotonic() + self.wait_liquidity_s)
        finally:
            await client.close()

    async def _check(
        self, pool: NewPool, waiting: dict[str, tuple[NewPool, float]], give_up_at: float
    ) -> None:
        """One check of ``pool``'s mint; an empty pool waits (see the module doc), else the report."""
        started = time.perf_counter()
        wallet = self._wallet or None
        if self.wallet_pass and wallet is None:
            if time.monotonic() < give_up_at:
                waiting[pool.pair] = (pool, give_up_at)  # the gateway has not said its account yet
                return
            report = refusal(self.venue, pool, "wallet_unknown: the gateway never said the wallet's address")
            self._reported(pool, report, (time.perf_counter() - started) * 1000)
            return
        try:
            report = await asyncio.to_thread(self._check_token, pool, wallet if self.wallet_pass else None)
        except Exception as e:  # when in doubt, do not buy; the class only (a URL may hold a key)
            report = refusal(self.venue, pool, f"rpc: the safety check failed: {type(e).__name__}")
        empty = report.verdict == "refuse" and report.liquidity_quote == 0 and bool(report.pair)
        if empty and time.monotonic() < give_up_at:
            waiting[pool.pair] = (pool, give_up_at)  # no SOL in the pool (or no answer about it) yet
            return
        self._reported(pool, report, (time.perf_counter() - started) * 1000)

    def _check_token(self, pool: NewPool, wallet: str | None) -> TokenSafetyReport:
        """The safety check proper (:func:`sniperbot.venues.solana.safety.check_token`) on the pool's mint."""
        from sniperbot.venues.solana.layouts import LAMPORTS_PER_SOL
        from sniperbot.venues.solana.safety import check_token

        amount = None if self.buy_quote is None else round(self.buy_quote * LAMPORTS_PER_SOL)
        return check_token(
            self.rpc_url,
            pool.token,
            pool.pair,
            self.rules,
            wallet=wallet,
            aggregator_url=self.aggregator_url,
            buy_lamports=amount,
            venue=self.venue,
            pools_program=self.pools_program,
            commitment=self.commitment,
            timeout_s=RPC_TIMEOUT_S,
        )
