#!/usr/bin/env python3
"""Momentum plug-in for sniperbot (standard library only): reads quotes, writes a momentum signal per asset.

For every symbol it hears quotes of, it keeps the mid prices of the last ``--window-s`` seconds; on
each tick it writes, per symbol, the relative change of the mid over that window::

    {"subject": "BTC", "kind": "momentum", "value": 0.0012, "confidence": 0.9, "window_s": 60,
     "count": 240, "ts_ns": ..., "origin": "md.sim.quote.BTC/USDT."}

(``value`` 0.0012 = +0.12 %), and ``{"t": "hb"}`` when it has nothing to say, so the node knows it is
alive. Config::

    [[analysers]]
    kind = "plugin"
    id = "momentum"
    command = ["python3", "examples/plugins/momentum.py", "--window-s", "60"]
    inputs = ["md.sim.quote."]

The protocol is described in README.md beside this file.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys


def subject_of(symbol: str) -> str:
    """``BTC/USDT:USDT`` -> ``BTC`` (the node's own rule, sniperbot.messages.signals.subject_of)."""
    return symbol.split("/", 1)[0].split(":", 1)[0].upper()


def main() -> None:
    """Read JSON lines on stdin until EOF; write signals on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window-s", type=float, default=60.0, help="the period momentum is measured over")
    parser.add_argument("--min-count", type=int, default=10, help="quotes needed for full confidence")
    args = parser.parse_args()
    window_ns = int(args.window_s * 1e9)
    mids: dict[str, collections.deque[tuple[int, float]]] = {}
    topics: dict[str, str] = {}

    def write(obj: dict[str, object]) -> None:
        # One line per object, flushed at once: the node reads lines, and a buffered line is a silent one.
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    for line in sys.stdin:
        try:
            event = json.loads(line)
        except ValueError:
            print(f"momentum: unreadable input line ({len(line)} bytes)", file=sys.stderr)
            continue
        if event.get("t") == "tick":
            now = event["ts_ns"]
            said = False
            for symbol, history in mids.items():
                while history and history[0][0] < now - window_ns:
                    history.popleft()
                if len(history) < 2 or history[0][1] <= 0:
                    continue
                write(
                    {
                        "subject": subject_of(symbol),
                        "kind": "momentum",
                        "value": history[-1][1] / history[0][1] - 1.0,
                        "confidence": min(1.0, len(history) / args.min_count),
                        "window_s": args.window_s,
                        "count": len(history),
                        "ts_ns": now,
                        "origin": topics[symbol],
                    }
                )
                said = True
            if not said:
                write({"t": "hb"})
            continue
        msg = event.get("msg", {})
        if msg.get("t") == "quote" and msg["bid"] > 0 and msg["ask"] > 0:
            symbol = msg["symbol"]
            mids.setdefault(symbol, collections.deque()).append((msg["ts_ns"], (msg["bid"] + msg["ask"]) / 2))
            topics[symbol] = event["topic"]


if __name__ == "__main__":
    main()
