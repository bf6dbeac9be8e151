"""The admin client: sends one request to a node's admin socket and waits for the reply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import zmq

from sniperbot.admin.protocol import AdminReply, AdminRequest, encoder, reply_decoder
from sniperbot.rundir import RunDir


class AdminUnavailable(RuntimeError):
    """No node answered on the run directory's admin socket."""


def admin_request(run_dir: str | Path, cmd: str, timeout_s: float = 20.0, **args: Any) -> AdminReply:
    """Send ``cmd`` to the node in ``run_dir``; raises AdminUnavailable on no answer."""
    rundir = RunDir(run_dir)
    if not Path(rundir.ipc_path("admin")).exists():
        raise AdminUnavailable(f"no node is running in {rundir.path} (no admin socket)")
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(rundir.admin)
        sock.send(encoder.encode(AdminRequest(cmd=cmd, args=args)))  # type: ignore[arg-type]
        if not sock.poll(int(timeout_s * 1000)):
            raise AdminUnavailable(f"the node in {rundir.path} did not answer within {timeout_s} s")
        return reply_decoder.decode(sock.recv())
    finally:
        sock.close(0)
