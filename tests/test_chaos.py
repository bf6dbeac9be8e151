"""``sniperbot chaos`` against a real node: random kills and hangs, and no money lost."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from sniperbot.chaos.invariants import check_run_dir
from tests.conftest import FAST_CONFIG, RunningNode, eventually, sniperbot

# Short breaker cooldown and probe, so a tripped venue is back within the session. Every restart
# counts (OTP, min_uptime_s = 0), so that the trips follow from the faults (the check below); the
# default node's min_uptime_s rides a storm of independent faults out (bench/fault_storm.py).
CHAOS_CONFIG = (
    FAST_CONFIG + "\n[breakers]\ncooldown_s = 1.0\nprobe_s = 2.0\n" + "\n[supervisor]\nmin_uptime_s = 0.0\n"
)
VENUE_ACTORS = ("feed.sim", "paper.sim", "executor.sim")  # the venue subtree, breaker venue:sim


def chaos(*args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    """``sniperbot chaos ...`` in a fresh process."""
    return sniperbot("chaos", *args, timeout=timeout)


def test_seeded_chaos_session_recovers_everything_and_loses_no_money(short_tmp: Path) -> None:
    config = short_tmp / "chaos.toml"
    config.write_text(CHAOS_CONFIG)
    node = RunningNode(short_tmp / "run", config, ("--enable-chaos",))
    try:
        node.wait_ready()
        eventually(lambda: node.admin("status")["fills"] >= 2, 25, what="first fills")
        result = chaos(
            "--run-dir",
            str(node.run_dir),
            "--duration",
            "15",
            "--interval",
            "1.5",
            "--seed",
            "7",
            "--signals",
            "KILL,STOP",
            "--settle-timeout",
            "60",  # a loaded 2-core CI machine may need longer than the default 15 s
            "--json",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        assert report["ok"] is True, report["problems"]
        assert report["faults"] >= 8
        assert report["recovered"] == report["faults"]
        assert {f["signal"] for f in report["fault_log"]} == {"KILL", "STOP"}
        assert report["duplicate_orders"] == 0 and report["lost_fills"] == 0
        # A hang is only noticed after heartbeat 0.2 s x liveness 5 of silence; a crash at once.
        assert 0 < report["recovery_ms_p50"] <= report["recovery_ms_p99"]
        stops = [f["recovery_ms"] for f in report["fault_log"] if f["signal"] == "STOP"]
        assert min(stops) >= 700  # 1 s of silence, less up to one heartbeat interval
        # The tool's trip count is the node's own (trip counts reset only after 300 s closed) ...
        breakers = {b["scope"]: b for b in node.admin("breaker-status")}
        node_trips = sum(int(b["trips"]) for b in breakers.values())
        assert report["breaker_trips"] == node_trips, (report["breaker_trips"], breakers)
        # ... and follows from the faults: a subtree that restarted more than its intensity
        # (3 in 30 s, the whole session) must have tripped its breaker.
        hit = [f["actor"] for f in report["fault_log"]]
        for scope, actors in (("venue:sim", VENUE_ACTORS), ("global", ("risk_guard",))):
            if sum(a in actors for a in hit) > 3:
                assert breakers.get(scope, {}).get("trips", 0) >= 1, (scope, hit, breakers)
        assert report["breakers_not_closed"] == []  # cooldown 1 s, probe 2 s: all closed again
        assert report["still_trading"] is True and report["fills_after"] > report["fills_before"]
        invariants = report["invariants"]
        assert invariants["fills_journaled"] == invariants["fills_at_venue"] > 0
        assert invariants["positions"] == invariants["venue_positions"]
        assert node.process.poll() is None
    finally:
        assert node.stop() == 0
    after = check_run_dir(node.run_dir)
    assert after.ok, after.problems


def test_chaos_is_refused_without_enable_chaos_and_without_a_node(node: RunningNode, short_tmp: Path) -> None:
    before = node.wait_ready()
    result = chaos("--run-dir", str(node.run_dir), "--duration", "2", "--interval", "1", "--json")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "chaos_disabled" in result.stderr and "--enable-chaos" in result.stderr
    assert result.stdout == ""
    after = node.workers()
    assert {a: w["incarnation"] for a, w in after.items()} == {a: w["incarnation"] for a, w in before.items()}

    nowhere = chaos("--run-dir", str(short_tmp / "nothing"), "--duration", "1", "--interval", "1")
    assert nowhere.returncode == 2 and "no_node" in nowhere.stderr
    bad = chaos("--run-dir", str(node.run_dir), "--duration", "1", "--interval", "1", "--signals", "HUP")
    assert bad.returncode == 2 and "signals" in bad.stderr
