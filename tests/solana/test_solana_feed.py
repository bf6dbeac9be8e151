"""The Solana venue's feed on the local chain (issue #13 points 1 and 6): pools priced from their vaults.

Real components: :class:`LocalSolana` (LiteSVM behind Solana's JSON-RPC, the real token programs), pools
of the local aggregator, the price moved by real swaps of another wallet (the aggregator's
``/swap/v1/quote`` and ``/swap/v1/swap``, signed here, run by the chain), the feed in an
:class:`ActorRuntime` on a real bus, and a real ``sniperbot run`` node for the configured venue. Every
price is checked against the chain's own vaults.
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.actors.runtime import process_journal
from sniperbot.messages import FeedStatus, Fill, Payload, Quote, TokenSafetyReport, TradeTick, decode_envelope
from sniperbot.messages import topics as topic
from sniperbot.rundir import RunDir
from sniperbot.transport.bus import BusProxy, Subscriber, split_message
from sniperbot.venues.dex import pool_quote
from sniperbot.venues.solana.devaggregator import LocalAggregator
from sniperbot.venues.solana.devchain import LocalSolana
from sniperbot.venues.solana.devtokens import create_mint, token_balance
from sniperbot.venues.solana.layouts import (
    LAMPORTS_PER_SOL,
    LOCAL_AMM_PROGRAM,
    SOL_MINT,
    decode_token_account,
)
from tests.conftest import RunningNode, eventually, sniperbot
from tests.venues_ccxt.test_gateway import Actors, actors  # noqa: F401  (fixture)

VENUE = "localsol"
FEED = f"feed.{VENUE}"
CHECKER = f"checker.{VENUE}"
SYMBOL = "TKN/SOL"
DECIMALS = 6
BASE0, SOL0 = 1_000_000 * 10**DECIMALS, 10 * LAMPORTS_PER_SOL  # 1,000,000 TKN against 10 SOL
WAIT_S = 60.0  # event-driven waits end as soon as the state is reached; generous for a loaded machine

_OUT: dict[str, queue.SimpleQueue[tuple[str, Payload]]] = {}


class Driver(Actor):
    """Plays the token checker: publishes what the test queues (a report carries the checker's authority)."""

    def __init__(self, ctx: ActorContext) -> None:
        super().__init__(ctx)
        self._queue = _OUT.setdefault(ctx.actor_id, queue.SimpleQueue())

    def on_start(self) -> None:
        """Poll the test's queue."""
        self.ctx.every(0.01, self._pump)

    def _pump(self) -> None:
        while not self._queue.empty():
            where, payload = self._queue.get()
            self.ctx.publish(where, payload)


class Market:
    """Every message of the venue's market data and feed status on the node's bus, in arrival order."""

    def __init__(self, run_dir: Path, proxy: bool) -> None:
        self.zctx = zmq.Context()
        rundir = RunDir(run_dir)
        self.proxy = BusProxy(self.zctx, rundir.bus_in, rundir.bus_out) if proxy else None
        if self.proxy is not None:
            self.proxy.start()
        self.sub = Subscriber(self.zctx, rundir.bus_out, (topic.market(VENUE), topic.feed_status(VENUE)))
        self.seen: list[Any] = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._receive, name="market", daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        while self.running:
            if not self.sub.socket.poll(20):
                continue
            _, frame = split_message(self.sub.socket.recv())
            with self.lock:
                self.seen.append(decode_envelope(frame).payload)

    def of(self, kind: type[Any], symbol: str | None = None) -> list[Any]:
        """What arrived of ``kind`` (for ``symbol``), in order."""
        with self.lock:
            return [m for m in self.seen if isinstance(m, kind) and (symbol is None or m.symbol == symbol)]

    def close(self) -> None:
        """Stop receiving, close the subscriber (and the proxy)."""
        self.running = False
        self.thread.join(5)
        self.sub.close()
        if self.proxy is not None:
            self.proxy.stop()
        self.zctx.destroy(linger=0)


@pytest.fixture
def chain() -> Iterator[LocalSolana]:
    """A fresh local chain (50 ms slots)."""
    with LocalSolana(slot_ms=50) as c:
        yield c


@pytest.fixture
def agg(chain: LocalSolana) -> Iterator[LocalAggregator]:
    """The local aggregator: the pools and the swaps."""
    a = LocalAggregator(chain).start()
    try:
        yield a
    finally:
        a.stop()


class Pool:
    """A pool of the aggregator and what the chain says of it."""

    def __init__(self, chain: LocalSolana, agg: LocalAggregator, base: int = BASE0, sol: int = SOL0) -> None:
        self.chain, self.agg = chain, agg
        self.mint = create_mint(chain, decimals=DECIMALS)
        self.address = agg.create_pool(self.mint, base, sol)
        self.state = agg.pools[self.address].state

    def reserves(self) -> tuple[int, int]:
        """(raw base, lamports above the rent exemption) in the vaults now."""
        base = self.chain.account(self.state.base_vault)
        sol = self.chain.account(self.state.quote_vault)
        assert base is not None and sol is not None
        with self.chain.lock:
            rent = int(self.chain.svm.minimum_balance_for_rent_exemption(0))
        return decode_token_account(bytes(base.data)).amount, sol.lamports - rent

    def expected_quote(self) -> tuple[float, float, float, float]:
        """The shared convention over the vaults: what the feed must publish."""
        base, sol = self.reserves()
        return pool_quote(base / 10**DECIMALS, sol / LAMPORTS_PER_SOL)


class Trader:
    """Another wallet that moves the price with real swaps through the aggregator's Swap API."""

    def __init__(self, chain: LocalSolana, agg: LocalAggregator) -> None:
        self.chain, self.agg = chain, agg
        self.keypair = Keypair()
        chain.airdrop(self.keypair.pubkey(), 100 * LAMPORTS_PER_SOL)

    def swap(self, input_mint: Pubkey, output_mint: Pubkey, amount: int) -> None:
        """ExactIn ``amount`` of ``input_mint``: quote, swap transaction, sign, run on the chain."""
        query = f"inputMint={input_mint}&outputMint={output_mint}&amount={amount}&slippageBps=100"
        with urllib.request.urlopen(f"{self.agg.url}/swap/v1/quote?{query}", timeout=30) as answer:
            quote = json.loads(answer.read())
        body = json.dumps({"quoteResponse": quote, "userPublicKey": str(self.keypair.pubkey())}).encode()
        request = urllib.request.Request(
            f"{self.agg.url}/swap/v1/swap", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            swap = json.loads(answer.read())
        tx = VersionedTransaction.from_bytes(base64.b64decode(swap["swapTransaction"]))
        signatures = list(tx.signatures)
        signatures[0] = self.keypair.sign_message(to_bytes_versioned(tx.message))  # the pool signed the rest
        outcome = self.chain.send_raw(VersionedTransaction.populate(tx.message, signatures))
        assert outcome.ok, outcome

    def buy(self, pool: Pool, lamports: int) -> None:
        """Spend ``lamports`` on ``pool``'s token."""
        self.swap(SOL_MINT, pool.mint, lamports)

    def sell(self, pool: Pool, raw: int) -> None:
        """Sell ``raw`` units of ``pool``'s token."""
        self.swap(pool.mint, SOL_MINT, raw)


def close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Equal up to float rounding (the same formula over the same integers)."""
    return all(abs(x - y) <= 1e-12 * max(abs(x), abs(y), 1e-300) for x, y in zip(a, b, strict=True))


def top(q: Quote) -> tuple[float, float, float, float]:
    """A quote's (bid, bid_size, ask, ask_size)."""
    return q.bid, q.bid_size, q.ask, q.ask_size


def feed_args(chain: LocalSolana, pool: Pool) -> dict[str, Any]:
    """What ``SolanaVenueConfig.feed`` gives the feed, for TKN = ``pool``'s mint."""
    return {
        "venue": VENUE,
        "rpc_url": chain.rpc_url,
        "ws_url": chain.ws_url,
        "commitment": "confirmed",
        "pools_program": str(LOCAL_AMM_PROGRAM),
        "mints": {"SOL": str(SOL_MINT), "TKN": str(pool.mint)},
        "quote": "SOL",
        "symbols": [SYMBOL],
    }


def test_the_pool_is_quoted_from_its_vaults_per_slot_and_swaps_are_trades(
    chain: LocalSolana,
    agg: LocalAggregator,
    actors: Actors,  # noqa: F811
) -> None:
    """The quote is the shared convention over the vaults' reserves; a real buy and sell move it and show
    as trades (side, size and price from the vaults' changes); a quiet pool publishes nothing more."""
    pool = Pool(chain, agg)
    market = Market(actors.run_dir, proxy=True)
    try:
        actors.start(FEED, "sniperbot.venues.solana.feed:SolanaFeed", feed_args(chain, pool))
        first = eventually(lambda: market.of(Quote, SYMBOL), WAIT_S, what="the first quote")[0]
        assert close(top(first), pool.expected_quote()), (first, pool.expected_quote())
        assert first.venue == VENUE and first.ask > first.bid > 0
        status = eventually(lambda: [s for s in market.of(FeedStatus) if s.connected and not s.stale], WAIT_S)
        assert status[-1].rest_polls > 0
        # Quiet: slots go by (50 ms each), the reserves do not change, no new quote.
        chain.wait_for_slot(chain.slot() + 10)
        assert len(market.of(Quote, SYMBOL)) == 1
        trader = Trader(chain, agg)
        before = pool.reserves()
        trader.buy(pool, LAMPORTS_PER_SOL // 2)
        after = pool.reserves()
        expected = pool.expected_quote()
        moved = eventually(lambda: [q for q in market.of(Quote, SYMBOL) if close(top(q), expected)], WAIT_S)
        assert moved[0].ask > first.ask  # a buy makes the token dearer
        (buy,) = eventually(lambda: market.of(TradeTick, SYMBOL), WAIT_S, what="the buy's trade")
        bought = (before[0] - after[0]) / 10**DECIMALS
        assert buy.side == "buy" and abs(buy.size - bought) < 1e-9, (buy, bought)
        assert token_balance(chain, trader.keypair.pubkey(), pool.mint) == before[0] - after[0]
        assert abs(buy.price - (after[1] - before[1]) / LAMPORTS_PER_SOL / bought) < 1e-12, buy
        trader.sell(pool, (before[0] - after[0]) // 2)
        sold = eventually(lambda: market.of(TradeTick, SYMBOL)[1:], WAIT_S, what="the sell's trade")[0]
        assert sold.side == "sell" and sold.trade_id > buy.trade_id
        expected = pool.expected_quote()
        eventually(
            lambda: close(top(market.of(Quote, SYMBOL)[-1]), expected), WAIT_S, what="the sell's quote"
        )
    finally:
        actors.stop_all()
        market.close()


def test_a_token_the_safety_check_passed_is_quoted_from_then_on(
    chain: LocalSolana,
    agg: LocalAggregator,
    actors: Actors,  # noqa: F811
) -> None:
    """A "buy" report on a new mint: the feed finds its pool and quotes ``"<mint>/SOL"``; a "refuse" report
    on another mint adds nothing (as the EVM feed)."""
    pool, new, refused = Pool(chain, agg), Pool(chain, agg, base=500_000 * 10**DECIMALS), Pool(chain, agg)
    market = Market(actors.run_dir, proxy=True)
    try:
        actors.start(FEED, "sniperbot.venues.solana.feed:SolanaFeed", feed_args(chain, pool))
        actors.start(CHECKER, f"{__name__}:Driver", {})
        eventually(lambda: market.of(Quote, SYMBOL), WAIT_S, what="the configured pair's quote")
        out = _OUT[CHECKER]
        for verdict, p in (("refuse", refused), ("buy", new)):
            report = TokenSafetyReport(venue=VENUE, token=str(p.mint), verdict=verdict, ts_ns=time.time_ns())  # type: ignore[arg-type]
            out.put((topic.token_safety(VENUE, str(p.mint)), report))
        symbol = f"{new.mint}/SOL"
        quote = eventually(lambda: market.of(Quote, symbol), WAIT_S, what="the learnt pair's quote")[0]
        assert close(top(quote), new.expected_quote()), (quote, new.expected_quote())
        time.sleep(0.3)
        assert not market.of(Quote, f"{refused.mint}/SOL")
    finally:
        actors.stop_all()
        market.close()
        _OUT.pop(CHECKER, None)


def test_a_token_still_held_after_a_restart_is_quoted_again(
    chain: LocalSolana,
    agg: LocalAggregator,
    actors: Actors,  # noqa: F811
) -> None:
    """The journal's fills say a learnt token is held (bought, partly sold): the restarted feed quotes it
    from the start, before any report; a token bought and sold in full is not quoted."""
    pool, held, gone = Pool(chain, agg), Pool(chain, agg), Pool(chain, agg)
    journal = process_journal(actors.run_dir, "process")
    for n, (p, side, qty) in enumerate(
        ((held, "buy", 100.0), (held, "sell", 40.0), (gone, "buy", 5.0), (gone, "sell", 5.0))
    ):
        fill = Fill(
            fill_id=f"{VENUE}:sig{n}", client_order_id=f"c{n}", strategy_id=f"sniper-{VENUE}", venue=VENUE,
            symbol=f"{p.mint}/SOL", side=side, quantity=qty, price=1e-5, fee=0.0, ts_ns=time.time_ns(),
        )  # fmt: skip
        journal.append(fill)
    market = Market(actors.run_dir, proxy=True)
    try:
        actors.start(FEED, "sniperbot.venues.solana.feed:SolanaFeed", feed_args(chain, pool))
        symbol = f"{held.mint}/SOL"
        quote = eventually(lambda: market.of(Quote, symbol), WAIT_S, what="the held token's quote")[0]
        assert close(top(quote), held.expected_quote()), quote
        eventually(lambda: market.of(Quote, SYMBOL), WAIT_S, what="the configured pair's quote")
        time.sleep(0.3)
        assert not market.of(Quote, f"{gone.mint}/SOL")
    finally:
        actors.stop_all()
        market.close()


# -- the configured venue in a real node -------------------------------------------------------------------

_NODE = """
[node]
heartbeat_interval_s = 0.2
heartbeat_liveness = 5
log_level = "INFO"

[journal]
durability = "process"
"""


def venue_toml(chain: LocalSolana, agg: LocalAggregator, mint: Pubkey | str) -> str:
    """A paper ``kind = "solana"`` venue on the local chain, TKN = ``mint``."""
    return (
        f'[[venues]]\nname = "{VENUE}"\nkind = "solana"\nmode = "paper"\nrpc_url = "{chain.rpc_url}"\n'
        f'ws_url = "{chain.ws_url}"\naggregator_url = "{agg.url}"\nquote = "SOL"\n'
        f'mints = {{ SOL = "{SOL_MINT}", TKN = "{mint}" }}\nsymbols = ["{SYMBOL}"]\n'
        f'pools_program = "{LOCAL_AMM_PROGRAM}"\nblock_engine_url = "{chain.block_engine_url}"\n'
    )


def test_a_paper_node_quotes_the_pool_and_its_preflight_checks_the_mints(
    chain: LocalSolana, agg: LocalAggregator, short_tmp: Path
) -> None:
    """``sniperbot run``: a mint that is no mint account exits 2 naming it; a mint without a pool yet is a
    warning and the node prices the pool from the slot it appears in, its feed connected and following the
    slots by subscription."""
    wallet = Keypair().pubkey()
    chain.airdrop(wallet, LAMPORTS_PER_SOL)  # an account, but a system one: no mint
    bad = short_tmp / "bad.toml"
    bad.write_text("strategies = []\n" + _NODE + venue_toml(chain, agg, wallet))
    result = sniperbot("run", "--config", str(bad), "--run-dir", str(short_tmp / "r0"), "--duration", "5")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"venues[0].mints.TKN: {wallet} is not a mint" in result.stderr, result.stderr
    mint = create_mint(chain, decimals=DECIMALS)  # no pool yet
    config = short_tmp / "ok.toml"
    config.write_text("strategies = []\n" + _NODE + venue_toml(chain, agg, mint))
    node = RunningNode(short_tmp / "run", config)
    market: Market | None = None
    try:
        node.wait_ready()
        market = Market(node.run_dir, proxy=False)
        assert "symbols: no pool yet for TKN/SOL" in node.log(), node.log()[-3000:]
        feed = eventually(lambda: node.admin("status")["venues"][VENUE]["feed"], WAIT_S, what="feed status")
        assert feed["connected"], feed
        # ws_url given: the reads follow the chain's slots by subscription.
        eventually(lambda: '"event": "feed_subscribed"' in node.log(), WAIT_S, what="the slot subscription")
        pool = agg.create_pool(mint, BASE0, SOL0)
        state = agg.pools[pool].state
        quote = eventually(lambda: market.of(Quote, SYMBOL), WAIT_S, what="the new pool's quote")[0]
        assert close(top(quote), pool_quote(BASE0 / 10**DECIMALS, SOL0 / LAMPORTS_PER_SOL)), quote
        assert state.base_mint == mint
    finally:
        if market is not None:
            market.close()
        assert node.stop() == 0, node.log()[-3000:]
