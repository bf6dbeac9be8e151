"""Loss limits in a real node: the daily loss limit trips the trading state, which survives a restart."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import msgspec

from sniperbot.actors.risk_guard import TRADING_STATE_KEY
from sniperbot.journal import Journal
from sniperbot.messages import Fill, Order, OrderUpdate
from tests.conftest import FAST_CONFIG, RunningNode, eventually


def _config(short_tmp: Path, risk: str) -> Path:
    # Fees alone (10 bps) put net P&L more than 0.01 below the day's start after the first fill.
    path = short_tmp / "loss.toml"
    path.write_text(FAST_CONFIG.replace("[risk]\n", "[risk]\ndaily_loss_limit = 0.01\n" + risk))
    return path


def _stop(node: RunningNode) -> int:
    try:
        return node.stop(signal.SIGTERM, timeout=30)
    except subprocess.TimeoutExpired:
        node.process.kill()
        node.process.wait(10)
        raise


def _journaled_state(run_dir: Path) -> dict[str, str]:
    with Journal.open(run_dir, readonly=True) as journal:
        raw = journal.get_state(TRADING_STATE_KEY)
    return msgspec.json.decode(raw) if raw is not None else {}


def _last_seq(run_dir: Path) -> int:
    with Journal.open(run_dir, readonly=True) as journal:
        return journal.last_seq()


def _after(run_dir: Path, mark: int) -> list[Order | OrderUpdate | Fill]:
    with Journal.open(run_dir, readonly=True) as journal:
        return [record for _, record in journal.records(after_seq=mark)]


def _rejections(run_dir: Path, mark: int, reason: str) -> int:
    return sum(
        1
        for r in _after(run_dir, mark)
        if isinstance(r, OrderUpdate) and r.status == "rejected" and r.reason == reason
    )


def _first_reported_state(node: RunningNode) -> str:
    """The trading state once the risk guard has reported one (``UNKNOWN`` until then)."""
    return eventually(
        lambda: (state := node.admin("status")["trading_state"]) != "UNKNOWN" and state,
        60,
        what="the risk guard's first status",
    )


def _trip_and_restart(short_tmp: Path, config: Path, state: str) -> tuple[RunningNode, int]:
    """Run until the loss limit sets ``state``, stop the node, start a new one on the same run dir."""
    run_dir = short_tmp / "run"
    first = RunningNode(run_dir, config)
    try:
        first.wait_ready(60)
        eventually(lambda: first.admin("status")["trading_state"] == state, 60, what=f"{state} by daily loss")
    finally:
        assert _stop(first) == 0
    saved = _journaled_state(run_dir)
    assert saved["state"] == state and saved["reason"].startswith("daily loss"), saved
    mark = _last_seq(run_dir)
    # The restart runs without any loss limit (and trading_state ACTIVE in the config): the state
    # must come from the journal, not from the guard tripping again on the same losses.
    plain = short_tmp / "plain.toml"
    plain.write_text(FAST_CONFIG)
    second = RunningNode(run_dir, plain)
    return second, mark


def test_daily_loss_limit_halts_and_the_halt_survives_a_node_restart(short_tmp: Path) -> None:
    """daily_loss_limit breached -> HALTED; a new node on the same run dir stays HALTED and places nothing."""
    second, mark = _trip_and_restart(short_tmp, _config(short_tmp, ""), "HALTED")
    try:
        second.wait_ready(60)
        assert _first_reported_state(second) == "HALTED"
        # The strategies keep asking; every intent is refused and nothing new reaches the venue.
        eventually(lambda: _rejections(second.run_dir, mark, "halted") >= 5, 60, what="intents refused")
        assert [r for r in _after(second.run_dir, mark) if isinstance(r, Order)] == []
        assert second.admin("status")["trading_state"] == "HALTED"
    finally:
        assert _stop(second) == 0


def test_loss_action_reducing_lets_only_reductions_through_across_a_restart(short_tmp: Path) -> None:
    """loss_action = "REDUCING": after the breach and a restart, no fill grows a position."""
    config = _config(short_tmp, 'loss_action = "REDUCING"\n')
    second, mark = _trip_and_restart(short_tmp, config, "REDUCING")
    try:
        second.wait_ready(60)
        assert _first_reported_state(second) == "REDUCING"
        eventually(
            lambda: _rejections(second.run_dir, mark, "reducing_only") >= 5, 60, what="growths refused"
        )
        assert second.admin("status")["trading_state"] == "REDUCING"
    finally:
        assert _stop(second) == 0
    # Replay the whole journal: every fill of an order approved after the restart shrinks its symbol's
    # position towards zero without crossing it.
    with Journal.open(second.run_dir, readonly=True) as journal:
        positions: dict[str, float] = {}
        late_orders: set[str] = set()
        for seq, record in journal.records():
            if isinstance(record, Order) and seq > mark:
                late_orders.add(record.client_order_id)
            elif isinstance(record, Fill):
                before = positions.get(record.symbol, 0.0)
                after = before + (record.quantity if record.side == "buy" else -record.quantity)
                positions[record.symbol] = after
                if record.client_order_id in late_orders:
                    assert abs(after) <= abs(before) + 1e-12 and after * before >= 0, (record, before)
