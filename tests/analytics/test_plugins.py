"""Plug-in analysers (issue #15, point 4) on a real node: any executable speaking JSON lines.

One node for the module (its start is most of the time budget) runs six plug-ins: the two shipped
examples (``examples/plugins/momentum.py``, ``spread.js``), and the misbehaving ones of
``plugin_victim.py``. Each test drives its own plug-in, so they do not depend on each other's order.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from sniperbot.analytics.plugins.protocol import LineRefused, parse_line
from sniperbot.config import ConfigError, decode_config
from sniperbot.messages import AnalyserStatus, Signal, decode_envelope
from sniperbot.messages import topics as topic
from sniperbot.rundir import RunDir
from sniperbot.transport.bus import Subscriber, split_message
from tests.analytics import plugin_victim as victim
from tests.conftest import FAST_CONFIG, ROOT, RunningNode, eventually

VICTIM = Path(victim.__file__)
EXAMPLES = ROOT / "examples" / "plugins"
NODE_JS = shutil.which("node")
SECRET = "SNIPERBOT_TEST_SECRET"


def _plugin(plugin_id: str, command: list[str], **fields: Any) -> str:
    lines = ["[[analysers]]", 'kind = "plugin"', f'id = "{plugin_id}"', f"command = {command!r}"]
    lines += [
        f"{name} = {value!r}" if not isinstance(value, dict) else f"{name} = {_table(value)}"
        for name, value in fields.items()
    ]
    return "\n".join(lines).replace("'", '"') + "\n"


def _table(values: dict[str, str]) -> str:
    return "{ " + ", ".join(f'{k} = "{v}"' for k, v in values.items()) + " }"


class Bus:
    """The node's bus as a strategy sees it: signals and analyser statuses, kept as they arrive."""

    def __init__(self, run_dir: Path) -> None:
        self.zctx = zmq.Context()
        self.sub = Subscriber(self.zctx, RunDir(run_dir).bus_out, (topic.SIGNALS, topic.ANALYSER_STATUS))
        self.signals: list[Signal] = []
        self.status: dict[str, AnalyserStatus] = {}
        self.incarnations: dict[str, int] = {}  # sender -> the highest incarnation heard

    def pump(self) -> None:
        """Take every message waiting."""
        while self.sub.socket.poll(0):
            _, frame = split_message(self.sub.socket.recv())
            envelope = decode_envelope(frame)
            payload = envelope.payload
            sender = envelope.sender
            self.incarnations[sender] = max(envelope.incarnation, self.incarnations.get(sender, 0))
            if isinstance(payload, Signal):
                self.signals.append(payload)
            elif isinstance(payload, AnalyserStatus):
                self.status[payload.source] = payload

    def latest(self, source: str, kind: str) -> Signal | None:
        """The last signal of ``kind`` from ``source``."""
        self.pump()
        found = [s for s in self.signals if s.source == source and s.kind == kind]
        return found[-1] if found else None

    def status_of(self, source: str) -> AnalyserStatus | None:
        """The last AnalyserStatus of ``source``."""
        self.pump()
        return self.status.get(source)

    def close(self) -> None:
        """Close the socket."""
        self.sub.close()
        self.zctx.term()


class Harness:
    """The module's node, its bus and the plug-ins' trigger directory."""

    def __init__(self, node: RunningNode, bus: Bus, triggers: Path, workdir: Path) -> None:
        self.node, self.bus, self.triggers, self.workdir = node, bus, triggers, workdir

    def pid(self, plugin_id: str, other_than: int = 0, kind: str = "pid") -> int:
        """The plug-in's pid as it reports it (a new one: ``other_than`` the old); its grandchild's."""

        def new_pid() -> int:
            found = self.bus.latest(plugin_id, kind)
            return int(found.value) if found and int(found.value) != other_than else 0

        return eventually(new_pid, 20, what=f"{plugin_id}'s pid (not {other_than})")

    def trigger(self, plugin_id: str, what: str) -> None:
        """Tell a victim plug-in to misbehave (it removes the file first)."""
        (self.triggers / f"{plugin_id}.{what}").touch()

    def leftovers(self, plugin_id: str) -> list[int]:
        """How many processes each sweep of ``plugin_id``'s actor found left by an earlier plug-in."""
        found = []
        for line in self.node.log().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if (
                    record.get("event") == "plugin_leftovers"
                    and record.get("actor") == f"analyser.{plugin_id}"
                ):
                    found.append(record["processes"])
        return found

    def incarnation(self, plugin_id: str) -> int:
        """The actor's incarnation, as its messages on the bus say (no admin round trip: test time)."""
        self.bus.pump()
        return self.bus.incarnations.get(f"analyser.{plugin_id}", 0)


def _gone(pid: int, zombie_ok: bool = True) -> bool:
    """The process no longer exists (or, ``zombie_ok``, is dead and waits for a parent to reap it).

    A plug-in is reaped by its actor; what the plug-in started is reaped by init, which in some
    containers never does it.
    """
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return zombie_ok and state == "Z"


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    """A node with the example plug-ins and the victims (module-scoped: its start is the slow part)."""
    base = Path(tempfile.mkdtemp(prefix="sb-", dir="/tmp"))
    triggers, workdir = base / "trig", base / "work"
    triggers.mkdir()
    workdir.mkdir()
    victim_cmd = [sys.executable, str(VICTIM), "victim", str(triggers)]
    fast = {"tick_s": 0.2, "hang_after_s": 5.0}  # generous: a loaded machine starts Python slowly
    config = FAST_CONFIG + "".join(
        [
            _plugin(
                "momentum",
                [sys.executable, str(EXAMPLES / "momentum.py"), "--window-s", "1"],
                inputs=["md.sim.quote."],
                **fast,
            ),
            _plugin(
                "spread", [NODE_JS or "node", str(EXAMPLES / "spread.js")], inputs=["md.sim.quote."], **fast
            )
            if NODE_JS
            else "",
            _plugin(
                "noisy", [sys.executable, str(VICTIM), "noisy", str(triggers)], max_lines_per_s=20.0, **fast
            ),
            _plugin(
                "deaf",
                [sys.executable, str(VICTIM), "deaf", str(triggers)],
                inputs=["md."],
                input_buffer_bytes=4096,
                **fast,
            ),
            # hang_after_s far beyond the test's wait: only the exit itself can get it restarted in time.
            _plugin("kill9", victim_cmd, **{**fast, "hang_after_s": 60.0}),
            _plugin("hang", victim_cmd, **{**fast, "hang_after_s": 2.0}),
            _plugin("hang_thread", victim_cmd, **{**fast, "hang_after_s": 2.0}),
            _plugin("orphan", victim_cmd, **fast),
            _plugin(
                "hog",
                victim_cmd,
                memory_mb=256,
                cpu_s=100,
                max_open_files=64,
                nice=7,
                workdir=str(workdir),
                env={"GREETING": "hello"},
                **fast,
            ),
        ]
    )
    config += '[placement]\nactors = { "analyser.hang_thread" = "thread" }\n'
    (base / "node.toml").write_text(config)
    os.environ[SECRET] = "node-only"  # the node has it; no plug-in may see it
    try:
        node = RunningNode(base / "run", base / "node.toml")
    finally:
        del os.environ[SECRET]
    RunningNode.live.discard(node)  # module-scoped: conftest's per-test cleanup must not stop it
    bus = Bus(node.run_dir)
    try:
        # No wait_ready: each test waits for what it needs on the bus (admin round trips cost seconds).
        yield Harness(node, bus, triggers, workdir)
    finally:
        bus.close()
        RunningNode.live.add(node)
        with contextlib.suppress(Exception):
            node.stop(timeout=20)
        shutil.rmtree(base, ignore_errors=True)


def test_example_plugins_signals_reach_the_bus_as_the_plugin(harness: Harness) -> None:
    """momentum.py (Python) and spread.js (Node.js) read quotes and publish signals as themselves."""
    momentum = eventually(lambda: harness.bus.latest("momentum", "momentum"), 20, what="a momentum signal")
    assert momentum.subject in {"BTC", "ETH"}
    assert momentum.origin.startswith("md.sim.quote.")  # what the plug-in said it measured
    assert momentum.window_s == 1.0 and momentum.count >= 2 and 0 < momentum.confidence <= 1
    assert abs(momentum.value) < 0.05
    if NODE_JS is None:
        pytest.skip("node is not installed: the JavaScript example cannot run")
    spread = eventually(lambda: harness.bus.latest("spread", "spread_bps"), 20, what="a spread signal")
    assert spread.subject in {"BTC", "ETH"} and spread.value > 0 and spread.count >= 1
    status = eventually(lambda: (s := harness.bus.status_of("spread")) and not s.stale and s, 10)
    assert status.items > 0


def test_bad_lines_are_dropped_and_counted_good_ones_pass(harness: Harness) -> None:
    """Every line breaking a rule is refused and counted; the good ones among them pass; a burst is cut."""
    bus = harness.bus

    def good() -> list[float]:
        bus.pump()
        return [s.value for s in bus.signals if s.source == "noisy" and s.kind == "good"]

    assert (
        tuple(eventually(lambda: len(good()) == 3 and good(), 20, what="the good lines"))
        == victim.GOOD_VALUES
    )
    try:
        status = eventually(
            lambda: (s := bus.status_of("noisy")) and s.dropped == len(victim.BAD) and s,
            10,
            what=f"{len(victim.BAD)} lines refused",
        )
    except AssertionError as e:
        raise AssertionError(f"{e}; the last status: {bus.status.get('noisy')}") from None
    assert f"refused={len(victim.BAD)} " in status.detail
    assert all(s.source == "noisy" for s in bus.signals if s.kind in {"good", "bad"})
    assert not [s for s in bus.signals if s.kind == "bad"]
    log = harness.node.log()
    assert victim.HUGE[:40] not in log  # a refused line's content is never logged
    assert "plugin_refused" in log

    harness.trigger("noisy", "burst")  # 100 lines at once, 20 lines/s allowed
    eventually(
        lambda: (s := bus.status_of("noisy")) and s.dropped >= len(victim.BAD) + 60,
        10,
        what="the burst cut down",
    )
    burst = [s for s in bus.signals if s.source == "noisy" and s.kind == "burst"]
    assert 1 <= len(burst) <= 40
    assert harness.node.process.poll() is None


def test_kill_9_of_the_plugin_restarts_it(harness: Harness) -> None:
    """A plug-in killed with SIGKILL: its actor fails and the supervisor starts a new one."""
    old = harness.pid("kill9")
    before = harness.incarnation("kill9")
    grandchild = harness.pid("kill9", kind="grandchild")
    os.kill(old, signal.SIGKILL)
    new = harness.pid("kill9", other_than=old)
    assert new != old and harness.incarnation("kill9") > before
    eventually(lambda: _gone(grandchild), 5, what="what the dead plug-in started, killed with its group")
    assert harness.leftovers("kill9") == []  # by the actor stopping its group, nothing left to sweep
    assert harness.node.process.poll() is None


def test_kill_9_of_the_actor_takes_its_plugin_down_and_both_restart(harness: Harness) -> None:
    """The actor's process killed with SIGKILL (no on_stop): its plug-in dies with it, then restarts.

    The plug-in ignores the end of its stdin, so only the parent-death signal ends it; what it started
    is swept by the next incarnation.
    """
    old = harness.pid("orphan")
    grandchild = harness.pid("orphan", kind="grandchild")
    actor_pid = harness.node.workers()["analyser.orphan"]["pid"]
    os.kill(actor_pid, signal.SIGKILL)
    eventually(lambda: _gone(old), 5, what=f"the plug-in {old} dead with its actor")
    assert harness.pid("orphan", other_than=old) != old
    eventually(lambda: _gone(grandchild), 5, what="its grandchild swept by the next incarnation")
    # Only the grandchild was left: the plug-in itself had died with its actor (parent-death signal).
    assert harness.leftovers("orphan") == [1]


def test_a_hung_plugin_is_killed_and_restarted(harness: Harness) -> None:
    """A plug-in that stops writing (no line, no heartbeat) for hang_after_s is killed and restarted.

    In both placements of its actor: its own process, and a thread of the node (where a failed
    incarnation's ``on_stop`` is not called: the actor kills and reaps its plug-in before it fails).
    """
    plugins = ("hang", "hang_thread")
    old = {p: harness.pid(p) for p in plugins}
    before = {p: harness.incarnation(p) for p in plugins}
    grandchildren = [harness.pid(p, kind="grandchild") for p in plugins]
    for plugin in plugins:
        harness.trigger(plugin, "hang")
    for plugin in plugins:
        assert harness.pid(plugin, other_than=old[plugin]) != old[plugin]
        assert harness.incarnation(plugin) > before[plugin]
    eventually(
        lambda: all(_gone(pid, zombie_ok=False) for pid in old.values()) and all(map(_gone, grandchildren)),
        5,
        what=f"the hung plug-ins {old} killed and reaped, their groups too",
    )
    assert "plugin_hang" in harness.node.log()


def test_limits_environment_and_working_dir_are_applied(harness: Harness) -> None:
    """RLIMIT_AS, open files, niceness, a clean environment, the working dir; stderr reaches the log."""
    bus = harness.bus
    harness.pid("hog")
    seen = {
        kind: eventually(lambda k=kind: bus.latest("hog", k), 10, what=kind)
        for kind in ("leaked", "greeting", "nofile", "memory", "cpu", "core", "nice", "cwd")
    }
    assert seen["leaked"].value == 0, f"inherited from the node: {seen['leaked'].origin}"
    assert seen["greeting"].origin == "hello"
    assert seen["nofile"].value == 64
    assert seen["memory"].value == 256 << 20
    assert seen["cpu"].value == 100 and seen["core"].value == 0
    assert seen["nice"].value == os.nice(0) + 7
    assert seen["cwd"].origin == str(harness.workdir)
    log = harness.node.log()
    assert victim.STDERR_MARK in log and "E" * 300 in log and "E" * 400 not in log  # truncated


def test_rlimit_as_kills_a_plugin_that_allocates_too_much_and_it_restarts(harness: Harness) -> None:
    """Over its memory limit, a plug-in dies (MemoryError) and is restarted; the node is unaffected."""
    old = harness.pid("hog")
    before = harness.incarnation("hog")
    harness.trigger("hog", "alloc")
    new = harness.pid("hog", other_than=old)
    assert new != old and harness.incarnation("hog") > before
    assert "MemoryError" in harness.node.log()
    assert harness.node.process.poll() is None
    since = time.time_ns()
    eventually(
        lambda: (s := harness.bus.latest("momentum", "momentum")) and s.ts_ns > since,
        10,
        what="the other plug-ins still publishing",
    )


def test_a_plugin_that_does_not_read_its_input_does_not_block_the_actor(harness: Harness) -> None:
    """Inputs a plug-in does not read are dropped and counted; the actor keeps publishing its signals."""
    bus = harness.bus

    def input_dropped() -> int:
        status = bus.status_of("deaf")
        match = re.search(r"input_dropped=(\d+)", status.detail) if status else None
        return int(match.group(1)) if match else 0

    first = eventually(input_dropped, 20, what="inputs dropped")
    items = bus.status["deaf"].items
    pid = harness.pid("deaf")
    eventually(
        lambda: input_dropped() > first and bus.status["deaf"].items > items,
        10,
        what="more inputs dropped while signals still flow",
    )
    assert harness.pid("deaf") == pid  # the same plug-in: not restarted


@pytest.mark.parametrize("line", victim.BAD[:-1])  # the last one is over max_line_bytes: never parsed
def test_every_rule_refuses_its_line(line: bytes) -> None:
    """Each of the victim's bad lines breaks a rule of the protocol (the node test counts them)."""
    with pytest.raises(LineRefused):
        parse_line(line, "noisy")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ("command = []", "command"),
        ('command = ["no-such-plugin-here"]', "command"),
        ('command = ["/bin/true"]\ntick_s = 1\nhang_after_s = 1', "hang_after_s"),
        ('command = ["/bin/true"]\ninputs = [""]', "inputs"),
        ('command = ["/bin/true"]\nnice = -5', "nice"),
        ('command = ["/bin/true"]\nenv = { "A=B" = "x" }', "env"),
        ('command = ["/bin/true"]\nenv_files = { KEY = "/no/such/file" }', "env_files"),
    ],
)
def test_a_bad_plugin_config_is_refused_naming_the_field(fields: str, field: str) -> None:
    """The node refuses to start on a plug-in it could not run, and says which field is wrong."""
    with pytest.raises(ConfigError, match=rf"analysers\[0\]\.{field}:"):
        decode_config(f'[[analysers]]\nkind = "plugin"\nid = "p"\n{fields}\n')


def test_a_good_line_becomes_a_signal_from_the_plugin() -> None:
    """``t`` and ``source`` are optional (the plug-in's own id when given); ``ts_ns`` 0 means now."""
    line = (
        b'{"t": "signal", "subject": "PEPE", "kind": "mentions_z", "value": 2, "source": "p", "origin": "x"}'
    )
    signal_ = parse_line(line, "p", now_ns=123)
    assert signal_ == Signal(source="p", subject="PEPE", kind="mentions_z", value=2.0, ts_ns=123, origin="x")
    evm = "0x" + "aB" * 20
    assert parse_line(b'{"subject": "%s", "kind": "k", "value": 1}' % evm.encode(), "p").subject == evm
    assert parse_line(b'{"t": "hb"}', "p") is None
