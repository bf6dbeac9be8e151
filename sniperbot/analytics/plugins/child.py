"""One plug-in child process: started with its limits, fed without blocking, read by threads, killed whole.

* **Its own process group** (``setpgid``), so that stopping it also stops what it started, and a Ctrl-C
  at the node's terminal does not reach it (the actor decides when it stops).
* **It dies with its actor**: ``PR_SET_PDEATHSIG`` = SIGKILL (as actor processes do with the node,
  :func:`sniperbot.actors.runtime._die_with_parent`): a kill -9 of the actor process, or of the node,
  whose actors follow it, takes the plug-in down too.
* **Limits** are set between fork and exec (``preexec_fn``): the function touches no lock a thread of
  the actor could hold (``setrlimit``, ``nice`` and a ``prctl`` through a libc handle loaded before the
  fork are plain system calls).
* **stdin never blocks the actor**: non-blocking writes, whole lines, a bounded backlog; a line that
  does not fit is dropped and counted. **stdout and stderr** are read by two daemon threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sniperbot.analytics.plugins.config import DEFAULT_PATH, PluginConfig

_PR_SET_PDEATHSIG = 1
_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # not Linux: the actor's on_stop still kills the group
    _libc = None
_STOP_GRACE_S = 0.5  # SIGTERM, then SIGKILL: a plug-in has this long to exit cleanly


#: The variable that marks every process of one plug-in of one node (its value: ``<run dir>:<id>``), so
#: that a new incarnation finds what an earlier one left behind (see :func:`sweep_leftovers`).
MARKER = "SNIPERBOT_PLUGIN_RUN"


def child_env(config: PluginConfig, marker: str) -> dict[str, str]:
    """The plug-in's whole environment: explicit, nothing inherited from the node."""
    env = {
        "PATH": DEFAULT_PATH,
        "LANG": "C.UTF-8",
        "HOME": config.workdir or os.getcwd(),
        "SNIPERBOT_PLUGIN_ID": config.id,
    }
    env.update(config.env)
    for name, path in config.env_files.items():
        env[name] = Path(path).read_text().strip()
    env[MARKER] = marker
    return env


def sweep_leftovers(marker: str) -> int:
    """SIGKILL every process still carrying ``marker`` in its environment; how many there were.

    An actor killed with SIGKILL cannot stop its plug-in's process group: the plug-in itself dies
    with it (parent-death signal), but what the plug-in started does not. The next incarnation calls
    this before it starts a new plug-in. Race-free against pid reuse: the process is pinned by a pidfd
    before its environment is read, and signalled through that pidfd. Only processes of this user are
    readable; one that cleared its environment escapes (best effort, stated in the README).
    """
    if not hasattr(os, "pidfd_open"):
        return 0
    needle = b"\0" + f"{MARKER}={marker}".encode() + b"\0"
    killed = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fd = os.pidfd_open(int(entry.name))
        except OSError:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                environ = b"\0" + f.read()
            if needle in environ:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                killed += 1
        except OSError:
            pass  # another user's process, or gone already
        finally:
            os.close(fd)
    return killed


def _within_hard(limit: int, value: int) -> int:
    """``value``, lowered to the node's own hard limit (an unprivileged process cannot raise it)."""
    hard = resource.getrlimit(limit)[1]
    return value if hard == resource.RLIM_INFINITY else min(value, hard)


def _limits(config: PluginConfig) -> Callable[[], None]:
    """What runs in the child between fork and exec."""
    memory = _within_hard(resource.RLIMIT_AS, config.memory_mb << 20)
    # SIGXCPU at the soft limit (a plug-in may catch it and exit), SIGKILL 5 s of CPU later.
    cpu_hard = _within_hard(resource.RLIMIT_CPU, config.cpu_s + 5)
    cpu = (min(config.cpu_s, cpu_hard), cpu_hard) if config.cpu_s else None
    nofile = _within_hard(resource.RLIMIT_NOFILE, config.max_open_files)
    niceness = config.nice
    libc = _libc
    actor_pid = os.getpid()

    def apply() -> None:
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != actor_pid:  # the actor died between fork and prctl: nobody would kill us
            os._exit(1)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash must not fill the disk
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        if memory:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        if cpu:
            resource.setrlimit(resource.RLIMIT_CPU, cpu)
        if niceness:
            os.nice(niceness)

    return apply


class PluginProcess:
    """A running plug-in: ``write`` lines to it; ``on_line``/``on_stderr`` get what it writes (threads)."""

    def __init__(
        self,
        config: PluginConfig,
        on_line: Callable[[bytes], None],
        on_oversize: Callable[[int], None],
        on_stderr: Callable[[bytes], None],
        marker: str,
    ) -> None:
        self.config = config
        self.input_dropped = 0
        self._backlog = bytearray()
        self.proc = subprocess.Popen(
            config.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(config, marker),
            cwd=config.workdir or None,
            close_fds=True,
            process_group=0,
            preexec_fn=_limits(config),  # plain system calls only (see the module doc)
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None and self.proc.stderr is not None
        self.pid = self.proc.pid
        self._stdin_fd = self.proc.stdin.fileno()
        os.set_blocking(self._stdin_fd, False)
        self._stdin_open = True
        self._stdout_done = threading.Event()
        max_line = config.max_line_bytes
        stdout, stderr = self.proc.stdout, self.proc.stderr

        def read_stdout() -> None:
            try:
                while line := stdout.readline(max_line + 1):
                    if len(line) > max_line:  # a newline would have ended it by now: skip to the next one
                        size = len(line)
                        while (rest := stdout.readline(65536)) and not rest.endswith(b"\n"):
                            size += len(rest)
                        on_oversize(size + len(rest))
                    else:
                        on_line(line)
            finally:
                self._stdout_done.set()

        def read_stderr() -> None:
            while line := stderr.readline(4096):
                on_stderr(line)

        for target, name in ((read_stdout, "stdout"), (read_stderr, "stderr")):
            threading.Thread(target=target, name=f"plugin-{config.id}-{name}", daemon=True).start()

    def write(self, line: bytes) -> None:
        """Queue one whole line for the plug-in's stdin; dropped (counted) when its backlog is full."""
        if not self._stdin_open:
            return
        if len(self._backlog) + len(line) > self.config.input_buffer_bytes:
            self.input_dropped += 1
        else:
            self._backlog += line
        self.flush()

    def flush(self) -> None:
        """Write what the pipe takes now, without waiting."""
        while self._backlog and self._stdin_open:
            try:
                written = os.write(self._stdin_fd, self._backlog)
            except BlockingIOError:
                return
            except (BrokenPipeError, OSError):
                self._stdin_open = False  # it exited: the actor notices through exitcode()
                self._backlog.clear()
                return
            del self._backlog[:written]

    def exitcode(self) -> int | None:
        """The plug-in's exit status once it exited and its stdout is read (-N: killed by signal N)."""
        code = self.proc.poll()
        if code is None:
            return None
        # What it printed before exiting is still being read; a grandchild holding stdout open does
        # not keep a dead plug-in alive (nor block the actor) for more than 0.2 s.
        self._stdout_done.wait(0.2)
        return code

    def kill(self) -> None:
        """Stop the whole process group: EOF and SIGTERM, then SIGKILL after a short grace."""
        self._stdin_open = False
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_S
        while self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # also what it started, still in its group
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(1.0)
