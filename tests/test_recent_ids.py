"""Deduplication of fills on the bus stays bounded for as long as a node runs (issue #14, the long run)."""

from __future__ import annotations

import pytest

from sniperbot.actors.recent import RECENT_IDS, RecentIds
from sniperbot.execution.executor import _REPUBLISH_TAIL


def test_a_duplicate_is_refused_and_the_oldest_ids_are_forgotten_past_the_capacity() -> None:
    recent = RecentIds(capacity=1_000)
    for i in range(200_000):
        assert recent.add(f"fill-{i}")
    assert len(recent) == 1_000
    assert "fill-199999" in recent and "fill-199000" in recent
    assert "fill-198999" not in recent and "fill-0" not in recent
    assert not recent.add("fill-199500")  # still remembered: a re-announced fill is dropped
    assert len(recent) == 1_000


def test_the_capacity_covers_everything_an_executor_can_announce_twice() -> None:
    # An executor re-announces its journal's last records at start; several may restart at once.
    assert RECENT_IDS >= 50 * _REPUBLISH_TAIL


def test_a_capacity_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        RecentIds(capacity=0)
