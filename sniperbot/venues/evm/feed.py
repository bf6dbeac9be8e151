"""The EVM venue's market data: Uniswap V2 pools priced from their reserves, every new block.

Per new block (the head's number and hash read with ``eth_getBlockByNumber("latest")``: polled every
``poll_s`` = 0.25 s, or at once when the WebSocket ``ws_url`` announces a ``newHeads``), for every
configured pair ``BASE/QUOTE``:

* the pair's address comes from the factory (``getPair``; a pair not created yet is looked up again
  each block and priced from the block that creates it), its orientation from ``token0``, the
  tokens' decimals from ``decimals()`` (each read once);
* a :class:`Quote` on ``md.<venue>.quote.<symbol>.`` from ``getReserves`` at that block, published
  when it changed. **Decisions** (the constant product ``x * y = k`` with Uniswap V2's 0.3 % fee):
  ``bid`` = ``mid * 0.997`` and ``ask`` = ``mid / 0.997``, the prices of selling / buying the first
  (infinitesimal) unit of base, ``mid`` = quote reserve / base reserve in token units. The sizes are
  what can be traded before the *average* price is 1 % worse than that touch: buying
  ``b * (1 - 1/1.01)`` base (about 0.99 % of the base reserve) and selling ``b * (1/0.99 - 1) / 0.997``
  (about 1.01 %). So the paper gateway's synthetic book (the touch holds the quoted size, one more
  spread per further chunk) stays close to the real curve for the sizes a strategy should trade;
* each of the pair's ``Swap`` logs in the new blocks as a :class:`TradeTick` on
  ``md.<venue>.trade.<symbol>.``: ``side`` is the aggressor's (base left the pool: ``buy``), ``size``
  the net base amount, ``price`` the net quote amount per base (fee included: what the trader paid or
  got), ``trade_id = block * 100000 + log index`` (increasing per symbol; a log never published
  twice).

``ts_ns`` is when the feed read the block (wall clock), not the block's timestamp: that has a 1 s
resolution (several anvil blocks share one) and is the proposer's claim; the node's bars and
staleness checks want the local clock, as the ccxt feed uses it when an exchange gives no time.

Trades start at the block the feed first sees (history is not replayed); after an RPC outage the
missed blocks' swaps are fetched (at most :data:`MAX_LOG_BLOCKS` blocks back) before the new quote.
A new head is a new (number, hash): a reorg is seen at once whether the new head is lower, higher
or **at the same height** (the usual one-block reorg replaces block N by another block N; comparing
numbers alone would keep the dropped block's price until the next block, 12 s on Ethereum). The
quotes move to the new head; swaps already published stay published (a tape does not unprint), and
a re-mined log whose id is not above the last published one of its symbol is skipped.

A :class:`FeedStatus` on ``status.feed.<venue>`` every second and on change: ``connected`` is the
RPC's last answer, ``stale`` means no RPC answer for :data:`STALE_AFTER_S` (prices of unknown age:
the risk guard refuses new exposure), ``reconnects`` counts connected -> failed transitions,
``rest_polls`` the heads read over HTTP. **Decision:** a chain that makes no block is not stale (the
pool's state is still the last block's; anvil mines only on transactions).

The RPC calls run in one daemon thread (a slow or dead endpoint must not stop the actor's
heartbeats); results reach the actor thread through a queue drained every :data:`DRAIN_INTERVAL_S`.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from typing import Any

from eth_utils import is_address

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
from sniperbot.venues.evm.config import ZERO_ADDRESS
from sniperbot.venues.evm.jsonrpc import JsonRpc, RpcError, address_word, encode_address, word

POLL_S = 0.25  # head polling period (also the WebSocket's receive timeout)
WAKE_CHECK_S = 0.01  # on the WebSocket, how often a wake (a pair added, stop) is looked for
DRAIN_INTERVAL_S = FEED_DRAIN_INTERVAL_S  # hand-over period from the RPC thread to the actor loop
STATUS_INTERVAL_S = FEED_STATUS_INTERVAL_S
STALE_AFTER_S = FEED_STALE_AFTER_S  # no RPC answer for this long: prices of unknown age
RPC_TIMEOUT_S = 5.0
MAX_LOG_BLOCKS = 1000  # blocks of swaps fetched at most after an outage (one eth_getLogs)
WS_RETRY_S = 5.0  # a failed WebSocket is tried again after this long (HTTP polling meanwhile)
_JOIN_TIMEOUT_S = 10.0

#: A trade id's block factor: ``block * TRADE_ID_BLOCK + log index``.
TRADE_ID_BLOCK = 100_000

# Function selectors and the Swap event's topic (keccak of the signatures; tests check them).
GET_PAIR = "0xe6a43905"  # getPair(address,address)
GET_RESERVES = "0x0902f1ac"  # getReserves()
TOKEN0 = "0x0dfe1681"  # token0()
DECIMALS = "0x313ce567"  # decimals()
SWAP_TOPIC = "0xd78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822"


class _Pair:
    """What the feed knows of one configured pair."""

    def __init__(self, symbol: str, base: str, quote: str) -> None:
        self.symbol = symbol
        self.base = base.lower()
        self.quote = quote.lower()
        self.address = ""  # lower case once the factory has it
        self.base_is_token0 = True
        self.base_scale = 1.0
        self.quote_scale = 1.0
        self.last_trade_id = -1


class _Worker(FeedThread):
    """The RPC thread: follows the head and turns blocks into quotes and trades (see the module doc)."""

    def __init__(self, feed: EvmFeed) -> None:
        super().__init__(f"evm-feed-{feed.venue}")
        self.feed = feed
        self.rpc = JsonRpc(feed.rpc_url, RPC_TIMEOUT_S)
        self.head: int | None = None
        self.head_hash = ""  # the hash of block ``head`` when it was handled
        self.pairs = [
            _Pair(s, feed.tokens[s.partition("/")[0]], feed.tokens[feed.quote]) for s in feed.symbols
        ]
        self._decimals: dict[str, int] = {}
        self._last_quote: dict[str, tuple[float, float, float, float]] = {}
        self._ws: Any = None
        self._ws_retry_at = 0.0
        self._wake = threading.Event()
        self.added: queue.SimpleQueue[_Pair] = queue.SimpleQueue()  # pairs learnt at run time

    def wake(self) -> None:
        """Poll now (from any thread)."""
        self._wake.set()

    def stop(self, join_s: float) -> None:
        """End the thread and close the WebSocket."""
        super().stop(join_s)
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._ws.close()

    def _run(self) -> None:
        while self.running:
            self.poll()
            self._wait_next_head()

    def poll(self) -> None:
        """Read the head once and handle it if it is new (another number or another hash)."""
        try:
            block = self.rpc.call("eth_getBlockByNumber", "latest", False)
            head, head_hash = int(str(block["number"]), 16), str(block["hash"])
            self.polls += 1
            self._answered()
            added = self._take_added()
            if head != self.head or head_hash != self.head_hash or added:
                self._on_head(head)  # a pair added: priced at once, not at the next block
                self.head_hash = head_hash
        except RpcError as e:
            self._failed(e)
        except Exception as e:  # a malformed answer: said once, tried again next period
            self.out.put(("error", f"{type(e).__name__}: {e}"))

    def _take_added(self) -> bool:
        added = False
        while True:
            try:
                pair = self.added.get_nowait()
            except queue.Empty:
                return added
            if all(p.symbol != pair.symbol for p in self.pairs):
                self.pairs.append(pair)
                added = True

    # -- head notifications --------------------------------------------------------------
    def _wait_next_head(self) -> None:
        """Until a ``newHeads`` notification (with ``ws_url``), a :meth:`wake` or ``POLL_S`` has passed.

        A wake is consumed here (cleared): left set, every later wait would return at once and the
        thread would poll the RPC back to back. On the WebSocket the wait is cut in
        :data:`WAKE_CHECK_S` slices, so a pair the sniper asks for is priced within that, not at the
        next head (a receive cannot be interrupted from another thread).
        """
        if not self.feed.ws_url or not self._ws_ready():
            self._wake.wait(POLL_S)
            self._wake.clear()
            return
        deadline = time.monotonic() + POLL_S
        while not self._wake.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                self._ws.recv(timeout=min(WAKE_CHECK_S, left))  # any notification: read the head
                return
            except TimeoutError:
                continue
            except Exception as e:  # dropped: poll over HTTP, try the WebSocket again later
                self.out.put(("error", f"ws newHeads: {type(e).__name__}"))
                self._close_ws()
                return
        self._wake.clear()

    def _ws_ready(self) -> bool:
        if self._ws is not None:
            return True
        if time.monotonic() < self._ws_retry_at:
            return False
        self._ws_retry_at = time.monotonic() + WS_RETRY_S
        try:
            from websockets.sync.client import connect

            # Entered as a context (websockets >= 17.1 deprecates a bare connect()), held open across
            # polls: closing it (_close_ws, stop) is the context's exit.
            ws = contextlib.ExitStack().enter_context(
                connect(self.feed.ws_url, open_timeout=RPC_TIMEOUT_S, close_timeout=1)
            )
            ws.send(
                json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]})
            )
            answer = json.loads(ws.recv(timeout=RPC_TIMEOUT_S))
            if not answer.get("result"):
                ws.close()
                raise RuntimeError("subscription refused")
            self._ws = ws
            self.out.put(("subscribed", None))
            return True
        except Exception as e:  # any failure: HTTP polling goes on
            self.out.put(("error", f"ws newHeads: {type(e).__name__}"))
            return False

    def _close_ws(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close()
        self._ws = None

    # -- connection state ------------------------------------------------------------------
    def _answered(self) -> None:
        self.last_ok_ns = time.monotonic_ns()
        if not self.connected:
            self.connected = True
            self.out.put(("status", None))

    def _failed(self, error: RpcError) -> None:
        if self.connected:
            self.connected = False
            self.reconnects += 1
            self.out.put(("status", None))
        self.out.put(("error", str(error)))

    # -- blocks ------------------------------------------------------------------------------
    def _on_head(self, head: int) -> None:
        previous = self.head
        for pair in self.pairs:
            if not pair.address:
                self._find_pair(pair, head)
        priced = [p for p in self.pairs if p.address]
        if previous is not None and head > previous and priced:
            self._swaps(priced, max(previous + 1, head - MAX_LOG_BLOCKS + 1), head)
        now = time.time_ns()
        for pair in priced:
            raw = self.rpc.eth_call(pair.address, GET_RESERVES, head)
            r0, r1 = word(raw, 0), word(raw, 1)
            base_raw, quote_raw = (r0, r1) if pair.base_is_token0 else (r1, r0)
            if base_raw == 0 or quote_raw == 0:
                continue  # created, no liquidity yet: no price
            top = pool_quote(base_raw / pair.base_scale, quote_raw / pair.quote_scale)
            if self._last_quote.get(pair.symbol) != top:
                self._last_quote[pair.symbol] = top
                self.out.put(("quote", (pair.symbol, *top, now)))
        self.head = head  # only once the block is fully handled: a failure retries it

    def _find_pair(self, pair: _Pair, head: int) -> None:
        found = address_word(
            self.rpc.eth_call(
                self.feed.factory, GET_PAIR + encode_address(pair.base) + encode_address(pair.quote), head
            )
        )
        if found == ZERO_ADDRESS:
            return
        token0 = address_word(self.rpc.eth_call(found, TOKEN0, head))
        pair.base_is_token0 = token0 == pair.base
        pair.base_scale = 10.0 ** self._token_decimals(pair.base)
        pair.quote_scale = 10.0 ** self._token_decimals(pair.quote)
        pair.address = found

    def _token_decimals(self, token: str) -> int:
        if token not in self._decimals:
            self._decimals[token] = word(self.rpc.eth_call(token, DECIMALS))
        return self._decimals[token]

    def _swaps(self, pairs: list[_Pair], first: int, last: int) -> None:
        by_address = {p.address: p for p in pairs}
        logs = self.rpc.call(
            "eth_getLogs",
            {
                "fromBlock": hex(first),
                "toBlock": hex(last),
                "address": list(by_address),
                "topics": [SWAP_TOPIC],
            },
        )
        now = time.time_ns()
        entries = sorted(
            (int(log["blockNumber"], 16), int(log["logIndex"], 16), log)
            for log in logs or []
            if not log.get("removed")
        )
        for block, index, log in entries:
            pair = by_address.get(str(log.get("address", "")).lower())
            if pair is None:
                continue
            trade_id = block * TRADE_ID_BLOCK + index
            if trade_id <= pair.last_trade_id:
                continue
            data = log["data"]
            a0_in, a1_in, a0_out, a1_out = (word(data, i) for i in range(4))
            base_in, quote_in = (a0_in, a1_in) if pair.base_is_token0 else (a1_in, a0_in)
            base_out, quote_out = (a0_out, a1_out) if pair.base_is_token0 else (a1_out, a0_out)
            base_net = (base_in - base_out) / pair.base_scale  # > 0: base came into the pool (a sell)
            quote_net = (quote_out - quote_in) / pair.quote_scale  # > 0: quote left the pool (a sell)
            if base_net == 0 or quote_net == 0 or (base_net > 0) != (quote_net > 0):
                continue  # a flash swap or donation, not a trade at a price
            pair.last_trade_id = trade_id
            side = "sell" if base_net > 0 else "buy"
            size = abs(base_net)
            self.out.put(("trade", (pair.symbol, abs(quote_net) / size, size, side, trade_id, now)))


class EvmFeed(FeedWorker, Actor):
    """One EVM venue's pools on the bus: Quote, TradeTick, FeedStatus (see the module docstring)."""

    def __init__(
        self,
        ctx: ActorContext,
        *,
        venue: str,
        rpc_url: str,
        factory: str,
        tokens: dict[str, str],
        quote: str,
        symbols: list[str],
        ws_url: str = "",
    ) -> None:
        super().__init__(ctx)
        if not symbols:
            raise ValueError(f"feed {venue!r}: symbols must not be empty")
        for symbol in symbols:
            base = symbol.partition("/")[0]
            if base not in tokens or quote not in tokens:
                raise ValueError(f"feed {venue!r}: {symbol!r} needs the addresses of {base!r} and {quote!r}")
        self.venue = venue
        self.rpc_url = rpc_url
        self.ws_url = ws_url
        self.factory = factory
        self.tokens = dict(tokens)
        self.quote = quote
        self.symbols = list(symbols)
        self.stale = True  # no prices yet: nothing to trade on
        # Tokens learnt at run time: the safety check's "buy" (the sniper trades them); see _learn.
        self.topics = (topic.token_safety(venue),)
        self.stale_periods = 0
        self._worker: _Worker | None = None
        self._held: dict[str, float] = {}
        self._last_error = ""

    def on_start(self) -> None:
        """Start the RPC thread, the hand-over timer and the status timer."""
        self._worker = _Worker(self)
        # A held token learnt at run time is quoted again: the journal's positions (O(instruments)).
        for (venue, symbol), book in self.ctx.journal.snapshot().books.items():
            base = symbol.partition("/")[0]
            if venue == self.venue and is_address(base):
                self._held[base] = self._held.get(base, 0.0) + book.net
        for token, held in self._held.items():
            if held > 0:
                self._learn(token)
        self._start_feed()

    def on_message(self, envelope: Envelope) -> None:
        """A token the safety check passed ("buy"): its pair is quoted from now on."""
        report = envelope.payload
        if isinstance(report, TokenSafetyReport) and report.venue == self.venue and report.verdict == "buy":
            self._learn(report.token)

    def _learn(self, token: str) -> None:
        """Quote ``"<token address>/<quote>"`` from now on (at once, then every block)."""
        symbol = f"{token}/{self.quote}"
        if symbol in self.symbols or self._worker is None:
            return
        self.symbols.append(symbol)
        self._worker.added.put(_Pair(symbol, token, self.tokens[self.quote]))
        self._worker.wake()
        self.ctx.log.info("pair added", extra={"event": "pair_added", "venue": self.venue, "symbol": symbol})

    def on_stop(self) -> None:
        """Stop the thread, and say the venue's prices are stale from now on."""
        self._stop_feed(_JOIN_TIMEOUT_S)

    def _on_item(self, kind: str, item: Any) -> bool:
        """The subscription to new heads is up (logged once)."""
        if kind != "subscribed":
            return False
        self.ctx.log.info("new heads by subscription", extra={"event": "feed_subscribed"})
        return True
