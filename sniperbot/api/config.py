"""The ``[api]`` config section: where the HTTP API and dashboard listen, and how they authenticate.

Decisions (what an operator running real money expects):

- **On by default, loopback only**: ``127.0.0.1``, port 0 (the kernel picks a free port, so two
  nodes on one machine never collide); the URL actually served is in ``<run dir>/endpoints.json``
  (key ``api``). Binding any other address needs TLS (``tls_cert`` and ``tls_key``) or an explicit
  ``insecure = true`` (for a TLS-terminating proxy on the same host): the config is refused otherwise.
- **A token on every API request** (``Authorization: Bearer <token>``): ``token`` or ``token_file``
  when set, else a random 256-bit token generated into ``<run dir>/api.token`` (mode 0600), kept
  across restarts (delete the file to rotate it). An inline ``token`` reaches the API actor only as
  its SHA-256 (never in the supervision tree's child spec); prefer ``token_file``.
- **CORS closed**: no ``Access-Control-Allow-Origin`` unless the origin is listed in
  ``cors_origins``; WebSocket handshakes from another origin are refused the same way.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import msgspec

# The API actor's class and its id in the supervision tree (one home: topology, tests).
API_ACTOR = "sniperbot.api.actor:ApiActor"
API_ACTOR_ID = "api"
TOKEN_FILE = "api.token"


def is_loopback(address: str) -> bool:
    """Whether ``address`` (an IP or ``localhost``) is reachable only from this machine."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


class ApiSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[api]``: the REST API, its WebSocket stream and the web dashboard (:mod:`sniperbot.api`)."""

    enabled: bool = True
    address: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    token: str = ""
    token_file: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    insecure: bool = False
    cors_origins: list[str] = []
    # How often the API polls the admin socket for tree and status while dashboards are connected. Each
    # poll costs the node's loop two admin requests: bench/ws_fanout.py measured tick-to-trade p99 with
    # 50 dashboards at 1.48 x without them at 0.25 s, 0.96 and 1.05 x at 1 s (2 cores). A human reads a
    # dashboard once a second at best.
    poll_interval_s: Annotated[float, msgspec.Meta(ge=0.05, le=5.0)] = 1.0
    max_ws_clients: Annotated[int, msgspec.Meta(ge=1)] = 200

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("address: must not be empty (127.0.0.1 serves this machine only)")
        if self.token and self.token_file:
            raise ValueError("token: set either token or token_file, not both")
        if self.token and len(self.token) < 16:
            raise ValueError("token: must be at least 16 characters (or leave it empty: one is generated)")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert: tls_cert and tls_key go together")
        if not is_loopback(self.address) and not self.tls_cert and not self.insecure:
            raise ValueError(
                f"address: {self.address!r} is not a loopback address: set tls_cert and tls_key, "
                "or insecure = true (behind a TLS proxy on this host)"
            )
        for origin in self.cors_origins:
            if origin == "*" or not origin.startswith(("http://", "https://")) or origin.endswith("/"):
                raise ValueError(
                    f"cors_origins: {origin!r}: must be an origin"
                    " such as https://ops.example.com ('*' is refused)"
                )
