"""Shared fixtures: a real node in a real process, on a fast simulated market."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A market and strategies fast enough to trade within a couple of seconds.
FAST_CONFIG = (ROOT / "config" / "fast-sim.toml").read_text()


def eventually(
    check: Callable[[], Any], timeout_s: float = 15.0, interval_s: float = 0.05, what: str = ""
) -> Any:
    """Poll ``check`` until it returns a truthy value; fail with ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as e:  # the node may still be starting
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what or check}: last={last!r}")


def sniperbot(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run the sniperbot CLI in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "sniperbot", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


class RunningNode:
    """A ``sniperbot run`` process and ways to look at it."""

    def __init__(self, run_dir: Path, config: Path, extra: tuple[str, ...] = ()) -> None:
        self.run_dir = run_dir
        self.log_path = run_dir.parent / f"{run_dir.name}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sniperbot",
                "run",
                "--config",
                str(config),
                "--run-dir",
                str(run_dir),
                *extra,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def admin(self, command: str) -> dict[str, Any]:
        """``sniperbot admin ... --json``."""
        result = sniperbot("admin", "--run-dir", str(self.run_dir), command, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def workers(self) -> dict[str, dict[str, Any]]:
        """Every worker of the tree by id."""
        out: dict[str, dict[str, Any]] = {}

        def walk(node: dict[str, Any]) -> None:
            if node["kind"] == "worker":
                out[node["id"]] = node
            for child in node["children"]:
                walk(child)

        walk(self.admin("tree"))
        return out

    def wait_ready(self, timeout_s: float = 20.0) -> dict[str, dict[str, Any]]:
        """Wait until every worker is running."""
        return eventually(
            lambda: (w := self.workers()) and all(n["state"] == "running" for n in w.values()) and w,
            timeout_s,
            what="all actors running",
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the node and wait for it to exit."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self._log.close()
        return code

    def log(self) -> str:
        """What the node printed so far."""
        return self.log_path.read_text()


@pytest.fixture
def fast_config(tmp_path: Path) -> Path:
    """The fast test config as a file."""
    path = tmp_path / "fast.toml"
    path.write_text(FAST_CONFIG)
    return path


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temporary directory (unix socket paths are limited to 107 bytes)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sb-", dir="/tmp") as d:
        yield Path(d)


@pytest.fixture
def node(short_tmp: Path, fast_config: Path) -> Iterator[RunningNode]:
    """A running node on the fast config, stopped (and killed if need be) afterwards."""
    running = RunningNode(short_tmp / "run", fast_config)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.send_signal(signal.SIGTERM)
            try:
                running.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(running.process.pid, signal.SIGKILL) if False else running.process.kill()
                running.process.wait(5)
