"""The pool watchers' shared chain thread (sniperbot.venues.dex.watcher): a dead thread is never silent."""

from __future__ import annotations

import queue

from sniperbot.venues.dex.watcher import WatcherThread

RPC = "https://rpc.example.org/v2/SECRETKEY123"
WS = "wss://ws.example.org/v2/SECRETKEY123"


class _Dies(WatcherThread):
    async def _main(self) -> None:
        raise KeyError(f"decoding an answer of {RPC} and {WS}")


class _Follows(WatcherThread):
    async def _main(self) -> None:
        import asyncio

        self.out.put(("connected", "http"))
        while self.running:
            await asyncio.sleep(3600)  # until stop() cancels it


def test_a_chain_thread_that_dies_hands_over_fatal_without_its_urls() -> None:
    """Its actor raises on ``fatal`` (the supervisor restarts it) instead of living on blind; the
    error names the failure, never a URL (a provider's URL may carry an API key)."""
    worker = _Dies("t-dies", RPC, WS)
    worker.thread.start()
    worker.thread.join(10)
    assert not worker.thread.is_alive()
    kind, detail = worker.out.get(timeout=1)
    assert kind == "fatal"
    assert detail.startswith("KeyError:") and "<rpc_url>" in detail and "<ws_url>" in detail
    assert "SECRETKEY123" not in detail
    assert worker.loop.is_closed()


def test_stop_cancels_a_follower_that_waits_and_joins_its_thread() -> None:
    worker = _Follows("t-follows", RPC, "")
    worker.thread.start()
    assert worker.out.get(timeout=5) == ("connected", "http")
    worker.stop()
    assert not worker.thread.is_alive()
    assert not worker.running
    try:
        extra = worker.out.get_nowait()
    except queue.Empty:
        extra = None
    assert extra is None  # a cancelled follower is stopped, not fatal
