"""Restart latency of placement ``ray``: kill of a Ray actor until its next incarnation serves again.

A real node (``Node`` with ``--ray auto``: a local Ray cluster started by the
node, the default topology on a fast trading config) runs in a subprocess, with
``strategy.fast_btc`` (no inbox) and ``risk_guard`` (a tcp inbox) placed on
Ray and every other actor a process. Kills alternate between ``ray.kill`` of
the named actor from a second Ray driver (this process) and ``kill -9`` of the
Ray worker process; as a same-run baseline, ``strategy.fast_eth`` (placement
process) is killed with ``kill -9`` too.

Each kill is timed from just before the kill to:

- ``detected``: the supervisor has started a new incarnation (the old one's
  end was seen through the handle's sentinel);
- ``serving``: the new incarnation is ready, i.e. the first of its Ready on the
  bus (SUB on ``bus-out.sock``) and the supervisor reporting it running (its
  Ready came on the control socket); ``which_children`` is polled every 2 ms.

Every supervisor's restart intensity is raised so that the kills measure
restarts, not escalations. Ray sends traffic off the machine when it starts, so
this refuses to run outside a network namespace with only loopback::

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python bench/restart_ray.py'
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # bench.*; PYTHONPATH wins for sniperbot

import msgspec
import zmq

from bench._common import (
    emit,
    fast_sim_config,
    fmt_latency,
    latency_ms,
    parse_args,
    short_tmp,
    subprocess_env,
    wait_for,
)
from bench.restart import AdminPoller
from sniperbot.messages import Ready, decode_envelope
from sniperbot.rundir import RunDir
from sniperbot.transport.bus import LOCAL_MARK, split_message

CONFIG = fast_sim_config(
    "\n[supervisor]\nintensity = 100000\n"
    '\n[placement]\nactors = { "strategy.fast_btc" = "ray", "risk_guard" = "ray" }\n',
    log_level='"WARNING"',
    start_timeout_s="30.0",
)

RAY_VICTIMS = ("strategy.fast_btc", "risk_guard")
PROCESS_VICTIM = "strategy.fast_eth"
_POLL_MS = 2


def serve(config_path: str, run_dir: str) -> int:
    """The node subprocess: ``Node(--ray auto)`` on the default tree with intensities raised."""
    from sniperbot.config import load_config
    from sniperbot.logs import configure_logging
    from sniperbot.node import Node
    from sniperbot.supervision import ChildSpec

    def raise_intensity(spec: ChildSpec) -> ChildSpec:
        if spec.type != "supervisor":
            return spec
        return msgspec.structs.replace(
            spec,
            flags=msgspec.structs.replace(spec.flags, intensity=100_000),
            children=[raise_intensity(c) for c in spec.children],
        )

    config = load_config(config_path)
    configure_logging(config.node.log_level)
    node = Node(config, run_dir, ray_address="auto")
    node.tree_spec = raise_intensity(node.tree_spec)
    return node.run(900)


def _check_namespace() -> None:
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    interfaces = sorted(line.split(":", 1)[0].strip() for line in lines if ":" in line)
    if interfaces != ["lo"]:
        sys.exit(
            f"restart_ray.py must run in a network namespace with only loopback (found {interfaces}); "
            "as root: unshare -n sh -c 'ip link set lo up && exec .venv/bin/python bench/restart_ray.py'"
        )


def measure(work: Path, ray_kills: int, process_kills: int) -> dict[str, Any]:
    """Run the node, kill its actors, return samples (ns) by kind."""
    config = work / "node.toml"
    config.write_text(CONFIG)
    run_dir = work / "node"
    log_path = work / "node.log"
    with open(log_path, "w") as log_file:
        # ``python -c``: a main script would be re-imported by every forkserver child.
        code = (
            "import sys; from bench.restart_ray import serve; "
            f"sys.exit(serve({str(config)!r}, {str(run_dir)!r}))"
        )
        node = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=work,
            env=subprocess_env(),
        )
    rundir = RunDir(run_dir)
    zctx = zmq.Context()
    samples: dict[str, dict[str, list[int]]] = {
        k: {"detected": [], "serving": []} for k in ("ray.kill", "kill -9 ray worker", "kill -9 process")
    }
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "token")  # the local cluster's token, ~/.ray/auth_token
    started = time.monotonic()

    def tail() -> str:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])

    try:
        wait_for(lambda: (run_dir / "admin.sock").exists() or node.poll() is not None, 120, "admin socket")
        admin = AdminPoller(zctx, rundir)
        sub = zctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"ctl.ready.")
        sub.setsockopt(zmq.SUBSCRIBE, LOCAL_MARK + b"ctl.ready.")  # a local actor's own (bus docstring)
        sub.connect(rundir.bus_out)

        def all_running() -> dict[str, dict[str, Any]] | None:
            if node.poll() is not None:
                raise RuntimeError(f"node exited {node.returncode}:\n{tail()}")
            workers = admin.workers()
            return workers if all(w["state"] == "running" for w in workers.values()) else None

        wait_for(all_running, 120, "all actors running", interval_s=0.05)
        ready_s = time.monotonic() - started
        wait_for(lambda: admin.request("status")["fills"] >= 2, 60, "first fills", interval_s=0.2)
        fills_before = admin.request("status")["fills"]

        import ray

        ray.init(
            address=rundir.ray_address.read_text().strip(),
            namespace="sniperbot",
            logging_level=logging.ERROR,
            log_to_driver=False,
        )
        plan = [
            (RAY_VICTIMS[i % 2], "ray.kill" if (i // 2) % 2 == 0 else "kill -9 ray worker")
            for i in range(ray_kills)
        ]
        plan += [(PROCESS_VICTIM, "kill -9 process")] * process_kills
        for actor, how in plan:
            workers = wait_for(all_running, 30, "tree running before a kill", interval_s=0.01)
            victim = workers[actor]
            while sub.poll(0):
                sub.recv_multipart()
            t0 = time.perf_counter_ns()
            if how == "ray.kill":
                ray.kill(ray.get_actor(f"{actor}#{victim['incarnation']}"), no_restart=True)
            else:
                os.kill(victim["pid"], signal.SIGKILL)
            t_detect = t_serving = None
            deadline = t0 + 30_000_000_000
            while t_serving is None:
                if time.perf_counter_ns() > deadline:
                    raise TimeoutError(f"{actor} did not restart after {how}:\n{tail()}")
                if sub.poll(_POLL_MS):
                    _, frame = split_message(sub.recv())
                    ready = decode_envelope(frame).payload
                    if (
                        isinstance(ready, Ready)
                        and ready.actor_id == actor
                        and ready.incarnation > victim["incarnation"]
                    ):
                        t_serving = time.perf_counter_ns()
                child = admin.child(victim["parent"], actor)
                now = time.perf_counter_ns()
                if t_detect is None and child["incarnation"] > victim["incarnation"]:
                    t_detect = now
                if (
                    t_serving is None
                    and child["incarnation"] > victim["incarnation"]
                    and child["state"] == "running"
                ):
                    t_serving = now
            samples[how]["detected"].append((t_detect or t_serving) - t0)
            samples[how]["serving"].append(t_serving - t0)
        wait_for(all_running, 30, "tree running after the kills", interval_s=0.01)
        fills_after = wait_for(
            lambda: (f := admin.request("status")["fills"]) > fills_before and f, 60, "fills after the kills"
        )
        restarts = {a: w["restarts"] for a, w in admin.workers().items()}
        ray.shutdown()
        sub.close(0)
        admin.socket.close(0)
    finally:
        if node.poll() is None:
            node.send_signal(signal.SIGTERM)
        t_stop = time.monotonic()
        try:
            code = node.wait(60)
        except subprocess.TimeoutExpired:
            node.kill()
            code = node.wait(5)
        stop_s = time.monotonic() - t_stop
        zctx.term()
    return {
        "samples": samples,
        "node_ready_s": round(ready_s, 2),
        "node_stop_s": round(stop_s, 2),
        "fills_before": fills_before,
        "fills_after": fills_after,
        "restarts": restarts,
        "node_exit": code,
    }


def main() -> int:
    """Measure; print; emit the JSON line."""
    args = parse_args(__doc__.splitlines()[0])
    _check_namespace()
    ray_kills = 8 if args.quick else 40
    process_kills = 4 if args.quick else 20
    with short_tmp("sb-rray-") as work:
        result = measure(work, ray_kills, process_kills)
    figures: dict[str, Any] = {}
    print("restart latency, placement ray (local cluster, --ray auto), kill -> ... in ms")
    for how, kinds in result["samples"].items():
        for kind, values in kinds.items():
            stats = latency_ms(values)
            figures[f"{how}/{kind}"] = stats
            print(fmt_latency(f"{how}: {kind}", stats, "ms"))
    ray_serving = (
        result["samples"]["ray.kill"]["serving"] + result["samples"]["kill -9 ray worker"]["serving"]
    )
    overall = latency_ms(ray_serving)
    print(fmt_latency("ray, all kills: serving again", overall, "ms"))
    print(
        f"  node ready {result['node_ready_s']} s after start (Ray start included), "
        f"stopped in {result['node_stop_s']} s with exit {result['node_exit']}; "
        f"fills {result['fills_before']} -> {result['fills_after']}"
    )
    emit(
        "restart_ray",
        {
            "ray_kills": len(ray_serving),
            "ray_serving_ms_p50": overall["p50"],
            "ray_serving_ms_p99": overall["p99"],
            "figures": figures,
            "node_ready_s": result["node_ready_s"],
            "node_stop_s": result["node_stop_s"],
            "node_exit": result["node_exit"],
            "fills_before": result["fills_before"],
            "fills_after": result["fills_after"],
            "restarts": result["restarts"],
        },
    )
    return 0 if result["node_exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
