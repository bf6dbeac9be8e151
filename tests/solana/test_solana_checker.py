"""The Solana token checker on the local chain (issue #13 points 4 and 5): every new pool checked, reported.

Real components: :class:`LocalSolana`, pools and swaps of the local aggregator, the real pool watcher and
token checker (in :class:`ActorRuntime` threads on a real run dir, LMDB journal and bus), the real safety
check (``simulateBundle`` of the buy and sell). Only the gateway is played by a driver: it says the
wallet's public key (``VenueStatus.account``), as the live gateway does.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.actors.runtime import process_journal
from sniperbot.messages import Payload, TokenSafetyReport, VenueStatus, decode_envelope
from sniperbot.messages import topics as topic
from sniperbot.rundir import RunDir
from sniperbot.transport.bus import BusProxy, Subscriber, split_message
from sniperbot.venues.solana.devaggregator import LocalAggregator
from sniperbot.venues.solana.devchain import LocalSolana
from sniperbot.venues.solana.devtokens import create_mint, mint_to
from sniperbot.venues.solana.layouts import LAMPORTS_PER_SOL, LOCAL_AMM_PROGRAM, SOL_MINT
from sniperbot.venues.solana.pool_watcher import cursor_key
from tests.conftest import eventually
from tests.venues_ccxt.test_gateway import Actors, actors  # noqa: F401  (fixture)

VENUE = "localsol"
GATEWAY = f"gateway.{VENUE}"
SUPPLY = 10**15  # raw units (6 decimals: 1e9 tokens)
WAIT_S = 60.0  # event-driven waits end as soon as the state is reached; generous for a loaded machine

_OUT: dict[str, queue.SimpleQueue[tuple[str, Payload]]] = {}


class Driver(Actor):
    """Plays the live gateway: publishes what the test queues (its VenueStatus carries the wallet's key)."""

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


class Reports:
    """Every TokenSafetyReport of the venue on a real bus (proxy started here, as a node does)."""

    def __init__(self, run_dir: Path) -> None:
        self.zctx = zmq.Context()
        rundir = RunDir(run_dir)
        self.proxy = BusProxy(self.zctx, rundir.bus_in, rundir.bus_out)
        self.proxy.start()
        self.sub = Subscriber(self.zctx, rundir.bus_out, (topic.token_safety(VENUE),))
        self.seen: list[TokenSafetyReport] = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._receive, name="reports", daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        while self.running:
            if not self.sub.socket.poll(20):
                continue
            _, frame = split_message(self.sub.socket.recv())
            payload = decode_envelope(frame).payload
            if isinstance(payload, TokenSafetyReport):
                with self.lock:
                    self.seen.append(payload)

    def of(self, mint: Pubkey) -> list[TokenSafetyReport]:
        """The reports on ``mint`` so far."""
        with self.lock:
            return [r for r in self.seen if r.token == str(mint)]

    def close(self) -> None:
        """Stop receiving, close the subscriber and the proxy."""
        self.running = False
        self.thread.join(5)
        self.sub.close()
        self.proxy.stop()
        self.zctx.destroy(linger=0)


@pytest.fixture
def chain() -> Iterator[LocalSolana]:
    """A fresh local chain (50 ms slots)."""
    with LocalSolana(slot_ms=50) as c:
        yield c


@pytest.fixture
def agg(chain: LocalSolana) -> Iterator[LocalAggregator]:
    """The local aggregator: the pools, and the swaps the check simulates."""
    a = LocalAggregator(chain).start()
    try:
        yield a
    finally:
        a.stop()


@pytest.fixture
def reports(actors: Actors) -> Iterator[Reports]:  # noqa: F811
    r = Reports(actors.run_dir)
    try:
        yield r
    finally:
        r.close()
        _OUT.pop(GATEWAY, None)


def launch(chain: LocalSolana, agg: LocalAggregator, freeze_authority: Pubkey | None = None) -> Pubkey:
    """A token with 80 % of its supply in a 10 SOL pool, the rest spread over holders of 4 %; its mint."""
    mint = create_mint(chain, decimals=6, freeze_authority=freeze_authority)
    agg.create_pool(mint, SUPPLY * 80 // 100, 10 * LAMPORTS_PER_SOL)
    for _ in range(5):
        mint_to(chain, mint, Keypair().pubkey(), SUPPLY * 4 // 100)
    return mint


def start(actors: Actors, chain: LocalSolana, agg: LocalAggregator, wallet_pass: bool) -> None:  # noqa: F811
    """The checker (first, so that it hears the first pools), then the watcher, as the venue's subtree."""
    program, sol = str(LOCAL_AMM_PROGRAM), str(SOL_MINT)
    checker: dict[str, Any] = {
        "venue": VENUE,
        "rpc_url": chain.rpc_url,
        "pools_program": program,
        "aggregator_url": agg.url,
        "commitment": "confirmed",
        "quote_mint": sol,
        "rules": {},
        "buy_quote": 0.5,
        "wallet_pass": wallet_pass,
    }
    actors.start(f"checker.{VENUE}", "sniperbot.venues.solana.checker:TokenChecker", checker)
    pools = {"venue": VENUE, "rpc_url": chain.rpc_url, "ws_url": chain.ws_url, "pools_program": program}
    actors.start(
        f"pools.{VENUE}", "sniperbot.venues.solana.pool_watcher:PoolWatcher", pools | {"quote_mints": [sol]}
    )
    key = cursor_key(VENUE, program)
    journal = process_journal(actors.run_dir, "process")
    eventually(lambda: journal.get_state(key) is not None, WAIT_S, what="the watcher's first backfill")


def say_wallet(wallet: Keypair) -> None:
    """The gateway's status, with the wallet's public key (the secret stays in the gateway)."""
    status = VenueStatus(
        venue=VENUE,
        connection="connected",
        reconciled=True,
        account=str(wallet.pubkey()),
        ts_ns=time.time_ns(),
    )
    _OUT[GATEWAY].put((topic.venue_status(VENUE), status))


def journaled(actors: Actors) -> list[TokenSafetyReport]:  # noqa: F811
    """Every report in the journal, in order."""
    journal = process_journal(actors.run_dir, "process")
    return [r for _, r in journal.records(kinds=(TokenSafetyReport,)) if isinstance(r, TokenSafetyReport)]


def test_each_new_pool_is_checked_as_the_wallet_reported_and_journaled(
    chain: LocalSolana,
    agg: LocalAggregator,
    actors: Actors,  # noqa: F811
    reports: Reports,
) -> None:
    """A clean token: "buy"; one with a live freeze authority: "refuse" naming it. The pools wait until the
    gateway has said the wallet's key (the buy and sell are simulated as that wallet); every report is
    journaled before it is published."""
    wallet = Keypair()
    chain.airdrop(wallet.pubkey(), 5 * LAMPORTS_PER_SOL)
    actors.start(GATEWAY, f"{__name__}:Driver", {})
    start(actors, chain, agg, wallet_pass=True)
    good = launch(chain, agg)
    frozen = launch(chain, agg, freeze_authority=Keypair().pubkey())
    time.sleep(0.5)
    assert not reports.of(good) and not reports.of(frozen)  # the wallet is not known yet: they wait
    say_wallet(wallet)
    (buy,) = eventually(lambda: reports.of(good), WAIT_S, what="the clean token's report")
    assert buy.verdict == "buy" and buy.reasons == [] and buy.can_sell, buy.reasons
    assert buy.venue == VENUE and buy.liquidity_quote == pytest.approx(10.0)
    (refused,) = eventually(lambda: reports.of(frozen), WAIT_S, what="the frozen token's report")
    assert refused.verdict == "refuse"
    assert any(r.startswith("freeze_authority") for r in refused.reasons), refused.reasons
    assert {r.token for r in journaled(actors)} == {str(good), str(frozen)}
    assert [r.verdict for r in journaled(actors) if r.token == str(good)] == ["buy"]
    assert chain.account(wallet.pubkey()).lamports == 5 * LAMPORTS_PER_SOL  # nothing was sent


def test_a_paper_venue_has_no_wallet_to_simulate_as_and_refuses(
    chain: LocalSolana,
    agg: LocalAggregator,
    actors: Actors,  # noqa: F811
    reports: Reports,
) -> None:
    """When in doubt, do not buy: without a wallet the sell cannot be simulated, so even a clean token is
    refused (``simulation``), the other rules still reported."""
    start(actors, chain, agg, wallet_pass=False)
    good = launch(chain, agg)
    (report,) = eventually(lambda: reports.of(good), WAIT_S, what="the report")
    assert report.verdict == "refuse" and [r.split(":")[0] for r in report.reasons] == ["simulation"], report
    assert journaled(actors) == [report]
