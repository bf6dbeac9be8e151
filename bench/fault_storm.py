"""Availability under a fault storm (issue #14 point 6): the default node under the chaos tool.

One run, two nodes of the embedded default config (``sniperbot run`` without ``--config``), one after
the other, each for ``--minutes``:

* **storm**: the chaos tool (:func:`sniperbot.chaos.tool.run_chaos`) sends one fault every
  ``--interval`` seconds (default 2: ``KILL`` and ``STOP`` of any actor, seeded), then checks the money
  invariants (no duplicate order, no lost or duplicated fill, positions = journaled fills);
* **floor**: the same config and seed, no fault, the same duration.

For both, the bench samples ``admin status`` every 0.5 s: intents are *accepted* at a sample when the
trading state is ``ACTIVE`` and neither the ``global`` breaker nor the venue's breaker is open or
half-open (the risk guard's own rule: an open breaker rejects every intent, a half-open one all but
risk-reducing ones). It reports the accepted fraction of the time, the breaker trips (and the highest
cooldown reached), the fills, and the storm's figures as a ratio to the floor's.

``--quick``: 2 minutes each. The same seed gives the same fault sequence (the timing of the node's
own restarts still varies with the machine's load).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench._common import REPO, NodeProcess, emit, parse_args, ratio, short_tmp

_SAMPLE_S = 0.5
_VENUE = "sim"  # the embedded default's one venue


def _options(parser: Any) -> None:
    parser.add_argument("--minutes", type=float, default=10.0, help="duration of each run (default 10)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between faults (default 2)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--no-floor", action="store_true", help="skip the fault-free run")


class _Sampler(threading.Thread):
    """Polls ``admin status``: accepting or not, breaker trips and cooldowns, fills."""

    def __init__(self, node: NodeProcess, window_s: float) -> None:
        super().__init__(daemon=True)
        self.node = node
        self.until = time.monotonic() + window_s  # samples after the fault window are not counted
        self.fills = 0  # at the last sample inside the window
        self.samples = 0
        self.accepting = 0
        self.failed = 0
        self.max_cooldown_s = 0.0
        self.trips: dict[str, int] = {}
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(_SAMPLE_S) and time.monotonic() <= self.until:
            try:
                status = self.node.admin("status")
                breakers = self.node.admin("breaker_status")
            except Exception:  # the admin socket busy or slow: count it as not accepting
                self.failed += 1
                self.samples += 1
                continue
            self.samples += 1
            self.fills = int(status["fills"])
            states = status.get("breakers") or {}
            blocked = any(states.get(s, "closed") != "closed" for s in ("global", f"venue:{_VENUE}"))
            if status.get("trading_state") == "ACTIVE" and not blocked:
                self.accepting += 1
            for b in breakers:
                self.max_cooldown_s = max(self.max_cooldown_s, float(b.get("cooldown_s") or 0.0))
                self.trips[b["scope"]] = max(self.trips.get(b["scope"], 0), int(b.get("trips") or 0))

    def stop(self) -> None:
        """End sampling."""
        self._done.set()
        self.join(timeout=10)

    @property
    def fraction(self) -> float:
        """Accepted share of the samples."""
        return round(self.accepting / self.samples, 4) if self.samples else 0.0


def _run(work: Path, name: str, duration_s: float, storm: bool, args: Any) -> dict[str, Any]:
    from sniperbot.chaos.tool import ChaosOptions, run_chaos

    # bench._node runs the same Node as `sniperbot run`, with fault injection enabled; the tree is
    # the default one (topology.build_tree), the config the embedded default's file.
    node = NodeProcess(
        work,
        (REPO / "config" / "default.toml").read_text(),
        tree="sniperbot.topology:build_tree",
        duration_s=duration_s * 3 + 600,
        name=name,
    )
    try:
        node.wait_ready(timeout_s=120)
        fills_before = int(node.admin("status")["fills"])
        sampler = _Sampler(node, duration_s)
        sampler.start()
        started = time.monotonic()
        out: dict[str, Any] = {}
        if storm:
            report = run_chaos(
                ChaosOptions(
                    run_dir=str(node.run_dir),
                    duration_s=duration_s,
                    interval_s=args.interval,
                    seed=args.seed,
                    signals=("KILL", "STOP"),
                    recovery_timeout_s=30.0,
                    trade_timeout_s=30.0,  # the default strategies fill every few seconds
                )
            )
            out["faults"] = report.faults
            out["recovered"] = report.recovered
            out["duplicate_orders"] = report.duplicate_orders
            out["lost_fills"] = report.lost_fills
            out["skipped"] = report.skipped
            out["chaos_breaker_trips"] = report.breaker_trips
            out["invariants_ok"] = report.invariants is not None and bool(report.invariants.get("ok"))
            out["invariants"] = report.invariants
            out["problems"] = report.problems
        else:
            time.sleep(duration_s)
        # Availability and fills over the fault window only (not the chaos tool's recovery wait).
        sampler.stop()
        status = node.admin("status")
        out.update(
            seconds=round(min(time.monotonic() - started, duration_s), 1),
            accepting_fraction=sampler.fraction,
            samples=sampler.samples,
            sample_errors=sampler.failed,
            fills=sampler.fills - fills_before,
            rejected=int(status.get("rejected") or 0),
            breaker_trips=sampler.trips,
            max_cooldown_s=sampler.max_cooldown_s,
            restarts=int(status.get("restarts") or 0),
        )
        return out
    finally:
        node.stop()


def main() -> int:
    """Run the storm and the floor, print the figures and the JSON line."""
    args = parse_args(__doc__.splitlines()[0], _options)
    minutes = 2.0 if args.quick else args.minutes
    duration_s = minutes * 60
    with short_tmp("sb-fs-") as work:
        storm = _run(work, "storm", duration_s, True, args)
        floor = None if args.no_floor else _run(work, "floor", duration_s, False, args)
    print(f"fault storm: a fault every {args.interval:g} s for {minutes:g} min, seed {args.seed}")
    print(
        f"  storm: {storm['faults']} faults ({storm['recovered']} recovered, {storm['skipped']} skipped), "
        f"accepting {storm['accepting_fraction'] * 100:.1f} % of the time, {storm['fills']} fills, "
        f"breaker trips {storm['breaker_trips']} (max cooldown {storm['max_cooldown_s']:g} s), "
        f"money invariants {'OK' if storm['invariants_ok'] else 'BROKEN'}"
    )
    if storm["problems"]:
        print("  chaos problems: " + "; ".join(storm["problems"]))
    if floor is not None:
        print(
            f"  floor (no fault): accepting {floor['accepting_fraction'] * 100:.1f} %, {floor['fills']} fills"
        )
        print(
            f"  storm / floor: accepting {ratio(storm['accepting_fraction'], floor['accepting_fraction'])}, "
            f"fills {ratio(storm['fills'], floor['fills'])}"
        )
    emit(
        "fault_storm",
        {
            "minutes": minutes,
            "interval_s": args.interval,
            "seed": args.seed,
            "storm": {k: v for k, v in storm.items() if k != "invariants"},
            "floor": floor,
            "accepting_ratio": ratio(storm["accepting_fraction"], (floor or {}).get("accepting_fraction")),
            "fills_ratio": ratio(storm["fills"], (floor or {}).get("fills")),
        },
    )
    return 0 if storm["invariants_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
