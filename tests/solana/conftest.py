"""Fixtures of the Solana tests: a fresh local chain per test and a funded payer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from solders.keypair import Keypair

from sniperbot.venues.solana.devchain import LocalSolana

PAYER_LAMPORTS = 100 * 1_000_000_000  # 100 SOL


@pytest.fixture
def solchain() -> Iterator[LocalSolana]:
    """A fresh :class:`LocalSolana` on 127.0.0.1 (20 ms slots, finalized 4 slots after landing)."""
    chain = LocalSolana(slot_ms=20, finality_slots=4).start()
    try:
        yield chain
    finally:
        chain.stop()


@pytest.fixture
def payer(solchain: LocalSolana) -> Keypair:
    """A keypair holding 100 SOL on ``solchain``."""
    kp = Keypair()
    solchain.airdrop(kp.pubkey(), PAYER_LAMPORTS)
    return kp
