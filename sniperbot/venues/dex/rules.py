"""The token safety rules (``[venues.safety]``) of every on-chain venue; the EVM owner powers it knows.

One rules table for every chain: the EVM check (:mod:`sniperbot.venues.evm.safety`) and the Solana check
read the same struct. Kept apart from the checks (which need web3 or solders) so that loading a config
imports neither: every ``sniperbot`` command loads the config.
"""

from __future__ import annotations

import re

import msgspec

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")

# Privileged functions by power; the selector of each signature is looked for in the runtime code.
POWER_SIGNATURES: dict[str, tuple[str, ...]] = {
    "mint": ("mint(address,uint256)", "mint(uint256)", "mintTo(address,uint256)", "issue(uint256)"),
    "pause": ("pause()", "unpause()", "setPaused(bool)", "setPause(bool)"),
    "blacklist": (
        "blacklist(address)",
        "blacklist(address,bool)",
        "setBlacklist(address,bool)",
        "addToBlacklist(address)",
        "blacklistAddress(address,bool)",
        "addBot(address)",
        "addBots(address[])",
        "setBots(address[],bool)",
        "setBot(address,bool)",
        "blockBots(address[])",
        "setSniper(address,bool)",
    ),
    "set_fee": (
        "setFee(uint256)",
        "setFees(uint256,uint256)",
        "setTax(uint256)",
        "setTaxes(uint256,uint256)",
        "setBuyFee(uint256)",
        "setSellFee(uint256)",
        "setBuyTax(uint256)",
        "setSellTax(uint256)",
        "updateFees(uint256,uint256)",
        "updateBuyFees(uint256,uint256,uint256)",
        "updateSellFees(uint256,uint256,uint256)",
        "setTaxFeePercent(uint256)",
    ),
    "set_limits": (
        "setMaxTx(uint256)",
        "setMaxTxAmount(uint256)",
        "setMaxTxPercent(uint256)",
        "setMaxWallet(uint256)",
        "setMaxWalletSize(uint256)",
        "updateMaxTxnAmount(uint256)",
        "updateMaxWalletAmount(uint256)",
    ),
    "trading_switch": ("setTradingEnabled(bool)", "setTrading(bool)", "tradingStatus(bool)"),
    "proxy": ("upgradeTo(address)", "upgradeToAndCall(address,bytes)"),
}
OWNER_POWERS: tuple[str, ...] = tuple(POWER_SIGNATURES)
"""The owner powers the check knows (``allowed_owner_powers`` takes these names)."""


class SafetyRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a token must show before the sniper buys it (``[venues.safety]``); a careful trader's defaults.

    A bad value raises ValueError ``"<field>: what"`` (the config loader prefixes ``venues[i].safety.``).
    """

    max_buy_tax_bps: int = 1_000
    max_sell_tax_bps: int = 1_000
    max_transfer_tax_bps: int = 1_000
    min_liquidity_quote: float = 2.0
    min_lp_burnt_or_locked_pct: float = 95.0
    lp_lockers: list[str] = []
    allowed_owner_powers: list[str] = []
    probe_quote: float = 0.1
    simulate_next_block: bool = True

    def __post_init__(self) -> None:
        for name in ("max_buy_tax_bps", "max_sell_tax_bps", "max_transfer_tax_bps"):
            value = getattr(self, name)
            if not 0 <= value <= 10_000:
                raise ValueError(f"{name}: must be within 0..10000 bps, got {value}")
        if not 0 <= self.min_liquidity_quote < float("inf"):
            raise ValueError(f"min_liquidity_quote: must be >= 0, got {self.min_liquidity_quote}")
        if not 0 <= self.min_lp_burnt_or_locked_pct <= 100:
            raise ValueError(
                f"min_lp_burnt_or_locked_pct: must be within 0..100, got {self.min_lp_burnt_or_locked_pct}"
            )
        if not 0 < self.probe_quote < float("inf"):
            raise ValueError(f"probe_quote: must be > 0, got {self.probe_quote}")
        unknown = sorted(set(self.allowed_owner_powers) - set(OWNER_POWERS))
        if unknown:
            raise ValueError(f"allowed_owner_powers: unknown {unknown}; known: {list(OWNER_POWERS)}")
        for address in self.lp_lockers:
            if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
                raise ValueError(f"lp_lockers: {address!r} is not an address")
