"""The pool watcher: a chain venue's new Uniswap V2 pools, as :class:`~sniperbot.messages.NewPool` on the bus.

One actor per EVM venue follows the factory's ``PairCreated(address indexed token0, address indexed
token1, address pair, uint)`` events and publishes one ``NewPool`` per new pair against a quote token on
``chain.<venue>.new_pool.`` (:func:`sniperbot.messages.topics.new_pool`), with one structured log line
(``event = "new_pool"``, INFO).

Decisions (a trader relies on these):

- **Following the chain.** With ``ws_url``: ``eth_subscribe("logs", {address: factory, topics:
  [PairCreated]})`` and ``eth_subscribe("newHeads")`` on one WebSocket (``websockets``; see
  :class:`_WsRpc` for why not web3's ``WebSocketProvider``), the calls on the same connection.
  With ``confirmations = 0`` a subscribed log is handed over the moment it arrives (the fast path); every
  new head also scans ``eth_getLogs`` from the cursor to the head (the complete path: a log the
  subscription never delivered is still found, and the cursor and reorg check move on blocks without
  pools). Subscriptions are made first, then the backfill from the journaled cursor to the head runs, on
  start and after every reconnect, so nothing falls between the two; while the WebSocket is down, the
  watcher polls over ``rpc_url`` between reconnect attempts. Without ``ws_url``: ``eth_getLogs`` over
  ``rpc_url`` every ``poll_s`` seconds. Either way ``eth_getLogs`` asks for at most ``MAX_RANGE``
  blocks at a time, halving the range when the node refuses one (providers cap blocks or results per
  call). A failed connection or call is retried with full-jitter backoff (0.1 s doubling to 10 s),
  never a crash loop.
- **Which pairs.** Only a pair of exactly one quote token (``quote_tokens``) and one other token is
  published (``token`` = the other, ``quote_token`` = the quote): that is a new token one can buy with
  the quote. A pair of two quote tokens (e.g. WETH/USDC) or of two non-quote tokens is not a snipe and is
  skipped (DEBUG).
- **Confirmations.** Only blocks at or below ``head - confirmations`` are scanned; with
  ``confirmations > 0`` the subscribed logs are not used directly (each new head triggers the scan).
- **Cursor, journaled** (``keys.POOL_CURSOR``, one record per venue and factory, :class:`PoolCursor`):
  the last fully processed block and its hash, and the (block, log index) of the last published pool
  (plus the last ``RECENT_PAIRS`` published pair addresses). A restart resumes from the cursor and skips
  every log at or before the last published (block, log index): a stop and start neither misses nor
  repeats a pool (a kill -9: see the next point).
  ``start_block`` only applies when there is no cursor yet: ``"latest"`` publishes pools created after
  the first start, an int replays history from that block.
- **Exactly once, or lost on a kill — never twice.** The last published (block, log index) is journaled
  *before* the publish. A kill between the two loses that one pool; publishing first would not make it
  at-least-once either (a PUB send is only queued: the kill may drop it after the cursor moved), and a
  repeated pool could become a second buy. The sniper must still treat ``NewPool`` as a hint: bus
  delivery is at-most-once.
- **Joining the bus.** A PUB socket drops what it sends before the proxy's subscriptions reach it
  (ZeroMQ's slow joiner): a backfill published right after start would be lost. The watcher probes its
  own echo topic (:func:`sniperbot.messages.topics.bus_echo`) and publishes nothing until it hears the
  probe back; pools found meanwhile wait in order, the cursor does not move.
- **Reorgs** (with ``confirmations = 0`` the norm on a fast chain). A log with ``removed: true`` is
  logged (``pool_log_removed``). Before each scan the block at the cursor is compared with the hash
  recorded when it was scanned; on a difference the watcher walks back over the last ``REORG_DEPTH``
  recorded hashes to the newest block still on the chain (the fork point; older than all of them: the
  oldest recorded minus one), logs ``pool_reorg``, moves the cursor and the last published position back
  to it and scans the new branch. A pool already published is NOT retracted (the safety check re-reads
  the chain before any buy, and a pair that vanished fails it); a pool of the new branch is published,
  even at a (block, log index) at or below one published before the reorg; a pair already published is
  never published again (a pair's address is fixed by its tokens, CREATE2: the same pair mined again in
  the new branch is the same pool).
- **Threads.** The chain client runs in one daemon thread with its own asyncio loop; it hands
  everything to the actor thread through a ``queue.SimpleQueue`` drained every ``DRAIN_INTERVAL_S``
  (the runtime's loop owns the bus and the journal). Added latency: at most ``DRAIN_INTERVAL_S``.
- **Secrets.** RPC URLs often carry an API key: every error logged has the configured URLs replaced by
  ``<rpc_url>`` / ``<ws_url>``, and the URLs are never logged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import time
from typing import Any, Literal

import msgspec
from eth_utils import is_address, keccak, to_checksum_address

from sniperbot.actors.base import ActorContext
from sniperbot.journal import keys
from sniperbot.messages import NewPool
from sniperbot.messages import topics as topic
from sniperbot.venues.dex.watcher import PoolWatcherActor, WatcherThread, backoff_s

#: topic0 of ``PairCreated(address indexed token0, address indexed token1, address pair, uint256)``.
PAIR_CREATED_TOPIC = "0x" + bytes(keccak(text="PairCreated(address,address,address,uint256)")).hex()
MAX_RANGE = 2000  # blocks per eth_getLogs call (public providers cap at 2k-10k blocks or 10k results)
REORG_DEPTH = 128  # block hashes remembered to find a fork point
RECENT_PAIRS = 64  # published pair addresses remembered (journaled): a reorg replays them
REQUEST_TIMEOUT_S = 20.0  # one JSON-RPC call over the WebSocket
WS_MAX_MESSAGE = 64 * 1024 * 1024  # an eth_getLogs answer of MAX_RANGE busy blocks fits
_NO_POSITION = (-1, -1)
_END_OF_BLOCK = 2**62  # a log index above any real one: (block, _END_OF_BLOCK) is "all of block"


class PoolCursor(msgspec.Struct, kw_only=True):
    """The journaled progress of one venue's pool watcher (JSON under ``keys.POOL_CURSOR``)."""

    block: int  # last fully processed block: every PairCreated at or below it was handed over
    block_hash: str = ""  # its hash when scanned ("" unknown): a different one now means a reorg
    published_block: int = -1  # (block, log index) of the last published pool
    published_index: int = -1
    recent_pairs: list[str] = []  # the last RECENT_PAIRS published pairs, oldest first


class PoolLog(msgspec.Struct, frozen=True):
    """One ``PairCreated`` log, decoded (worker thread -> actor thread)."""

    block: int
    index: int
    block_hash: str
    tx_hash: str
    token0: str
    token1: str
    pair: str


def cursor_key(venue: str, factory: str) -> str:
    """The journal state key of a venue's pool cursor (per factory: a new factory starts afresh)."""
    return f"{keys.POOL_CURSOR}{venue}/{factory.lower()}"


def _hex(value: Any) -> str:
    """``0x``-prefixed lowercase hex of HexBytes/bytes/str (web3 >= 7: ``HexBytes.hex()`` has no ``0x``)."""
    if isinstance(value, str):
        return value.lower() if value.startswith("0x") else "0x" + value.lower()
    return "0x" + bytes(value).hex()


def _num(value: Any) -> int:
    """A JSON-RPC quantity (``"0x1a"``) or an int, as an int."""
    return value if isinstance(value, int) else int(value, 16)


def decode_pair_created(log: Any) -> PoolLog:
    """A ``PairCreated`` log (as the JSON-RPC node sends it) as a :class:`PoolLog`."""
    topics = log["topics"]
    data = bytes.fromhex(_hex(log["data"])[2:])
    return PoolLog(
        block=_num(log["blockNumber"]),
        index=_num(log["logIndex"]),
        block_hash=_hex(log["blockHash"]),
        tx_hash=_hex(log["transactionHash"]),
        token0=to_checksum_address(bytes.fromhex(_hex(topics[1])[2:])[-20:]),
        token1=to_checksum_address(bytes.fromhex(_hex(topics[2])[2:])[-20:]),
        pair=to_checksum_address(data[12:32]),
    )


class PoolWatcher(PoolWatcherActor):
    """Publishes a venue factory's new pools against its quote tokens (see the module doc)."""

    following = "following the factory"

    def __init__(
        self,
        ctx: ActorContext,
        *,
        venue: str,
        rpc_url: str,
        factory: str,
        quote_tokens: list[str],
        ws_url: str = "",
        start_block: int | Literal["latest"] = "latest",
        confirmations: int = 0,
        poll_s: float = 1.0,
    ) -> None:
        super().__init__(ctx)
        where = f"pool watcher {venue!r}"
        if not venue:
            raise ValueError("pool watcher: venue must not be empty")
        if not rpc_url.startswith(("http://", "https://")):
            raise ValueError(f"{where}: rpc_url must start with http:// or https://")
        if ws_url and not ws_url.startswith(("ws://", "wss://")):
            raise ValueError(f"{where}: ws_url must start with ws:// or wss:// (or be empty: polling)")
        if not is_address(factory):
            raise ValueError(f"{where}: factory = {factory!r} is not an address")
        if not quote_tokens:
            raise ValueError(f"{where}: quote_tokens must list at least one token address")
        for token in quote_tokens:
            if not is_address(token):
                raise ValueError(f"{where}: quote_tokens: {token!r} is not an address")
        if start_block != "latest" and (
            isinstance(start_block, bool) or not isinstance(start_block, int) or start_block < 0
        ):
            raise ValueError(
                f"{where}: start_block = {start_block!r} must be a block number >= 0 or 'latest'"
            )
        if isinstance(confirmations, bool) or not isinstance(confirmations, int) or confirmations < 0:
            raise ValueError(f"{where}: confirmations = {confirmations!r} must be an integer >= 0")
        if not poll_s > 0:
            raise ValueError(f"{where}: poll_s = {poll_s!r} must be positive")
        self.venue = venue
        self.rpc_url = rpc_url
        self.ws_url = ws_url
        self.factory = to_checksum_address(factory)
        self.quote_tokens = {to_checksum_address(t) for t in quote_tokens}
        self.start_block = start_block
        self.confirmations = confirmations
        self.poll_s = float(poll_s)
        self._join_bus()
        self.key = cursor_key(venue, self.factory)
        self.cursor: PoolCursor | None = None
        self.skipped = 0  # logs at or before the last published position, or pairs published already
        self._recent: collections.deque[str] = collections.deque(maxlen=RECENT_PAIRS)

    # -- lifecycle --------------------------------------------------------------------------
    def on_start(self) -> None:
        """Read the journaled cursor, start the web3 thread, the hand-over timer and the bus probe."""
        raw = self.ctx.journal.get_state(self.key)
        if raw is not None:
            self.cursor = msgspec.json.decode(raw, type=PoolCursor)
            self._recent.extend(self.cursor.recent_pairs)
        self._follow(_Worker(self, self.cursor))

    # -- actor thread -----------------------------------------------------------------------
    def _on_item(self, kind: str, item: Any) -> bool:
        if kind == "pool":
            self._on_pool(item)
        elif kind == "scanned":
            self._on_scanned(*item)
        elif kind == "reorg":
            self._on_reorg(*item)
        elif kind == "removed":
            self.ctx.log.warning(
                "PairCreated log removed by a reorg (a published pool is not retracted)",
                extra={"event": "pool_log_removed", "venue": self.venue, **msgspec.structs.asdict(item)},
            )
        else:
            return False
        return True

    def _position(self) -> tuple[int, int]:
        c = self.cursor
        return (c.published_block, c.published_index) if c is not None else _NO_POSITION

    def _on_pool(self, log: PoolLog) -> None:
        if (log.block, log.index) <= self._position() or log.pair in self._recent:
            self.skipped += 1  # published before a restart, or the same pair again after a reorg
            return
        q0, q1 = log.token0 in self.quote_tokens, log.token1 in self.quote_tokens
        if q0 == q1:
            self.ctx.log.debug(
                "pair skipped: not one quote token and one other",
                extra={"event": "pool_skipped", "venue": self.venue, "pair": log.pair},
            )
            return
        token, quote = (log.token1, log.token0) if q0 else (log.token0, log.token1)
        self._recent.append(log.pair)
        cursor = self.cursor or PoolCursor(block=log.block - 1)
        self._save(
            msgspec.structs.replace(
                cursor, published_block=log.block, published_index=log.index, recent_pairs=list(self._recent)
            )
        )
        # Journaled first: a kill from here on loses this pool, it never publishes it twice.
        msg = NewPool(
            venue=self.venue,
            pair=log.pair,
            token=token,
            quote_token=quote,
            block_number=log.block,
            tx_hash=log.tx_hash,
            log_index=log.index,
            ts_ns=time.time_ns(),
        )
        self.ctx.publish(topic.new_pool(self.venue), msg)
        self.published += 1
        self.ctx.log.info(
            "new pool",
            extra={
                "event": "new_pool",
                "venue": self.venue,
                "pair": log.pair,
                "token": token,
                "quote_token": quote,
                "block": log.block,
                "log_index": log.index,
                "tx_hash": log.tx_hash,
            },
        )

    def _on_scanned(self, block: int, block_hash: str) -> None:
        c = self.cursor
        if c is not None and c.block == block and c.block_hash == block_hash:
            return
        base = c or PoolCursor(block=block)
        self._save(msgspec.structs.replace(base, block=block, block_hash=block_hash))

    def _on_reorg(self, fork_block: int, fork_hash: str, old_block: int) -> None:
        c = self.cursor or PoolCursor(block=fork_block)
        published = min((c.published_block, c.published_index), (fork_block, _END_OF_BLOCK))
        self._save(
            msgspec.structs.replace(
                c,
                block=min(c.block, fork_block),
                block_hash=fork_hash,
                published_block=published[0],
                published_index=published[1],
            )
        )
        self.ctx.log.warning(
            "chain reorganised under the pool cursor: rescanning from the fork point",
            extra={"event": "pool_reorg", "venue": self.venue, "fork_block": fork_block, "was": old_block},
        )

    def _save(self, cursor: PoolCursor) -> None:
        self.ctx.journal.put_state(self.key, msgspec.json.encode(cursor))
        self.cursor = cursor


class RpcError(Exception):
    """The node answered a JSON-RPC call with an error: the call was refused, not lost."""


class _HttpRpc:
    """JSON-RPC calls over HTTP (web3's ``AsyncHTTPProvider``, raw answers: no formatting layer)."""

    def __init__(self, url: str) -> None:
        from web3 import AsyncHTTPProvider

        self.provider = AsyncHTTPProvider(
            url, request_kwargs={"timeout": 10}, exception_retry_configuration=None
        )

    async def call(self, method: str, params: list[Any]) -> Any:
        """The call's ``result``; :class:`RpcError` when the node refuses it."""
        answer = await self.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in answer:
            raise RpcError(f"{method}: {answer['error']}")
        return answer.get("result")

    async def close(self) -> None:
        """Close the HTTP session."""
        with contextlib.suppress(Exception):
            await self.provider.disconnect()


class _WsRpc:
    """JSON-RPC over one WebSocket (``websockets``): answers matched to calls by id, notifications queued.

    Why not web3 8's ``WebSocketProvider``: it waits for each answer by spinning the event loop (a busy
    ``asyncio.sleep(0)`` loop in ``PersistentConnectionProvider._get_response_for_request_id``), which
    keeps a core and the GIL busy for the whole call, in a process whose actor thread must stay prompt
    and on a machine shared with the node's other actors. Here an answer resolves a future.
    """

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.notifications: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()  # None: connection gone
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                if message.get("method") == "eth_subscription":
                    self.notifications.put_nowait(message["params"])
                    continue
                future = self.pending.pop(message.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(message)
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("websocket closed"))
            self.pending.clear()
            self.notifications.put_nowait(None)

    async def call(self, method: str, params: list[Any]) -> Any:
        """The call's ``result``; :class:`RpcError` when the node refuses it."""
        if self.reader.done():
            raise ConnectionError("websocket closed")
        request_id = next(self.ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        await self.ws.send(
            json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        )
        answer = await asyncio.wait_for(future, REQUEST_TIMEOUT_S)
        if "error" in answer:
            raise RpcError(f"{method}: {answer['error']}")
        return answer.get("result")

    async def close(self) -> None:
        """Stop reading (the connection itself is closed by its context manager)."""
        self.reader.cancel()
        with contextlib.suppress(BaseException):
            await self.reader


class _Worker(WatcherThread):
    """The chain side (its own thread and asyncio loop): subscriptions, backfill, polling, reorg checks."""

    def __init__(self, watcher: PoolWatcher, cursor: PoolCursor | None) -> None:
        super().__init__(f"poolwatch-{watcher.venue}", watcher.rpc_url, watcher.ws_url)
        self.w = watcher
        # Scan progress (None: not resolved yet, from start_block at the first connection).
        self.cursor: int | None = cursor.block if cursor is not None else None
        self.hashes: dict[int, str] = {}  # scanned block -> its hash then (the last REORG_DEPTH)
        if cursor is not None and cursor.block_hash:
            self.hashes[cursor.block] = cursor.block_hash
        # The newest (block, log index) handed over: the subscription and the scans overlap.
        self.handed = (cursor.published_block, cursor.published_index) if cursor is not None else _NO_POSITION
        self.log_filter = {"address": watcher.factory, "topics": [PAIR_CREATED_TOPIC]}

    async def _main(self) -> None:
        while self.running:
            try:
                if self.w.ws_url:
                    await self._follow_ws()
                else:
                    await self._follow_polling()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # connection lost or a call failed: back off, reconnect, backfill
                self.out.put(("error", self._scrub(f"{type(e).__name__}: {e}")))
            self.attempt += 1
            backoff = backoff_s(self.attempt)
            if not self.w.ws_url:
                await asyncio.sleep(backoff)
                continue
            # The WebSocket is down: poll over HTTP until the next reconnect attempt, so that a WebSocket
            # outage does not blind the watcher (failures here are the same outage: not logged again).
            until = self.loop.time() + backoff
            while self.running:
                with contextlib.suppress(Exception):
                    await self._follow_polling(once=True)
                left = until - self.loop.time()
                if left <= 0:
                    break
                await asyncio.sleep(min(self.w.poll_s, left))

    # -- following ---------------------------------------------------------------------------
    async def _follow_polling(self, once: bool = False) -> None:
        """Poll ``eth_getLogs`` over HTTP every ``poll_s`` (``once``: one catch-up while the WS is down)."""
        rpc = _HttpRpc(self.w.rpc_url)
        try:
            await self._catch_up(rpc, _num(await rpc.call("eth_blockNumber", [])))
            if once:
                return
            self._connected("http")
            while self.running:
                await asyncio.sleep(self.w.poll_s)
                await self._catch_up(rpc, _num(await rpc.call("eth_blockNumber", [])))
        finally:
            await rpc.close()

    async def _follow_ws(self) -> None:
        from websockets.asyncio.client import connect

        async with connect(self.w.ws_url, ping_interval=10, ping_timeout=20, max_size=WS_MAX_MESSAGE) as ws:
            rpc = _WsRpc(ws)
            try:
                logs_id = await rpc.call("eth_subscribe", ["logs", self.log_filter])
                heads_id = await rpc.call("eth_subscribe", ["newHeads"])
                # Subscribed first, then the backfill: a pool mined in between is in one or the other.
                await self._catch_up(rpc, _num(await rpc.call("eth_blockNumber", [])))
                self._connected("websocket")
                while self.running:
                    note = await rpc.notifications.get()
                    if note is None:
                        raise ConnectionError("websocket closed")
                    sub, result = note.get("subscription"), note.get("result")
                    if sub == logs_id:
                        if result.get("removed"):
                            self.out.put(("removed", decode_pair_created(result)))
                        elif self.w.confirmations == 0 and self.cursor is not None:
                            self._hand(decode_pair_created(result))  # the fast path
                    elif sub == heads_id:
                        await self._catch_up(rpc, _num(result["number"]))
            finally:
                await rpc.close()

    def _connected(self, via: str) -> None:
        self.attempt = 0
        self.out.put(("connected", via))

    def _hand(self, log: PoolLog) -> None:
        if (log.block, log.index) <= self.handed:
            return
        self.handed = (log.block, log.index)
        self.out.put(("pool", log))

    async def _block_hash(self, rpc: Any, number: int) -> str | None:
        """The hash of block ``number`` on the chain now (None: no such block, e.g. after a revert)."""
        block = await rpc.call("eth_getBlockByNumber", [hex(number), False])
        return _hex(block["hash"]) if block else None

    async def _catch_up(self, rpc: Any, head: int) -> None:
        """Scan from the cursor to ``head - confirmations``, after a reorg check at the cursor."""
        target = head - self.w.confirmations
        if self.cursor is None:  # first start, no journaled cursor
            start = self.w.start_block
            self.cursor = max(target, -1) if start == "latest" else int(start) - 1
            if self.cursor >= 0:
                found = await self._block_hash(rpc, self.cursor)
                if found is not None:
                    self.hashes[self.cursor] = found
            self.out.put(("scanned", (self.cursor, self.hashes.get(self.cursor, ""))))
        await self._check_reorg(rpc)
        while self.running and self.cursor < target:
            end = min(target, self.cursor + MAX_RANGE)
            # The end's hash before its logs: a reorg in between shows at the next check (a rescan).
            end_hash = await self._block_hash(rpc, end) or ""
            logs = await self._get_logs(rpc, self.cursor + 1, end)
            for raw in sorted(logs, key=lambda x: (_num(x["blockNumber"]), _num(x["logIndex"]))):
                if not raw.get("removed"):
                    self._hand(decode_pair_created(raw))
            self.cursor = end
            self.hashes[end] = end_hash
            while len(self.hashes) > REORG_DEPTH:
                del self.hashes[min(self.hashes)]
            self.out.put(("scanned", (end, end_hash)))

    async def _check_reorg(self, rpc: Any) -> None:
        assert self.cursor is not None
        recorded = self.hashes.get(self.cursor)
        if not recorded or await self._block_hash(rpc, self.cursor) == recorded:
            return
        old = self.cursor
        fork = min(self.hashes) - 1
        for number in sorted(self.hashes, reverse=True):
            if number != old and await self._block_hash(rpc, number) == self.hashes[number]:
                fork = number
                break
        self.hashes = {n: h for n, h in self.hashes.items() if n <= fork}
        self.cursor = fork
        self.handed = min(self.handed, (fork, _END_OF_BLOCK))
        self.out.put(("reorg", (fork, self.hashes.get(fork, ""), old)))

    async def _get_logs(self, rpc: Any, first: int, last: int) -> list[Any]:
        """The factory's PairCreated logs of blocks ``first..last``, halving ranges the node refuses."""
        try:
            found = await rpc.call(
                "eth_getLogs", [self.log_filter | {"fromBlock": hex(first), "toBlock": hex(last)}]
            )
            return list(found or [])
        except RpcError:
            if first == last:
                raise
            mid = (first + last) // 2
            return await self._get_logs(rpc, first, mid) + await self._get_logs(rpc, mid + 1, last)
