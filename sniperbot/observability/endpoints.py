"""``<run dir>/endpoints.json``: the addresses a node actually serves, for tools and operators.

A stable interface other tools script against: one JSON object whose keys are service names
(``api``, ``metrics``, ...) and whose values are URLs as served (``http://HOST:PORT`` or
``https://HOST:PORT``; a port configured as 0 is the one the kernel chose). Several services,
each in its own process, write their own key: :func:`update_endpoints` merges under an exclusive
lock file (``endpoints.json.lock``, ``flock``) and replaces the file atomically (write a temporary
file, ``fsync``, rename), so a reader never sees a half-written file and no writer loses another's
key. The file is mode 0600 like everything in the run directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

ENDPOINTS_FILE = "endpoints.json"


def endpoints_path(run_dir: str | os.PathLike[str]) -> Path:
    """Where the endpoints file of ``run_dir`` lives."""
    return Path(run_dir) / ENDPOINTS_FILE


@contextlib.contextmanager
def _locked(run_dir: str | os.PathLike[str]) -> Iterator[None]:
    lock = os.open(Path(run_dir) / (ENDPOINTS_FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    finally:
        os.close(lock)  # closing releases the flock


def read_endpoints(run_dir: str | os.PathLike[str]) -> dict[str, str]:
    """The services and their URLs (empty when the file is missing or unreadable)."""
    try:
        data = json.loads(endpoints_path(run_dir).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write(run_dir: str | os.PathLike[str], entries: dict[str, str]) -> None:
    path = endpoints_path(run_dir)
    tmp = path.with_name(f".{ENDPOINTS_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (json.dumps(entries, indent=2, sort_keys=True) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def update_endpoints(run_dir: str | os.PathLike[str], **urls: str) -> dict[str, str]:
    """Set ``name=url`` entries, keeping every other service's; returns the file's new content."""
    with _locked(run_dir):
        entries = read_endpoints(run_dir)
        entries.update(urls)
        _write(run_dir, entries)
        return entries


def remove_endpoints(run_dir: str | os.PathLike[str], *names: str) -> dict[str, str]:
    """Drop ``names`` (a service that stopped in an orderly way); returns the file's new content."""
    with _locked(run_dir):
        entries = read_endpoints(run_dir)
        if not any(name in entries for name in names):
            return entries
        for name in names:
            entries.pop(name, None)
        _write(run_dir, entries)
        return entries
