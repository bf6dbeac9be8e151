"""``rebase_urls``: the ``rest_url`` / ``ws_url`` venue keys replace scheme and host, and keep every path."""

from __future__ import annotations

import ccxt
import ccxt.pro
import pytest

from sniperbot.venues.ccxt.urls import rebase_urls


def test_binance_every_endpoint_keeps_its_path() -> None:
    ex = ccxt.pro.binance()
    before = ex.urls["api"]
    rebase_urls(ex, "http://127.0.0.1:8000", "ws://127.0.0.1:9000/stream")
    api = ex.urls["api"]
    assert api["public"] == "http://127.0.0.1:8000/api/v3"
    assert api["sapi"] == "http://127.0.0.1:8000/sapi/v1"
    assert api["fapiPublic"] == "http://127.0.0.1:8000/fapi/v1"
    assert api["ws"]["spot"] == "ws://127.0.0.1:9000/stream/ws"  # port 9443 of the real host is gone too
    assert api["ws"]["ws-api"]["spot"] == "ws://127.0.0.1:9000/stream/ws-api/v3"
    assert before["public"] == "https://api.binance.com/api/v3"  # the class template is not touched
    assert ccxt.pro.binance().urls["api"]["public"] == "https://api.binance.com/api/v3"
    assert ex.urls["www"] == ccxt.pro.binance().urls["www"]  # only the API endpoints move


def test_coinbase_and_kraken() -> None:
    cb = rebase_urls(ccxt.pro.coinbase(), "https://proxy.example:8443/", "wss://proxy.example:8444")
    assert cb.urls["api"] == {"rest": "https://proxy.example:8443", "ws": "wss://proxy.example:8444"}
    kr = rebase_urls(ccxt.pro.kraken(), "http://127.0.0.1:1", "ws://127.0.0.1:2")
    assert kr.urls["api"]["private"] == "http://127.0.0.1:1"
    assert kr.urls["api"]["ws"]["privateV2"] == "ws://127.0.0.1:2/v2"
    assert kr.urls["api"]["ws"]["publicV2"] == "ws://127.0.0.1:2/v2"


def test_only_one_kind_and_bad_values() -> None:
    ex = rebase_urls(ccxt.binance(), None, "ws://127.0.0.1:2")
    assert ex.urls["api"]["public"] == "https://api.binance.com/api/v3"
    with pytest.raises(ValueError, match="rest_url = 'ws://h:1'"):
        rebase_urls(ccxt.binance(), "ws://h:1", None)
    with pytest.raises(ValueError, match="ws_url = 'http://h:1'"):
        rebase_urls(ccxt.binance(), None, "http://h:1")
    with pytest.raises(ValueError, match="no query string"):
        rebase_urls(ccxt.binance(), "http://h:1/?x=1", None)
    with pytest.raises(ValueError, match=r"rest_url = '127\.0\.0\.1:80'"):
        rebase_urls(ccxt.binance(), "127.0.0.1:80", None)
