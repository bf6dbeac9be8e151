"""The Solana venue's market data: its pools priced from their vaults, every new slot.

For every configured pair ``BASE/SOL`` (and every token a "buy" :class:`TokenSafetyReport` names, quoted
as ``"<mint>/SOL"``, exactly as the EVM feed learns its tokens; a token still held after a restart, from
the journal's fills, is quoted again):

* **the pool** is found with ``getProgramAccounts`` of ``pools_program``, filtered on the account size
  (:data:`~sniperbot.venues.solana.layouts.POOL_STATE_SIZE`) and on ``base_mint`` (memcmp at offset 8),
  decoded as a :class:`~sniperbot.venues.solana.layouts.PoolState`; only a pool quoted in native SOL
  counts. **Decision:** with several pools for one mint the one holding the most SOL is priced (the
  deepest is where the aggregator routes a snipe). A pair without a pool yet is looked up again every
  :data:`DISCOVER_S` and priced from the slot its pool appears in. The base mint's decimals come from
  its mint account (read once);
* **the reserves**: one ``getMultipleAccounts`` of every priced pool's two vaults per slot
  (at the venue's ``commitment``; see *Slots* below): the base reserve is the base vault's token amount /
  10**decimals, the SOL reserve the quote vault's lamports minus the rent exemption of an empty account
  (``getMinimumBalanceForRentExemption(0)``, read once) / 1e9. A :class:`Quote` on
  ``md.<venue>.quote.<symbol>.`` in the shared convention :func:`sniperbot.venues.dex.pool_quote`, per
  slot, published when the reserves changed (the sniper reads the pool's depth back with
  :func:`~sniperbot.venues.dex.pool_reserves`);
* **trades** (the venue contract wants a tape: strategies build bars from it): a pool's reserves
  that moved in opposite directions since the previous slot read are one :class:`TradeTick`, ``side``
  the aggressor's (base left the pool: ``buy``), ``size`` the base amount, ``price`` the SOL per base
  paid or received (fee included), ``trade_id`` the slot (increasing per symbol). **Decision:** the
  feed reads vaults, not transactions, so several swaps of one slot (or of the slots between two reads)
  show as their net, and a change that moves both reserves the same way (liquidity added or pulled) is
  no trade (the quote shows it).

``ts_ns`` is when the feed read the slot (wall clock): the node's bars and staleness checks want the
local clock. A :class:`FeedStatus` on ``status.feed.<venue>`` every second and on change, as the other
feeds: ``connected`` is the RPC's last answer, ``stale`` means no RPC answer for
:data:`STALE_AFTER_S`, ``rest_polls`` the reads. **Decision:** a chain whose slot does not advance is not
stale in itself; its RPC still answers (the quote is the last slot's state).

The RPC calls (solana-py's ``AsyncClient``) run in one daemon thread with its own asyncio loop (a slow
or dead endpoint must not stop the actor's heartbeats); results reach the actor thread through a queue
drained every :data:`DRAIN_INTERVAL_S`. Errors are logged by class and method only (an RPC URL may
carry an API key). **Slots**: with ``ws_url`` the feed subscribes to ``slotSubscribe`` (solana-py's
WebSocket client) and reads the vaults at each new slot (one ``getMultipleAccounts`` whatever the number
of pairs; at least every :data:`SUBSCRIBED_POLL_S`), logged once as ``feed_subscribed``; without it, or
while the WebSocket is down (retried every :data:`WS_RETRY_S`), every :data:`POLL_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import re
import time
from typing import Any

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.messages import Envelope, TokenSafetyReport
from sniperbot.messages import topics as topic
from sniperbot.venues.dex import pool_quote
from sniperbot.venues.dex.worker import (
    FEED_DRAIN_INTERVAL_S,
    FEED_STALE_AFTER_S,
    FEED_STATUS_INTERVAL_S,
    FeedThread,
    FeedWorker,
)

POLL_S = 0.1  # reserves read this often without slot notifications (a Solana slot is ~0.4 s)
SUBSCRIBED_POLL_S = 1.0  # with slot notifications (ws_url): read on each, and at least this often
WS_RETRY_S = 5.0  # a failed WebSocket is tried again after this long (polling every POLL_S meanwhile)
DISCOVER_S = 1.0  # a pair without a pool yet is looked up this often
DRAIN_INTERVAL_S = FEED_DRAIN_INTERVAL_S  # hand-over period from the RPC thread to the actor loop
STATUS_INTERVAL_S = FEED_STATUS_INTERVAL_S
STALE_AFTER_S = FEED_STALE_AFTER_S  # no RPC answer for this long: prices of unknown age
RPC_TIMEOUT_S = 5.0
MAX_ACCOUNTS = 100  # getMultipleAccounts takes at most 100 keys per call
_JOIN_TIMEOUT_S = 10.0
_BASE58_KEY = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")


def is_mint_address(text: str) -> bool:
    """Whether ``text`` is a base58 public key (a learnt symbol's base is a mint, a configured one a name)."""
    if not _BASE58_KEY.fullmatch(text):
        return False
    from solders.pubkey import Pubkey

    try:
        return str(Pubkey.from_string(text)) == text
    except ValueError:
        return False


class _Pair:
    """What the feed knows of one pair."""

    def __init__(self, symbol: str, mint: str) -> None:
        self.symbol = symbol
        self.mint = mint
        self.pool = ""  # the pool account once found
        self.base_vault: Any = None
        self.quote_vault: Any = None
        self.base_scale = 1.0
        self.reserves: tuple[int, int] | None = None  # raw (base, lamports above rent) of the last read
        self.next_discovery = 0.0  # monotonic time of the next pool lookup


class _Worker(FeedThread):
    """The RPC thread: reads the pools' vaults each period and turns slots into quotes and trades."""

    def __init__(self, feed: SolanaFeed) -> None:
        super().__init__(f"sol-feed-{feed.venue}")
        self.feed = feed
        self.slot = -1  # the last slot priced
        self.pairs = [_Pair(s, feed.mints[s.partition("/")[0]]) for s in feed.symbols]
        self.added: queue.SimpleQueue[_Pair] = queue.SimpleQueue()  # pairs learnt at run time
        self._rent = -1
        self.subscribed = False  # slot notifications arrive (ws_url)
        self._wake = asyncio.Event()  # set from the actor thread (wake): a pair added, or stop
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Poll now (from any thread)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the thread has ended
                loop.call_soon_threadsafe(self._wake.set)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        from solana.rpc.async_api import AsyncClient

        client = AsyncClient(
            self.feed.rpc_url,
            commitment=self.feed.commitment,  # type: ignore[arg-type]
            timeout=RPC_TIMEOUT_S,
            http2=False,
        )
        slots = asyncio.get_running_loop().create_task(self._slots()) if self.feed.ws_url else None
        try:
            while self.running:
                try:
                    await self._poll(client)
                except Exception as e:  # the endpoint, or a malformed answer: said, tried again next period
                    self._failed(e)
                with contextlib.suppress(TimeoutError):
                    # Slot notifications wake the read; the period is the fallback (and the only clock
                    # without a WebSocket).
                    await asyncio.wait_for(
                        self._wake.wait(), SUBSCRIBED_POLL_S if self.subscribed else POLL_S
                    )
                self._wake.clear()
        finally:
            if slots is not None:
                slots.cancel()
                with contextlib.suppress(BaseException):
                    await slots
            with contextlib.suppress(Exception):
                await client.close()

    async def _slots(self) -> None:
        """``slotSubscribe`` over ``ws_url``: each new slot wakes the read (retried every WS_RETRY_S)."""
        from solana.rpc.websocket_api import SolanaWsClient

        while self.running:
            try:
                async with SolanaWsClient(
                    self.feed.ws_url, request_timeout=RPC_TIMEOUT_S, open_timeout=RPC_TIMEOUT_S
                ) as ws:
                    await ws.slot_subscribe()
                    self.subscribed = True
                    self.out.put(("subscribed", None))
                    while self.running:
                        await ws.recv()
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # dropped or refused: the period polls meanwhile
                self.out.put(("error", f"ws slotSubscribe: {type(e).__name__}"))
            self.subscribed = False
            await asyncio.sleep(WS_RETRY_S)

    # -- connection state ------------------------------------------------------------------
    def _answered(self) -> None:
        self.polls += 1
        self.last_ok_ns = time.monotonic_ns()
        if not self.connected:
            self.connected = True
            self.out.put(("status", None))

    def _failed(self, error: Exception) -> None:
        from solana.exceptions import SolanaRpcException

        if isinstance(error, SolanaRpcException | OSError | TimeoutError) and self.connected:
            self.connected = False
            self.reconnects += 1
            self.out.put(("status", None))
        # The class (and for an RPC error its method) only: a URL may carry a key.
        detail = getattr(error, "error_msg", "") if isinstance(error, SolanaRpcException) else str(error)
        self.out.put(("error", f"{type(error).__name__}: {str(detail)[:200]}"))

    # -- slots -------------------------------------------------------------------------------
    async def _poll(self, client: Any) -> None:
        while True:
            try:
                pair = self.added.get_nowait()
            except queue.Empty:
                break
            if all(p.symbol != pair.symbol for p in self.pairs):
                self.pairs.append(pair)
        if self._rent < 0:
            self._rent = int((await client.get_minimum_balance_for_rent_exemption(0)).value)
            self._answered()
        now = time.monotonic()
        for pair in self.pairs:
            if not pair.pool and now >= pair.next_discovery:
                pair.next_discovery = now + DISCOVER_S
                await self._discover(client, pair)
        priced = [p for p in self.pairs if p.pool]
        if not priced:
            await client.get_slot()  # connectivity (and staleness) without pools to read
            self._answered()
            return
        keys = [key for p in priced for key in (p.base_vault, p.quote_vault)]
        accounts: list[Any] = []
        slot = -1
        for start in range(0, len(keys), MAX_ACCOUNTS):
            answer = await client.get_multiple_accounts(keys[start : start + MAX_ACCOUNTS])
            accounts += list(answer.value)
            slot = answer.context.slot if slot < 0 else min(slot, answer.context.slot)
        self._answered()
        if slot == self.slot:
            return  # the same slot: nothing can have changed
        self._on_slot(slot, priced, accounts)

    def _on_slot(self, slot: int, priced: list[_Pair], accounts: list[Any]) -> None:
        from sniperbot.venues.solana.layouts import LAMPORTS_PER_SOL, decode_token_account

        now = time.time_ns()
        for index, pair in enumerate(priced):
            base_account, quote_account = accounts[2 * index], accounts[2 * index + 1]
            if base_account is None or quote_account is None:
                continue  # a vault closed (a rug): no price rather than a wrong one
            base_raw = decode_token_account(bytes(base_account.data)).amount
            quote_raw = max(int(quote_account.lamports) - self._rent, 0)
            previous, pair.reserves = pair.reserves, (base_raw, quote_raw)
            if previous == pair.reserves:
                continue
            if previous is not None:
                self._trade(pair, slot, previous, pair.reserves, now)
            if base_raw == 0 or quote_raw == 0:
                continue  # emptied: no price
            top = pool_quote(base_raw / pair.base_scale, quote_raw / LAMPORTS_PER_SOL)
            self.out.put(("quote", (pair.symbol, *top, now)))
        self.slot = slot

    def _trade(
        self, pair: _Pair, slot: int, before: tuple[int, int], after: tuple[int, int], now: int
    ) -> None:
        from sniperbot.venues.solana.layouts import LAMPORTS_PER_SOL

        base_out = (before[0] - after[0]) / pair.base_scale  # > 0: base left the pool (a buy)
        quote_in = (after[1] - before[1]) / LAMPORTS_PER_SOL
        if base_out == 0 or quote_in == 0 or (base_out > 0) != (quote_in > 0):
            return  # liquidity added or pulled: not a trade at a price
        size = abs(base_out)
        side = "buy" if base_out > 0 else "sell"
        self.out.put(("trade", (pair.symbol, abs(quote_in) / size, size, side, slot, now)))

    async def _discover(self, client: Any, pair: _Pair) -> None:
        """Find ``pair``'s pool (the deepest quoted in SOL) and its decimals; nothing yet: later."""
        from solana.rpc.models import MemcmpOpts
        from solders.pubkey import Pubkey

        from sniperbot.venues.solana.layouts import POOL_STATE_SIZE, SOL_MINT, PoolState, decode_mint

        found = await client.get_program_accounts(
            Pubkey.from_string(self.feed.pools_program),
            encoding="base64",
            filters=[POOL_STATE_SIZE, MemcmpOpts(offset=8, bytes=pair.mint)],
        )
        self._answered()
        pools = []
        for keyed in found.value:
            try:
                state = PoolState.decode(bytes(keyed.account.data))
            except ValueError:
                continue  # another account of the program
            if state.quote_mint == SOL_MINT and str(state.base_mint) == pair.mint:
                pools.append((keyed.pubkey, state))
        if not pools:
            return
        vaults = await client.get_multiple_accounts([state.quote_vault for _, state in pools])
        depth = [int(a.lamports) if a is not None else 0 for a in vaults.value]
        key, state = max(zip(pools, depth, strict=True), key=lambda pool_depth: pool_depth[1])[0]
        mint = (await client.get_account_info(state.base_mint)).value
        if mint is None:
            return
        pair.base_scale = 10.0 ** decode_mint(bytes(mint.data), mint.owner).decimals
        pair.base_vault, pair.quote_vault = state.base_vault, state.quote_vault
        pair.pool = str(key)
        self.out.put(("pool", (pair.symbol, pair.pool)))


class SolanaFeed(FeedWorker, Actor):
    """One Solana venue's pools on the bus: Quote, TradeTick, FeedStatus (see the module docstring)."""

    def __init__(
        self,
        ctx: ActorContext,
        *,
        venue: str,
        rpc_url: str,
        pools_program: str,
        mints: dict[str, str],
        quote: str,
        symbols: list[str],
        commitment: str = "confirmed",
        ws_url: str = "",
    ) -> None:
        super().__init__(ctx)
        if not symbols:
            raise ValueError(f"feed {venue!r}: symbols must not be empty")
        for symbol in symbols:
            base = symbol.partition("/")[0]
            if base not in mints or quote not in mints:
                raise ValueError(f"feed {venue!r}: {symbol!r} needs the mints of {base!r} and {quote!r}")
        if commitment not in ("processed", "confirmed", "finalized"):
            raise ValueError(
                f"feed {venue!r}: commitment = {commitment!r} is not processed/confirmed/finalized"
            )
        self.venue = venue
        self.rpc_url = rpc_url
        self.ws_url = ws_url
        self.commitment = commitment
        self.pools_program = pools_program
        self.mints = dict(mints)
        self.quote = quote
        self.symbols = list(symbols)
        self.stale = True  # no prices yet: nothing to trade on
        # Tokens learnt at run time: the safety check's "buy" (the sniper trades them); see _learn.
        self.topics = (topic.token_safety(venue),)
        self.stale_periods = 0
        self._worker: _Worker | None = None
        self._last_error = ""

    def on_start(self) -> None:
        """Start the RPC thread, the hand-over timer and the status timer."""
        self._worker = _Worker(self)
        held: dict[str, float] = {}
        # A held token learnt at run time is quoted again: the journal's positions (O(instruments)).
        for (venue, symbol), book in self.ctx.journal.snapshot().books.items():
            base = symbol.partition("/")[0]
            if venue == self.venue and base not in self.mints and is_mint_address(base):
                held[base] = held.get(base, 0.0) + book.net
        for mint, amount in held.items():
            if amount > 0:
                self._learn(mint)
        self._start_feed()

    def on_message(self, envelope: Envelope) -> None:
        """A token the safety check passed ("buy"): its pool is quoted from now on."""
        report = envelope.payload
        buy = isinstance(report, TokenSafetyReport) and report.venue == self.venue and report.verdict == "buy"
        if buy and is_mint_address(report.token):
            self._learn(report.token)

    def _learn(self, mint: str) -> None:
        """Quote ``"<mint>/<quote>"`` from now on (at once, then every slot)."""
        symbol = f"{mint}/{self.quote}"
        if symbol in self.symbols or self._worker is None:
            return
        self.symbols.append(symbol)
        self._worker.added.put(_Pair(symbol, mint))
        self._worker.wake()
        self.ctx.log.info("pair added", extra={"event": "pair_added", "venue": self.venue, "symbol": symbol})

    def on_stop(self) -> None:
        """Stop the thread, and say the venue's prices are stale from now on."""
        self._stop_feed(_JOIN_TIMEOUT_S)

    def _on_item(self, kind: str, item: Any) -> bool:
        """The slot subscription is up, or a pair's pool was found: logged."""
        if kind == "subscribed":
            self.ctx.log.info(
                "slots by subscription", extra={"event": "feed_subscribed", "venue": self.venue}
            )
        elif kind == "pool":
            symbol, pool = item
            self.ctx.log.info(
                "pool found",
                extra={"event": "feed_pool", "venue": self.venue, "symbol": symbol, "pool": pool},
            )
        else:
            return False
        return True
