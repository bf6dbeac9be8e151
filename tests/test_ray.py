"""Placement ``ray`` on a real local Ray cluster (``sniperbot run --ray auto``).

Ray sends traffic off the machine when it starts (it probes the cloud metadata
address 169.254.169.254 and binds the external interface), so these tests run
only inside a network namespace whose sole interface is loopback; anywhere
else they fail without starting Ray. ``make test`` runs them that way::

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/pytest tests/test_ray.py'

The main suite (plain ``pytest``) leaves this file out (``--ignore`` in pyproject).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FAST_CONFIG, ROOT, RunningNode, eventually, sniperbot

RAY_CONFIG = (
    FAST_CONFIG.replace("[node]\n", "[node]\nstart_timeout_s = 30.0\n", 1)
    + '\n[placement]\nactors = { "strategy.fast_btc" = "ray", "risk_guard" = "ray" }\n'
)


def _interfaces() -> list[str]:
    """Network interfaces of this namespace (/proc/net/dev lists them all, up or down)."""
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":", 1)[0].strip() for line in lines if ":" in line)


@pytest.fixture(autouse=True, scope="module")
def _loopback_only() -> None:
    """Refuse to start Ray where it could reach the network."""
    interfaces = _interfaces()
    if interfaces != ["lo"]:
        pytest.fail(
            f"tests/test_ray.py must run in a network namespace with only loopback (found {interfaces}): "
            "Ray sends traffic off the machine when it starts. Run as root: unshare -n sh -c "
            "'ip link set lo up && exec .venv/bin/pytest tests/test_ray.py' (make test does).",
            pytrace=False,
        )


@pytest.fixture
def ray_driver() -> Iterator[Any]:
    """This test process as a second Ray driver (to ``ray.kill`` from outside), disconnected after.

    Ray is imported lazily (``ray_driver()``): it looks for the cluster's auth token
    (``~/.ray/auth_token``, written by the node's ``ray.init``) when it is imported.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # A local cluster uses token auth; a driver given an explicit address must be told so.
    os.environ.setdefault("RAY_AUTH_MODE", "token")

    def driver() -> Any:
        import ray

        return ray

    yield driver
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def _fills(node: RunningNode) -> int:
    return node.admin("status")["fills"]


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (the node's actors, forkserver, Ray's GCS, raylet, workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ray_actors_trade_are_restarted_after_ray_kill_and_sigkill_and_ray_stops_with_the_node(
    short_tmp: Path, ray_driver: Any
) -> None:
    config = short_tmp / "ray.toml"
    config.write_text(RAY_CONFIG)
    node = RunningNode(short_tmp / "run", config, extra=("--ray", "auto"))
    try:
        workers = node.wait_ready(timeout_s=60)
        on_ray = {a for a, w in workers.items() if w["placement"] == "ray"}
        assert on_ray == {"strategy.fast_btc", "risk_guard"}
        assert all(w["placement"] == "process" for a, w in workers.items() if a not in on_ray)
        for actor_id in on_ray:
            assert workers[actor_id]["pid"] not in (None, node.process.pid)
        eventually(lambda: _fills(node) >= 2, 30, what="fills with actors on Ray")

        # ray.kill from another driver, by the actor's name: handled like any crash.
        ray = ray_driver()
        address = (node.run_dir / "ray.address").read_text().strip()
        ray.init(address=address, namespace="sniperbot", logging_level=logging.ERROR)
        victim = workers["strategy.fast_btc"]
        ray.kill(ray.get_actor(f"strategy.fast_btc#{victim['incarnation']}"), no_restart=True)
        back = eventually(
            lambda: (
                (w := node.workers()["strategy.fast_btc"])["state"] == "running"
                and w["incarnation"] == victim["incarnation"] + 1
                and w
            ),
            30,
            what="strategy.fast_btc restarted after ray.kill",
        )
        assert back["restarts"] == victim["restarts"] + 1 and back["placement"] == "ray"
        assert back["pid"] != victim["pid"]
        others = node.workers()
        for actor_id, other in others.items():
            if actor_id != "strategy.fast_btc":
                assert other["incarnation"] == workers[actor_id]["incarnation"], actor_id

        # kill -9 of the Ray worker process that hosts the risk guard (it has a tcp inbox).
        guard = others["risk_guard"]
        os.kill(guard["pid"], signal.SIGKILL)
        eventually(
            lambda: (
                (w := node.workers()["risk_guard"])["state"] == "running"
                and w["incarnation"] == guard["incarnation"] + 1
            ),
            30,
            what="risk_guard restarted after kill -9 of its Ray worker",
        )
        # A hung Ray actor (SIGSTOP): missed heartbeats, killed, replaced on the same tcp inbox port.
        guard = node.workers()["risk_guard"]
        os.kill(guard["pid"], signal.SIGSTOP)
        eventually(
            lambda: (
                (w := node.workers()["risk_guard"])["state"] == "running"
                and w["incarnation"] == guard["incarnation"] + 1
            ),
            30,
            what="hung risk_guard replaced",
        )
        eventually(lambda: not _alive(guard["pid"]), 10, what="the hung Ray worker killed")
        fills = _fills(node)
        eventually(lambda: _fills(node) > fills, 30, what="trading through the restarted Ray actors")
        assert node.process.poll() is None

        ray.shutdown()
        below = _descendants(node.process.pid)
        assert node.stop() == 0
        # The local cluster (GCS, raylet, workers) and every actor process went with the node.
        eventually(lambda: not [p for p in below if _alive(p)], 15, what="no process of the node left")
        assert not (node.run_dir / "ray.address").exists()
        log = node.log()
        assert '"event": "ray_start"' in log and log.count('"event": "child_exit"') >= 3
        assert '"why": "hung"' in log
    except BaseException:
        print(node.log()[-30000:])  # pytest shows it with the failure
        raise
    finally:
        if node.process.poll() is None:
            node.process.kill()
            node.process.wait(10)


def test_ray_placement_without_ray_flag_exits_2_naming_placement(short_tmp: Path) -> None:
    config = short_tmp / "ray.toml"
    config.write_text(FAST_CONFIG + '\n[placement]\ndefault = "ray"\n')
    result = sniperbot("run", "--config", str(config), "--run-dir", str(short_tmp / "run"), "--duration", "5")
    assert result.returncode == 2
    assert "placement.default" in result.stderr and "--ray" in result.stderr
    assert not (short_tmp / "run").exists()  # nothing was started


_WITHOUT_RAY = """
import sys
sys.modules["ray"] = None  # as if Ray were not installed: importing it raises ImportError
from sniperbot.cli.main import main
code = main(sys.argv[1:])
assert "ray" not in {m.split(".")[0] for m, v in sys.modules.items() if v is not None}, "ray was imported"
sys.exit(code)
"""


def test_sniperbot_runs_without_ray_and_refuses_ray_flag_then(short_tmp: Path, fast_config: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", _WITHOUT_RAY, "run", "--config", str(fast_config), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)

    plain = run("--run-dir", str(short_tmp / "a"), "--duration", "2")
    assert plain.returncode == 0, plain.stderr
    refused = run("--run-dir", str(short_tmp / "b"), "--duration", "2", "--ray", "auto")
    assert refused.returncode == 2
    assert "sniperbot[cluster]" in refused.stderr


def test_kuberay_manifests_parse_and_agree_with_each_other() -> None:
    import yaml

    from sniperbot.config import decode_config
    from sniperbot.topology import build_tree

    folder = ROOT / "deploy" / "kuberay"
    docs = {path.name: list(yaml.safe_load_all(path.read_text())) for path in sorted(folder.glob("*.yaml"))}
    kinds = {(d["apiVersion"], d["kind"]) for ds in docs.values() for d in ds}
    assert kinds == {
        ("ray.io/v1", "RayCluster"),
        ("v1", "ConfigMap"),
        ("v1", "PersistentVolumeClaim"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
    }
    (kustomization,) = docs["kustomization.yaml"]
    assert set(kustomization["resources"]) == set(docs) - {"kustomization.yaml"}

    (configmap,) = docs["configmap.yaml"]
    config = decode_config(configmap["data"]["node.toml"], "configmap.yaml")
    workers = {s.id for s in build_tree(config).walk() if s.type == "worker"}
    on_ray = {a for a, p in config.placement.actors.items() if p == "ray"}
    assert on_ray and on_ray <= workers
    assert config.cluster.host == "auto" and "sniperbot_node" in config.cluster.actor_resources

    (cluster,) = docs["raycluster.yaml"]
    head = cluster["spec"]["headGroupSpec"]
    assert '"sniperbot_node"' in head["rayStartParams"]["resources"].replace("\\", "")
    assert cluster["spec"]["rayVersion"] == "2.60.0"
    (pvc,) = docs["pvc.yaml"]
    pods = [head["template"]["spec"]] + [g["template"]["spec"] for g in cluster["spec"]["workerGroupSpecs"]]
    for pod in pods:
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, mount
    head_volumes = {v["name"]: v for v in head["template"]["spec"]["volumes"]}
    assert head_volumes["run"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert head_volumes["node-config"]["configMap"]["name"] == configmap["metadata"]["name"]
    command = " ".join(head["template"]["spec"]["containers"][0]["args"])
    for part in ("--ray", "/etc/sniperbot/node.toml", "/var/lib/sniperbot/run"):
        assert part in command
    # The image's Ray is the one the `cluster` extra pins.
    assert "FROM rayproject/ray:2.60.0-py311" in (folder / "Dockerfile").read_text()
