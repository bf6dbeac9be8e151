"""The ``kind = "plugin"`` analyser: an external executable run as a supervised actor.

Example::

    [[analysers]]
    kind = "plugin"
    id = "momentum"                      # actor analyser.momentum, signals with source = "momentum"
    command = ["python3", "examples/plugins/momentum.py"]
    inputs = ["md.sim.quote."]           # bus topic prefixes written to its stdin
    memory_mb = 512

The protocol is in :mod:`sniperbot.analytics.plugins.protocol` and ``examples/plugins/README.md``.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Annotated, ClassVar

import msgspec

from sniperbot.analytics.base import AnalyserSection

#: The plug-in's PATH unless its ``env`` names another: the system's, never the node's (a node may run
#: from a virtualenv or a directory an operator did not mean to expose).
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PluginConfig(AnalyserSection, tag="plugin"):
    """Runs ``command`` (argv, no shell); it reads the ``inputs`` topics as JSON lines, writes signals.

    Decisions (a professional default for each; all in the README of ``examples/plugins``):

    * **Liveness.** The node writes a tick every ``tick_s``; the plug-in must write at least one valid
      line (a signal or ``{"t": "hb"}``) every ``hang_after_s`` (default 30 s), else it counts as hung:
      the actor fails, its supervisor restarts it and the child is killed. A plug-in that never
      heartbeats is not allowed (there is no switch to turn the check off): silence cannot be told
      apart from a hang, and a hung analyser's last signals would look current.
    * **Limits.** ``memory_mb`` (RLIMIT_AS, default 1024; 0 = none), ``cpu_s`` (RLIMIT_CPU: CPU seconds
      over the child's whole life, default 0 = none: a 24/7 plug-in would otherwise be killed on a
      schedule), ``max_open_files`` (RLIMIT_NOFILE, default 256), ``nice`` (default 10: analysis yields
      the CPU to trading; 0..19, a plug-in never gets a higher priority than the node), no core dumps.
    * **Environment.** Clean and explicit: ``PATH`` (:data:`DEFAULT_PATH`), ``LANG=C.UTF-8``, ``HOME``
      and ``SNIPERBOT_PLUGIN_ID``, then ``env``, then ``env_files`` (name -> a file whose content, read
      at each start, is the value: for a plug-in's own API key, so that it is in no child spec), then
      the marker ``SNIPERBOT_PLUGIN_RUN`` (how a later incarnation finds leftovers). Nothing of the
      node's environment is inherited (its keys, tokens, Sentry DSN).
    * **Working directory.** ``workdir`` (default: the node's own working directory, so relative paths in
      ``command`` read as they do in a shell started where the node was).
    * **Lines.** At most ``max_line_bytes`` per line and ``max_lines_per_s`` lines per second (a token
      bucket as deep as one second); every line beyond is dropped and counted. Inputs the plug-in does
      not read in time are dropped (counted) once ``input_buffer_bytes`` wait beyond the pipe.
    """

    actor_path: ClassVar[str] = "sniperbot.analytics.plugins.actor:PluginActor"
    command: list[str] = []
    inputs: list[str] = []
    env: dict[str, str] = {}
    env_files: dict[str, str] = {}
    workdir: str = ""
    tick_s: Annotated[float, msgspec.Meta(ge=0.05, le=60.0)] = 1.0
    hang_after_s: Annotated[float, msgspec.Meta(gt=0.0, le=3600.0)] = 30.0
    max_line_bytes: Annotated[int, msgspec.Meta(ge=256, le=1 << 20)] = 4096
    max_lines_per_s: Annotated[float, msgspec.Meta(gt=0.0, le=100_000.0)] = 100.0
    input_buffer_bytes: Annotated[int, msgspec.Meta(ge=4096, le=64 << 20)] = 1 << 20
    memory_mb: Annotated[int, msgspec.Meta(ge=0)] = 1024
    cpu_s: Annotated[int, msgspec.Meta(ge=0)] = 0
    max_open_files: Annotated[int, msgspec.Meta(ge=16, le=65536)] = 256
    nice: Annotated[int, msgspec.Meta(ge=0, le=19)] = 10

    def __post_init__(self) -> None:
        if not self.command or not all(self.command) or any("\0" in a for a in self.command):
            raise ValueError("command: an argv list whose items are non-empty (no shell is used)")
        if self.hang_after_s < 2 * self.tick_s:
            raise ValueError(
                f"hang_after_s: must be at least 2 ticks ({2 * self.tick_s} s): a plug-in answers ticks"
            )
        for prefix in self.inputs:
            if not prefix:
                raise ValueError("inputs: an empty topic would subscribe the plug-in to the whole bus")
        for names in (self.env, self.env_files):
            for name, value in names.items():
                if not _ENV_NAME.match(name):
                    raise ValueError(f"env: {name!r} is not a variable name")
                if "\0" in value:
                    raise ValueError(f"env: the value of {name} contains a NUL byte")
        for name, path in self.env_files.items():
            if not Path(path).is_file():
                raise ValueError(f"env_files: {name}: no such file {path}")
        if self.workdir and not Path(self.workdir).is_dir():
            raise ValueError(f"workdir: no such directory {self.workdir}")
        if self.executable() is None:
            raise ValueError(
                f"command: {self.command[0]!r} is not an executable file "
                f"(a bare name is looked up on the plug-in's PATH {self.child_path()})"
            )

    def child_path(self) -> str:
        """The plug-in's PATH."""
        return self.env.get("PATH", DEFAULT_PATH)

    def executable(self) -> str | None:
        """``command[0]`` as it will be run (found on the plug-in's PATH, or relative to ``workdir``)."""
        program = self.command[0]
        if "/" not in program:
            return shutil.which(program, path=self.child_path())
        path = Path(self.workdir or ".") / program
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
