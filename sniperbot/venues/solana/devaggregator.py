"""A local swap aggregator shaped like Jupiter's current Swap API, over pools set up in the local chain.

Jupiter's ``/swap/v1`` (the v6 shapes; research ``dex-sniping.md`` §5.5) on 127.0.0.1 for tests and
benches: ``GET /swap/v1/quote`` and ``POST /swap/v1/swap``, the same request fields, the same response
fields (amounts as decimal strings), errors as 4xx ``{"error": ..., "errorCode": ...}`` naming what was
wrong. The bot's code path (quote, swap transaction, sign, simulate, send, confirm) is the production one;
only the pools are local.

**Pools.** No registry ships a compiled AMM program, so a local pool (:meth:`LocalAggregator.create_pool`)
is a :class:`~sniperbot.venues.solana.layouts.PoolState` account owned by
:data:`~sniperbot.venues.solana.layouts.LOCAL_AMM_PROGRAM` (written with ``set_account``: no program
runs, but watchers see it), a base vault (the token account of the pool's ``authority``) and a quote vault
(a system account holding lamports). The aggregator holds both keypairs: a swap transaction moves tokens
through the REAL token program (``transfer_checked``; Token-2022 extensions such as a transfer hook or a
transfer fee act on it) and SOL through the system program, and arrives partially signed by the pool.

**Quotes.** Constant product with ``fee_bps`` of the input (30: 0.3 %, as
:data:`sniperbot.venues.dex.pool.FEE`), Uniswap V2's integer rounding: ExactIn
``out = in*(1-fee)*R_out // (R_in + in*(1-fee))``, ExactOut the smallest ``in`` that gives at least
``out``. ``otherAmountThreshold`` is the minimum out (ExactIn) or the maximum in (ExactOut) after
``slippageBps``. Reserves are read through the chain's JSON-RPC at each request (base vault's token
amount; quote vault's lamports minus the rent exemption of an empty account). The best of the mint's pools
is chosen (a single-hop route; ``percent`` 100).

**Swap transactions.** ``POST /swap/v1/swap`` re-prices the passed-back quote against the current
reserves, and refuses (``SLIPPAGE_EXCEEDED``) if they moved beyond the quote's threshold: with no program
on chain to enforce a minimum out, the check happens here, and the transaction moves exactly the re-priced
amounts (the quoted ones when nothing moved). The v0 transaction, fee payer = ``userPublicKey``:
compute-unit limit and price; for a buy, the user's associated token account created idempotently, a
system transfer user -> quote vault and ``transfer_checked`` base vault -> user (the authority signs); for
a sell, ``transfer_checked`` user -> base vault and a system transfer quote vault -> user (the quote vault
signs); with ``prioritizationFeeLamports = {"jitoTipLamports": n}`` a system transfer user -> one of the
Jito tip accounts **in the same transaction** (research §4.5: a separate tip transaction can land without
the swap). Decision: unlike Jupiter, ``computeUnitPriceMicroLamports`` may be combined with a Jito tip (a
sniper pays both: the priority fee counts for non-Jito leaders). ``prioritizationFeeLamports`` as an
integer is a total priority fee, turned into a price over the limit. ``dynamicComputeUnitLimit``
simulates the transaction (``sigVerify`` off) and sets the limit to the units consumed + 20 %; else the
limit is Jupiter's 1,400,000. Only native SOL is supported (``wrapAndUnwrapSol`` false is refused: the
pools hold lamports, not wrapped SOL). The signature slot of the user (index 0) is left empty for the bot.
"""

from __future__ import annotations

import asyncio
import base64
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solders.account import Account
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from spl.token.instructions import (
    create_idempotent_associated_token_account,
    get_associated_token_address,
    transfer_checked,
)
from spl.token.models import TransferCheckedParams

from sniperbot.venues.solana.jito import TIP_ACCOUNTS
from sniperbot.venues.solana.layouts import (
    LOCAL_AMM_PROGRAM,
    POOL_STATE_SIZE,
    SOL_MINT,
    PoolState,
    decode_mint,
)

#: Jupiter's compute-unit limit when ``dynamicComputeUnitLimit`` is off (``swap.yaml``).
DEFAULT_COMPUTE_UNIT_LIMIT = 1_400_000
#: The pools' fee on the input, in basis points (0.3 %: :data:`sniperbot.venues.dex.pool.FEE`).
POOL_FEE_BPS = 30
LABEL = "sniperbot-local-amm"
_MAX_U64 = 2**64 - 1


class AggregatorError(Exception):
    """A refused request: HTTP ``status``, a Jupiter-style ``code``, a message naming the field."""

    def __init__(self, message: str, code: str = "INVALID_REQUEST", status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass
class LocalPool:
    """A pool this aggregator created, with the keys it holds."""

    address: Pubkey
    state: PoolState
    authority: Keypair  # owns the base vault
    quote_vault: Keypair  # the lamports' account
    token_program: Pubkey
    decimals: int


def amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int) -> int:
    """Constant product, fee on the input, rounded down (Uniswap V2's ``getAmountOut``)."""
    if amount_in <= 0 or reserve_in <= 0 or reserve_out <= 0:
        return 0
    net = amount_in * (10_000 - fee_bps)
    return net * reserve_out // (reserve_in * 10_000 + net)


def amount_in(amount_out_: int, reserve_in: int, reserve_out: int, fee_bps: int) -> int | None:
    """The smallest input that gives at least ``amount_out_`` (Uniswap V2's ``getAmountIn``); None if the
    pool does not hold that much."""
    if amount_out_ <= 0 or reserve_in <= 0 or amount_out_ >= reserve_out:
        return None
    return reserve_in * amount_out_ * 10_000 // ((reserve_out - amount_out_) * (10_000 - fee_bps)) + 1


def _pubkey(value: Any, field: str) -> Pubkey:
    if not isinstance(value, str):
        raise AggregatorError(f"{field} must be a base58 public key")
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise AggregatorError(f"{field} = {value[:60]!r} is not a base58 public key") from None


def _u64(value: Any, field: str, *, positive: bool = True) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise AggregatorError(f"{field} = {str(value)[:40]!r} is not an integer") from None
    if n < (1 if positive else 0) or n > _MAX_U64:
        raise AggregatorError(f"{field} = {n} is out of range ({'1' if positive else '0'}..2^64-1)")
    return n


class LocalAggregator:
    """Jupiter's Swap API over the local chain's pools, on 127.0.0.1 (port 0); see the module docstring."""

    def __init__(self, chain: Any) -> None:
        self.chain = chain  # a LocalSolana: rpc_url, airdrop, set_account, slot
        self.pools: dict[Pubkey, LocalPool] = {}
        self.port = 0
        self._lock = threading.Lock()  # pools (test thread and server thread)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="aggregator", daemon=True)
        self._runner: web.AppRunner | None = None
        self._rpc: AsyncClient | None = None

    # ---- lifecycle
    @property
    def url(self) -> str:
        """The API's base URL (``/swap/v1/...`` below it)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalAggregator:
        """Serve on an ephemeral port of 127.0.0.1 (a thread of its own)."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._rpc = AsyncClient(self.chain.rpc_url, commitment=Confirmed, timeout=10)
        app = web.Application()
        app.add_routes([web.get("/swap/v1/quote", self._quote), web.post("/swap/v1/swap", self._swap)])
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        """Stop serving and join the thread (idempotent)."""
        if not self._thread.is_alive():
            return

        async def close() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            if self._rpc is not None:
                await self._rpc.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> LocalAggregator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- pools (test thread)
    def create_pool(self, base_mint: Pubkey, base_amount: int, sol_lamports: int) -> Pubkey:
        """A new pool of ``base_amount`` raw tokens and ``sol_lamports``; its address (the pool account).

        The base vault is the authority's associated token account, minted into; the quote vault is
        funded with ``sol_lamports`` above its rent exemption; the pool account is written last (one
        ``set_account``, so a watcher of the program sees a pool whose vaults are already funded).
        """
        from sniperbot.venues.solana import devtokens  # the token helpers of tests and benches

        if base_amount <= 0 or sol_lamports <= 0:
            raise ValueError(
                f"create_pool: base_amount={base_amount} and sol_lamports={sol_lamports} must be > 0"
            )
        mint_account = self.chain.account(base_mint)
        if mint_account is None:
            raise ValueError(f"create_pool: mint {base_mint} does not exist")
        mint = decode_mint(bytes(mint_account.data), mint_account.owner)
        authority, quote_vault, pool = Keypair(), Keypair(), Keypair()
        base_vault = devtokens.mint_to(self.chain, base_mint, authority.pubkey(), base_amount)
        self.chain.airdrop(quote_vault.pubkey(), sol_lamports + self._rent(0))
        state = PoolState(
            base_mint=base_mint,
            quote_mint=SOL_MINT,
            base_vault=base_vault,
            quote_vault=quote_vault.pubkey(),
            authority=authority.pubkey(),
            fee_bps=POOL_FEE_BPS,
            created_slot=int(self.chain.slot()),
        )
        with self._lock:
            self.pools[pool.pubkey()] = LocalPool(
                pool.pubkey(), state, authority, quote_vault, mint_account.owner, mint.decimals
            )
        data = state.encode()
        assert len(data) == POOL_STATE_SIZE
        self.chain.set_account(
            pool.pubkey(),
            Account(lamports=self._rent(len(data)), data=data, owner=LOCAL_AMM_PROGRAM, executable=False),
        )
        return pool.pubkey()

    def _rent(self, size: int) -> int:
        with self.chain.lock:
            return int(self.chain.svm.minimum_balance_for_rent_exemption(size))

    # ---- HTTP
    async def _quote(self, request: web.Request) -> web.Response:
        try:
            q = request.query
            body = await self._price(
                _pubkey(q.get("inputMint"), "inputMint"),
                _pubkey(q.get("outputMint"), "outputMint"),
                _u64(q.get("amount"), "amount"),
                _u64(q.get("slippageBps", "50"), "slippageBps", positive=False),
                q.get("swapMode", "ExactIn"),
            )
        except AggregatorError as e:
            return _refuse(e)
        return web.json_response(body)

    async def _swap(self, request: web.Request) -> web.Response:
        try:
            try:
                req = await request.json()
            except ValueError:
                raise AggregatorError("the body is not JSON") from None
            if not isinstance(req, dict):
                raise AggregatorError("the body must be a JSON object")
            body = await self._build(req)
        except AggregatorError as e:
            return _refuse(e)
        return web.json_response(body)

    # ---- pricing
    async def _reserves(self, pools: list[LocalPool]) -> list[tuple[int, int]]:
        """(base reserve, quote reserve) of each pool, read from the chain."""
        assert self._rpc is not None
        keys = [k for p in pools for k in (p.state.base_vault, p.state.quote_vault)]
        resp = await self._rpc.get_multiple_accounts(keys)
        rent = self._rent(0)
        out = []
        for i in range(len(pools)):
            base, quote = resp.value[2 * i], resp.value[2 * i + 1]
            base_amount = int.from_bytes(bytes(base.data)[64:72], "little") if base is not None else 0
            quote_amount = max(0, quote.lamports - rent) if quote is not None else 0
            out.append((base_amount, quote_amount))
        return out

    async def _price(
        self, input_mint: Pubkey, output_mint: Pubkey, amount: int, slippage_bps: int, mode: str
    ) -> dict[str, Any]:
        """The best single-pool quote, as Jupiter's quote response."""
        started = time.perf_counter()
        if mode not in ("ExactIn", "ExactOut"):
            raise AggregatorError(f"swapMode = {mode[:20]!r} (ExactIn or ExactOut)")
        if slippage_bps > 10_000:
            raise AggregatorError(f"slippageBps = {slippage_bps} is above 10000")
        if input_mint == output_mint:
            raise AggregatorError("inputMint and outputMint are the same", "CIRCULAR_ARBITRAGE_IS_DISABLED")
        if SOL_MINT not in (input_mint, output_mint):
            raise AggregatorError("no route: every local pool is <mint>/SOL", "COULD_NOT_FIND_ANY_ROUTE")
        buy = input_mint == SOL_MINT
        base_mint = output_mint if buy else input_mint
        with self._lock:
            pools = [p for p in self.pools.values() if p.state.base_mint == base_mint]
        if not pools:
            raise AggregatorError(f"no route: no pool for mint {base_mint}", "COULD_NOT_FIND_ANY_ROUTE")
        best: tuple[int, int, LocalPool, int, int] | None = None
        for pool, (b, q) in zip(pools, await self._reserves(pools), strict=True):
            r_in, r_out = (q, b) if buy else (b, q)
            fee = pool.state.fee_bps
            if mode == "ExactIn":
                got_in, got_out = amount, amount_out(amount, r_in, r_out, fee)
                better = best is None or got_out > best[1]
                ok = got_out > 0
            else:
                need = amount_in(amount, r_in, r_out, fee)
                got_in, got_out = (need or 0), amount
                better = best is None or (need is not None and need < best[0])
                ok = need is not None and need <= _MAX_U64
            if ok and better:
                best = (got_in, got_out, pool, r_in, r_out)
        if best is None:
            raise AggregatorError(
                f"no route: not enough liquidity for {amount} ({mode})", "COULD_NOT_FIND_ANY_ROUTE"
            )
        got_in, got_out, pool, r_in, r_out = best
        if mode == "ExactIn":
            threshold = got_out * (10_000 - slippage_bps) // 10_000
        else:
            threshold = got_in * (10_000 + slippage_bps) // 10_000
        fee_amount = math.ceil(got_in * pool.state.fee_bps / 10_000)
        spot_out = got_in * r_out / r_in if r_in else 0.0
        impact = max(0.0, 1 - got_out / spot_out) if spot_out else 0.0
        return {
            "inputMint": str(input_mint),
            "inAmount": str(got_in),
            "outputMint": str(output_mint),
            "outAmount": str(got_out),
            "otherAmountThreshold": str(threshold),
            "swapMode": mode,
            "slippageBps": slippage_bps,
            "platformFee": None,
            "priceImpactPct": f"{impact:.12f}",
            "routePlan": [
                {
                    "swapInfo": {
                        "ammKey": str(pool.address),
                        "label": LABEL,
                        "inputMint": str(input_mint),
                        "outputMint": str(output_mint),
                        "inAmount": str(got_in),
                        "outAmount": str(got_out),
                        "feeAmount": str(fee_amount),
                        "feeMint": str(input_mint),
                    },
                    "percent": 100,
                }
            ],
            "contextSlot": int(self.chain.slot()),
            "timeTaken": time.perf_counter() - started,
        }

    # ---- swap transactions
    async def _build(self, req: dict[str, Any]) -> dict[str, Any]:
        quote = req.get("quoteResponse")
        if not isinstance(quote, dict):
            raise AggregatorError("quoteResponse is missing (pass the quote back unchanged)")
        user = _pubkey(req.get("userPublicKey"), "userPublicKey")
        if req.get("wrapAndUnwrapSol", True) is not True:
            raise AggregatorError("wrapAndUnwrapSol = false is not supported (the pools hold native SOL)")
        input_mint = _pubkey(quote.get("inputMint"), "quoteResponse.inputMint")
        output_mint = _pubkey(quote.get("outputMint"), "quoteResponse.outputMint")
        mode = quote.get("swapMode")
        if mode not in ("ExactIn", "ExactOut"):
            raise AggregatorError(f"quoteResponse.swapMode = {str(mode)[:20]!r} (ExactIn or ExactOut)")
        quoted_in = _u64(quote.get("inAmount"), "quoteResponse.inAmount")
        quoted_out = _u64(quote.get("outAmount"), "quoteResponse.outAmount")
        threshold = _u64(
            quote.get("otherAmountThreshold"), "quoteResponse.otherAmountThreshold", positive=False
        )
        plan = quote.get("routePlan")
        try:
            amm = _pubkey(plan[0]["swapInfo"]["ammKey"], "quoteResponse.routePlan[0].swapInfo.ammKey")
        except (TypeError, KeyError, IndexError):
            raise AggregatorError("quoteResponse.routePlan[0].swapInfo.ammKey is missing") from None
        with self._lock:
            pool = self.pools.get(amm)
        if pool is None:
            raise AggregatorError(f"quoteResponse.routePlan: unknown pool {amm}", "COULD_NOT_FIND_ANY_ROUTE")
        buy = input_mint == SOL_MINT
        if {input_mint, output_mint} != {SOL_MINT, pool.state.base_mint}:
            raise AggregatorError("quoteResponse: the mints are not the pool's", "COULD_NOT_FIND_ANY_ROUTE")
        tip = 0
        cu_price = req.get("computeUnitPriceMicroLamports")
        cu_price = 0 if cu_price is None else _u64(cu_price, "computeUnitPriceMicroLamports", positive=False)
        prio = req.get("prioritizationFeeLamports")
        total_prio: int | None = None
        if isinstance(prio, dict):
            if set(prio) != {"jitoTipLamports"}:
                raise AggregatorError(
                    f"prioritizationFeeLamports: {sorted(prio)} (only jitoTipLamports is served locally)"
                )
            tip = _u64(prio["jitoTipLamports"], "prioritizationFeeLamports.jitoTipLamports")
        elif prio is not None and prio != "auto":
            total_prio = _u64(prio, "prioritizationFeeLamports", positive=False)

        # Re-price against the reserves now: no program on chain enforces the slippage bound.
        ((b, q),) = await self._reserves([pool])
        r_in, r_out = (q, b) if buy else (b, q)
        if mode == "ExactIn":
            pay, get = quoted_in, amount_out(quoted_in, r_in, r_out, pool.state.fee_bps)
            moved = get < threshold
        else:
            need = amount_in(quoted_out, r_in, r_out, pool.state.fee_bps)
            pay, get = (need or 0), quoted_out
            moved = need is None or need > threshold
        if moved or pay <= 0 or get <= 0:
            raise AggregatorError(
                f"the pool moved past the quote's otherAmountThreshold ({threshold})", "SLIPPAGE_EXCEEDED"
            )

        swap_ixs = self._swap_instructions(pool, user, buy, pay, get)
        if tip:
            tip_account = random.choice(TIP_ACCOUNTS)  # spread over the 8 accounts (Jito's advice)
            swap_ixs.append(transfer(TransferParams(from_pubkey=user, to_pubkey=tip_account, lamports=tip)))
        assert self._rpc is not None
        latest = (await self._rpc.get_latest_blockhash(Confirmed)).value
        limit = DEFAULT_COMPUTE_UNIT_LIMIT
        simulation_error: Any = None
        if req.get("dynamicComputeUnitLimit") is True:
            probe = self._transaction(pool, user, [set_compute_unit_limit(DEFAULT_COMPUTE_UNIT_LIMIT),
                                                   *swap_ixs], latest.blockhash, sign=False)  # fmt: skip
            try:
                sim = (await self._rpc.simulate_transaction(probe, sig_verify=False)).value
            except Exception as e:  # the RPC's failure: Jupiter's default limit, the error reported
                simulation_error = {"error": f"simulation unavailable: {type(e).__name__}"}
            else:
                if sim.err is None and sim.units_consumed:
                    limit = min(DEFAULT_COMPUTE_UNIT_LIMIT, int(sim.units_consumed * 1.2) + 1_000)
                else:
                    simulation_error = {"error": str(sim.err)[:200]}
        if total_prio is not None:
            cu_price = total_prio * 1_000_000 // limit
        budget = [set_compute_unit_limit(limit)]
        if cu_price:
            budget.append(set_compute_unit_price(cu_price))
        tx = self._transaction(pool, user, [*budget, *swap_ixs], latest.blockhash, sign=True)
        return {
            "swapTransaction": base64.b64encode(bytes(tx)).decode(),
            "lastValidBlockHeight": int(latest.last_valid_block_height),
            "prioritizationFeeLamports": tip + cu_price * limit // 1_000_000,
            "computeUnitLimit": limit,
            "prioritizationType": {"jito": {"lamports": tip}} if tip else {"computeBudget": {
                "microLamports": cu_price}},
            "simulationError": simulation_error,
        }  # fmt: skip

    def _swap_instructions(
        self, pool: LocalPool, user: Pubkey, buy: bool, pay: int, get: int
    ) -> list[Instruction]:
        st = pool.state
        user_ata = get_associated_token_address(user, st.base_mint, pool.token_program)

        def tokens(source: Pubkey, dest: Pubkey, owner: Pubkey, amount: int) -> Instruction:
            return transfer_checked(
                TransferCheckedParams(
                    program_id=pool.token_program, source=source, mint=st.base_mint, dest=dest,
                    owner=owner, amount=amount, decimals=pool.decimals,
                )
            )  # fmt: skip

        if buy:
            return [
                create_idempotent_associated_token_account(user, user, st.base_mint, pool.token_program),
                transfer(TransferParams(from_pubkey=user, to_pubkey=st.quote_vault, lamports=pay)),
                tokens(st.base_vault, user_ata, st.authority, get),
            ]
        return [
            tokens(user_ata, st.base_vault, user, pay),
            transfer(TransferParams(from_pubkey=st.quote_vault, to_pubkey=user, lamports=get)),
        ]

    def _transaction(
        self, pool: LocalPool, user: Pubkey, ixs: list[Instruction], blockhash: Hash, *, sign: bool
    ) -> VersionedTransaction:
        """The v0 transaction, fee payer ``user``; the pool's keys sign theirs if ``sign``, the user's slot
        (index 0) and any other stays empty."""
        message = MessageV0.try_compile(user, ixs, [], blockhash)
        keys = {pool.authority.pubkey(): pool.authority, pool.quote_vault.pubkey(): pool.quote_vault}
        n = message.header.num_required_signatures
        payload = to_bytes_versioned(message)
        sigs = []
        for key in message.account_keys[:n]:
            kp = keys.get(key) if sign else None
            sigs.append(kp.sign_message(payload) if kp is not None else Signature.default())
        return VersionedTransaction.populate(message, sigs)


def _refuse(e: AggregatorError) -> web.Response:
    return web.json_response({"error": str(e), "errorCode": e.code}, status=e.status)
