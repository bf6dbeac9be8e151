"""Strategies read signals on a real node: a ``signal_replay`` analyser publishes, strategies trade on them.

The replay's file says BTC and SOL have a mention spike with positive sentiment and says nothing about
ETH: ``social_breakout`` on BTC trades, the same strategy on ETH never does (no signal, no entry), one
hot-added on SOL long after the replay published gets the readings from the node's last-value cache and
trades too, and a ``signal_recorder`` writes what went over the bus in the signal file format, the
source being the replay itself (the authority rule) and the recording's source kept in ``origin``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from sniperbot.actors.runtime import close_process_journals, process_journal
from sniperbot.analytics.signals import encode_line, read_signals
from sniperbot.config import ConfigError, load_config
from sniperbot.journal import keys
from sniperbot.messages import Signal
from sniperbot.rundir import RunDir
from sniperbot.strategies import STRATEGIES
from sniperbot.transport.bus import BusProxy
from tests.conftest import FAST_CONFIG, RunningNode, eventually, sniperbot
from tests.evm.test_sniper import _OUT
from tests.venues_ccxt.test_gateway import Actors

NO_STRATEGIES = re.sub(r"\[\[strategies\]\]\n(?:[^\[\n].*\n|\n)*", "", FAST_CONFIG)
RECORDER = "sniperbot.analytics.recorder:SignalRecorder"
PARAMS = "params = { entry = 2, sma = 3, min_z = 2.0, min_sentiment = 0.2 }"


def sig(subject: str, kind: str, value: float, ts_ns: int = 1_000, **extra: object) -> Signal:
    return Signal(
        source="sentiment",
        subject=subject,
        kind=kind,
        value=value,
        ts_ns=ts_ns,
        **{"window_s": 300.0, **extra},
    )


def test_a_strategy_declares_its_signals_and_keeps_only_those() -> None:
    """Topics of the declared kinds about its subject; other kinds and subjects are not kept."""
    strategy = STRATEGIES["social_breakout"]("s", "sim", "PEPE/USDT", quantity=1.0)
    assert strategy.subject == "PEPE"
    assert strategy.signal_topics() == ("sig.PEPE.sentiment.", "sig.PEPE.mentions_z.")
    for ignored in (sig("DOGE", "sentiment", 0.9), sig("PEPE", "trending_rank", 1.0)):
        strategy.on_signal(ignored)
    assert len(strategy._signals) == 0
    strategy.on_signal(sig("PEPE", "sentiment", 0.9))
    assert len(strategy._signals) == 1


def test_strategies_trade_on_replayed_signals_and_the_recorder_keeps_them(short_tmp: Path) -> None:
    now = time.time_ns()
    recorded = short_tmp / "recorded.jsonl"
    recorded.write_bytes(
        encode_line(sig("BTC", "sentiment", 0.7, now, origin="reddit"))
        + encode_line(sig("BTC", "mentions_z", 3.5, now))
        + encode_line(sig("SOL", "sentiment", 0.5, now))
        + encode_line(sig("SOL", "mentions_z", 2.5, now))
    )
    directory = short_tmp / "signals"
    config = short_tmp / "node.toml"
    config.write_text(
        NO_STRATEGIES
        + f"""
[[strategies]]
id = "social_btc"
strategy = "social_breakout"
symbol = "BTC/USDT"
quantity = 0.01
bar_interval_s = 0.2
{PARAMS}

[[strategies]]
id = "social_eth"
strategy = "social_breakout"
symbol = "ETH/USDT"
quantity = 0.1
bar_interval_s = 0.2
{PARAMS}

[[venues.symbols]]
symbol = "SOL/USDT"
start_price = 150.0
base_vol_bps = 6.0
top_size = 50.0
trade_prob = 0.9

[[analysers]]
kind = "signal_replay"
id = "replay"
file = "{recorded}"
pace = "immediate"

[[analysers]]
kind = "signal_recorder"
id = "recorder"
directory = "{directory}"
fsync_interval_s = 0.05
"""
    )
    node = RunningNode(short_tmp / "run", config)
    try:
        positions = eventually(
            # In the book once it has traded (its exit, close < a 3-bar SMA, may already have flattened it).
            lambda: (p := node.admin("status")["positions"]) and "sim:BTC/USDT" in p and p,
            60,
            what="social_btc trades on the replayed spike",
        )
        # Hot-added long after the replay published: the last-value cache hands it the readings.
        done = sniperbot(
            "admin", "--run-dir", str(node.run_dir), "add-strategy", "--id", "late_sol", "--strategy",
            "social_breakout", "--symbol", "SOL/USDT", "--quantity", "1", "--bar-interval", "0.2",
            "--param", "entry=2", "--param", "sma=3", "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        positions = eventually(
            lambda: (p := node.admin("status")["positions"]) and "sim:SOL/USDT" in p and p,
            30,
            what="the hot-added strategy trades",
        )
        assert "sim:ETH/USDT" not in positions, positions  # nothing said about ETH: never traded
        written = eventually(
            lambda: [s for f in sorted(directory.glob("*.jsonl")) for s in read_signals(f)],
            10,
            what="the recorder's file",
        )
        assert {(s.source, s.subject, s.kind, s.value, s.origin) for s in written} == {
            ("replay", "BTC", "sentiment", 0.7, "replay:sentiment:reddit"),
            ("replay", "BTC", "mentions_z", 3.5, "replay:sentiment"),
            ("replay", "SOL", "sentiment", 0.5, "replay:sentiment"),
            ("replay", "SOL", "mentions_z", 2.5, "replay:sentiment"),
        }
        assert all(s.ts_ns >= now for s in written)  # retimed to when the replay published them
        assert node.stop() == 0
    finally:
        if node.process.poll() is None:
            node.stop()


def test_a_replay_file_with_a_bad_line_stops_the_config_naming_file_and_line(tmp_path: Path) -> None:
    """Fail closed before anything starts: ``sniperbot run`` exits 2 with this message."""
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(
        encode_line(sig("BTC", "sentiment", 0.5)) + b'{"source":"x","subject":"BTC","kind":"k"}\n'
    )
    config = tmp_path / "c.toml"
    config.write_text(
        FAST_CONFIG + f'\n[[analysers]]\nkind = "signal_replay"\nid = "replay"\nfile = "{bad}"\n'
    )
    with pytest.raises(ConfigError, match=rf"analysers\[0\]\.file: {bad}:2: invalid signal: .*`value`"):
        load_config(config)
    config.write_text(FAST_CONFIG + '\n[[analysers]]\nkind = "signal_recorder"\nid = "rec"\ndirectory = ""\n')
    with pytest.raises(ConfigError, match=r"analysers\[0\]\.directory: must name"):
        load_config(config)


@pytest.fixture
def bus(short_tmp: Path) -> Iterator[Actors]:
    """Actor incarnations in threads on a real bus (a proxy) and journal, as the sniper tests use them."""
    actors = Actors(short_tmp / "run")
    zctx = zmq.Context()
    rundir = RunDir(actors.run_dir)
    proxy = BusProxy(zctx, rundir.bus_in, rundir.bus_out)
    proxy.start()
    try:
        actors.start("analyser.sentiment", "tests.evm.test_sniper:BusDriver", {})
        yield actors
    finally:
        actors.stop_all()
        close_process_journals()
        proxy.stop()
        zctx.destroy(linger=0)
        _OUT.clear()


def recorded(directory: Path) -> list[Signal]:
    """What a recorder wrote to ``directory``, in time order."""
    return sorted(
        (s for f in sorted(directory.glob("*.jsonl")) for s in read_signals(f)), key=lambda s: s.ts_ns
    )


def publish(*signals: Signal) -> None:
    """The ``analyser.sentiment`` driver publishes ``signals`` (as an analyser would)."""
    for s in signals:
        _OUT["analyser.sentiment"].put(("publish", f"sig.{s.subject}.{s.kind}.{s.source}.", s))


def test_a_restarted_recorder_writes_nothing_twice_and_cuts_a_torn_line(bus: Actors, short_tmp: Path) -> None:
    """A reading delivered again is written once; a line torn by a crash is cut at start.

    (The node's last-value cache delivers the current readings to every new incarnation; here the
    driver publishes them again, as the cache would.)
    """
    directory = short_tmp / "rec"
    settings = {"kind": "signal_recorder", "id": "rec", "directory": str(directory), "fsync_interval_s": 0.02}
    now = time.time_ns()
    old = [sig("BTC", "sentiment", 0.1, now), sig("BTC", "mentions_z", 1.0, now)]
    new = sig("BTC", "sentiment", 0.2, now + 1)

    bus.start("analyser.rec", RECORDER, {"settings": settings})
    eventually(
        lambda: (publish(*old), len(recorded(directory)) == 2)[1], 30, 0.1, "the first readings recorded"
    )
    bus.stop("analyser.rec")
    with next(directory.glob("*.jsonl")).open("ab") as torn:
        torn.write(b'{"t":"signal","source":"sentiment","subj')  # a crash in the middle of a line
    bus.start("analyser.rec", RECORDER, {"settings": settings})
    # The old readings go out again before the new one each round (one publisher: in order).
    eventually(
        lambda: (publish(*old, new), len(recorded(directory)) >= 3)[1], 30, 0.1, "the new one recorded"
    )
    assert recorded(directory) == [*old, new]


def test_replay_paces_by_the_file_and_journals_its_position(bus: Actors, short_tmp: Path) -> None:
    """``pace = "timestamps"``, ``speed = 2``: readings 0.4 s apart in the file go out 0.2 s apart or more."""
    file = short_tmp / "day.jsonl"
    start = 1_735_689_600 * 1_000_000_000
    file.write_bytes(b"".join(encode_line(sig("ETH", "sentiment", v, start + i * 400_000_000)) for i, v in
                              enumerate((0.1, 0.2, 0.3))))  # fmt: skip
    directory = short_tmp / "rec"
    recorder = {"kind": "signal_recorder", "id": "rec", "directory": str(directory), "fsync_interval_s": 0.02}
    bus.start("analyser.rec", RECORDER, {"settings": recorder})
    # The replay publishes each reading once: first, proof that the recorder hears the bus.
    probe = sig("BTC", "sentiment", 0.0, time.time_ns())
    eventually(lambda: (publish(probe), recorded(directory))[1], 30, 0.1, "the recorder subscribed")
    replay = {"kind": "signal_replay", "id": "again", "file": str(file), "speed": 2.0}
    bus.start("analyser.again", "sniperbot.analytics.recorder:SignalReplay", {"settings": replay})
    written = eventually(
        lambda: (r := [s for s in recorded(directory) if s.subject == "ETH"]) and len(r) == 3 and r,
        30,
        what="three replayed",
    )
    assert [(s.value, s.source, s.origin) for s in written] == [
        (v, "again", "replay:sentiment") for v in (0.1, 0.2, 0.3)
    ]
    # Retimed to their publish times, each paced from the first (the schedule's origin), never early. A
    # gap alone may be shorter than 0.2 s: a reading published late does not push the next one back.
    since_first = [(s.ts_ns - written[0].ts_ns) / 1e9 for s in written]
    assert all(t >= k * 0.2 - 0.005 for k, t in enumerate(since_first)), since_first
    journal = process_journal(bus.run_dir, "process")
    assert journal.get_state(keys.SIGNAL_REPLAY + "again") == b"3"  # a restart goes on after them
