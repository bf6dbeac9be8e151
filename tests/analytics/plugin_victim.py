"""Plug-ins that misbehave on purpose, for tests/analytics/test_plugins.py (run as a script).

``plugin_victim.py <mode> <trigger dir>``; the trigger files are ``<trigger dir>/<plugin id>.<what>``
(the plug-in removes one before acting on it, so that its next incarnation behaves):

* ``victim``: starts a grandchild (``sleep``); on every tick writes its pid, the grandchild's, and
  what it sees of its environment and limits; on ``.hang`` it stops reading and writing (a hang); on
  ``.alloc`` it allocates 400 MB. It ignores the end of its input (only a signal stops it).
* ``noisy``: writes every line of :data:`BAD` (each breaks one rule) among :data:`GOOD_VALUES`
  signals, then heartbeats; on ``.burst`` it writes :data:`BURST` signals at once.
* ``deaf``: never reads its stdin; writes its pid every 0.1 s.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

STDERR_MARK = "victim-stderr-mark:"
HUGE = "HUGE" * 25_000  # a 100 kB line: over any max_line_bytes
BAD: list[bytes] = [
    b"not json",
    b"[1, 2]",
    b'{"subject": "BTC", "kind": "bad", "value": 1, "extra": 1}',
    b'{"subject": "BTC", "kind": "bad", "value": "1"}',
    b'{"subject": "BTC", "kind": "bad", "value": true}',
    b'{"subject": "BTC", "kind": "bad", "value": 1e999}',
    b'{"subject": "BTC", "kind": "bad", "value": 1, "confidence": 1.5}',
    b'{"subject": "BTC", "kind": "bad", "value": 1, "window_s": -1}',
    b'{"subject": "btc", "kind": "bad", "value": 1}',
    b'{"subject": "BTC.X", "kind": "bad", "value": 1}',
    b'{"subject": "BTC", "kind": "Bad Kind", "value": 1}',
    b'{"subject": "BTC", "kind": "bad", "value": 1, "source": "sentiment"}',
    b'{"t": "order", "subject": "BTC", "kind": "bad", "value": 1}',
    b'{"t": "hb", "extra": 1}',
    b'{"subject": "BTC", "kind": "bad", "value": 1, "ts_ns": 9000000000000000000}',
    b'{"subject": "\xff\xfe", "kind": "bad", "value": 1}',
    b'{"subject": "BTC", "kind": "bad", "value": 1, "origin": "' + HUGE.encode() + b'"}',
]
GOOD_VALUES = (1.0, 2.0, 3.0)
# The whole environment a plug-in gets with env = {GREETING = ...}: nothing of the node's.
EXPECTED_ENV = {"PATH", "LANG", "HOME", "SNIPERBOT_PLUGIN_ID", "SNIPERBOT_PLUGIN_RUN", "GREETING"}
BURST = 100


def _write(obj: dict[str, object] | bytes) -> None:
    line = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    sys.stdout.buffer.write(line + b"\n")
    sys.stdout.buffer.flush()


def _triggered(trigger_dir: str, what: str) -> bool:
    path = os.path.join(trigger_dir, f"{os.environ['SNIPERBOT_PLUGIN_ID']}.{what}")
    if os.path.exists(path):
        os.unlink(path)
        return True
    return False


def victim(trigger_dir: str) -> None:
    """Report pid, environment and limits on every tick; hang or allocate when told."""
    pid = os.getpid()
    grandchild = subprocess.Popen(["sleep", "3600"])  # in the plug-in's process group
    print(f"{STDERR_MARK} started pid={pid} " + "E" * 5000, file=sys.stderr, flush=True)
    for line in sys.stdin:
        if json.loads(line).get("t") != "tick":
            continue
        if _triggered(trigger_dir, "hang"):
            time.sleep(3600)
        if _triggered(trigger_dir, "alloc"):
            hog = bytearray(400 << 20)  # over its memory_mb: MemoryError, and the plug-in exits
            hog[-1] = 1
        leaked = sorted(set(os.environ) - EXPECTED_ENV)
        for kind, value, origin in (
            ("pid", pid, ""),
            ("grandchild", grandchild.pid, ""),
            ("leaked", len(leaked), ",".join(leaked)[:200]),
            ("greeting", 0, os.environ.get("GREETING", "")),
            ("nofile", resource.getrlimit(resource.RLIMIT_NOFILE)[0], ""),
            ("memory", resource.getrlimit(resource.RLIMIT_AS)[0], ""),
            ("cpu", resource.getrlimit(resource.RLIMIT_CPU)[0], ""),
            ("core", resource.getrlimit(resource.RLIMIT_CORE)[1], ""),
            ("nice", os.nice(0), ""),
            ("cwd", 0, os.getcwd()),
        ):
            _write({"subject": "PLUGIN", "kind": kind, "value": value, "origin": origin})
    time.sleep(3600)  # stdin closed: a stubborn plug-in stays (its actor's death must still end it)


def noisy(trigger_dir: str) -> None:
    """Bad lines among good ones, then heartbeats; a burst when told."""
    for i, bad in enumerate(BAD):
        _write(bad)
        if i < len(GOOD_VALUES):
            _write({"subject": "BTC", "kind": "good", "value": GOOD_VALUES[i], "origin": "noisy-test"})
    last_hb = 0.0
    for line in sys.stdin:
        if json.loads(line).get("t") != "tick":
            continue
        if _triggered(trigger_dir, "burst"):
            for i in range(BURST):
                _write({"subject": "BTC", "kind": "burst", "value": i})
        # At most one heartbeat a second, whatever the ticks: ticks queued while it started would
        # otherwise come back as a burst of heartbeats and use up its max_lines_per_s.
        if time.monotonic() - last_hb >= 1.0:
            last_hb = time.monotonic()
            _write({"t": "hb"})


def deaf() -> None:
    """Never read stdin; stay alive."""
    while True:
        _write({"subject": "PLUGIN", "kind": "pid", "value": os.getpid()})
        time.sleep(0.1)


if __name__ == "__main__":
    mode, trigger = sys.argv[1], sys.argv[2]
    {"victim": lambda: victim(trigger), "noisy": lambda: noisy(trigger), "deaf": deaf}[mode]()
