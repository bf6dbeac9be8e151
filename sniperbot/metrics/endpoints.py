"""``<run dir>/endpoints.json``: the addresses the node's services actually serve.

A stable interface for scripts and tests: ``{"metrics": "http://HOST:PORT", "api": ...}``.
Several services (each its own process) write their own key, so every change is a
read-modify-write under an exclusive ``flock`` on ``endpoints.lock``, written to a temporary
file and renamed over the old one: a reader never sees a half-written file, and no writer
loses another's key. A service removes its key when it stops in order; after a kill -9 the
restarted service writes its new address.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

ENDPOINTS_FILE = "endpoints.json"
_LOCK_FILE = "endpoints.lock"


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    fd = os.open(run_dir / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def read_endpoints(run_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Every published endpoint (empty if none yet)."""
    try:
        data = json.loads((Path(run_dir) / ENDPOINTS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _update(run_dir: Path, name: str, url: str | None) -> None:
    with _locked(run_dir):
        endpoints = read_endpoints(run_dir)
        if url is None:
            if endpoints.pop(name, None) is None:
                return
        else:
            endpoints[name] = url
        tmp = run_dir / f".{ENDPOINTS_FILE}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(endpoints, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, run_dir / ENDPOINTS_FILE)


def publish_endpoint(run_dir: str | os.PathLike[str], name: str, url: str) -> None:
    """Record that service ``name`` serves ``url``, keeping every other service's key."""
    _update(Path(run_dir), name, url)


def remove_endpoint(run_dir: str | os.PathLike[str], name: str) -> None:
    """Forget service ``name`` (an orderly stop), keeping every other service's key."""
    _update(Path(run_dir), name, None)
