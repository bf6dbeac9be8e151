"""The token safety rules (``[venues.safety]``) of every on-chain venue; the EVM owner powers and the
Token-2022 mint extensions it knows.

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

# The Token-2022 mint extensions by ExtensionType number (`repr(u16)` enum of solana-program/token-2022
# interface/src/extension/mod.rs); the types only a token account carries (2, 5, 7, 8, 11, 13, 15, 17,
# 27) are not a mint's. sniperbot.venues.solana.layouts names the TLV entries it reads with these.
MINT_EXTENSIONS: dict[int, str] = {
    1: "transfer_fee",
    3: "mint_close_authority",
    4: "confidential_transfer_mint",
    6: "default_account_state",
    9: "non_transferable",
    10: "interest_bearing",
    12: "permanent_delegate",
    14: "transfer_hook",
    16: "confidential_transfer_fee",
    18: "metadata_pointer",
    19: "token_metadata",
    20: "group_pointer",
    21: "token_group",
    22: "group_member_pointer",
    23: "token_group_member",
    24: "confidential_mint_burn",
    25: "scaled_ui_amount",
    26: "pausable",
    28: "permissioned_burn",
}
REFUSABLE_EXTENSIONS: tuple[str, ...] = (*MINT_EXTENSIONS.values(), "default_frozen")
"""The names ``refused_extensions`` takes: a mint extension, or ``default_frozen`` (a
``default_account_state`` extension whose new accounts start frozen: the buyer's account could never sell)."""
DEFAULT_REFUSED_EXTENSIONS: tuple[str, ...] = (
    "transfer_hook",
    "permanent_delegate",
    "non_transferable",
    "default_frozen",
    "pausable",
)
"""The extensions refused unless the rules say otherwise: those that let the creator stop a buyer's sell."""


class SafetyRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a token must show before the sniper buys it (``[venues.safety]``); a careful trader's defaults.

    A bad value raises ValueError ``"<field>: what"`` (the config loader prefixes ``venues[i].safety.``).

    Solana only: ``require_no_mint_authority`` / ``require_no_freeze_authority`` (a live mint authority can
    dilute the buyer, a live freeze authority can freeze the buyer's account: it can never sell),
    ``max_top_holder_pct`` (the largest holder's share of the supply, pool vaults excluded; 100 disables it),
    ``refused_extensions`` (Token-2022 mint extensions that trap a buyer: a transfer hook runs a program of
    the creator's on every transfer, a permanent delegate can move or burn anyone's tokens, non-transferable
    tokens cannot be sold, ``default_frozen`` accounts start frozen, a pausable mint can stop every transfer;
    an extension this reader does not know is always refused). ``max_transfer_tax_bps`` caps the Token-2022
    transfer fee, ``min_liquidity_quote`` is in SOL and ``probe_quote`` is the simulated buy in SOL.
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
    require_no_mint_authority: bool = True
    require_no_freeze_authority: bool = True
    max_top_holder_pct: float = 20.0
    refused_extensions: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_REFUSED_EXTENSIONS))

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
        if not 0 <= self.max_top_holder_pct <= 100:
            raise ValueError(f"max_top_holder_pct: must be within 0..100, got {self.max_top_holder_pct}")
        unknown = sorted(set(self.refused_extensions) - set(REFUSABLE_EXTENSIONS))
        if unknown:
            raise ValueError(f"refused_extensions: unknown {unknown}; known: {list(REFUSABLE_EXTENSIONS)}")
        for address in self.lp_lockers:
            if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
                raise ValueError(f"lp_lockers: {address!r} is not an address")
