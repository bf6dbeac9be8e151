"""The run directory: where one node keeps its sockets, journal and lock.

Everything a node binds is an ``ipc://`` socket in this directory, so two nodes
with different run directories never collide and the operator can see them all.
A node with a Ray cluster (``run --ray``) also binds tcp endpoints; they are
passed to each actor in its ``ActorLaunch.endpoints`` and override these.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from sniperbot.config import CHILD_ID_MAX_LEN

# Linux's sun_path is 108 bytes including the terminating NUL.
_MAX_IPC_PATH = 107

MARKER_NAME = "node.json"
"""The run-dir marker: written at a node's first start, *outside* the journal.

It holds ``run_id`` (random, per run dir), ``created`` (UTC, ISO 8601) and
``last_life`` (the node-life token of the latest start). Its existence proves this
run dir has run a node before, so a missing, empty or truncated journal next to
it is lost state, not a first start: the node refuses to start (exit 2) instead
of trading on an empty book and reusing client order ids.
"""


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def next_node_life(previous: str = "", now_s: float | None = None) -> str:
    """The node-life token of a new start: base36 of the start time in whole seconds.

    Unique across node lives even if every file of the run dir was lost (time only
    moves on); strictly after ``previous`` (the marker's ``last_life``) when two
    starts fall in the same second or the clock stepped back. Six characters until
    the year 2038+: short enough for an exchange's client order id.
    """
    seconds = int(time.time() if now_s is None else now_s)
    try:
        seconds = max(seconds, int(previous, 36) + 1) if previous else seconds
    except ValueError:
        pass  # an unreadable token: the clock alone is still unique
    return _base36(seconds)


class RunDirError(RuntimeError):
    """The run directory cannot be used (too long a path, or another node holds it)."""


class RunDir:
    """Paths of one node's sockets, journal and lock file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()

    def create(self) -> None:
        """Create the directory, or take over an existing one, as mode 0700 whatever the umask.

        Only its owner may reach the sockets: anyone who can connect to an inbox can
        send orders. A pre-existing directory of ours with a wider mode (e.g. made by
        ``mkdir -m 755``) is tightened to 0700, since the operator pointed us at it; one
        owned by another user is refused (:class:`RunDirError`), because its owner could
        reach our sockets whatever mode we set.
        """
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = self.path.stat()
        if info.st_uid != os.geteuid():
            raise RunDirError(
                f"run directory {self.path} belongs to uid {info.st_uid}, not to this user "
                f"(uid {os.geteuid()}); its owner could reach the node's sockets: use a directory of your own"
            )
        if info.st_mode & 0o777 != 0o700:
            os.chmod(self.path, 0o700)  # mkdir's mode is filtered by the umask; an old dir keeps its own
        longest = self.ipc_path("inbox-" + "x" * CHILD_ID_MAX_LEN)  # the longest actor id
        if len(longest) > _MAX_IPC_PATH:
            raise RunDirError(
                f"run directory path is too long for unix sockets ({len(str(self.path))} chars): "
                f"{self.path}; choose a shorter --run-dir"
            )

    def ipc_path(self, name: str) -> str:
        """File path of the unix socket called ``name``."""
        return str(self.path / f"{name}.sock")

    def endpoint(self, name: str) -> str:
        """ZeroMQ endpoint of the unix socket called ``name``."""
        return "ipc://" + self.ipc_path(name)

    @property
    def bus_in(self) -> str:
        """Where publishers connect (the proxy's XSUB)."""
        return self.endpoint("bus-in")

    @property
    def bus_out(self) -> str:
        """Where subscribers connect (the proxy's XPUB)."""
        return self.endpoint("bus-out")

    @property
    def control(self) -> str:
        """The supervisors' ROUTER that every actor's control DEALER connects to."""
        return self.endpoint("control")

    @property
    def admin(self) -> str:
        """The operator's admin socket."""
        return self.endpoint("admin")

    def inbox(self, actor_id: str) -> str:
        """The reliable inbox (ROUTER) of one actor."""
        return self.endpoint("inbox-" + actor_id)

    @property
    def ray_address(self) -> Path:
        """File holding the Ray cluster address while a node with ``--ray`` runs (for tools)."""
        return self.path / "ray.address"

    @property
    def journal(self) -> Path:
        """The LMDB journal directory."""
        return self.path / "journal"

    @property
    def marker(self) -> Path:
        """The run-dir marker ``node.json`` (see :data:`MARKER_NAME`)."""
        return self.path / MARKER_NAME

    def read_marker(self) -> dict[str, Any] | None:
        """The marker's content; None if there is none, ``{}`` if it exists but cannot be read."""
        try:
            data = json.loads(self.marker.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # it exists: still proof that a node ran here
        return data if isinstance(data, dict) else {}

    def write_marker(self, life: str) -> dict[str, Any]:
        """Create or update the marker with this start's node life; atomic (temp file, fsync, rename)."""
        marker = self.read_marker() or {}
        if not marker.get("run_id"):
            marker = {
                "run_id": uuid.uuid4().hex,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        marker["last_life"] = life
        tmp = self.path / f".{MARKER_NAME}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, (json.dumps(marker, indent=2) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.marker)
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power loss
        finally:
            os.close(dir_fd)
        return marker

    def lock(self) -> int:
        """Take the node lock; raises :class:`RunDirError` if another node runs here."""
        fd = os.open(self.path / "node.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirError(f"another node is running in {self.path}") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return fd
