"""Point a ccxt / ccxt.pro exchange at another host while keeping the exchange's own paths.

This is what the ``rest_url`` / ``ws_url`` keys of a ``[[venues]]`` entry do (a proxy, a mirror, or the local
exchange servers the tests run). Only the scheme and host (with port) of each endpoint change; the path of
every endpoint is kept, so ccxt's request building, signing and stream routing are untouched.

Decisions:
- ``rest_url`` replaces every ``http(s)://`` endpoint of ``exchange.urls['api']`` and ``ws_url`` every
  ``ws(s)://`` one; ``None`` leaves that kind alone.
- A path given in ``rest_url`` / ``ws_url`` is a *prefix* put before the exchange's path (``ws://h:1/stream``
  turns ``wss://stream.binance.com:9443/ws`` into ``ws://h:1/stream/ws``). A reverse proxy that routes by
  prefix needs it, and ccxt.pro's Binance tells spot streams from futures streams by ``'/stream' in url``,
  which a bare local host would lose.
- Only ``urls['api']`` is rewritten (``www``, ``doc``, ``fees`` are links for humans); a sandbox switch must
  happen before the rebase, because ``set_sandbox_mode`` swaps ``urls['api']`` wholesale.
- A query string or fragment in the base URL, or a wrong scheme, is refused with ``ValueError`` naming the
  key and the value.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

_REST_SCHEMES = ("http", "https")
_WS_SCHEMES = ("ws", "wss")


def _parse_base(key: str, url: str, schemes: tuple[str, ...]) -> tuple[str, str, str]:
    """Validate a base URL; return (scheme, netloc, path prefix without trailing slash)."""
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.netloc:
        forms = " or ".join(f"{s}://HOST[:PORT][/PREFIX]" for s in schemes)
        raise ValueError(f"{key} = {url!r}: expected {forms}")
    if parts.query or parts.fragment:
        raise ValueError(f"{key} = {url!r}: a base URL takes no query string or fragment")
    return parts.scheme, parts.netloc, parts.path.rstrip("/")


def _rebase_one(url: str, rest: tuple[str, str, str] | None, ws: tuple[str, str, str] | None) -> str:
    parts = urlsplit(url)
    base = rest if parts.scheme in _REST_SCHEMES else ws if parts.scheme in _WS_SCHEMES else None
    if base is None:
        return url
    scheme, netloc, prefix = base
    return urlunsplit((scheme, netloc, prefix + parts.path, parts.query, parts.fragment))


def _walk(node: Any, rest: tuple[str, str, str] | None, ws: tuple[str, str, str] | None) -> Any:
    if isinstance(node, str):
        return _rebase_one(node, rest, ws)
    if isinstance(node, dict):
        return {k: _walk(v, rest, ws) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, rest, ws) for v in node]
    return node


def rebase_urls(exchange: Any, rest_url: str | None, ws_url: str | None) -> Any:
    """Replace scheme and host of every REST (``rest_url``) and websocket (``ws_url``) endpoint; keep paths.

    Works on ccxt, ccxt.async_support and ccxt.pro instances alike; returns the exchange.
    """
    rest = _parse_base("rest_url", rest_url, _REST_SCHEMES) if rest_url else None
    ws = _parse_base("ws_url", ws_url, _WS_SCHEMES) if ws_url else None
    urls = dict(exchange.urls)
    urls["api"] = _walk(urls.get("api"), rest, ws)
    exchange.urls = urls
    return exchange
