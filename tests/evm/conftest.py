"""Fixtures of the EVM tests: a fresh anvil chain per test, Uniswap V2 deployed on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sniperbot.venues.evm.devchain import Anvil, UniswapDeployment, deploy_uniswap


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    """A fresh anvil chain on 127.0.0.1 (automine: one block per transaction)."""
    chain = Anvil().start()
    try:
        yield chain
    finally:
        chain.stop()


@pytest.fixture
def uniswap(anvil: Anvil) -> UniswapDeployment:
    """The real Uniswap V2 (WETH9, Factory, Router02) deployed on ``anvil``."""
    return deploy_uniswap(anvil.w3)
