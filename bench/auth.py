"""Cost of authenticating authority messages (issue #8, point 6): tag on send, check on receive.

An authority message (an Order here) is encoded plain (the floor: what every message costs
without authentication) and with its keyed BLAKE2b tag (:class:`sniperbot.transport.auth.Signer`),
then decoded plain and decoded + checked (:class:`sniperbot.transport.auth.Verifier`). The
difference is what the trust boundary adds per authority hop; a quote (no authority) goes
through the Signer too, to show that market data pays only a dict lookup. The end-to-end
effect is in ``bench/tick_to_trade.py`` (run it before and after to compare).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

sys.path.append(str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from bench._common import emit, parse_args, ratio
from sniperbot.messages import Envelope, Order, Quote, decode_envelope, encode_envelope
from sniperbot.transport.auth import SECRET_SIZE, Signer, Verifier


def _per_call_us(n: int, work: Callable[[], object], repeats: int = 5) -> float:
    """Best-of-``repeats`` mean time per call in µs (the least disturbed run)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            work()
        best = min(best, (time.perf_counter_ns() - t0) / n / 1000)
    return best


def main() -> None:
    """Print per-message costs and the ratio to the plain codec."""
    args = parse_args(__doc__.splitlines()[0])
    n = 20_000 if args.quick else 200_000
    secret = bytes(range(SECRET_SIZE))
    order = Order(
        client_order_id="fast_btc-t5kq2a-17",
        intent_id="fast_btc-t5kq2a-17",
        strategy_id="fast_btc",
        venue="sim",
        symbol="BTC/USDT",
        side="buy",
        quantity=0.01,
        order_type="market",
        ts_ns=time.time_ns(),
    )
    quote = Quote(venue="sim", symbol="BTC/USDT", bid=100.0, ask=100.1, bid_size=1.0, ask_size=1.0, ts_ns=1)
    env = Envelope("to.executor.sim", "risk_guard", 3, 42, time.time_ns(), order)
    quote_env = Envelope("md.sim.quote.BTC/USDT.", "feed.sim", 1, 42, time.time_ns(), quote)
    signer = Signer(secret, "risk_guard")
    verifier = Verifier(secret, "executor.sim")
    plain = encode_envelope(env)
    tagged = signer.encode(env)
    decoded = decode_envelope(tagged)
    assert verifier.check(tagged, decoded) is None, "the benchmark's own message must verify"

    figures = {
        "encode_plain_us": _per_call_us(n, lambda: encode_envelope(env)),
        "encode_tagged_us": _per_call_us(n, lambda: signer.encode(env)),
        "encode_quote_via_signer_us": _per_call_us(n, lambda: signer.encode(quote_env)),
        "encode_quote_plain_us": _per_call_us(n, lambda: encode_envelope(quote_env)),
        "decode_plain_us": _per_call_us(n, lambda: decode_envelope(plain)),
        "decode_and_check_us": _per_call_us(n, lambda: verifier.check(tagged, decode_envelope(tagged))),
    }
    send_added = figures["encode_tagged_us"] - figures["encode_plain_us"]
    recv_added = figures["decode_and_check_us"] - figures["decode_plain_us"]
    print(f"authority message (Order, {len(plain)} B plain, {len(tagged)} B tagged), {n} calls, best of 5:")
    for name, value in figures.items():
        print(f"  {name:<30} {value:7.3f} µs")
    print(f"  added per authority hop: send +{send_added:.2f} µs, receive +{recv_added:.2f} µs")
    figures.update(
        added_send_us=round(send_added, 3),
        added_receive_us=round(recv_added, 3),
        ratio_send=ratio(figures["encode_tagged_us"], figures["encode_plain_us"]),
        ratio_receive=ratio(figures["decode_and_check_us"], figures["decode_plain_us"]),
        ratio_quote=ratio(figures["encode_quote_via_signer_us"], figures["encode_quote_plain_us"]),
        calls=n,
    )
    emit("auth", {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()})


if __name__ == "__main__":
    main()
