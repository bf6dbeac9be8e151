"""The ``kind = "solana"`` venue: swaps through a Jupiter-shaped aggregator, landed by Jito bundles or RPC.

::

    [[venues]]
    name = "localsol"              # venue id in topics, breakers, the tree and the journal
    kind = "solana"
    mode = "live"                  # "paper" (pool prices, simulated fills) or "live" (signed swaps)
    rpc_url = "http://127.0.0.1:8899"
    # ws_url = "ws://127.0.0.1:8900"   # optional: subscriptions (else polling over rpc_url)
    commitment = "confirmed"       # "processed" | "confirmed" | "finalized": when a swap counts as filled
    aggregator_url = "http://127.0.0.1:8080"   # Jupiter-shaped Swap API (/swap/v1/quote, /swap/v1/swap)
    quote = "SOL"                  # the quote: native SOL (the mints entry must be the native mint)
    mints = { SOL = "So11111111111111111111111111111111111111112", TKN = "<mint>" }   # symbol -> mint
    symbols = ["TKN/SOL"]          # traded pairs "<base>/<quote>"
    pools_program = "7D5MzZciqoXJLtGjBw85QVp7RUJRtCGir5p5yGn2P2q9"   # whose accounts are the pools
    # wallet = "sol-wallet"        # keystore entry (kind solana, field secret_key); required for "live"
    # route = "jito"               # "jito" (a bundle, the tip in the same transaction) or "rpc"
    # block_engine_url = "http://127.0.0.1:8899"   # Jito block engine; required when route = "jito"
    # tip_lamports = 10000         # Jito tip per swap (>= 1000, the block engine's minimum)
    # priority_fee_micro_lamports = 10000   # compute unit price
    # compute_unit_limit = 200000
    # slippage_bps = 100           # max in / min out around the aggregator's quote, 1..5000
    # [venues.safety]              # token safety rules before any buy (sniperbot.venues.solana.safety):
    #                              # the same SafetyRules as EVM, with its Solana fields
    # [venues.sniper]              # the new-pool sniper (sniperbot.actors.sniper); budget in SOL

Checks, each naming its field, before any process starts (``sniperbot run`` exits 2):

* at load: ``pools_program`` and every ``mints`` value are base58 public keys (32 bytes; a mistyped
  character almost always fails the decoding or the length); no two symbols share a mint; ``quote``
  is listed in ``mints`` and its mint is the native SOL mint (the pools hold the quote as lamports and
  the sniper's budget is in SOL: a token-quoted pool is not priced by this venue); each symbol is
  ``"<base>/<quote>"`` with its base in ``mints`` and its quote equal to ``quote``; ``rpc_url``,
  ``aggregator_url`` and ``block_engine_url`` are http(s) and ``ws_url`` ws(s) URLs; ``mode = "live"``
  needs ``wallet``; ``route = "jito"`` needs ``block_engine_url``; ``tip_lamports >= 1000``;
  ``slippage_bps`` 1..5000; ``compute_unit_limit`` 1..1,400,000 (the runtime's maximum per
  transaction); ``commitment`` one of the three.
* after load (:meth:`SolanaVenueConfig.preflight`): ``getGenesisHash`` and ``getHealth`` of
  ``rpc_url``, then each base mint must be a mint account of the SPL Token or Token-2022 program
  (a wallet or program address typed as a mint is refused). **Decision**, as for EVM and ccxt: an
  RPC endpoint that cannot be reached, or answers that it is unhealthy (behind), does not stop the
  node (a 24/7 node restarted during an RPC outage must come back by itself); it is a warning and the
  feed reports ``connected = false`` until it answers. A symbol without a pool yet is a warning too
  (the feed prices it from the slot its pool appears in).

**Keys.** ``wallet`` names a keystore entry of kind ``solana`` (``sniperbot keys add NAME --exchange
solana``, field ``secret_key``: the base58 text of the 64-byte ed25519 keypair, as Phantom and
``solana-keygen`` export it, checked when added). The node unlocks it before any process starts and
seals it into the launch of ``gateway.<name>`` only. A paper venue never signs: a ``wallet`` named there
is unlocked (a wrong entry fails at start, not the day the venue goes live) but no actor gets it.

Loading a config never imports solana-py or solders (every CLI command loads the config): the
checks import what they need when a ``solana`` venue is actually configured.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

import msgspec

from sniperbot.venues.base import VenueSection
from sniperbot.venues.dex import SafetyRules, SniperParams, sniper_id
from sniperbot.venues.dex.pairs import check_pairs

#: How long ``preflight`` waits for each RPC answer before starting without the chain checks.
PREFLIGHT_TIMEOUT_S = 5.0
#: Jito's block engine refuses bundles whose tip is below this many lamports.
MIN_TIP_LAMPORTS = 1000
#: The runtime's compute unit cap per transaction.
MAX_COMPUTE_UNIT_LIMIT = 1_400_000
#: The token programs whose accounts are mints (a base mint must be owned by one of them).
TOKEN_PROGRAMS = {
    "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA": "token",
    "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb": "token-2022",
}

_TOKEN_SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_BASE58 = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")


def check_pubkey(field: str, value: str) -> str:
    """``value`` unchanged; ValueError naming ``field`` unless it is a base58 public key (32 bytes)."""
    if not isinstance(value, str) or not _BASE58.fullmatch(value):
        raise ValueError(f"{field}: {value!r} is not a base58 public key (32 to 44 base58 characters)")
    from solders.pubkey import Pubkey  # only when a solana venue is configured

    try:
        key = Pubkey.from_string(value)
    except ValueError:
        raise ValueError(f"{field}: {value!r} is not a public key (it does not decode to 32 bytes)") from None
    if str(key) != value:  # base58 has one spelling per key: anything else is a typo
        raise ValueError(f"{field}: {value!r} is not the canonical base58 of a public key")
    return value


def native_mint() -> str:
    """The native SOL mint's address (SPL's ``WRAPPED_SOL_MINT``: the quote of every Solana pool here)."""
    from spl.token.constants import WRAPPED_SOL_MINT

    return str(WRAPPED_SOL_MINT)


def _check_url(field: str, url: str | None, schemes: tuple[str, ...]) -> None:
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{field}: {url!r} must be an absolute URL with scheme {' or '.join(schemes)}")


class SolanaVenueConfig(VenueSection, tag="solana"):
    """Pools on Solana: prices from the pools' vaults; swaps through an aggregator, simulated or signed."""

    supported_modes: ClassVar[tuple[str, ...]] = ("paper", "live")

    rpc_url: str
    aggregator_url: str
    quote: str
    mints: dict[str, str]
    symbols: list[str]
    pools_program: str
    ws_url: str | None = None
    commitment: Literal["processed", "confirmed", "finalized"] = "confirmed"
    wallet: str = ""
    # Decision: Jito by default. A swap sent to the public RPC is seen by searchers before it lands
    # (sandwiched); a bundle is private and lands all-or-nothing with its tip.
    route: Literal["jito", "rpc"] = "jito"
    block_engine_url: str = ""
    tip_lamports: Annotated[int, msgspec.Meta(ge=MIN_TIP_LAMPORTS)] = 10_000
    priority_fee_micro_lamports: Annotated[int, msgspec.Meta(ge=0)] = 10_000
    compute_unit_limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_COMPUTE_UNIT_LIMIT)] = 200_000
    slippage_bps: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 100
    # The token safety check's rules ([venues.safety]; sniperbot.venues.solana.safety).
    safety: SafetyRules = msgspec.field(default_factory=SafetyRules)
    # The new-pool sniper ([venues.sniper]; sniperbot.actors.sniper): with this table the venue also runs
    # its pool watcher, token checker and sniper; without it, none of them.
    sniper: SniperParams | None = None

    def __post_init__(self) -> None:
        _check_url("rpc_url", self.rpc_url, ("http", "https"))
        if not self.rpc_url:
            raise ValueError("rpc_url: an http(s) JSON-RPC endpoint is required")
        _check_url("ws_url", self.ws_url, ("ws", "wss"))
        _check_url("aggregator_url", self.aggregator_url, ("http", "https"))
        if not self.aggregator_url:
            raise ValueError("aggregator_url: the http(s) URL of a Jupiter-shaped Swap API is required")
        _check_url("block_engine_url", self.block_engine_url, ("http", "https"))
        check_pubkey("pools_program", self.pools_program)
        seen: dict[str, str] = {}
        for symbol, mint in self.mints.items():
            if not _TOKEN_SYMBOL.fullmatch(symbol):
                raise ValueError(f"mints.{symbol}: {symbol!r} is not a token symbol (letters, digits, ._-)")
            check_pubkey(f"mints.{symbol}", mint)
            if mint in seen:
                raise ValueError(f"mints.{symbol}: same mint as mints.{seen[mint]}")
            seen[mint] = symbol
        if self.quote not in self.mints:
            raise ValueError(f"quote: {self.quote!r} is not listed in mints (its mint is needed)")
        if self.mints[self.quote] != native_mint():
            raise ValueError(
                f"mints.{self.quote}: the quote must be native SOL ({native_mint()}): the venue's pools "
                "and the sniper's budget are in SOL"
            )
        check_pairs(self.symbols, self.quote, self.mints, "mints")
        if self.mode == "live" and not self.wallet:
            raise ValueError(
                'wallet: mode = "live" needs a keystore entry with field secret_key (sniperbot keys add '
                'NAME --exchange solana), or mode = "paper" for a dry-run'
            )
        if self.route == "jito" and not self.block_engine_url:
            raise ValueError(
                'block_engine_url: route = "jito" needs the block engine\'s http(s) URL (or route = "rpc")'
            )

    # -- mints -------------------------------------------------------------------------------
    def symbol_names(self) -> list[str]:
        """The configured pairs, in config order."""
        return list(self.symbols)

    def quote_mint(self) -> str:
        """The quote's mint (the native SOL mint)."""
        return self.mints[self.quote]

    # -- actors ----------------------------------------------------------------------------
    def feed(self, epoch_ns: int) -> tuple[str, dict[str, Any]]:
        """The pool feed (``epoch_ns`` is the sim clock's anchor: a chain has its own)."""
        return "sniperbot.venues.solana.feed:SolanaFeed", {
            "venue": self.name,
            "rpc_url": self.rpc_url,
            "ws_url": self.ws_url or "",
            "commitment": self.commitment,
            "pools_program": self.pools_program,
            "mints": dict(self.mints),
            "quote": self.quote,
            "symbols": list(self.symbols),
        }

    def live_gateway(self) -> tuple[str, dict[str, Any]]:
        """The swapping gateway (``gateway.<name>``); its wallet key travels in the launch, never in args."""
        return "sniperbot.venues.solana.gateway:SolanaGateway", {
            "venue": self.name,
            "rpc_url": self.rpc_url,
            "ws_url": self.ws_url or "",
            "commitment": self.commitment,
            "aggregator_url": self.aggregator_url,
            "quote": self.quote,
            "mints": dict(self.mints),
            "symbols": list(self.symbols),
            "route": self.route,
            "block_engine_url": self.block_engine_url,
            "tip_lamports": self.tip_lamports,
            "priority_fee_micro_lamports": self.priority_fee_micro_lamports,
            "compute_unit_limit": self.compute_unit_limit,
            "slippage_bps": self.slippage_bps,
        }

    # -- the sniper ------------------------------------------------------------------------
    def venue_actors(self) -> list[tuple[str, str, dict[str, Any]]]:
        """With ``[venues.sniper]``: the token checker, then the pool watcher (``checker.<name>``,
        ``pools.<name>``); the checker starts first so that it hears the watcher's first pools."""
        if self.sniper is None or not self.sniper.enabled:
            return []
        chain = {"venue": self.name, "rpc_url": self.rpc_url, "pools_program": self.pools_program}
        checker = {
            **chain,
            "aggregator_url": self.aggregator_url,
            "commitment": self.commitment,
            "quote_mint": self.quote_mint(),
            "rules": msgspec.to_builtins(self.safety),
            "buy_quote": self.sniper.budget,  # simulated at the size the sniper really buys (SOL)
            "wallet_pass": self.mode == "live",  # and as the wallet itself (a paper venue has none)
        }
        pools = {
            **chain,
            "ws_url": self.ws_url or "",
            "quote_mints": [self.quote_mint()],
            "commitment": self.commitment,
            "poll_s": 0.25,
        }
        return [
            (f"checker.{self.name}", "sniperbot.venues.solana.checker:TokenChecker", checker),
            (f"pools.{self.name}", "sniperbot.venues.solana.pool_watcher:PoolWatcher", pools),
        ]

    def strategy_actors(self) -> list[tuple[str, str, dict[str, Any]]]:
        """With ``[venues.sniper]``: the (venue-agnostic) sniper, ``strategy.sniper-<name>``."""
        if self.sniper is None or not self.sniper.enabled:
            return []
        args = {"venue": self.name, "quote": self.quote, "params": msgspec.to_builtins(self.sniper)}
        return [(f"strategy.{sniper_id(self.name)}", "sniperbot.actors.sniper:SniperActor", args)]

    # -- keys ------------------------------------------------------------------------------
    def keystore_entries(self) -> dict[str, tuple[str, str]]:
        """``wallet``, an entry of kind ``solana`` (when set)."""
        from sniperbot.keystore.store import SOLANA_WALLET

        return {"wallet": (self.wallet, SOLANA_WALLET)} if self.wallet else {}

    def gateway_credentials(self, unlocked: Any) -> Any:
        """The wallet entry (field ``secret_key``), sealed into ``gateway.<name>``'s launch only."""
        return unlocked.get(self.wallet) if self.wallet else None

    # -- the chain ------------------------------------------------------------------------
    def preflight(self) -> str | None:
        """Check the endpoint and the mints on the chain; raise ``ValueError("<field>: ...")``.

        Returns a warning (the RPC endpoint could not be reached or is unhealthy, or a pair has no
        pool yet) or None.
        """
        import asyncio

        return asyncio.run(self._preflight())

    async def _preflight(self) -> str | None:
        from solana.rpc.async_api import AsyncClient
        from solana.rpc.models import MemcmpOpts
        from solders.pubkey import Pubkey

        client = AsyncClient(self.rpc_url, timeout=PREFLIGHT_TIMEOUT_S, http2=False, max_transport_retries=0)
        refused: str | None = None
        warnings: list[str] = []
        try:
            try:
                await client.get_genesis_hash()
            except Exception as e:
                # The failure class only: a provider URL may carry an API key.
                return f"cannot reach rpc_url ({type(e).__name__}): mints and pools not checked"
            try:
                healthy = await client.is_connected()  # getHealth: "ok", or an error saying how far behind
            except Exception:
                healthy = False
            if not healthy:
                warnings.append("rpc_url answers getHealth as unhealthy (behind the cluster?)")
            bases = sorted({symbol.partition("/")[0] for symbol in self.symbols})
            keys = [(symbol, Pubkey.from_string(self.mints[symbol])) for symbol in bases]
            missing: list[str] = []
            try:
                answer = await client.get_multiple_accounts([key for _, key in keys])
                for (symbol, key), account in zip(keys, answer.value, strict=True):
                    if account is None:
                        refused = f"mints.{symbol}: no account at {key} on this chain"
                        break
                    if str(account.owner) not in TOKEN_PROGRAMS:
                        owner = account.owner
                        refused = f"mints.{symbol}: {key} is not a mint (owned by {owner}, no token program)"
                        break
                    found = await client.get_program_accounts(
                        Pubkey.from_string(self.pools_program),
                        encoding="base64",
                        filters=[MemcmpOpts(offset=8, bytes=str(key))],  # PoolState.base_mint
                    )
                    if not found.value:
                        missing.append(f"{symbol}/{self.quote}")
            except Exception as e:
                return "; ".join(
                    [*warnings, f"rpc_url failed during the checks ({type(e).__name__}): mints not checked"]
                )
        finally:
            await client.close()
        if refused is not None:
            raise ValueError(refused)
        if missing:
            warnings.append(
                f"symbols: no pool yet for {', '.join(missing)} (priced from the slot of its pool)"
            )
        return "; ".join(warnings) or None
