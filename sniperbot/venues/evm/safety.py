"""The token safety check before any buy: all by simulation, nothing bought, nothing signed.

:func:`check_token` answers "may the sniper buy this token?" with a :class:`TokenSafetyReport`:

* **Can it be sold, and at what tax** - one ``eth_call`` runs the probe contract
  (``contracts/SafetyProbe.sol``, compiled artifact ``SafetyProbe.json`` committed, so production needs
  no compiler). Its runtime code is injected at an unused address by a state override, with the ETH to
  spend; in that one call it buys through Router02's ``swapExactETHForTokensSupportingFeeOnTransferTokens``
  (buy tax = what arrived vs ``getAmountsOut``), sends 10 % of it to a second address (transfer tax, or a
  transfer that reverts: blacklists), and sells the rest with the fee-on-transfer-supporting sell (sell tax
  vs ``getAmountsOut``, can-sell). Failures are caught inside the probe and returned with their reason.
* **In the block the buy would land in.** Anti-sniper "dead blocks" tokens trap whoever buys in the first
  blocks after the liquidity add, so a simulation against the latest block passes while the real buy is
  trapped. The call carries block overrides (the 4th ``eth_call`` parameter, ``{"number": latest+1,
  "time": latest.timestamp+12}``; geth and anvil honour it - verified with anvil 1.7.1 - web3 8's
  ``eth.call`` has no argument for it, so the request is sent raw). A node that silently ignored the
  overrides would make the check blind to that trap, so the probe returns the block number it ran in and
  a mismatch refuses the token (``simulation_block``).
* **Limits** - the simulated buy has the size the sniper will really buy (``amount_in_wei``, default
  ``rules.probe_quote``), so a max-transaction / max-wallet trap reverts it; the common getters
  (``maxTx()``, ``_maxTxAmount()``, ``maxWallet()``, ...; only those whose selector is in the code) are
  read too and compared with the expected buy.
* **Owner powers** from the bytecode: the 4-byte selectors the runtime code pushes (``PUSH4``) are matched
  against known privileged functions (mint, pause, blacklist/addBot, setFee/setTax, max-tx/wallet setters,
  trading on/off switches, upgradeTo); an EIP-1967 implementation or beacon slot that is set means an
  upgradeable proxy (power ``proxy``), and the implementation's code is scanned as well. Decision: a power
  counts whether or not ``owner()`` says ownership was renounced (a renounce can be faked by a second
  privileged role a selector scan cannot see, and a proxy has its own admin); ``owner()`` is named in the
  reason. Selector scanning is a heuristic: it finds the usual names, not renamed ones.
* **Pool** - the quote-token reserve of the token/quote pair, and the share of LP tokens burnt (held by
  0x0 or 0x…dEaD) or locked (held by the configured locker contracts; whatever they hold counts as
  locked, whatever its unlock date: list only lockers you trust).
* **As the wallet** (when ``wallet`` is given, the sniper's case): the probe is a contract, so a token
  that traps only externally owned recipients (``extcodesize(to) == 0``) or acts on ``tx.origin`` would
  pass it and trap the real wallet. A third round trip, ``eth_simulateV1`` (one simulated block with the
  same overrides, calls from the wallet itself), buys the same amount to the wallet, approves and sells
  what the probe received; a revert refuses the token (``wallet_cannot_sell``), and a node that cannot
  run it refuses too (``wallet_simulation``: when in doubt, do not buy).

Known limit: a token whose owner raises the tax or blacklists after the buy passes (the owner-power rules
are the defence: ``set_fee``, ``blacklist``); the sniper should re-check before each exit.

**Cost**: two JSON-RPC round trips (batches: what needs only the token, then - pinned to the block the
first saw - the pool reads and the simulation), three with ``wallet``; an endpoint that refuses batches
gets the same calls one by one. About 3.5 ms (5 ms with ``wallet``) on a local anvil
(``bench/token_safety.py``).

The verdict is "buy" only if every rule passes; otherwise "refuse" with every failed rule in ``reasons``,
each ``"<code>: <detail>"`` with a code from :data:`REASON_CODES`. When in doubt (a call fails, the pool is
missing), the check refuses: it never buys on missing evidence.

Config: the rules are :class:`SafetyRules`, the ``[venues.safety]`` table of an evm venue (field
``safety`` of the venue config)::

    [venues.safety]
    max_buy_tax_bps = 1000            # 10 %
    max_sell_tax_bps = 1000
    max_transfer_tax_bps = 1000
    min_liquidity_quote = 2.0         # quote-token reserve of the pool (e.g. 2 WETH)
    min_lp_burnt_or_locked_pct = 95.0
    lp_lockers = []                   # locker contract addresses whose LP holdings count as locked
    allowed_owner_powers = []         # any of: mint, pause, blacklist, set_fee, set_limits,
                                      #         trading_switch, proxy
    probe_quote = 0.1                 # the buy size simulated when the caller gives none (quote units)
    simulate_next_block = true        # simulate in the block the buy would land in
"""

from __future__ import annotations

import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector, keccak, to_checksum_address
from eth_utils.abi import get_abi_output_types
from requests.exceptions import RequestException
from web3 import Web3

from sniperbot.messages import TokenSafetyReport
from sniperbot.venues.dex.rules import OWNER_POWERS, POWER_SIGNATURES, SafetyRules

__all__ = [
    "OWNER_POWERS",
    "REASON_CODES",
    "SafetyRules",
    "check_token",
    "code_selectors",
    "owner_powers",
]

# Every reason a report can give, as the prefix "<code>: ..." of its text.
REASON_CODES: frozenset[str] = frozenset(
    {
        "not_a_contract",  # no code at the token address
        "no_pool",  # the factory has no token/quote pair
        "rpc",  # a read the check depends on failed
        "simulation",  # the simulation call itself failed
        "simulation_block",  # the node ignored the block overrides (ran in another block)
        "buy_failed",  # the simulated buy reverted
        "cannot_sell",  # the simulated sell reverted (honeypot)
        "transfer_failed",  # a wallet-to-wallet transfer reverted (blacklist)
        "buy_tax",
        "sell_tax",
        "transfer_tax",
        "max_tx",  # a max-transaction limit below the intended buy
        "max_wallet",  # a max-wallet limit below the intended buy
        "owner_power",  # a privileged function the rules do not allow
        "liquidity",  # too little quote in the pool
        "lp_not_burnt_or_locked",
        "wallet_simulation",  # the node could not simulate the wallet's own buy and sell (eth_simulateV1)
        "wallet_buy_failed",  # the wallet's own simulated buy reverted (the probe's did not)
        "wallet_cannot_sell",  # the wallet's own simulated sell reverted (an EOA-only trap)
    }
)


_MAX_TX_GETTERS = (
    "maxTx()",
    "maxTxAmount()",
    "_maxTxAmount()",
    "maxTransactionAmount()",
    "maxTransaction()",
    "_maxTx()",
)
_MAX_WALLET_GETTERS = (
    "maxWallet()",
    "maxWalletSize()",
    "_maxWalletSize()",
    "maxWalletAmount()",
    "_maxWalletToken()",
    "maxWalletToken()",
)

# EIP-1967 storage slots: keccak("eip1967.proxy.implementation") - 1 and keccak("eip1967.proxy.beacon") - 1.
_IMPLEMENTATION_SLOT = "0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc"
_BEACON_SLOT = "0xa3f0ad74e5423aebfd80d3ef4346578335a9a72aeaee59ff6cb3582b35133d50"
_BURN_ADDRESSES = ("0x0000000000000000000000000000000000000000", "0x000000000000000000000000000000000000dEaD")


def _derived_address(label: str) -> str:
    # Unused addresses (no key can own them: hashes of a label) for the probe, its caller and the sink.
    return to_checksum_address(keccak(text=label)[12:])


PROBE_ADDRESS = _derived_address("sniperbot.safety.probe")
CALLER_ADDRESS = _derived_address("sniperbot.safety.caller")
SINK_ADDRESS = _derived_address("sniperbot.safety.sink")
TRANSFER_PROBE_BPS = 1_000  # share of the bought tokens sent wallet-to-wallet (10 %)
PROBE_GAS = 15_000_000
NEXT_BLOCK_SECONDS = 12  # the next block's timestamp, as on mainnet


@cache
def _probe_artifact() -> dict[str, Any]:
    return json.loads((Path(__file__).parent / "contracts" / "SafetyProbe.json").read_text())


@cache
def _probe_output_type() -> str:
    function = next(f for f in _probe_artifact()["abi"] if f.get("name") == "probe")
    return str(get_abi_output_types(function)[0])


def _selector(signature: str) -> bytes:
    return function_signature_to_4byte_selector(signature)


def code_selectors(code: bytes) -> set[bytes]:
    """The 4-byte immediates of every ``PUSH4`` in EVM code (a contract's dispatcher pushes its selectors)."""
    found: set[bytes] = set()
    i, n = 0, len(code)
    while i < n:
        op = code[i]
        if 0x60 <= op <= 0x7F:  # PUSH1..PUSH32: skip the immediate, keep PUSH4's
            width = op - 0x5F
            if width == 4 and i + 5 <= n:
                found.add(bytes(code[i + 1 : i + 5]))
            i += width
        i += 1
    return found


def owner_powers(code: bytes) -> list[str]:
    """The owner powers whose functions' selectors appear in runtime ``code`` (:data:`OWNER_POWERS` order)."""
    selectors = code_selectors(code)
    return [
        power
        for power, signatures in POWER_SIGNATURES.items()
        if any(_selector(s) in selectors for s in signatures)
    ]


class _RpcError(Exception):
    """A JSON-RPC error answer (a revert, an unsupported method or parameter)."""


def _batch(w3: Web3, calls: list[tuple[str, list[Any]]]) -> list[Any]:
    """The results of JSON-RPC ``calls`` in order, sent as one batch (one round trip); an error answer
    is returned as an :class:`_RpcError` in its place.

    An endpoint that refuses batches gets the calls one by one (same results, one round trip each).
    """
    provider = w3.provider
    try:
        answers = provider.make_batch_request(calls)  # type: ignore[attr-defined,arg-type]
    except (OSError, RequestException):
        raise  # the endpoint is unreachable: one by one would fail the same way
    except Exception:  # a provider or endpoint without batches
        answers = None
    if not isinstance(answers, list) or len(answers) != len(calls):
        answers = [provider.make_request(method, params) for method, params in calls]  # type: ignore[arg-type]
    out: list[Any] = []
    for answer in answers:
        if "error" in answer:
            error = answer["error"]
            out.append(_RpcError(str(error.get("message", error)) if isinstance(error, dict) else str(error)))
        else:
            out.append(answer.get("result"))
    return out


def _eth_call(to: str, sig: str, block: str, types: tuple[str, ...] = (), args: tuple[Any, ...] = ()) -> Any:
    """An ``eth_call`` request of function ``sig`` for :func:`_batch`."""
    data = _selector(sig) + (abi_encode(list(types), list(args)) if types else b"")
    return ("eth_call", [{"to": to, "data": "0x" + data.hex()}, block])


def _word(result: Any, what: str) -> int:
    """The first 32-byte word of a call result; raises naming ``what`` on an error or a short answer."""
    if isinstance(result, Exception):
        raise result
    raw = bytes.fromhex(str(result or "0x").removeprefix("0x"))
    if len(raw) < 32:
        raise ValueError(f"{what} returned {len(raw)} bytes")
    return int.from_bytes(raw[:32], "big")


def _addr(word: int) -> str:
    return to_checksum_address(word.to_bytes(32, "big")[12:])


def _code(result: Any) -> bytes:
    if isinstance(result, Exception):
        raise result
    return bytes.fromhex(str(result or "0x").removeprefix("0x"))


def _why(e: Exception) -> str:
    # A node's own answer (a revert, an RPC error) is shown; a transport failure only by its type:
    # its text can hold the RPC URL, and URLs often carry API keys (reports are journaled).
    if isinstance(e, OSError | RequestException):
        return type(e).__name__
    return f"{type(e).__name__}: {e}"


_MAX_REASON_CHARS = 200


def _said(text: str) -> str:
    """A revert reason as the token wrote it, made safe to log and journal: printable, bounded."""
    # The token's author chooses these bytes: no control characters, no log lines of megabytes.
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    return clean if len(clean) <= _MAX_REASON_CHARS else clean[:_MAX_REASON_CHARS] + "..."


def _pct(value: int) -> str:
    return f"{value / 100:.2f} %"


def _tax_bps(expected: int, received: int) -> int:
    # Rounded up (a 0.01 % tax is not zero), never negative (a token may give more than quoted).
    if expected <= 0:
        return -1
    return max(0, -(-(expected - received) * 10_000 // expected))


class _Probe(msgspec.Struct, frozen=True):
    block_number: int
    timestamp: int
    buy_ok: bool
    buy_error: str
    buy_expected: int
    buy_received: int
    buy_gas: int
    transfer_ok: bool
    transfer_error: str
    transfer_sent: int
    transfer_received: int
    sell_ok: bool
    sell_error: str
    sell_token_error: str
    sell_amount: int
    sell_expected: int
    sell_received: int
    sell_gas: int


def _probe_request(
    router: str,
    token: str,
    weth: str,
    pair: str,
    amount_in_wei: int,
    latest: dict[str, Any],
    next_block: bool,
) -> tuple[tuple[str, list[Any]], int]:
    """The probe's ``eth_call`` (state and block overrides) and the block it must run in."""
    number, timestamp = int(latest["number"], 16), int(latest["timestamp"], 16)
    target = number + (1 if next_block else 0)
    data = _selector("probe(address,address,address,address,address,uint256)") + abi_encode(
        ["address", "address", "address", "address", "address", "uint256"],
        [router, token, weth, pair, SINK_ADDRESS, TRANSFER_PROBE_BPS],
    )
    tx = {
        "from": CALLER_ADDRESS,
        "to": PROBE_ADDRESS,
        "data": "0x" + data.hex(),
        "value": hex(amount_in_wei),
        "gas": hex(PROBE_GAS),
    }
    overrides = {
        PROBE_ADDRESS: {"code": _probe_artifact()["deployedBytecode"]},
        CALLER_ADDRESS: {"balance": hex(amount_in_wei + 10**18)},
    }
    # Pinned to the block read, so the state and the overridden number/time belong together.
    params: list[Any] = [tx, hex(number), overrides]
    if next_block:
        params.append({"number": hex(target), "time": hex(timestamp + NEXT_BLOCK_SECONDS)})
    return ("eth_call", params), target


def _wallet_request(
    router: str,
    token: str,
    weth: str,
    wallet: str,
    amount_in_wei: int,
    sell_amount: int,
    latest: dict[str, Any],
    next_block: bool,
) -> tuple[str, list[Any]]:
    """``eth_simulateV1`` of the wallet's own buy, approve and sell, in the block the probe ran in."""
    number, timestamp = int(latest["number"], 16), int(latest["timestamp"], 16)
    deadline = timestamp + 3_600
    buy = _selector("swapExactETHForTokensSupportingFeeOnTransferTokens(uint256,address[],address,uint256)")
    buy += abi_encode(["uint256", "address[]", "address", "uint256"], [0, [weth, token], wallet, deadline])
    approve = _selector("approve(address,uint256)") + abi_encode(["address", "uint256"], [router, 2**256 - 1])
    sell = _selector(
        "swapExactTokensForETHSupportingFeeOnTransferTokens(uint256,uint256,address[],address,uint256)"
    ) + abi_encode(
        ["uint256", "uint256", "address[]", "address", "uint256"],
        [sell_amount, 0, [token, weth], wallet, deadline],
    )
    gas = hex(PROBE_GAS // 3)
    block: dict[str, Any] = {
        "stateOverrides": {wallet: {"balance": hex(amount_in_wei + 10**18)}},
        "calls": [
            {"from": wallet, "to": router, "data": "0x" + buy.hex(), "value": hex(amount_in_wei), "gas": gas},
            {"from": wallet, "to": token, "data": "0x" + approve.hex(), "gas": gas},
            {"from": wallet, "to": router, "data": "0x" + sell.hex(), "gas": gas},
        ],
    }
    if next_block:
        block["blockOverrides"] = {"number": hex(number + 1), "time": hex(timestamp + NEXT_BLOCK_SECONDS)}
    return ("eth_simulateV1", [{"blockStateCalls": [block], "validation": False}, hex(number)])


def _call_failure(call: dict[str, Any]) -> str | None:
    """None if a simulated call succeeded, else its revert reason."""
    if int(str(call.get("status", "0x0")), 16) == 1:
        return None
    data = bytes.fromhex(str(call.get("returnData") or "0x").removeprefix("0x"))
    if data[:4] == bytes.fromhex("08c379a0"):
        try:
            return str(abi_decode(["string"], data[4:])[0])
        except Exception:  # a malformed reason: say so, never raise
            return "reverted with a malformed reason"
    error = call.get("error")
    return str(error.get("message", error)) if isinstance(error, dict) else "reverted"


def _decode_probe(result: Any) -> _Probe:
    if isinstance(result, Exception):
        raise result
    raw = bytes.fromhex(str(result or "0x").removeprefix("0x"))
    try:
        (fields,) = abi_decode([_probe_output_type()], raw)
    except Exception as e:  # a node answering garbage: refuse, say why
        raise ValueError(f"undecodable probe result ({type(e).__name__})") from None
    return _Probe(*fields)


def check_token(
    w3: Web3,
    router: str,
    factory: str,
    weth: str,
    token: str,
    rules: SafetyRules | None = None,
    *,
    venue: str = "",
    amount_in_wei: int | None = None,
    next_block: bool | None = None,
    wallet: str | None = None,
) -> TokenSafetyReport:
    """Check ``token`` against ``rules`` by simulation (nothing is sent); the report with its verdict.

    ``amount_in_wei`` is the quote amount the buy will spend (default ``rules.probe_quote``): pass the
    real size, limits and price impact depend on it. ``next_block`` overrides ``rules.simulate_next_block``.
    ``wallet`` is the address that will buy: its own buy and sell are simulated too (see above).
    Never raises for what the chain or the token does (that is a "refuse" with its reason); raises
    ValueError only for a non-positive ``amount_in_wei``.
    """
    if amount_in_wei is not None and amount_in_wei <= 0:
        raise ValueError(f"check_token: amount_in_wei must be > 0, got {amount_in_wei}")
    rules = rules or SafetyRules()
    next_block = rules.simulate_next_block if next_block is None else next_block
    router, factory, weth, token = (to_checksum_address(a) for a in (router, factory, weth, token))
    reasons: list[str] = []
    fields: dict[str, Any] = {}

    def report() -> TokenSafetyReport:
        return TokenSafetyReport(
            venue=venue,
            token=token,
            verdict="refuse" if reasons else "buy",
            reasons=reasons,
            ts_ns=time.time_ns(),
            **fields,
        )

    # Two round trips (JSON-RPC batches): what needs only the token, then, pinned to the block the
    # first one saw, everything that needs the pair - the simulation included.
    try:
        (latest, code_hex, pair_word, quote_dec, token_dec, impl_slot, beacon_slot, owner_word) = _batch(
            w3,
            [
                ("eth_getBlockByNumber", ["latest", False]),
                ("eth_getCode", [token, "latest"]),
                _eth_call(
                    factory, "getPair(address,address)", "latest", ("address", "address"), (token, weth)
                ),
                _eth_call(weth, "decimals()", "latest"),
                _eth_call(token, "decimals()", "latest"),
                ("eth_getStorageAt", [token, _IMPLEMENTATION_SLOT, "latest"]),
                ("eth_getStorageAt", [token, _BEACON_SLOT, "latest"]),
                _eth_call(token, "owner()", "latest"),
            ],
        )
        if isinstance(latest, Exception) or not latest:
            raise ValueError(f"no latest block ({latest})")
        code = _code(code_hex)
        if not code:
            reasons.append(f"not_a_contract: no code at {token}")
            return report()
        pair = _addr(_word(pair_word, "factory.getPair"))
        if int(pair, 16) == 0:
            reasons.append(f"no_pool: the factory {factory} has no {token}/{weth} pair")
            return report()
        fields["pair"] = pair
        quote_decimals = _word(quote_dec, "quote decimals()")
        token_decimals = _word(token_dec, "token decimals()")
        implementation = _word(impl_slot, "implementation slot")
        beacon = _word(beacon_slot, "beacon slot")
    except Exception as e:  # an RPC or a token that does not answer: when in doubt, do not buy
        reasons.append(f"rpc: reading the token and its pool failed: {_why(e)}")
        return report()

    block = latest["number"]
    holders = [*_BURN_ADDRESSES, *(to_checksum_address(h) for h in rules.lp_lockers)]
    selectors = code_selectors(code)
    getters = {
        key: [
            g for g in candidates if _selector(g) in selectors
        ]  # only those in the code: no fallback tricks
        for key, candidates in (("max_tx", _MAX_TX_GETTERS), ("max_wallet", _MAX_WALLET_GETTERS))
    }
    amount = amount_in_wei if amount_in_wei is not None else int(rules.probe_quote * 10**quote_decimals)
    probe_call, target = _probe_request(router, token, weth, pair, amount, latest, next_block)
    fields["block_number"] = target
    calls: list[tuple[str, list[Any]]] = [
        probe_call,
        _eth_call(pair, "getReserves()", block),
        _eth_call(pair, "token0()", block),
        _eth_call(pair, "totalSupply()", block),
        *(_eth_call(pair, "balanceOf(address)", block, ("address",), (h,)) for h in holders),
        *(_eth_call(token, g, block) for key in ("max_tx", "max_wallet") for g in getters[key]),
    ]
    if implementation:
        calls.append(("eth_getCode", [_addr(implementation), block]))
    try:
        answers = _batch(w3, calls)
    except Exception as e:
        reasons.append(f"rpc: reading the pool {pair} and simulating failed: {_why(e)}")
        return report()
    probe_answer, reserves, token0, lp_supply, *rest = answers
    lp_held, rest = rest[: len(holders)], rest[len(holders) :]

    # Pool: the quote reserve and where the LP tokens are.
    try:
        raw = _code(reserves)
        r0, r1 = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big")
        quote_reserve = r1 if _addr(_word(token0, "pair.token0()")) == token else r0
        liquidity = quote_reserve / 10**quote_decimals
        fields["liquidity_quote"] = liquidity
        if liquidity < rules.min_liquidity_quote:
            reasons.append(f"liquidity: {liquidity:g} quote in the pool < min {rules.min_liquidity_quote:g}")
        supply = _word(lp_supply, "pair.totalSupply()")
        held = sum(_word(answer, "pair.balanceOf()") for answer in lp_held)
        lp_pct = held * 100 / supply if supply else 0.0
        fields["lp_burnt_or_locked_pct"] = lp_pct
        if lp_pct < rules.min_lp_burnt_or_locked_pct:
            reasons.append(
                f"lp_not_burnt_or_locked: {lp_pct:.2f} % of the LP tokens burnt or locked "
                f"< min {rules.min_lp_burnt_or_locked_pct:g} %"
            )
    except Exception as e:
        reasons.append(f"rpc: reading the pool {pair} failed: {_why(e)}")

    # Limits the token announces: the first getter of each kind that answers.
    for key in ("max_tx", "max_wallet"):
        answers_of_key, rest = rest[: len(getters[key])], rest[len(getters[key]) :]
        for answer in answers_of_key:
            try:
                fields[key] = _word(answer, key) / 10**token_decimals
                break
            except Exception:  # a getter that reverts tells nothing
                continue

    # Owner powers: selectors in the code (and in an EIP-1967 implementation's); owner() for the reason.
    powers = owner_powers(code)
    if implementation or beacon:
        powers.append("proxy")
    if implementation:
        try:
            powers += owner_powers(_code(rest[0]))
        except Exception as e:
            reasons.append(f"rpc: reading the implementation of {token} failed: {_why(e)}")
    fields["owner_powers"] = [p for p in OWNER_POWERS if p in powers]
    disallowed = [p for p in fields["owner_powers"] if p not in rules.allowed_owner_powers]
    if disallowed:
        try:
            owner = _addr(_word(owner_word, "owner()"))
            who = "ownership renounced" if owner in _BURN_ADDRESSES else f"owner {owner}"
        except Exception:
            who = "no owner() answer"
        reasons += [f"owner_power: {p} ({who})" for p in disallowed]

    # The simulation: buy, transfer, sell in one call, in the block the buy would land in.
    try:
        probe = _decode_probe(probe_answer)
    except Exception as e:
        reasons.append(f"simulation: the buy/sell simulation failed: {_said(_why(e))}")
        return report()
    if probe.block_number != target:
        reasons.append(
            f"simulation_block: the node ran the simulation in block {probe.block_number}, not {target} "
            "(block overrides unsupported): a dead-blocks trap would go unseen"
        )
    expected_tokens = probe.buy_expected / 10**token_decimals
    max_tx, max_wallet = fields.get("max_tx", 0.0), fields.get("max_wallet", 0.0)
    buy = f"{expected_tokens:g}"
    if max_tx and expected_tokens > max_tx:
        reasons.append(f"max_tx: the token allows {max_tx:g} per transaction, the buy moves {buy}")
    if max_wallet and expected_tokens > max_wallet:
        reasons.append(f"max_wallet: the token allows {max_wallet:g} per wallet, the buy gets {buy}")
    if not probe.buy_ok:
        reasons.append(f"buy_failed: {_said(probe.buy_error)}")
        return report()
    fields["buy_tax_bps"] = buy_tax = _tax_bps(probe.buy_expected, probe.buy_received)
    if buy_tax > rules.max_buy_tax_bps:
        reasons.append(f"buy_tax: {_pct(buy_tax)} > max {_pct(rules.max_buy_tax_bps)}")
    if probe.transfer_sent:
        if probe.transfer_ok:
            fields["transfer_tax_bps"] = transfer_tax = _tax_bps(probe.transfer_sent, probe.transfer_received)
            if transfer_tax > rules.max_transfer_tax_bps:
                reasons.append(f"transfer_tax: {_pct(transfer_tax)} > max {_pct(rules.max_transfer_tax_bps)}")
        else:
            reasons.append(
                f"transfer_failed: a wallet-to-wallet transfer reverted: {_said(probe.transfer_error)}"
            )
    fields["can_sell"] = probe.sell_ok
    if not probe.sell_ok:
        words = f" (the token: {_said(probe.sell_token_error)})" if probe.sell_token_error else ""
        reasons.append(f"cannot_sell: the sell reverted: {_said(probe.sell_error)}{words}")
        return report()
    fields["sell_tax_bps"] = sell_tax = _tax_bps(probe.sell_expected, probe.sell_received)
    if sell_tax > rules.max_sell_tax_bps:
        reasons.append(f"sell_tax: {_pct(sell_tax)} > max {_pct(rules.max_sell_tax_bps)}")
    if wallet is not None:
        _check_as_wallet(
            w3, router, token, weth, to_checksum_address(wallet), amount, probe, latest, next_block, reasons
        )
    return report()


def _check_as_wallet(
    w3: Web3,
    router: str,
    token: str,
    weth: str,
    wallet: str,
    amount: int,
    probe: _Probe,
    latest: dict[str, Any],
    next_block: bool,
    reasons: list[str],
) -> None:
    """The wallet's own buy and sell (third round trip); appends the reasons it fails for."""
    request = _wallet_request(router, token, weth, wallet, amount, probe.buy_received, latest, next_block)
    try:
        (result,) = _batch(w3, [request])
        if isinstance(result, Exception):
            raise result
        calls = result[0]["calls"]
        buy, _approve, sell = (_call_failure(call) for call in calls)
    except Exception as e:
        reasons.append(
            f"wallet_simulation: the wallet's own buy and sell could not be simulated "
            f"(eth_simulateV1): {_said(_why(e))}"
        )
        return
    if buy is not None:
        reasons.append(
            f"wallet_buy_failed: the wallet's own buy reverted (the probe's did not): {_said(buy)}"
        )
    elif sell is not None:
        reasons.append(
            f"wallet_cannot_sell: the wallet's own sell reverted (the probe's did not): {_said(sell)}"
        )
