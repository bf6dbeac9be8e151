"""A minimal JSON-RPC client over HTTP for the EVM venue's config checks and feed (stdlib only).

Why not web3's provider: the feed polls a handful of read calls a few times a second and the preflight
must fail fast and say why; a plain ``urllib`` POST with our own timeout and error class keeps both
simple, and an error never quotes a request (a production RPC URL may carry an API key in its path,
so errors name the method and the failure class, never the URL).
"""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.request
from typing import Any

#: Default timeout of one call, seconds.
TIMEOUT_S = 5.0


class RpcError(Exception):
    """A JSON-RPC call failed: the endpoint did not answer (``unreachable``) or answered an error."""

    def __init__(self, method: str, detail: str, unreachable: bool = False) -> None:
        super().__init__(f"{method}: {detail}")
        self.method = method
        self.unreachable = unreachable


class JsonRpc:
    """Calls one HTTP JSON-RPC endpoint (one request per call; thread-compatible, not thread-safe)."""

    def __init__(self, url: str, timeout_s: float = TIMEOUT_S) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._ids = itertools.count(1)

    def call(self, method: str, *params: Any) -> Any:
        """The ``result`` of ``method(params)``; :class:`RpcError` on any failure."""
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)})
        request = urllib.request.Request(
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                answer = json.loads(response.read())
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = getattr(e, "reason", None) or e
            raise RpcError(method, f"endpoint unreachable ({type(e).__name__}: {reason})", True) from None
        except ValueError:
            raise RpcError(method, "the endpoint's answer is not JSON") from None
        if not isinstance(answer, dict):
            raise RpcError(method, "the endpoint's answer is not a JSON-RPC response")
        if answer.get("error") is not None:
            error = answer["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise RpcError(method, f"error {str(message)[:200]}")
        return answer.get("result")

    def eth_call(self, to: str, data: str, block: str | int = "latest") -> str:
        """``eth_call`` of ``data`` on ``to`` at ``block`` (a number or a tag); the hex result."""
        tag = hex(block) if isinstance(block, int) else block
        return str(self.call("eth_call", {"to": to, "data": data}, tag))


def word(result: str, index: int = 0) -> int:
    """The ``index``-th 32-byte word of an ABI-encoded result, as an int (0 if the result is shorter)."""
    hexdigits = result.removeprefix("0x")
    chunk = hexdigits[64 * index : 64 * (index + 1)]
    return int(chunk, 16) if len(chunk) == 64 else 0


def address_word(result: str, index: int = 0) -> str:
    """The ``index``-th word of a result as a lower-case ``0x`` address."""
    return "0x" + f"{word(result, index):064x}"[-40:]


def encode_address(address: str) -> str:
    """An address as one ABI word (hex, no ``0x``)."""
    return address.lower().removeprefix("0x").rjust(64, "0")
