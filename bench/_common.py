"""Shared pieces of the benchmarks: arguments, temp dirs, percentiles, output, a node in a subprocess.

Every benchmark prints human-readable figures and then, as its last line, one
JSON object with all of them (``{"bench": NAME, ...}``), so a driver can take
the last line of each run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

# The scripts append this to sys.path before importing ``bench.*`` (appended, so a
# PYTHONPATH entry still decides where ``sniperbot`` comes from); node
# subprocesses get it on PYTHONPATH, and forkservers inherit sys.path, so both
# can import the bench actors.
REPO = Path(__file__).resolve().parent.parent


def fast_sim_config(extra: str = "", **node: str) -> str:
    """``config/fast-sim.toml`` (the tests' fast market) with ``[node]`` keys set and sections appended.

    Values are TOML literals: ``fast_sim_config(log_level='"WARNING"', start_timeout_s="30.0")``.
    """
    text = (REPO / "config" / "fast-sim.toml").read_text()
    for key, value in node.items():
        line = re.compile(rf"^{key} = .*$", re.MULTILINE)
        if line.search(text):
            text = line.sub(f"{key} = {value}", text)
        else:
            text = text.replace("[node]\n", f"[node]\n{key} = {value}\n", 1)
    return text + extra


def parse_args(description: str, add: Callable[[argparse.ArgumentParser], None] | None = None) -> Any:
    """The common command line: ``--quick`` for a shorter run, plus the script's own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="shorter run (fewer samples)")
    if add is not None:
        add(parser)
    return parser.parse_args()


@contextlib.contextmanager
def short_tmp(prefix: str = "sb-") -> Iterator[Path]:
    """A temporary directory under /tmp with a short path (unix socket paths: <= 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix=prefix, dir="/tmp") as d:
        yield Path(d)


def fs_type(path: Path) -> str:
    """File system type of the mount that holds ``path`` (journal fsync costs depend on it)."""
    best, kind = "", "?"
    target = str(path.resolve())
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            parts = line.split()
            mount_point, fstype = parts[1], parts[2]
            inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, kind = mount_point, fstype
    return kind


# -- statistics ---------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already sorted values, nearest-rank."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


_QUANTILES = {"p50": 50, "p90": 90, "p99": 99, "p99_9": 99.9}


def latency_us(values_ns: Sequence[int]) -> dict[str, Any]:
    """p50/p90/p99/p99.9/max/mean of nanosecond samples, in µs (1 decimal); None when empty."""
    ordered = sorted(values_ns)
    if not ordered:
        return {**dict.fromkeys((*_QUANTILES, "max", "mean")), "n": 0}
    out: dict[str, Any] = {k: round(percentile(ordered, q) / 1e3, 1) for k, q in _QUANTILES.items()}
    out["max"] = round(ordered[-1] / 1e3, 1)
    out["mean"] = round(sum(ordered) / len(ordered) / 1e3, 1)
    out["n"] = len(ordered)
    return out


def latency_ms(values_ns: Sequence[int]) -> dict[str, Any]:
    """Like :func:`latency_us`, in milliseconds (2 decimals)."""
    return {
        k: (round(v / 1e3, 2) if k != "n" and v is not None else v) for k, v in latency_us(values_ns).items()
    }


def fmt_latency(label: str, stats: dict[str, Any], unit: str = "µs") -> str:
    """One aligned line: label, p50, p99, p99.9, max, n."""
    if not stats["n"]:
        return f"  {label:<36} no samples"
    return (
        f"  {label:<{max(36, len(label))}} p50 {stats['p50']:>8.1f} {unit}  p99 {stats['p99']:>8.1f} {unit}  "
        f"p99.9 {stats['p99_9']:>8.1f} {unit}  max {stats['max']:>8.1f} {unit}  n={stats['n']}"
    )


def ratio(ours: float | None, floor: float | None) -> float | None:
    """``ours / floor`` rounded to 2 decimals; None when either is missing or the floor is 0."""
    if ours is None or not floor or math.isnan(floor):
        return None
    return round(ours / floor, 2)


def verdict(ok: bool) -> str:
    """MET / MISSED for a target line."""
    return "MET" if ok else "MISSED"


def emit(bench: str, figures: dict[str, Any]) -> None:
    """Print the final single JSON line with every figure."""
    print(json.dumps({"bench": bench, **figures}, sort_keys=False, default=str), flush=True)


# -- processes ----------------------------------------------------------------------------


def subprocess_env() -> dict[str, str]:
    """Environment for node subprocesses: ``bench`` importable, logs quiet unless asked."""
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(REPO) not in paths:
        paths.append(str(REPO))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def wait_for(check: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy; raise TimeoutError naming ``what``."""
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
    raise TimeoutError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


class NodeProcess:
    """A node in a subprocess: ``python -m sniperbot run``, or ``bench._node`` with a custom tree.

    The subprocess runs with its cwd in the temp dir (so ``python -m`` does not
    put the repo first on sys.path ahead of PYTHONPATH) and with the repo on
    PYTHONPATH, so that the node's forkserver can import ``bench.*`` actors.
    ``extra_args`` go after the common options (e.g. ``--enable-chaos`` of ``sniperbot run``).
    """

    def __init__(
        self,
        work: Path,
        config_text: str | None,
        *,
        tree: str | None = None,
        tree_args: dict[str, Any] | None = None,
        duration_s: float = 120.0,
        name: str = "node",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.run_dir = work / name
        self.log_path = work / f"{name}.log"
        args: list[str] = []
        if config_text is not None:
            config = work / f"{name}.toml"
            config.write_text(config_text)
            args += ["--config", str(config)]
        args += ["--run-dir", str(self.run_dir), "--duration", str(duration_s), *extra_args]
        if tree is None:
            command = [sys.executable, "-m", "sniperbot", "run", *args]
        else:
            # -c, not -m: multiprocessing re-imports a main module given by name or path
            # in every forkserver child (only ``*.__main__`` is exempt, as with
            # ``python -m sniperbot``), which would slow every actor start.
            tree_json = json.dumps(tree_args or {})
            runner = "import sys; from bench._node import main; sys.exit(main())"
            command = [sys.executable, "-c", runner, "--tree", tree, "--tree-args", tree_json, *args]
        self._log = open(self.log_path, "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, cwd=work, env=subprocess_env()
        )

    @property
    def pid(self) -> int:
        """The node process's pid."""
        return self.process.pid

    def admin(self, command: str) -> Any:
        """One admin request (the same socket as ``sniperbot admin --run-dir D CMD --json``)."""
        from sniperbot.admin import admin_request

        reply = admin_request(self.run_dir, command, timeout_s=5.0)
        if not reply.ok:
            raise RuntimeError(f"admin {command} failed: {reply.error}")
        return reply.result

    def workers(self) -> dict[str, dict[str, Any]]:
        """Every worker of the supervision tree, by actor id."""
        out: dict[str, dict[str, Any]] = {}

        def walk(node: dict[str, Any]) -> None:
            if node["kind"] == "worker":
                out[node["id"]] = node
            for child in node["children"]:
                walk(child)

        walk(self.admin("tree"))
        return out

    def check_alive(self) -> None:
        """Raise with the log's tail if the node exited."""
        code = self.process.poll()
        if code is not None:
            raise RuntimeError(f"node exited with code {code}; log tail:\n{self.log_tail()}")

    def wait_ready(self, timeout_s: float = 30.0) -> dict[str, dict[str, Any]]:
        """Wait until every worker is running; returns them."""

        def ready() -> dict[str, dict[str, Any]] | None:
            self.check_alive()
            workers = self.workers()
            if workers and all(w["state"] == "running" for w in workers.values()):
                return workers
            return None

        try:
            return wait_for(ready, timeout_s, "all actors running", interval_s=0.05)
        except TimeoutError as e:
            raise TimeoutError(f"{e}; log tail:\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the node printed."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM the node and wait (SIGKILL after ``timeout_s``); returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(5)
        self._log.close()
        return code

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def reap(processes: Iterable[Any], timeout_s: float) -> None:
    """Join each process for up to ``timeout_s``; kill the ones still running then (a bench never hangs)."""
    for proc in processes:
        proc.join(timeout_s)
        if proc.exitcode is None:
            proc.kill()
            proc.join()


class SnipeLog:
    """What a sniping node's JSON log says, for the snipe benchmarks (``bench/*_snipe.py``)."""

    def __init__(self, log_path: Path, quote: str) -> None:
        from datetime import datetime

        self.safety_ns: list[int] = []  # token_safety checks that said "buy": their duration
        self.to_intent_ns: list[int] = []  # snipe_buy: the safety report -> the buy intent
        self.seen_ns: dict[str, int] = {}  # "<token>/<quote>" -> the watcher's new_pool line (wall ns)
        self.warnings: dict[str, int] = {}  # warning-or-worse lines by event name
        for line in log_path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            event = str(record.get("event"))
            level = str(record.get("levelname", record.get("level", ""))).upper()
            if level in ("WARNING", "ERROR", "CRITICAL"):
                self.warnings[event] = self.warnings.get(event, 0) + 1
            if event == "token_safety" and record.get("verdict") == "buy" and "ms" in record:
                self.safety_ns.append(int(float(record["ms"]) * 1e6))
            elif event == "snipe_buy":
                self.to_intent_ns.append(int(float(record["report_to_intent_ms"]) * 1e6))
            elif event == "new_pool" and "ts" in record and "token" in record:
                stamp = datetime.fromisoformat(str(record["ts"]).replace("Z", "+00:00")).timestamp()
                self.seen_ns.setdefault(f"{record['token']}/{quote}", int(stamp * 1e9))


def buy_decisions(run_dir: Path) -> dict[str, int]:
    """Each journaled buy order's symbol -> its ``ts_ns`` (when the risk guard decided it)."""
    from sniperbot.journal import Journal

    journal = Journal.open(run_dir, readonly=True)
    try:
        return {o.symbol: o.ts_ns for o in journal.orders() if o.side == "buy"}
    finally:
        journal.close()
