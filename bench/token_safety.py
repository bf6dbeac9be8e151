"""Time of the token safety check (``sniperbot.venues.evm.safety.check_token``) on anvil, per token.

One check = the reads (code, pair, reserves, LP holders, proxy slots, limit getters), the one
``eth_call`` that buys, transfers and sells through the probe in the next block, and the wallet's own
buy and sell (``eth_simulateV1``): three JSON-RPC round trips. Measured on a local anvil with the real
Uniswap V2, against a plain token (verdict buy) and a honeypot (verdict refuse, no wallet pass needed);
over a remote RPC add three round-trip times.

Floor, in the same run: one bare ``eth_call`` round trip to the same anvil (the pair's ``getReserves``):
the ratio says how many round trips' worth the whole check costs.
"""

from __future__ import annotations

import sys
import time

sys.path.append(str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from eth_account import Account

from bench._common import emit, fmt_latency, latency_ms, parse_args
from sniperbot.venues.evm.devchain import ANVIL_KEYS, Anvil, deploy_uniswap, factory_contract, pair_contract
from sniperbot.venues.evm.safety import check_token
from tests.evm.tokens import launch

WALLET = Account.from_key(ANVIL_KEYS[1]).address  # the sniper's case: the check simulates its wallet too


def launched_pair(w3: object, uni: object, token: str) -> str:
    """The token's WETH pair."""
    return factory_contract(w3, uni).functions.getPair(token, uni.weth).call()  # type: ignore[arg-type,attr-defined]


def main() -> None:
    args = parse_args(__doc__ or "")
    runs = 20 if args.quick else 200
    figures: dict[str, object] = {"runs": runs}
    with Anvil() as anvil:
        w3 = anvil.w3
        uni = deploy_uniswap(w3)
        for name, verdict in (("PlainToken", "buy"), ("Honeypot", "refuse")):
            token = launch(w3, uni, name).token
            samples: list[int] = []
            for _ in range(runs):
                start = time.perf_counter_ns()
                report = check_token(w3, uni.router, uni.factory, uni.weth, token, wallet=WALLET)
                samples.append(time.perf_counter_ns() - start)
                assert report.verdict == verdict, report.reasons
            stats = latency_ms(samples)
            print(fmt_latency(f"check_token {name} ({verdict})", stats, "ms"))
            figures[f"check_ms_{name}"] = stats
            if name == "PlainToken":
                pair = pair_contract(w3, launched_pair(w3, uni, token))
                floor: list[int] = []
                for _ in range(runs):
                    start = time.perf_counter_ns()
                    pair.functions.getReserves().call()
                    floor.append(time.perf_counter_ns() - start)
                bare = latency_ms(floor)
                print(fmt_latency("floor: one bare eth_call", bare, "ms"))
                figures["floor_ms"] = bare
                figures["ratio_p50_to_floor"] = round(stats["p50"] / bare["p50"], 1)
                print(f"  check / bare eth_call (p50)  {figures['ratio_p50_to_floor']}x")
    emit("token_safety", figures)


if __name__ == "__main__":
    main()
