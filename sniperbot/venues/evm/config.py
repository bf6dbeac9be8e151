"""The ``kind = "evm"`` venue: Uniswap V2 pools on an EVM chain, priced from reserves, swapped by a wallet.

::

    [[venues]]
    name = "anvil"                 # venue id in topics, breakers, the tree and the journal
    kind = "evm"
    mode = "paper"                 # "paper" (pool prices, simulated fills) or "live" (signed swaps)
    chain_id = 31337               # checked against eth_chainId before anything starts
    rpc_url = "http://127.0.0.1:8545"
    # ws_url = "ws://127.0.0.1:8545"   # optional: new heads by subscription (else polled over HTTP)
    router = "0x..."               # UniswapV2Router02
    factory = "0x..."              # UniswapV2Factory
    quote = "WETH"                 # the quote token (native-wrapped: swaps pay/receive ETH through WETH)
    tokens = { WETH = "0x...", TKN = "0x..." }   # symbol -> address; the quote must be listed
    symbols = ["TKN/WETH"]         # traded pairs "<base>/<quote>"
    # wallet = "anvil-wallet"      # keystore entry (kind evm, field private_key); required for mode = "live"
    # route = "public"             # "public" (mempool) or "flashbots"
    # relay_url = "http://127.0.0.1:18550"   # required when route = "flashbots"
    # relay_auth = "fb-reputation" # keystore entry (kind evm): the relay's reputation key, holds no funds
    # slippage_bps = 100           # min-out = quote * (1 - slippage), 1..5000
    # deadline_s = 120             # swap deadline (block timestamp) and resubmission horizon
    # confirmations = 2            # blocks on top of the receipt's block before a fill is journaled
    # max_fee_gwei = 300.0         # EIP-1559 cap on maxFeePerGas, never exceeded (also by replacements)
    # priority_fee_gwei = 1.5      # tip of the first signature (at most max_fee_gwei)
    # replace_after_blocks = 3     # a transaction not mined after this many blocks is replaced ...
    # replace_bump_pct = 12.5      # ... same nonce, fees up by this much (nodes require >= 10 %)
    # [venues.safety]              # token safety rules before any buy (sniperbot.venues.evm.safety)
    # max_sell_tax_bps = 1000      # e.g.; every rule and its default: SafetyRules
    # [venues.sniper]              # the new-pool sniper (sniperbot.actors.sniper); absent: no sniping
    # budget = 0.05                # quote per snipe; take_profit_pct, stop_loss_pct, trailing_stop_pct,
    #                              # max_hold_s, liquidity_drop, ...: SniperParams (careful defaults)

Checks, each naming its field, before any process starts (``sniperbot run`` exits 2):

* at load: ``router``, ``factory`` and every ``tokens`` address are ``0x`` + 40 hex digits, and a
  mixed-case address must carry a valid EIP-55 checksum (a typo in one character is caught); no two
  tokens share an address; ``quote`` is listed in ``tokens``; each symbol is ``"<base>/<quote>"`` with
  its base in ``tokens`` and its quote equal to ``quote``; ``rpc_url``/``relay_url`` are http(s) and
  ``ws_url`` ws(s) URLs; ``mode = "live"`` needs ``wallet``; ``route = "flashbots"`` needs ``relay_url``;
  ``slippage_bps`` 1..5000, ``confirmations`` >= 0, fees > 0 and ``priority_fee_gwei <= max_fee_gwei``.
* after load (:meth:`EvmVenueConfig.preflight`): ``eth_chainId`` of ``rpc_url`` must equal ``chain_id``
  (signing for the wrong chain, or pricing another chain's pools, is refused), and ``router``,
  ``factory`` and each token must hold contract code. **Decision**, as for ccxt: an RPC endpoint that
  cannot be reached does not stop the node (a 24/7 node restarted during an RPC outage must come back
  by itself); it is logged as a warning and the feed reports ``connected = false`` until it answers.
  A symbol whose pair the factory has not created yet is a warning too (the feed prices it from the
  first block in which it exists).

**Keys.** ``wallet`` (and ``relay_auth``) name keystore entries of kind ``evm``
(``sniperbot keys add NAME --exchange evm``, field ``private_key``: 32 bytes in hex, checked when
added). The node unlocks them before any process starts and seals the wallet entry, with the
``relay_auth`` key added as its field ``relay_private_key``, into the launch of ``gateway.<name>`` only.
A paper venue never signs: a ``wallet`` named there is unlocked (a wrong entry fails at start, not the
day the venue goes live) but no actor gets it.

**Paper mode on a local anvil** (no fixed addresses exist there, so no example file is shipped)::

    npm ci                                   # anvil and the Uniswap V2 artifacts (package.json)
    python - <<'EOF'
    from sniperbot.venues.evm.devchain import *
    chain = Anvil(port=8545).start()
    uni = deploy_uniswap(chain.w3)
    tkn = deploy_plain_token(chain.w3, ANVIL_KEYS[0], 10**24)
    add_liquidity_eth(chain.w3, uni, ANVIL_KEYS[0], tkn, 10**23, 10 * 10**18)
    print(f'router = "{uni.router}"\\nfactory = "{uni.factory}"\\n'
          f'tokens = {{ WETH = "{uni.weth}", TKN = "{tkn}" }}')
    input("anvil runs until Enter")
    EOF

then a ``[[venues]]`` entry as above with the printed addresses, ``chain_id = 31337``,
``rpc_url = "http://127.0.0.1:8545"``, ``symbols = ["TKN/WETH"]``, ``mode = "paper"``, and a strategy
on ``symbol = "TKN/WETH"``: the feed prices the pool every block, the paper gateway fills against it
(``tests/evm/test_evm_node.py`` does exactly this).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

import msgspec

from sniperbot.venues.base import Positive, VenueSection
from sniperbot.venues.dex import SafetyRules, SniperParams, sniper_id
from sniperbot.venues.dex.pairs import check_pairs

#: How long ``preflight`` waits for each RPC answer before starting without the chain checks.
PREFLIGHT_TIMEOUT_S = 5.0

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_TOKEN_SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
ZERO_ADDRESS = "0x" + "0" * 40


def checksum_address(field: str, value: str) -> str:
    """``value`` in EIP-55 form; ValueError naming ``field`` unless it is ``0x`` + 40 hex digits whose
    mixed case, if any, is a valid checksum (all lower or all upper case carries no checksum)."""
    from eth_utils import to_checksum_address

    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise ValueError(f"{field}: {value!r} is not an address (0x and 40 hex digits)")
    checksummed = str(to_checksum_address(value))
    digits = value[2:]
    if digits != digits.lower() and digits != digits.upper() and checksummed != value:
        raise ValueError(f"{field}: {value!r} has a wrong EIP-55 checksum (a mistyped character?)")
    return checksummed


def _check_url(field: str, url: str | None, schemes: tuple[str, ...]) -> None:
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{field}: {url!r} must be an absolute URL with scheme {' or '.join(schemes)}")


class EvmVenueConfig(VenueSection, tag="evm"):
    """Uniswap V2 pools on one EVM chain: prices from the pools' reserves; swaps simulated or signed."""

    supported_modes: ClassVar[tuple[str, ...]] = ("paper", "live")

    chain_id: Annotated[int, msgspec.Meta(ge=1)]
    rpc_url: str
    router: str
    factory: str
    quote: str
    tokens: dict[str, str]
    symbols: list[str]
    ws_url: str | None = None
    wallet: str = ""
    route: Literal["public", "flashbots"] = "public"
    relay_url: str = ""
    relay_auth: str = ""
    slippage_bps: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 100
    deadline_s: Positive = 120.0
    confirmations: Annotated[int, msgspec.Meta(ge=0)] = 2
    max_fee_gwei: Positive = 300.0
    priority_fee_gwei: Positive = 1.5
    replace_after_blocks: Annotated[int, msgspec.Meta(ge=1)] = 3
    # Geth and most nodes refuse a same-nonce replacement that raises the fees by less than 10 %.
    replace_bump_pct: Annotated[float, msgspec.Meta(ge=10.0)] = 12.5
    # The token safety check's rules ([venues.safety]; sniperbot.venues.evm.safety): what a token must
    # pass before any buy. The defaults refuse what a careful trader refuses.
    safety: SafetyRules = msgspec.field(default_factory=SafetyRules)
    # The new-pool sniper ([venues.sniper]; sniperbot.actors.sniper): with this table the venue also runs
    # its pool watcher, token checker and sniper; without it, none of them.
    sniper: SniperParams | None = None

    def __post_init__(self) -> None:
        _check_url("rpc_url", self.rpc_url, ("http", "https"))
        if not self.rpc_url:
            raise ValueError("rpc_url: an http(s) JSON-RPC endpoint is required")
        _check_url("ws_url", self.ws_url, ("ws", "wss"))
        _check_url("relay_url", self.relay_url, ("http", "https"))
        checksum_address("router", self.router)
        checksum_address("factory", self.factory)
        seen: dict[str, str] = {}
        for symbol, address in self.tokens.items():
            if not _TOKEN_SYMBOL.fullmatch(symbol):
                raise ValueError(f"tokens.{symbol}: {symbol!r} is not a token symbol (letters, digits, ._-)")
            key = checksum_address(f"tokens.{symbol}", address)
            if key in seen:
                raise ValueError(f"tokens.{symbol}: same address as tokens.{seen[key]}")
            seen[key] = symbol
        if self.quote not in self.tokens:
            raise ValueError(f"quote: {self.quote!r} is not listed in tokens (its address is needed)")
        check_pairs(self.symbols, self.quote, self.tokens, "tokens")
        if self.mode == "live" and not self.wallet:
            raise ValueError(
                'wallet: mode = "live" needs a keystore entry with field private_key (sniperbot keys add '
                'NAME --exchange evm), or mode = "paper" for a dry-run'
            )
        if self.route == "flashbots" and not self.relay_url:
            raise ValueError('relay_url: route = "flashbots" needs the relay\'s http(s) URL')
        if self.priority_fee_gwei > self.max_fee_gwei:
            raise ValueError(
                f"priority_fee_gwei: {self.priority_fee_gwei} exceeds max_fee_gwei = {self.max_fee_gwei}"
            )

    # -- addresses -------------------------------------------------------------------------
    def token_addresses(self) -> dict[str, str]:
        """``tokens`` with every address in EIP-55 form."""
        return {symbol: checksum_address(f"tokens.{symbol}", a) for symbol, a in self.tokens.items()}

    def symbol_names(self) -> list[str]:
        """The configured pairs, in config order."""
        return list(self.symbols)

    # -- actors ----------------------------------------------------------------------------
    def feed(self, epoch_ns: int) -> tuple[str, dict[str, Any]]:
        """The pool feed (``epoch_ns`` is the sim clock's anchor: a chain has its own)."""
        return "sniperbot.venues.evm.feed:EvmFeed", {
            "venue": self.name,
            "rpc_url": self.rpc_url,
            "ws_url": self.ws_url or "",
            "factory": checksum_address("factory", self.factory),
            "tokens": self.token_addresses(),
            "quote": self.quote,
            "symbols": list(self.symbols),
        }

    def live_gateway(self) -> tuple[str, dict[str, Any]]:
        """The swapping gateway (``gateway.<name>``); its wallet key travels in the launch, never in args."""
        return "sniperbot.venues.evm.gateway:EvmGateway", {
            "venue": self.name,
            "chain_id": self.chain_id,
            "rpc_url": self.rpc_url,
            "router": checksum_address("router", self.router),
            "tokens": self.token_addresses(),
            "quote": self.quote,
            "symbols": list(self.symbols),
            "route": self.route,
            "relay_url": self.relay_url,
            "slippage_bps": self.slippage_bps,
            "deadline_s": self.deadline_s,
            "confirmations": self.confirmations,
            "max_fee_gwei": self.max_fee_gwei,
            "priority_fee_gwei": self.priority_fee_gwei,
            "replace_after_blocks": self.replace_after_blocks,
            "replace_bump_pct": self.replace_bump_pct,
        }

    # -- the sniper ------------------------------------------------------------------------
    def venue_actors(self) -> list[tuple[str, str, dict[str, Any]]]:
        """With ``[venues.sniper]``: the token checker, then the pool watcher (``checker.<name>``,
        ``pools.<name>``); the checker starts first so that it hears the watcher's first pools."""
        if self.sniper is None or not self.sniper.enabled:
            return []
        quote = checksum_address(f"tokens.{self.quote}", self.tokens[self.quote])
        chain = {
            "venue": self.name,
            "rpc_url": self.rpc_url,
            "factory": checksum_address("factory", self.factory),
        }
        checker = {
            **chain,
            "router": checksum_address("router", self.router),
            "quote_token": quote,
            "rules": msgspec.to_builtins(self.safety),
            "buy_quote": self.sniper.budget,  # simulated at the size the sniper really buys
            "wallet_pass": self.mode == "live",  # and as the wallet itself (a paper venue has none)
        }
        pools = {**chain, "quote_tokens": [quote], "ws_url": self.ws_url or "", "poll_s": 0.25}
        return [
            (f"checker.{self.name}", "sniperbot.venues.evm.checker:TokenChecker", checker),
            (f"pools.{self.name}", "sniperbot.venues.evm.pool_watcher:PoolWatcher", pools),
        ]

    def strategy_actors(self) -> list[tuple[str, str, dict[str, Any]]]:
        """With ``[venues.sniper]``: the sniper, ``strategy.sniper-<name>``."""
        if self.sniper is None or not self.sniper.enabled:
            return []
        args = {"venue": self.name, "quote": self.quote, "params": msgspec.to_builtins(self.sniper)}
        return [(f"strategy.{sniper_id(self.name)}", "sniperbot.actors.sniper:SniperActor", args)]

    # -- keys ------------------------------------------------------------------------------
    def keystore_entries(self) -> dict[str, tuple[str, str]]:
        """``wallet`` and ``relay_auth``, each an entry of kind ``evm`` (when set)."""
        from sniperbot.keystore.store import EVM_WALLET

        named = {"wallet": self.wallet, "relay_auth": self.relay_auth}
        return {field: (name, EVM_WALLET) for field, name in named.items() if name}

    def gateway_credentials(self, unlocked: Any) -> Any:
        """The wallet entry, with the ``relay_auth`` entry's key as its ``relay_private_key`` (if named)."""
        from sniperbot.keystore.store import Credentials

        wallet = unlocked.get(self.wallet) if self.wallet else None
        relay = unlocked.get(self.relay_auth) if self.relay_auth else None
        if wallet is None or relay is None:
            return wallet
        fields = {name: wallet[name] for name in wallet.field_names}
        fields["relay_private_key"] = relay["private_key"]
        return Credentials(wallet.name, wallet.exchange, wallet.created, fields)

    # -- the chain ------------------------------------------------------------------------
    def preflight(self) -> str | None:
        """Check the chain id and the contracts on the chain; raise ``ValueError("<field>: ...")``.

        Returns a warning (the RPC endpoint could not be reached, or a pair does not exist yet) or None.
        """
        from sniperbot.venues.evm.jsonrpc import JsonRpc, RpcError, address_word, encode_address

        rpc = JsonRpc(self.rpc_url, PREFLIGHT_TIMEOUT_S)
        try:
            answered = int(str(rpc.call("eth_chainId")), 16)
        except (RpcError, ValueError) as e:
            # The method and failure class only: a provider URL may carry an API key.
            return f"cannot reach rpc_url ({e}): chain_id and contracts not checked"
        if answered != self.chain_id:
            raise ValueError(
                f"chain_id: {self.chain_id} configured but rpc_url answers eth_chainId = {answered}: "
                "refusing to trade on another chain"
            )
        try:
            contracts = {"router": self.router, "factory": self.factory}
            contracts.update({f"tokens.{s}": a for s, a in self.tokens.items()})
            for field, address in contracts.items():
                if rpc.call("eth_getCode", address, "latest") in (None, "0x", ""):
                    raise ValueError(f"{field}: no contract at {address} on chain {self.chain_id}")
            missing = []
            quote = self.tokens[self.quote]
            for symbol in self.symbols:
                base = self.tokens[symbol.partition("/")[0]]
                data = "0xe6a43905" + encode_address(base) + encode_address(quote)  # getPair(address,address)
                if address_word(rpc.eth_call(self.factory, data)) == ZERO_ADDRESS:
                    missing.append(symbol)
        except RpcError as e:
            return f"rpc_url failed during the checks ({e}): contracts not checked"
        if missing:
            return f"symbols: no pool yet for {', '.join(missing)} (priced from the block that creates it)"
        return None
