"""Time to the first fill of the embedded default (``make run``), which the README promises within 30 s.

Moved here from ``tests/test_default_run.py``, where it was a wall-clock assertion
that a loaded machine could fail with nothing wrong (the test still checks that the
default trades). The node is ``sniperbot run`` without ``--config`` (the embedded
default, ``config/default.toml``). Floor: the same run's start-up, until every actor
runs; the rest is the simulated market and the strategies' bars (1 s bars, slow SMA
of 5 and 8). Target: first fill < 30 s from the start of the process.
"""

from __future__ import annotations

import sys
import time

sys.path.append(str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from bench._common import NodeProcess, emit, parse_args, ratio, short_tmp, verdict, wait_for

TARGET_S = 30.0


def main() -> None:
    args = parse_args(__doc__ or "")
    runs = 1 if args.quick else 3
    ready_s: list[float] = []
    fill_s: list[float] = []
    for _ in range(runs):
        with short_tmp("sb-default-") as tmp:
            started = time.monotonic()
            with NodeProcess(tmp, None, duration_s=300.0) as node:
                node.wait_ready(timeout_s=120.0)
                ready_s.append(time.monotonic() - started)
                wait_for(lambda n=node: n.admin("status")["fills"] >= 1, 300.0, "a fill", interval_s=0.1)
                fill_s.append(time.monotonic() - started)
    worst = max(fill_s)
    print(f"embedded default, {runs} run(s): first fill after {', '.join(f'{s:.1f}' for s in fill_s)} s")
    print(f"  floor (all actors running): {', '.join(f'{s:.2f}' for s in ready_s)} s")
    print(f"  target first fill < {TARGET_S:.0f} s in every run: {verdict(worst < TARGET_S)}")
    emit(
        "default_run",
        {
            "first_fill_s": [round(s, 2) for s in fill_s],
            "ready_s": [round(s, 2) for s in ready_s],
            "ratio": ratio(worst, max(ready_s)),
            "target_met": worst < TARGET_S,
        },
    )


if __name__ == "__main__":
    main()
