"""The Solana token safety check before any buy: the mint, its holders, the pool, and a simulated buy and sell
as the wallet; nothing signed, nothing sent.

:func:`check_token` answers "may the sniper buy this mint?" with the same
:class:`~sniperbot.messages.TokenSafetyReport` as the EVM check, from the same
:class:`~sniperbot.venues.dex.SafetyRules` table (``[venues.safety]``), using only calls a real node and a
real Jupiter-shaped aggregator answer:

* **The mint** (``getAccountInfo``, base64; decoded by :func:`sniperbot.venues.solana.layouts.decode_mint`,
  SPL Token or Token-2022): a live **mint authority** can dilute the buyer and a live **freeze
  authority** can freeze the buyer's account (it could never sell): both refused unless
  ``require_no_mint_authority`` / ``require_no_freeze_authority`` are turned off. **Token-2022
  extensions** named in ``refused_extensions`` are refused (``extension:<name>``; ``default_frozen`` is a
  ``default_account_state`` extension whose accounts start frozen); an extension this reader does not know
  is always refused (when in doubt, do not buy). The **transfer fee** in force at the current epoch
  (``getEpochInfo``), and a higher one already scheduled for a later epoch, are capped by
  ``max_transfer_tax_bps``, as the fee applies to the buy's size (a fee's ``maximum`` caps it per
  transfer). Decision: a transfer-fee *authority* is not refused by itself (a raise takes effect two
  epochs later, about four days, longer than a snipe is held); it is listed in ``owner_powers``.
* **Holders** (``getTokenLargestAccounts`` + ``getTokenSupply``): the largest account's share of the
  supply, the pool's base vault excluded, is capped by ``max_top_holder_pct``.
* **The pool** (``getAccountInfo`` of the pool account, a :class:`~sniperbot.venues.solana.layouts.PoolState`
  owned by ``pools_program``, then ``getBalance`` of its quote vault): its SOL reserve (lamports above the
  rent exemption of 0 bytes) must reach ``min_liquidity_quote`` SOL (``liquidity``). Without a pool
  argument, the deepest pool of the mint against SOL is looked up (``getProgramAccounts`` with memcmp
  filters).
* **Buy, then sell, as the wallet**: the aggregator's ``/swap/v1/quote`` and ``/swap/v1/swap`` for a buy of
  ``buy_lamports`` (default ``probe_quote`` SOL) by ``wallet``, and a sell of what that buy delivers
  (the quoted amount less the transfer fee), both left UNSIGNED (the wallet's key never leaves the
  gateway process), run in order on a copy of the chain's state by ``simulateBundle`` (Jito's RPC method,
  ``skipSigVerify``). A buy that fails is ``buy_failed``, a sell that fails ``sell_failed`` (the honeypot:
  frozen accounts, hooks that refuse, paused mints, whatever the creator's program does). The buy's
  delivered amount against the quote gives ``buy_tax_bps``; ``transfer_tax_bps`` and ``sell_tax_bps`` are
  the Token-2022 fee such transfers pay. No ``wallet``: nothing can be simulated as it, refused
  (``simulation``). Decision: the RPC must serve ``simulateBundle`` (a Jito-enabled RPC; the local chain
  does): a plain ``simulateTransaction`` cannot run the sell on the state the buy leaves, so an RPC
  without it makes every check refuse (``simulation``) rather than skip the sell.

The verdict is "buy" only if every rule passes; otherwise "refuse" with every failed rule in ``reasons``,
each ``"<code>: <detail>"`` with a code from :data:`REASON_CODES`. When in doubt (an RPC error, a missing
answer, an aggregator that does not answer), the check refuses with the reason: it never buys on missing
evidence. ``block_number`` is the slot the reads were answered at; ``liquidity_quote`` is in SOL;
``owner_powers`` lists what the creator keeps (``mint_authority``, ``freeze_authority``,
``transfer_fee_authority``, ``extension:<name>`` for every extension); the EVM-only fields keep their
defaults.

Cost: two JSON-RPC batches (the mint, holders, pool and epoch in one; the quote vault's balance), four
aggregator calls and one ``simulateBundle``.
"""

from __future__ import annotations

import base64
import json
import math
import time
from typing import Any

import httpx
from solders.pubkey import Pubkey
from solders.rpc.responses import (
    GetBalanceResp,
    GetEpochInfoResp,
    GetMinimumBalanceForRentExemptionResp,
    GetMultipleAccountsResp,
    GetProgramAccountsResp,
    GetTokenLargestAccountsResp,
    GetTokenSupplyResp,
)
from spl.token.instructions import get_associated_token_address

from sniperbot.messages import TokenSafetyReport
from sniperbot.venues.dex.rules import SafetyRules
from sniperbot.venues.solana.layouts import (
    LAMPORTS_PER_SOL,
    LOCAL_AMM_PROGRAM,
    POOL_STATE_SIZE,
    SOL_MINT,
    TOKEN_PROGRAMS,
    Mint,
    PoolState,
    decode_mint,
    decode_token_account,
)

__all__ = ["REASON_CODES", "SafetyRules", "check_token"]

# Every reason a report can give, as the prefix "<code>: ..." of its text (extension:<name> for extensions).
REASON_CODES: frozenset[str] = frozenset(
    {
        "rpc",  # a read the check depends on failed or was not answered
        "not_a_mint",  # no account at the mint address, or not a token program's mint
        "mint_authority",  # a live mint authority (more can be minted)
        "freeze_authority",  # a live freeze authority (the buyer's account can be frozen)
        "extension",  # "extension:<name>": a refused (or unknown) Token-2022 extension
        "transfer_fee",  # the Token-2022 transfer fee (in force or scheduled) above max_transfer_tax_bps
        "top_holders",  # one account (pool vaults excluded) holds too much of the supply
        "no_pool",  # no pool of the mint against SOL (or the pool account is not one)
        "liquidity",  # too little SOL in the pool
        "simulation",  # the buy and sell could not be simulated (no wallet, the aggregator, simulateBundle)
        "buy_failed",  # the simulated buy failed
        "sell_failed",  # the simulated sell of what was bought failed (honeypot)
    }
)

RPC_TIMEOUT_S = 10.0
# Compute budget of the simulated swaps: the local and real routes fit well within it.
_SIM_COMPUTE_UNIT_LIMIT = 400_000
_SIM_SLIPPAGE_BPS = 5_000  # a simulation on a copy of the state: the slippage bound must not be the failure


class _RpcError(Exception):
    """A JSON-RPC error answer, or an answer that does not parse."""


def _endpoint(rpc: Any) -> str:
    """The HTTP endpoint of ``rpc``: a URL, or a solana-py client (``AsyncClient``) whose endpoint is used."""
    if isinstance(rpc, str):
        return rpc
    provider = getattr(rpc, "_provider", None)
    uri = getattr(provider, "endpoint_uri", None)
    if not isinstance(uri, str):
        raise TypeError(f"rpc: {type(rpc).__name__} is neither an RPC URL nor a solana-py client")
    return uri


def _post(http: httpx.Client, url: str, body: Any) -> Any:
    response = http.post(url, json=body)
    response.raise_for_status()
    return response.json()


def _batch(http: httpx.Client, url: str, calls: list[tuple[str, list[Any], Any]]) -> list[Any]:
    """The parsed results of ``calls`` ((method, params, solders response class)) sent as one batch;
    an error answer is an :class:`_RpcError` in its place."""
    body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p, _) in enumerate(calls)]
    answers = _post(http, url, body)
    if not isinstance(answers, list):
        raise _RpcError(f"the endpoint did not answer the batch: {str(answers)[:200]}")
    by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
    out: list[Any] = []
    for i, (method, _params, parser) in enumerate(calls):
        answer = by_id.get(i)
        if answer is None:
            out.append(_RpcError(f"{method}: no answer"))
        elif "error" in answer:
            out.append(_RpcError(f"{method}: {answer['error'].get('message', answer['error'])}"))
        else:
            try:
                out.append(parser.from_json(json.dumps(answer)))
            except Exception as e:  # a malformed answer is no evidence
                out.append(_RpcError(f"{method}: unreadable answer ({e})"))
    return out


def _ok(result: Any) -> Any:
    if isinstance(result, Exception):
        raise result
    return result


def _why(e: BaseException) -> str:
    """A bounded description of ``e`` that never carries a URL (an RPC URL often holds an API key)."""
    if isinstance(e, httpx.HTTPStatusError):
        return f"HTTP {e.response.status_code}"
    text = str(e) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _pct(bps: float) -> str:
    return f"{bps / 100:.2f} %"


def _fee_bps(fee: dict[str, int], amount: int) -> float:
    """The share (bps) of ``amount`` a transfer fee {bps, max} takes (the program's ceil, then the cap)."""
    if amount <= 0:
        return float(fee["bps"])
    charged = min(math.ceil(amount * fee["bps"] / 10_000), fee["max"])
    return charged * 10_000 / amount


def _fee_of(fee: dict[str, int], amount: int) -> int:
    return min(math.ceil(amount * fee["bps"] / 10_000), fee["max"]) if fee["bps"] else 0


def check_token(
    rpc: Any,
    mint: Pubkey | str,
    pool: Pubkey | str | None,
    rules: SafetyRules,
    *,
    wallet: Pubkey | str | None,
    aggregator_url: str,
    buy_lamports: int | None = None,
    venue: str = "",
    pools_program: Pubkey | str = LOCAL_AMM_PROGRAM,
    commitment: str = "confirmed",
    timeout_s: float = RPC_TIMEOUT_S,
) -> TokenSafetyReport:
    """The safety report of ``mint`` traded in ``pool`` (None: its deepest SOL pool) under ``rules``.

    ``rpc`` is the RPC URL (or a solana-py client, whose endpoint is used); ``wallet`` the buyer whose buy
    and sell are simulated; ``buy_lamports`` the buy's size (default ``rules.probe_quote`` SOL).
    """
    mint = Pubkey.from_string(mint) if isinstance(mint, str) else mint
    pool = Pubkey.from_string(pool) if isinstance(pool, str) else pool
    wallet = Pubkey.from_string(wallet) if isinstance(wallet, str) else wallet
    program = Pubkey.from_string(pools_program) if isinstance(pools_program, str) else pools_program
    amount = buy_lamports if buy_lamports is not None else int(rules.probe_quote * LAMPORTS_PER_SOL)
    with httpx.Client(timeout=timeout_s) as http:
        return _Check(http, _endpoint(rpc), aggregator_url, rules, venue, commitment).run(
            mint, pool, wallet, program, amount
        )


class _Check:
    """One run of the check: the reads, the rules, the simulation; ``reasons`` and ``fields`` accumulate."""

    def __init__(
        self, http: httpx.Client, url: str, aggregator: str, rules: SafetyRules, venue: str, commitment: str
    ) -> None:
        self.http, self.url, self.aggregator = http, url, aggregator.rstrip("/")
        self.rules, self.venue, self.commitment = rules, venue, commitment
        self.reasons: list[str] = []
        self.fields: dict[str, Any] = {}

    def report(self, mint: Pubkey, pool: Pubkey | None) -> TokenSafetyReport:
        """The report of what was found so far."""
        return TokenSafetyReport(
            venue=self.venue,
            token=str(mint),
            pair="" if pool is None else str(pool),
            verdict="refuse" if self.reasons else "buy",
            reasons=list(self.reasons),
            ts_ns=time.time_ns(),
            **self.fields,
        )

    def _config(self, **extra: Any) -> dict[str, Any]:
        return {"commitment": self.commitment, **extra}

    def run(
        self, mint: Pubkey, pool: Pubkey | None, wallet: Pubkey | None, program: Pubkey, amount: int
    ) -> TokenSafetyReport:
        """Every rule, in one pass; the report."""
        m = str(mint)
        calls: list[tuple[str, list[Any], Any]] = [
            ("getEpochInfo", [self._config()], GetEpochInfoResp),
            (
                "getMultipleAccounts",
                [[m, str(pool or mint)], self._config(encoding="base64")],
                GetMultipleAccountsResp,
            ),
            ("getTokenLargestAccounts", [m, self._config()], GetTokenLargestAccountsResp),
            ("getTokenSupply", [m, self._config()], GetTokenSupplyResp),
            ("getMinimumBalanceForRentExemption", [0, self._config()], GetMinimumBalanceForRentExemptionResp),
        ]
        if pool is None:
            filters = [
                {"dataSize": POOL_STATE_SIZE},
                {"memcmp": {"offset": 8, "bytes": m, "encoding": "base58"}},
                {"memcmp": {"offset": 40, "bytes": str(SOL_MINT), "encoding": "base58"}},
            ]
            calls.append(
                (
                    "getProgramAccounts",
                    [str(program), self._config(encoding="base64", filters=filters)],
                    GetProgramAccountsResp,
                )
            )
        try:
            epoch_r, accounts_r, largest_r, supply_r, rent_r, *found = _batch(self.http, self.url, calls)
        except Exception as e:  # the endpoint: nothing is known
            self.reasons.append(f"rpc: the chain reads failed: {type(e).__name__}: {_why(e)}")
            return self.report(mint, pool)

        # The mint: authorities and extensions.
        decoded: Mint | None = None
        try:
            accounts = _ok(accounts_r)
            self.fields["block_number"] = accounts.context.slot
            mint_account = accounts.value[0]
            if mint_account is None:
                self.reasons.append(f"not_a_mint: no account at {m}")
            else:
                epoch = None
                try:
                    epoch = _ok(epoch_r).value.epoch
                except Exception as e:  # the fee is then taken as the higher of the two
                    self.reasons.append(f"rpc: getEpochInfo failed: {_why(e)}")
                decoded = decode_mint(bytes(mint_account.data), mint_account.owner, epoch=epoch)
        except ValueError as e:
            self.reasons.append(f"not_a_mint: {m}: {_why(e)}")
        except Exception as e:
            self.reasons.append(f"rpc: reading the mint failed: {_why(e)}")
        if decoded is not None:
            self._mint_rules(decoded)

        # The pool: given, or the deepest SOL pool of the mint.
        state: PoolState | None = None
        try:
            if pool is None:
                pool, state = self._find_pool(mint, program, _ok(found[0]))
            else:
                state = self._pool_state(mint, pool, program, _ok(accounts_r).value[1])
        except Exception as e:
            self.reasons.append(f"rpc: reading the pool failed: {_why(e)}")
        if state is not None:
            self._liquidity(state, rent_r)

        self._holders(largest_r, supply_r, state)
        if decoded is not None and state is not None:  # else already refused (not_a_mint, no_pool, rpc)
            self._simulate(mint, decoded, wallet, amount)
        return self.report(mint, pool)

    def _mint_rules(self, mint: Mint) -> None:
        rules = self.rules
        powers: list[str] = []
        if mint.mint_authority is not None:
            powers.append("mint_authority")
            if rules.require_no_mint_authority:
                self.reasons.append(f"mint_authority: {mint.mint_authority} can mint more")
        if mint.freeze_authority is not None:
            powers.append("freeze_authority")
            if rules.require_no_freeze_authority:
                self.reasons.append(
                    f"freeze_authority: {mint.freeze_authority} can freeze the buyer's account"
                )
        fee = mint.extensions.get("transfer_fee")
        if fee is not None and fee.get("authority") is not None:
            powers.append("transfer_fee_authority")
        for name, value in mint.extensions.items():
            powers.append(f"extension:{name}")
            refused = name in rules.refused_extensions or name.startswith("unknown_")
            if name == "default_account_state" and value.get("state") == "frozen":
                refused = refused or "default_frozen" in rules.refused_extensions
                name = "default_frozen"
            if refused:
                self.reasons.append(
                    f"extension:{name}: {_EXTENSION_WHY.get(name, 'not known to this check')}"
                )
        self.fields["owner_powers"] = powers

    def _pool_state(self, mint: Pubkey, pool: Pubkey, program: Pubkey, account: Any) -> PoolState | None:
        if account is None:
            self.reasons.append(f"no_pool: no account at the pool {pool}")
            return None
        if account.owner != program:
            self.reasons.append(
                f"no_pool: {pool} is owned by {account.owner}, not the pools program {program}"
            )
            return None
        try:
            state = PoolState.decode(bytes(account.data))
        except ValueError as e:
            self.reasons.append(f"no_pool: {pool}: {e}")
            return None
        if state.base_mint != mint or state.quote_mint != SOL_MINT:
            self.reasons.append(
                f"no_pool: {pool} trades {state.base_mint}/{state.quote_mint}, not {mint}/SOL"
            )
            return None
        return state

    def _find_pool(self, mint: Pubkey, program: Pubkey, found: Any) -> tuple[Pubkey | None, PoolState | None]:
        pools: list[tuple[Pubkey, PoolState]] = []
        for keyed in found.value:
            try:
                pools.append((keyed.pubkey, PoolState.decode(bytes(keyed.account.data))))
            except ValueError:
                continue  # another layout of the same size: not a pool
        if not pools:
            self.reasons.append(f"no_pool: the pools program {program} has no pool of {mint} against SOL")
            return None, None
        if len(pools) == 1:
            return pools[0]
        balances = _batch(
            self.http,
            self.url,
            [("getBalance", [str(s.quote_vault), self._config()], GetBalanceResp) for _, s in pools],
        )
        depth = [(_ok(b).value, i) for i, b in enumerate(balances)]
        return pools[max(depth)[1]]

    def _liquidity(self, state: PoolState, rent_r: Any) -> None:
        try:
            (balance_r,) = _batch(
                self.http,
                self.url,
                [("getBalance", [str(state.quote_vault), self._config()], GetBalanceResp)],
            )
            reserve = max(_ok(balance_r).value - _ok(rent_r).value, 0)
        except Exception as e:
            self.reasons.append(f"rpc: reading the pool's SOL vault failed: {_why(e)}")
            return
        self.fields["liquidity_quote"] = sol = reserve / LAMPORTS_PER_SOL
        if sol < self.rules.min_liquidity_quote:
            self.reasons.append(
                f"liquidity: {sol:g} SOL in the pool < min {self.rules.min_liquidity_quote:g} SOL"
            )

    def _holders(self, largest_r: Any, supply_r: Any, state: PoolState | None) -> None:
        try:
            largest, supply = _ok(largest_r).value, int(_ok(supply_r).value.amount)
        except Exception as e:
            self.reasons.append(f"rpc: reading the holders failed: {_why(e)}")
            return
        vaults = {state.base_vault} if state is not None else set()
        holders = [(int(a.amount.amount), a.address) for a in largest if a.address not in vaults]
        if supply <= 0:
            self.reasons.append("top_holders: the supply is 0")
            return
        if not holders:
            return
        amount, address = max(holders)
        pct = amount * 100 / supply
        if pct > self.rules.max_top_holder_pct:
            self.reasons.append(
                f"top_holders: {address} holds {pct:.2f} % of the supply (pool vaults excluded) "
                f"> max {self.rules.max_top_holder_pct:g} %"
            )

    def _transfer_fee(self, mint: Mint, epoch_fee_amount: int) -> dict[str, int] | None:
        fee = mint.extensions.get("transfer_fee")
        if fee is None:
            self.fields["transfer_tax_bps"] = 0
            return None
        in_force = {"bps": fee["bps"], "max": fee["max"]}
        charged = _fee_bps(in_force, epoch_fee_amount)
        self.fields["transfer_tax_bps"] = round(charged)
        limit = self.rules.max_transfer_tax_bps
        if charged > limit:
            self.reasons.append(f"transfer_fee: {_pct(charged)} of each transfer > max {_pct(limit)}")
        newer = fee["newer"]
        if (newer["bps"], newer["max"]) != (fee["bps"], fee["max"]):  # a change not yet in force
            scheduled = _fee_bps(newer, epoch_fee_amount)
            if scheduled > limit:
                self.reasons.append(
                    f"transfer_fee: {_pct(scheduled)} from epoch {newer['epoch']} > max {_pct(limit)}"
                )
        return in_force

    def _aggregator(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.http.request(method, f"{self.aggregator}{path}", **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400 or not isinstance(body, dict):
            error = body.get("error", response.text[:200]) if isinstance(body, dict) else response.text[:200]
            raise _RpcError(f"{path} answered {response.status_code}: {error}")
        return body

    def _swap_tx(self, quote: dict[str, Any], wallet: Pubkey) -> str:
        swap = self._aggregator(
            "POST",
            "/swap/v1/swap",
            json={
                "quoteResponse": quote,
                "userPublicKey": str(wallet),
                "wrapAndUnwrapSol": True,
                # No dynamicComputeUnitLimit: the aggregator would simulate the sell before the buy
                # (no tokens yet); simulateBundle runs within the default limit anyway.
            },
        )
        tx = swap.get("swapTransaction")
        if not isinstance(tx, str):
            raise _RpcError("/swap/v1/swap answered no swapTransaction")
        return tx

    def _quote(self, input_mint: Pubkey, output_mint: Pubkey, amount: int) -> dict[str, Any]:
        return self._aggregator(
            "GET",
            "/swap/v1/quote",
            params={
                "inputMint": str(input_mint),
                "outputMint": str(output_mint),
                "amount": str(amount),
                "slippageBps": str(_SIM_SLIPPAGE_BPS),
                "swapMode": "ExactIn",
            },
        )

    def _simulate(self, mint: Pubkey, decoded: Mint, wallet: Pubkey | None, amount: int) -> None:
        """The wallet's buy of ``amount`` lamports, then its sell of what arrives, in one simulated bundle."""
        if wallet is None:
            self._transfer_fee(decoded, 0)
            self.reasons.append(
                "simulation: no wallet to simulate the buy and the sell as: nothing simulated"
            )
            return
        step = "quoting the buy"
        try:
            buy_quote = self._quote(SOL_MINT, mint, amount)
            quoted = int(buy_quote["outAmount"])
            fee = self._transfer_fee(decoded, quoted)
            delivered = quoted - (_fee_of(fee, quoted) if fee else 0)
            if delivered <= 0:
                self.reasons.append(f"buy_failed: the buy of {amount} lamports would deliver no tokens")
                return
            step = "building the buy"
            buy_tx = self._swap_tx(buy_quote, wallet)
            step = "quoting the sell"
            sell_quote = self._quote(mint, SOL_MINT, delivered)
            step = "building the sell"
            sell_tx = self._swap_tx(sell_quote, wallet)
        except Exception as e:
            self.reasons.append(f"simulation: the aggregator failed {step}: {_why(e)}")
            return
        ata = get_associated_token_address(wallet, mint, TOKEN_PROGRAMS[decoded.program])
        watch = {"encoding": "base64", "addresses": [str(ata)]}
        try:
            answer = _post(
                self.http,
                self.url,
                {
                    "jsonrpc": "2.0",
                    "id": 0,
                    "method": "simulateBundle",
                    "params": [
                        {"encodedTransactions": [buy_tx, sell_tx]},
                        {
                            "skipSigVerify": True,
                            "replaceRecentBlockhash": True,
                            "preExecutionAccountsConfigs": [watch, None],
                            "postExecutionAccountsConfigs": [watch, None],
                        },
                    ],
                },
            )
            if "error" in answer:
                raise _RpcError(f"simulateBundle: {answer['error'].get('message', answer['error'])}")
            value = answer["result"]["value"]
            results = value.get("transactionResults") or []
        except Exception as e:
            self.reasons.append(f"simulation: simulateBundle failed: {_why(e)}")
            return
        buy_result = results[0] if results else None
        sell_result = results[1] if len(results) > 1 else None
        if buy_result is None or buy_result.get("err") is not None:
            why = buy_result.get("err") if buy_result else value.get("summary")
            self.reasons.append(f"buy_failed: the wallet's buy failed: {_said(why, buy_result)}")
            return
        received = _token_delta(buy_result)
        if received is not None and quoted > 0:
            self.fields["buy_tax_bps"] = max(0, round((quoted - received) * 10_000 / quoted))
        if sell_result is None or sell_result.get("err") is not None:
            why = sell_result.get("err") if sell_result else value.get("summary")
            self.reasons.append(f"sell_failed: the sell of what was bought failed: {_said(why, sell_result)}")
            return
        self.fields["can_sell"] = True
        self.fields["sell_tax_bps"] = self.fields.get("transfer_tax_bps", 0)


_EXTENSION_WHY: dict[str, str] = {
    "transfer_hook": "a program of the creator's runs on every transfer and can refuse the sell",
    "permanent_delegate": "a permanent delegate can move or burn the buyer's tokens",
    "non_transferable": "the tokens can never be transferred: nothing bought can be sold",
    "default_frozen": "new token accounts start frozen: the buyer's account could not sell",
    "pausable": "the pause authority can stop every transfer",
    "confidential_transfer_mint": "confidential balances cannot be audited",
    "confidential_mint_burn": "confidential minting cannot be audited",
    "mint_close_authority": "the mint can be closed",
    "permissioned_burn": "burning needs the creator's approval",
    "transfer_fee": "every transfer pays a fee",
}


def _account_amount(account: Any) -> int | None:
    """The token amount of a ``simulateBundle`` account (UiAccount, base64 data); None when absent."""
    if not isinstance(account, dict):
        return None
    data = account.get("data")
    raw = data[0] if isinstance(data, list) and data else data
    if not isinstance(raw, str):
        return None
    try:
        return decode_token_account(base64.b64decode(raw)).amount
    except ValueError:
        return None


def _token_delta(result: dict[str, Any]) -> int | None:
    """How many tokens the watched account gained in one simulated transaction (None: not reported)."""
    post = result.get("postExecutionAccounts") or []
    pre = result.get("preExecutionAccounts") or []
    after = _account_amount(post[0]) if post else None
    if after is None:
        return None
    before = _account_amount(pre[0]) if pre else None
    return after - (before or 0)


def _said(error: Any, result: dict[str, Any] | None) -> str:
    """A failure's error and the last program log lines (what the token program said)."""
    logs = [line for line in (result or {}).get("logs") or [] if "failed" in line or "Error" in line]
    text = json.dumps(error) if not isinstance(error, str) else error
    if logs:
        text += f" ({'; '.join(logs[-2:])})"
    return text if len(text) <= 400 else text[:397] + "..."
