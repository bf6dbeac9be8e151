"""Swaps per second through the EVM executor: market orders in -> fills journaled, on anvil (automine).

* **ours**: the generic executor (``sniperbot.execution.executor:Executor``) in front of the live
  ``EvmGateway`` (route public, ``confirmations = 0``), each an actor incarnation in a thread of this
  process on one run dir (the ``Actors`` harness of the gateway tests: real ZeroMQ inboxes, real LMDB
  journal and the gateway's own ledger), fed by a driver with the risk guard's id. M market orders
  (alternating buy and sell of 10 TKN in a 1,000,000 TKN / 100 ETH pool) are queued at once, as fast as
  the executor takes them; measured from the first order queued to the M-th fill in the journal. Each
  swap: the executor journals the order, the gateway ledgers the intent, prices it from the pool, signs,
  sends, reads the receipt (anvil mines one block per transaction) and reports; the executor journals
  the fill. A buy of 10,000 TKN and a sell (which adds the router's allowance) come first, not timed.
* **floor, same run, same chain**: the same number of swaps of the same sizes sent by web3 directly from
  another funded account, one after another: build (fields given: no estimate), sign,
  ``eth_sendRawTransaction``, wait for the receipt (polled every 5 ms).

Printed: swaps/s of both, the ratio ours / floor, and ours' order -> fill latency.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # bench.*; PYTHONPATH wins for sniperbot

from eth_account import Account

from bench._common import emit, fmt_latency, latency_ms, parse_args, ratio, short_tmp, wait_for

SIZE = 10.0  # TKN per swap
FLOOR_KEY = 2  # the floor's account (the gateway's wallet is key 1)


def run_floor(chain: Any, count: int) -> dict[str, Any]:
    """``count`` swaps signed and sent by web3 directly, each waited for."""
    from sniperbot.venues.evm.devchain import ANVIL_KEYS, erc20, router_contract, send_tx

    w3, uni = chain.anvil.w3, chain.uni
    key = ANVIL_KEYS[FLOOR_KEY]
    me = Account.from_key(key).address
    router = router_contract(w3, uni)
    send_tx(
        w3, key, erc20(w3, chain.token).functions.approve(uni.router, 2**255).build_transaction({"from": me})
    )
    deadline = w3.eth.get_block("latest")["timestamp"] + 3600
    amount = int(SIZE * 1e18)
    price = router.functions.getAmountsIn(amount, [uni.weth, chain.token]).call()[0]
    fees = {"maxPriorityFeePerGas": 10**9, "maxFeePerGas": 300 * 10**9, "chainId": 31337, "gas": 250_000}
    nonce = w3.eth.get_transaction_count(me)
    # the first swap is a buy: the account holds no TKN before
    start = time.perf_counter()
    for i in range(count):
        if i % 2 == 0:
            call = router.functions.swapETHForExactTokens(amount, [uni.weth, chain.token], me, deadline)
            tx = call.build_transaction({"from": me, "value": price * 2, "nonce": nonce, **fees})
        else:
            call = router.functions.swapExactTokensForETH(amount, 0, [chain.token, uni.weth], me, deadline)
            tx = call.build_transaction({"from": me, "value": 0, "nonce": nonce, **fees})
        raw = Account.sign_transaction(tx, key).raw_transaction
        h = w3.eth.send_raw_transaction(raw)
        receipt = w3.eth.wait_for_transaction_receipt(h, timeout=60, poll_latency=0.005)
        if receipt["status"] != 1:
            raise RuntimeError(f"floor swap {i} reverted")
        nonce += 1
    elapsed = time.perf_counter() - start
    return {"swaps": count, "seconds": round(elapsed, 3), "per_s": round(count / elapsed, 1)}


def run_ours(work: Path, chain: Any, count: int) -> dict[str, Any]:
    """``count`` market orders through the executor and the gateway; fills journaled per second."""
    from sniperbot.actors.runtime import close_process_journals
    from tests.evm import test_evm_gateway as gw  # the gateway tests' harness (actors in threads)
    from tests.venues_ccxt.test_gateway import _HEARD, _OUTGOING, Actors

    actors = Actors(work / "run")

    def filled() -> int:
        return len(gw.journal(actors.run_dir).fills())

    try:
        gw.start_all(actors, chain, confirmations=0)
        # Not timed: the wallet's first TKN and the router's allowance (the first sell approves).
        gw.submit(gw.order("w-1", "buy", 1000 * SIZE))
        wait_for(lambda: filled() >= 1, 120, "warm-up buy filled")
        gw.submit(gw.order("w-2", "sell", SIZE))
        wait_for(lambda: filled() >= 2, 120, "warm-up sell filled")
        orders = [gw.order(f"s1-b-{i}", "buy" if i % 2 == 0 else "sell", SIZE) for i in range(count)]
        start = time.perf_counter()
        for o in orders:
            gw.submit(o)
        wait_for(lambda: filled() >= 2 + count, 60 + count, f"{count} fills journaled", interval_s=0.05)
        elapsed = time.perf_counter() - start
        fills = {f.client_order_id: f for f in gw.journal(actors.run_dir).fills()}
        latency = [fills[o.client_order_id].ts_ns - o.ts_ns for o in orders if o.client_order_id in fills]
    finally:
        actors.stop_all()
        close_process_journals()
        _OUTGOING.clear()
        _HEARD.clear()
    return {
        "swaps": count,
        "seconds": round(elapsed, 3),
        "per_s": round(count / elapsed, 1),
        "order_to_fill_ms": latency_ms(latency),
    }


def main() -> int:
    """Floor, then ours, on one chain; print; emit JSON."""
    from sniperbot.venues.evm.devchain import Anvil, deploy_uniswap
    from tests.evm.test_evm_gateway import make_chain

    def options(parser: Any) -> None:
        parser.add_argument("--count", type=int, default=0, help="swaps (default 200, quick 40)")

    args = parse_args((__doc__ or "").splitlines()[0], options)
    count = args.count or (40 if args.quick else 200)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"swaps per second: {count} alternating buys and sells of {SIZE:g} TKN; load {' '.join(load)}")
    with short_tmp("sb-swp-") as work, Anvil() as anvil:
        chain = make_chain(anvil, deploy_uniswap(anvil.w3))
        floor = run_floor(chain, count)
        ours = run_ours(work, chain, count)
    print(f"  floor: web3 sign + send + receipt, one at a time   {floor['per_s']:>8.1f} swaps/s")
    print(f"  ours: orders -> fills journaled (executor+gateway) {ours['per_s']:>8.1f} swaps/s")
    print(fmt_latency("  ours: order -> fill journaled", ours["order_to_fill_ms"], "ms"))
    r = ratio(ours["per_s"], floor["per_s"])
    print(f"  ratio ours / floor: {r}")
    emit("evm_swaps", {"count": count, "load": load, "ours": ours, "floor": floor, "ratio": r})
    return 0


if __name__ == "__main__":
    sys.exit(main())
