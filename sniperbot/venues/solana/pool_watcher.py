"""The pool watcher: a Solana venue's new pools, as :class:`~sniperbot.messages.NewPool` on the bus.

One actor per Solana venue (``pools.<venue>``) follows the accounts of ``pools_program`` (each pool is
one account, a :class:`~sniperbot.venues.solana.layouts.PoolState`) and publishes one ``NewPool`` per new
pool quoted in a quote mint (``quote_mints``: native SOL) on ``chain.<venue>.new_pool.``
(:func:`sniperbot.messages.topics.new_pool`), the same message as the EVM watcher: ``pair`` = the pool
account, ``token`` = its base mint, ``quote_token`` = the quote mint, ``block_number`` = the pool's
``created_slot``, ``tx_hash`` = "" (an account is seen, not the transaction that wrote it),
``log_index`` = 0; with one structured log line (``event = "new_pool"``, INFO).

Decisions (a trader relies on these):

- **Following the chain.** With ``ws_url``: solana-py's WebSocket client, ``programSubscribe`` of
  ``pools_program`` (base64, filtered on the pool account's size) at the venue's ``commitment``; each
  notification is handed over at once. The subscription is made first, then the **backfill**
  (``getProgramAccounts`` of the program, same size filter and a memcmp on each quote mint) runs, on
  start and after every reconnect, so nothing falls between the two. While the WebSocket is down the
  watcher polls ``getProgramAccounts`` every ``poll_s`` between reconnect attempts (full-jitter
  backoff, 0.1 s doubling to 10 s, never a crash loop); without ``ws_url`` it only polls. A backfill
  repeats every ``backfill_s`` (:data:`BACKFILL_S`) even on a healthy subscription (a notification the
  node never sent is still found, and the cursor moves on). On a program with very many pools (a
  mainnet AMM) polling means a large answer every ``poll_s``: give it a ``ws_url``.
- **Which pools.** A pool whose quote mint is one of ``quote_mints`` and whose base mint is not: a new
  token one can buy with SOL. Any other account of the program (another size or discriminator, or a
  pool of two quote mints) is skipped (DEBUG).
- **Cursor, journaled** (``keys.SOLANA_POOL_CURSOR``, one record per venue and program,
  :class:`PoolCursor`): a ``floor`` slot, and every pool handled with a ``created_slot`` above it.
  A pool is new when its ``created_slot`` is above the floor and it is not among the handled ones. A
  complete backfill read at slot ``S`` has seen every pool created up to ``S``; the floor then moves to
  ``S - FLOOR_MARGIN_SLOTS`` (a margin: a pool written in the very slot of the read, or seen later at
  a stricter commitment, is still compared by key, not dropped by slot) and the handled pools at or
  below it are forgotten. So the journaled record stays small and a stop and start neither misses nor
  repeats a pool.
- **The first start** (no cursor): the pools already on chain are old news, not snipes: they are
  recorded as handled without being published (as the EVM watcher's ``start_block = "latest"``);
  ``start_slot`` (an int) instead publishes every pool created after that slot.
- **Exactly once, or lost on a kill — never twice.** A pool is journaled as handled *before* it is
  published. A kill between the two loses that one pool; publishing first would not make it
  at-least-once either (a PUB send is only queued), and a repeated pool could become a second buy. The
  sniper treats ``NewPool`` as a hint: the safety check re-reads the chain before any buy.
- **Order.** A backfill publishes its new pools by (``created_slot``, account key); notifications in
  arrival order.
- **Joining the bus.** A PUB socket drops what it sends before the proxy's subscriptions reach it
  (ZeroMQ's slow joiner): the watcher probes its own echo topic and publishes nothing until it hears the
  probe back; pools found meanwhile wait in order and the cursor does not move.
- **Threads.** The chain client runs in one daemon thread with its own asyncio loop; it hands
  everything to the actor thread through a queue drained every ``DRAIN_INTERVAL_S`` (the runtime's loop
  owns the bus and the journal).
- **Secrets.** RPC URLs often carry an API key: errors are logged by class and method, never a URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Literal

import msgspec

from sniperbot.actors.base import ActorContext
from sniperbot.journal import keys
from sniperbot.messages import NewPool
from sniperbot.messages import topics as topic
from sniperbot.venues.dex.watcher import PoolWatcherActor, WatcherThread, backoff_s

BACKFILL_S = 30.0  # a backfill this often even while the subscription is healthy
FLOOR_MARGIN_SLOTS = 150  # ~1 minute of mainnet slots: handled pools remembered below a backfill's slot
RPC_TIMEOUT_S = 10.0
QUOTE_MINT_OFFSET = 40  # PoolState.quote_mint (after the discriminator and the base mint)


class PoolCursor(msgspec.Struct, kw_only=True):
    """The journaled progress of one venue's pool watcher (JSON under ``keys.SOLANA_POOL_CURSOR``)."""

    floor: int  # every pool created at or below this slot was handled (or is old news)
    handled: dict[str, int] = {}  # pool account -> created_slot, for the pools handled above the floor


class SeenPool(msgspec.Struct, frozen=True):
    """One pool account, decoded (chain thread -> actor thread)."""

    pool: str
    base_mint: str
    quote_mint: str
    created_slot: int


def cursor_key(venue: str, program: str) -> str:
    """The journal state key of a venue's pool cursor (per program: another program starts afresh)."""
    return f"{keys.SOLANA_POOL_CURSOR}{venue}/{program}"


def decode_pool(pubkey: Any, data: bytes) -> SeenPool | None:
    """A program account as a :class:`SeenPool` (None: not a pool)."""
    from sniperbot.venues.solana.layouts import PoolState

    try:
        state = PoolState.decode(bytes(data))
    except ValueError:
        return None
    return SeenPool(
        pool=str(pubkey),
        base_mint=str(state.base_mint),
        quote_mint=str(state.quote_mint),
        created_slot=state.created_slot,
    )


class PoolWatcher(PoolWatcherActor):
    """Publishes a venue's new pools against its quote mints (see the module doc)."""

    following = "following the pools program"

    def __init__(
        self,
        ctx: ActorContext,
        *,
        venue: str,
        rpc_url: str,
        pools_program: str,
        quote_mints: list[str],
        ws_url: str = "",
        commitment: str = "confirmed",
        start_slot: int | Literal["latest"] = "latest",
        poll_s: float = 1.0,
        backfill_s: float = BACKFILL_S,
    ) -> None:
        super().__init__(ctx)
        from sniperbot.venues.solana.config import check_pubkey

        where = f"pool watcher {venue!r}"
        if not venue:
            raise ValueError("pool watcher: venue must not be empty")
        if not rpc_url.startswith(("http://", "https://")):
            raise ValueError(f"{where}: rpc_url must start with http:// or https://")
        if ws_url and not ws_url.startswith(("ws://", "wss://")):
            raise ValueError(f"{where}: ws_url must start with ws:// or wss:// (or be empty: polling)")
        check_pubkey(f"{where}: pools_program", pools_program)
        if not quote_mints:
            raise ValueError(f"{where}: quote_mints must list at least one mint")
        for mint in quote_mints:
            check_pubkey(f"{where}: quote_mints", mint)
        if commitment not in ("processed", "confirmed", "finalized"):
            raise ValueError(f"{where}: commitment = {commitment!r} is not processed/confirmed/finalized")
        if start_slot != "latest" and (
            isinstance(start_slot, bool) or not isinstance(start_slot, int) or start_slot < 0
        ):
            raise ValueError(f"{where}: start_slot = {start_slot!r} must be a slot >= 0 or 'latest'")
        if not poll_s > 0:
            raise ValueError(f"{where}: poll_s = {poll_s!r} must be positive")
        if not backfill_s > 0:
            raise ValueError(f"{where}: backfill_s = {backfill_s!r} must be positive")
        self.venue = venue
        self.rpc_url = rpc_url
        self.ws_url = ws_url
        self.pools_program = pools_program
        self.quote_mints = set(quote_mints)
        self.commitment = commitment
        self.start_slot = start_slot
        self.poll_s = float(poll_s)
        self.backfill_s = float(backfill_s)
        self._join_bus()
        self.key = cursor_key(venue, pools_program)
        self.cursor: PoolCursor | None = None
        self.skipped = 0  # pools seen again (handled before), or at or below the floor

    # -- lifecycle --------------------------------------------------------------------------
    def on_start(self) -> None:
        """Read the journaled cursor, start the chain thread, the hand-over timer and the bus probe."""
        raw = self.ctx.journal.get_state(self.key)
        if raw is not None:
            self.cursor = msgspec.json.decode(raw, type=PoolCursor)
        elif self.start_slot != "latest":
            self._save(PoolCursor(floor=int(self.start_slot)))
        self._follow(_Worker(self))

    # -- actor thread -----------------------------------------------------------------------
    def _on_item(self, kind: str, item: Any) -> bool:
        if kind == "pool":
            self._on_pool(item)
        elif kind == "backfill":
            self._on_backfill(*item)
        else:
            return False
        return True

    def _is_new(self, pool: SeenPool) -> bool:
        c = self.cursor
        return c is None or (pool.created_slot > c.floor and pool.pool not in c.handled)

    def _on_backfill(self, slot: int, pools: list[SeenPool]) -> None:
        """A complete read of the program's pools at ``slot``: the new ones, then the floor moves."""
        first_start = self.cursor is None
        base = self.cursor or PoolCursor(floor=-1)
        for pool in sorted(pools, key=lambda p: (p.created_slot, p.pool)):
            if first_start:
                base.handled[pool.pool] = pool.created_slot  # there before the first start: old news
            elif self._is_new(pool):
                self._on_pool(pool)
                base = self.cursor or base
        floor = max(base.floor, slot - FLOOR_MARGIN_SLOTS)
        handled = {p: s for p, s in base.handled.items() if s > floor}
        if first_start or floor != base.floor or handled != base.handled:
            self._save(PoolCursor(floor=floor, handled=handled))

    def _on_pool(self, pool: SeenPool) -> None:
        if self.cursor is None:
            return  # before the first backfill: whether it is new is not known yet (it will be in it)
        if not self._is_new(pool):
            self.skipped += 1
            return
        if pool.quote_mint not in self.quote_mints or pool.base_mint in self.quote_mints:
            self.ctx.log.debug(
                "pool skipped: not one quote mint and one other",
                extra={"event": "pool_skipped", "venue": self.venue, "pair": pool.pool},
            )
            return
        c = self.cursor
        # Journaled first: a kill from here on loses this pool, it never publishes it twice.
        self._save(PoolCursor(floor=c.floor, handled={**c.handled, pool.pool: pool.created_slot}))
        msg = NewPool(
            venue=self.venue,
            pair=pool.pool,
            token=pool.base_mint,
            quote_token=pool.quote_mint,
            block_number=pool.created_slot,
            tx_hash="",
            log_index=0,
            ts_ns=time.time_ns(),
        )
        self.ctx.publish(topic.new_pool(self.venue), msg)
        self.published += 1
        self.ctx.log.info(
            "new pool",
            extra={
                "event": "new_pool",
                "venue": self.venue,
                "pair": pool.pool,
                "token": pool.base_mint,
                "quote_token": pool.quote_mint,
                "block": pool.created_slot,
            },
        )

    def _save(self, cursor: PoolCursor) -> None:
        self.ctx.journal.put_state(self.key, msgspec.json.encode(cursor))
        self.cursor = cursor


class _Worker(WatcherThread):
    """The chain side (its own thread and asyncio loop): subscription, backfills, polling."""

    def __init__(self, watcher: PoolWatcher) -> None:
        super().__init__(f"sol-pools-{watcher.venue}", watcher.rpc_url, watcher.ws_url)
        self.w = watcher
        self._said_connected = False

    async def _main(self) -> None:
        from solana.rpc.async_api import AsyncClient

        client = AsyncClient(
            self.w.rpc_url,
            commitment=self.w.commitment,  # type: ignore[arg-type]
            timeout=RPC_TIMEOUT_S,
            http2=False,
        )
        try:
            while self.running:
                try:
                    if self.w.ws_url:
                        await self._follow(client)
                    else:
                        await self._poll(client, forever=True)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # an endpoint failure: back off, then subscribe and backfill again
                    self._error(e)
                    until = time.monotonic() + backoff_s(self.attempt)
                    self.attempt += 1
                    if self.w.ws_url:  # the WebSocket is down: poll over HTTP until the next attempt
                        with contextlib.suppress(Exception):
                            await self._poll(client, forever=False, until=until)
                    await asyncio.sleep(max(until - time.monotonic(), 0))
        finally:
            with contextlib.suppress(Exception):
                await client.close()

    def _error(self, error: Exception) -> None:
        from solana.exceptions import SolanaRpcException

        detail = getattr(error, "error_msg", "") if isinstance(error, SolanaRpcException) else str(error)
        self.out.put(("error", self._scrub(f"{type(error).__name__}: {str(detail)[:200]}")))

    async def _backfill(self, client: Any) -> None:
        """Every pool account of the program quoted in a quote mint now, and the slot of the read."""
        from solana.rpc.models import MemcmpOpts
        from solders.pubkey import Pubkey

        from sniperbot.venues.solana.layouts import POOL_STATE_SIZE

        program = Pubkey.from_string(self.w.pools_program)
        slot = (await client.get_slot()).value  # before the reads: they have seen at least up to it
        pools: list[SeenPool] = []
        for quote in sorted(
            self.w.quote_mints
        ):  # only pools quoted in it: a smaller answer on a busy program
            filters = [POOL_STATE_SIZE, MemcmpOpts(offset=QUOTE_MINT_OFFSET, bytes=quote)]
            found = await client.get_program_accounts(program, encoding="base64", filters=filters)
            pools += [
                p for k in found.value if (p := decode_pool(k.pubkey, bytes(k.account.data))) is not None
            ]
        self.out.put(("backfill", (int(slot), pools)))

    async def _poll(self, client: Any, forever: bool, until: float = 0.0) -> None:
        """Backfill every ``poll_s`` (forever, or until ``until``)."""
        while self.running and (forever or time.monotonic() < until):
            await self._backfill(client)
            if forever:
                self._connected("poll")
            await asyncio.sleep(
                self.w.poll_s if forever else min(self.w.poll_s, max(until - time.monotonic(), 0))
            )

    def _connected(self, via: str) -> None:
        if self.attempt or not self._said_connected:  # logged once per (re)connection, not per poll
            self.out.put(("connected", via))
            self._said_connected = True
        self.attempt = 0

    async def _follow(self, client: Any) -> None:
        """Subscribe, backfill, then hand over every notified pool (and backfill every backfill_s)."""
        from solana.rpc.websocket_api import SolanaWsClient
        from solders.pubkey import Pubkey

        from sniperbot.venues.solana.layouts import POOL_STATE_SIZE

        ws = SolanaWsClient(self.w.ws_url, request_timeout=RPC_TIMEOUT_S, open_timeout=RPC_TIMEOUT_S)
        async with ws:
            await ws.program_subscribe(
                program_id=Pubkey.from_string(self.w.pools_program),
                commitment=self.w.commitment,  # type: ignore[arg-type]
                encoding="base64",
                filters=[POOL_STATE_SIZE],
            )
            await self._backfill(client)  # after the subscription: nothing falls between the two
            self._said_connected = False
            self._connected("ws")
            next_backfill = time.monotonic() + self.w.backfill_s
            while self.running:
                try:
                    note = await asyncio.wait_for(ws.recv(), max(next_backfill - time.monotonic(), 0.01))
                except TimeoutError:
                    await self._backfill(client)
                    next_backfill = time.monotonic() + self.w.backfill_s
                    continue
                value = getattr(getattr(note, "result", None), "value", None)
                if value is None:
                    continue
                pool = decode_pool(value.pubkey, bytes(value.account.data))
                if pool is not None:
                    self.out.put(("pool", pool))
