"""Warm restarts and strategy state (issue #11 points 2 and 3), on a real node.

Two identical strategies trade the same simulated market; one is killed with -9 mid-run. Each
logs every decision it makes (bar start, decide()'s answer) in its own ``on_save`` state, which
the node journals; after the run the two logs must agree on every bar after the restart: the
restarted one was warmed from the node's bar store and decides as if it had never stopped.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import msgspec

from sniperbot.journal import Journal, keys
from tests.conftest import FAST_CONFIG, RunningNode, eventually, sniperbot

LOGGED = """
from collections import deque

from sniperbot.strategies import Param, Strategy


class Logged(Strategy):
    '''Close breakout on the previous ``window`` closes; logs each decision (bar start, answer).

    Exact comparisons only (no running sums): a decision depends on the window's closes and
    nothing else, so a warmed strategy and one that never stopped must agree bit for bit. (An
    SMA's running sum carries its whole history's rounding: an exact-arithmetic tie between two
    averages can be decided differently by two histories. That is float rounding, not warm-up.)
    '''

    name = "logged"
    params = {"window": Param(20, min=2)}

    def setup(self):
        self.closes = deque(maxlen=self.window)
        self.log = []

    def decide(self, bar):
        closes = self.closes
        answer = None
        if len(closes) == self.window:
            if bar.close > max(closes):
                answer = 1.0
            elif bar.close < min(closes):
                answer = 0.0
        closes.append(bar.close)
        self.log = (self.log + [[bar.start_ns, answer]])[-3000:]
        return answer

    def on_save(self):
        return {"log": self.log}

    def on_load(self, state):
        self.log = state["log"]
"""


def _config(tmp: Path) -> Path:
    """The fast market, BTC only, two identical logged strategies (20-close window: blind 4 s cold)."""
    file = tmp / "logged.py"
    file.write_text(LOGGED)
    base = FAST_CONFIG[: FAST_CONFIG.index("[[strategies]]")]
    twins = "".join(
        f'[[strategies]]\nid = "{sid}"\nstrategy = "{file}:Logged"\nsymbol = "BTC/USDT"\nquantity = 0.01\n'
        "bar_interval_s = 0.2\nparams = { window = 20 }\n\n"
        for sid in ("twin_a", "twin_b")
    )
    path = tmp / "twins.toml"
    path.write_text(base + twins)
    return path


def _logs(run_dir: Path) -> dict[str, dict[int, object]]:
    journal = Journal.open(run_dir, readonly=True)
    try:
        out = {}
        for sid in ("twin_a", "twin_b"):
            raw = journal.get_state(keys.STRATEGY_STATE + sid)
            out[sid] = {start: answer for start, answer in msgspec.json.decode(raw)["log"]} if raw else {}
        return out
    finally:
        journal.close()


def test_a_killed_strategy_decides_on_every_following_bar_as_one_never_killed(short_tmp: Path) -> None:
    """kill -9 of one twin; after its restart both twins decide the same on every bar."""
    node = RunningNode(short_tmp / "run", _config(short_tmp))
    try:
        workers = node.wait_ready()
        time.sleep(8)  # 40 bars: both twins are warm and have traded
        os.kill(workers["strategy.twin_a"]["pid"], signal.SIGKILL)
        killed_at = time.time_ns()
        eventually(
            lambda: (w := node.workers()["strategy.twin_a"])["incarnation"] == 2 and w["state"] == "running",
            30,
            what="twin_a restarted",
        )
        time.sleep(10)  # 50 bars after the restart
        warmed = [json.loads(line) for line in node.log().splitlines() if '"event": "warmed"' in line]
    finally:
        assert node.stop() == 0, node.log()
    logs = _logs(node.run_dir)
    restarted = [w for w in warmed if w.get("actor") == "strategy.twin_a" and w.get("incarnation") == 2]
    assert restarted and restarted[0]["bars"] == 21, restarted  # warmed with its warmup_bars()
    a, b = logs["twin_a"], logs["twin_b"]
    after = sorted(start for start in a if start > killed_at and start in b)
    assert len(after) >= 30, (len(after), len(a), len(b))
    differ = [(start, a[start], b[start]) for start in after if a[start] != b[start]]
    assert not differ, f"{len(differ)} of {len(after)} bars decided differently, first: {differ[:3]}"
    assert any(answer is not None for start, answer in b.items() if start in after), "no decision to compare"


def test_saved_state_comes_back_when_the_same_id_is_hot_added_again(short_tmp: Path) -> None:
    """remove-strategy then add-strategy of the same id: on_load gets the journaled state."""
    node = RunningNode(short_tmp / "run", _config(short_tmp))
    try:
        node.wait_ready()
        eventually(lambda: len(_logs(node.run_dir)["twin_b"]) > 20, 30, what="twin_b's saved log")
        run = str(node.run_dir)
        assert sniperbot("admin", "--run-dir", run, "remove-strategy", "--id", "twin_b").returncode == 0
        before = len(_logs(node.run_dir)["twin_b"])
        file = short_tmp / "logged.py"
        added = sniperbot(
            "admin", "--run-dir", run, "add-strategy", "--id", "twin_b", "--strategy", f"{file}:Logged",
            "--symbol", "BTC/USDT", "--quantity", "0.01", "--bar-interval", "0.2",
            "--param", "window=20",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        # The log keeps growing from where it was: it was loaded, not started afresh.
        eventually(lambda: len(_logs(node.run_dir)["twin_b"]) > before + 5, 30, what="the log continued")
    finally:
        assert node.stop() == 0, node.log()
