"""The admin client: sends one request to a node's admin socket and waits for the reply."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import zmq
from zmq.auth import load_certificate

from sniperbot.admin.protocol import AdminReply, AdminRequest, encoder, reply_decoder
from sniperbot.rundir import RunDir


class AdminUnavailable(RuntimeError):
    """No node answered on the run directory's admin socket."""


class NoNodeRunning(AdminUnavailable):
    """No node runs in the run directory: no admin socket, or a stale one nobody listens on."""


def _listening(path: str) -> bool:
    """Whether a process accepts connections on the unix socket ``path`` (a stale file refuses)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        return True  # e.g. a full backlog: someone is there; let the request time out
    finally:
        probe.close()
    return True


def admin_request(
    run_dir: str | Path,
    cmd: str,
    timeout_s: float = 20.0,
    *,
    endpoint: str | None = None,
    server_key: str | None = None,
    client_key: str | None = None,
    **args: Any,
) -> AdminReply:
    """Send ``cmd`` to the node in ``run_dir`` (or at a CURVE ``endpoint``); wait for the reply.

    Raises :class:`NoNodeRunning` when the run dir has no admin socket, or only a
    stale one that nobody listens on (left by a node killed with SIGKILL), and
    AdminUnavailable when nothing answers in ``timeout_s`` (a node that
    refuses our key does not answer at all: ZAP drops the handshake).
    """
    rundir = RunDir(run_dir)
    if endpoint is None:
        path = rundir.ipc_path("admin")
        if not Path(path).exists():
            raise NoNodeRunning(f"no node running in {rundir.path} (no admin socket)")
        if not _listening(path):
            raise NoNodeRunning(f"no node running in {rundir.path} (stale admin socket, nobody listens)")
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        if endpoint is not None:
            if not (server_key and client_key):
                raise AdminUnavailable("a tcp admin endpoint needs --server-key and --client-key (CURVE)")
            server_public, _ = load_certificate(server_key)
            public, secret = load_certificate(client_key)
            if secret is None:
                raise AdminUnavailable(f"{client_key} holds no secret key")
            sock.curve_serverkey = server_public
            sock.curve_publickey = public
            sock.curve_secretkey = secret
        sock.connect(endpoint or rundir.admin)
        sock.send(encoder.encode(AdminRequest(cmd=cmd, args=args)))  # type: ignore[arg-type]
        where = endpoint or str(rundir.path)
        if not sock.poll(int(timeout_s * 1000)):
            raise AdminUnavailable(f"the node at {where} did not answer within {timeout_s} s")
        return reply_decoder.decode(sock.recv())
    finally:
        sock.close(0)
