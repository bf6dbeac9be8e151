"""Shared fixtures: a real node in a real process, on a fast simulated market.

Also the suite's rules for what may not run:

* **No silent skips in CI.** With ``CI=true`` (or ``1``/``yes``) in the environment, every
  skip is turned into a failure that keeps the skip's reason (:func:`pytest_runtest_makereport`,
  :func:`pytest_make_collect_report`): in CI a missing test dependency (``talib``,
  ``pyarrow``, ...) or missing data means the suite did not check what it claims to. Outside
  CI the skip stays a skip, and ``-rs`` (in ``addopts``) prints every skip's reason. A test
  that must not run somewhere is deselected there, not skipped. Expected failures
  (``xfail``) are not skips and are left alone.
* **Shared data** (the real candles the parity checks use) is found by :func:`shared_dir`:
  ``$SNIPERBOT_SHARED`` when set (the directory that holds ``data/``), else the first
  ``shared/`` with a ``data/`` directory beside the checkout or beside one of its parents
  (``<dir>/main`` finds ``<dir>/shared``; a worktree ``<dir>/wt/x`` finds it too).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A market and strategies fast enough to trade within a couple of seconds.
FAST_CONFIG = (ROOT / "config" / "fast-sim.toml").read_text()

# CI sets CI=true (GitHub, GitLab, ...): there a skip is a failure (see the module docstring).
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


# -- no silent skips in CI ----------------------------------------------------------------


def _skip_reason(longrepr: Any) -> str:
    """The reason of a skip report (pytest stores it as (path, line, "Skipped: reason"))."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Turn a skip report into a failure naming the skip's reason, when running in CI."""
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped in CI: {_skip_reason(report.longrepr)}\n"
            "(CI=true: a missing test dependency or missing data fails the run instead of "
            "skipping; install it, or see tests/conftest.py for where shared data is looked for)"
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Every test skip (skipif marks, ``pytest.skip``, ``importorskip``) fails in CI; a failed test's
    report carries the tail of the log of every node it used (:func:`_add_node_logs`)."""
    report = yield
    _fail_in_ci(report)
    if report.failed:
        _add_node_logs(report)
    return report


# -- the nodes' logs in a failure's report -------------------------------------------------
# A test that fails because a node misbehaved (stopped trading, never started...) is often one that
# only fails under CI load: the node's own log is the only witness, and it lives in a temporary
# directory deleted after the test. So a failed test's report shows the tail of the log of every
# node it started, or that was still running when it began (a node of a module-scoped fixture).

#: How many of a node log's last lines a failed test's report shows, and how long each may be.
NODE_LOG_TAIL_LINES = 60
NODE_LOG_LINE_CHARS = 600
#: Where the full logs of a failed test's nodes are copied, when set (e.g. to keep them from CI).
NODE_LOGS_DIR_ENV = "SNIPERBOT_TEST_NODE_LOGS"


def _log_tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a log file (read from its end: a node's log can be large)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - lines * NODE_LOG_LINE_CHARS * 2))
        tail = f.read().decode("utf-8", "replace").splitlines()[-lines:]
    cut = NODE_LOG_LINE_CHARS
    return "\n".join(line if len(line) <= cut else line[:cut] + " [...]" for line in tail)


def _add_node_logs(report: pytest.TestReport) -> None:
    """Add a section with the tail of each node's log to a failed test's report (and copy the logs
    to ``$SNIPERBOT_TEST_NODE_LOGS`` when set)."""
    keep = os.environ.get(NODE_LOGS_DIR_ENV)
    for i, running in enumerate(RunningNode.of_test):
        state = "running" if running.process.poll() is None else f"exited {running.process.returncode}"
        title = f"node {i} log tail ({running.log_path}, pid {running.process.pid}, {state})"
        try:
            if not running._log.closed:  # stop() closes it (a node stopped in the test)
                running._log.flush()
            tail = _log_tail(running.log_path, NODE_LOG_TAIL_LINES)
            if keep:
                name = report.nodeid.replace("/", "_").replace("::", "-")
                dest = Path(keep) / f"{name}.{report.when}.{i}.log"
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(running.log_path, dest)
                title += f" (copied to {dest})"
        except OSError as e:  # the run dir's temporary directory may be gone already (teardown)
            tail = f"(log not readable: {e})"
        report.sections.append((title, tail))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """The nodes of this test so far: those still running from earlier fixtures (see above)."""
    RunningNode.of_test = list(RunningNode.live)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """A whole module skipped at import (``importorskip`` at module level) fails in CI."""
    report = yield
    _fail_in_ci(report)
    return report


def optional_import(name: str) -> tuple[ModuleType | None, str]:
    """Import a test-only dependency: (module, "") or (None, why it cannot be imported).

    Tests skip on None with that reason (``pytest.mark.skipif(mod is None, reason=why)``);
    the hooks above make the skip a failure in CI.
    """
    try:
        return importlib.import_module(name), ""
    except ImportError as e:  # a missing wheel, or one whose C library does not load
        return None, f"{name} cannot be imported ({type(e).__name__}: {e})"


def shared_dir() -> Path | None:
    """The shared directory beside the checkout that holds ``data/`` (see the module docstring)."""
    override = os.environ.get("SNIPERBOT_SHARED")
    if override:  # set on purpose: no fallback, so a wrong path shows up as missing data
        return Path(override)
    for parent in ROOT.parents:
        candidate = parent / "shared"
        if (candidate / "data").is_dir():
            return candidate
    return None


def shared_data(*parts: str) -> Path:
    """A path under ``<shared>/data/`` (it may not exist: callers skip, with this path as reason)."""
    base = shared_dir()
    if base is None:
        return ROOT.parent / "shared" / "data" / Path(*parts)  # where CI puts it; named in the skip
    return base / "data" / Path(*parts)


def missing_data_reason(path: Path) -> str:
    """Why a test needing ``path`` cannot run, and how to point the suite at the data."""
    return (
        f"shared data not found at {path} (it sits in ../shared/data beside the checkout or a parent "
        "of it; set SNIPERBOT_SHARED to the directory that holds data/)"
    )


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


class ScriptProcess:
    """One incarnation of a test node script (``python -m <module> <spec json>``), its stderr in ``log``.

    ``env`` is added to this process's environment without ``drop`` (a fault injection variable the
    next incarnation must not inherit).
    """

    def __init__(
        self, module: str, spec: dict[str, Any], log: Path, env: dict[str, str], drop: tuple[str, ...] = ()
    ) -> None:
        full = {k: v for k, v in os.environ.items() if k not in drop}
        full.update({"PYTHONPATH": str(ROOT), "SNIPERBOT_LOG_LEVEL": "INFO", **env})
        self.log = log
        self._err = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, json.dumps(spec)],
            cwd=ROOT,
            env=full,
            stdout=subprocess.DEVNULL,
            stderr=self._err,
        )

    def wait(self, timeout: float) -> int:
        """Its exit code (raises ``subprocess.TimeoutExpired`` if it has not exited by then)."""
        try:
            return self.proc.wait(timeout)
        finally:
            self._err.flush()

    def stop(self) -> None:
        """SIGTERM (a clean stop), SIGKILL if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._err.close()


class RunningNode:
    """A ``sniperbot run`` process and ways to look at it (stopped after its test in any case)."""

    # Nodes not stopped yet: a test that fails before its stop() must not leave one running.
    live: set[RunningNode] = set()
    # The nodes of the current test, started by it or running when it began (their logs go in its
    # failure report: see _add_node_logs).
    of_test: list[RunningNode] = []

    def __init__(
        self, run_dir: Path, config: Path, extra: tuple[str, ...] = (), *, own_group: bool = False
    ) -> None:
        """``own_group``: the node leads its own process group, as in a terminal (Ctrl-C reaches all)."""
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
            start_new_session=own_group,
        )
        RunningNode.live.add(self)
        RunningNode.of_test.append(self)

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

    def wait_ready(self, timeout_s: float = 60.0) -> dict[str, dict[str, Any]]:
        """Wait until every worker is running and the node has heard the risk guard's trading state.

        The state is ``UNKNOWN`` in ``admin status`` until the risk guard's first status reaches the
        node (published at its start, then every 0.5 s): a test asserting it must not race that.
        """
        workers = eventually(
            lambda: (w := self.workers()) and all(n["state"] == "running" for n in w.values()) and w,
            timeout_s,
            what="all actors running",
        )
        eventually(
            lambda: self.admin("status")["trading_state"] != "UNKNOWN", timeout_s, what="the risk status"
        )
        return workers

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the node and wait for it to exit."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()  # its actors follow (parent-death signal)
            self.process.wait(10)
            raise
        finally:
            RunningNode.live.discard(self)
            self._log.close()
        return code

    def log(self) -> str:
        """What the node printed so far."""
        return self.log_path.read_text()


def breaker_changes(node: RunningNode, scope: str) -> list[tuple[str, str]]:
    """(state, reason) of each change of breaker ``scope``, in order, from the node's log."""
    changes = []
    text = node.log()
    for line in text[: text.rfind("\n") + 1].splitlines():  # not a line the node is still writing
        if '"event": "breaker"' in line:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # another process's long line written across this one: not a breaker record
            if record["scope"] == scope:
                changes.append((record["state"], record["reason"]))
    return changes


def _stop_leftover_nodes() -> None:
    """Stop every node a test started and did not stop (it failed before its ``stop()``)."""
    for running in list(RunningNode.live):
        with contextlib.suppress(Exception):
            running.stop(timeout=20)


@pytest.fixture(autouse=True)
def _no_node_left_running() -> Iterator[None]:
    """After each test, no node of it is left running."""
    yield
    _stop_leftover_nodes()


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
        try:
            yield Path(d)
        finally:
            _stop_leftover_nodes()  # before their run dirs go away


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
