"""The admin service: the node's admin sockets, from frame to typed command to reply.

The unix socket ``<run dir>/admin.sock`` (0600) always; a CURVE-encrypted TCP socket when
``[admin] tcp_endpoint`` is set (only authorised client keys pass ZAP). Each request is decoded
(:func:`~sniperbot.admin.protocol.decode_request`), made a typed command
(:func:`~sniperbot.admin.protocol.to_command`) and handed to the command layer; the reply goes
back on the socket it came from. A frame that does not decode is the caller's ``on_invalid``
(counted and logged by the node); a well-formed request with a wrong command or arguments is the
operator's mistake: answered ``invalid_message``, not counted.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import zmq

from sniperbot.admin.commands import AdminCommands
from sniperbot.admin.protocol import (
    MAX_REQUEST_BYTES,
    AdminError,
    AdminReply,
    decode_request,
    encoder,
    to_command,
)
from sniperbot.messages import InvalidFrame
from sniperbot.transport.bus import bind_private, tune

log = logging.getLogger("sniperbot.admin")


class AdminService:
    """The admin sockets of one node and their requests (see the module docstring)."""

    def __init__(
        self, zctx: zmq.Context, commands: AdminCommands, on_invalid: Callable[[Any, str], None]
    ) -> None:
        self._zctx = zctx
        self.commands = commands
        self._on_invalid = on_invalid
        self.sockets: list[zmq.Socket] = []
        self._authenticator: Any = None

    def open(
        self, unix_path: str, tcp_endpoint: str = "", server_key: str = "", authorized_clients: str = ""
    ) -> None:
        """Bind the unix socket, and the CURVE TCP socket when ``tcp_endpoint`` is set."""
        sock = self._zctx.socket(zmq.ROUTER)
        tune(sock, MAX_REQUEST_BYTES)
        bind_private(sock, unix_path)
        self.sockets.append(sock)
        if tcp_endpoint:
            self.sockets.append(self._open_curve(tcp_endpoint, server_key, authorized_clients))

    def _open_curve(self, endpoint: str, server_key: str, authorized_clients: str) -> zmq.Socket:
        from zmq.auth import load_certificate
        from zmq.auth.thread import ThreadAuthenticator

        self._authenticator = ThreadAuthenticator(self._zctx)
        self._authenticator.start()
        self._authenticator.configure_curve(domain="*", location=authorized_clients)
        public, secret = load_certificate(server_key)
        if secret is None:
            raise ValueError(f"admin.server_key {server_key} holds no secret key")
        sock = self._zctx.socket(zmq.ROUTER)
        tune(sock, MAX_REQUEST_BYTES)
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True
        sock.bind(endpoint)
        log.info("admin over tcp", extra={"event": "admin_tcp", "endpoint": endpoint})
        return sock

    @property
    def unix_socket(self) -> zmq.Socket:
        """The unix admin socket (for the node's invalid-frame accounting)."""
        return self.sockets[0]

    def on_frames(self, frames: list[bytes], sock: zmq.Socket) -> None:
        """One request from ``sock``: decode, execute, reply (now or later)."""
        if len(frames) < 2:
            raise InvalidFrame(f"expected identity and request frames, received {len(frames)}")
        envelope = frames[:-1]

        def reply(answer: AdminReply) -> None:
            with contextlib.suppress(zmq.ZMQError):
                sock.send_multipart([*envelope, encoder.encode(answer)], zmq.NOBLOCK)

        try:
            request = decode_request(frames[-1])
        except InvalidFrame as e:
            self._on_invalid(sock, e.reason)
            reply(AdminReply(ok=False, error=AdminError("invalid_message", e.reason)))
            return
        try:
            command = to_command(request)
        except InvalidFrame as e:
            reply(AdminReply(ok=False, error=AdminError("invalid_message", e.reason)))
            return
        self.commands.execute(command, reply)

    def close(self) -> None:
        """Close the sockets and stop the authenticator."""
        for sock in self.sockets:
            sock.close(0)
        self.sockets = []
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None
