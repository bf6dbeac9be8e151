"""The node's last-value cache stays bounded however many signal subjects a node hears of (issue #14)."""

from __future__ import annotations

from sniperbot.kernel.last_values import LastValues
from sniperbot.messages import topics as topic


def _signal_topic(i: int) -> bytes:
    return topic.signal(f"TOKEN{i}", "mentions", "sentiment", 300).encode()


def test_signal_topics_are_bounded_least_recently_updated_first_and_market_topics_are_kept() -> None:
    cache = LastValues(max_signal_topics=100)
    quote = topic.quote("sim", "BTC/USDT").encode()
    rules = topic.market_rules("sim", "BTC/USDT").encode()
    cache.put([quote, b"q"])
    cache.put([rules, b"r"])
    for i in range(1_000):
        cache.put([_signal_topic(i), b"s%d" % i])
        if i % 10 == 0:
            cache.put([_signal_topic(0), b"s0 again"])  # updated all along: never the oldest
    assert len(cache) == 2 + 100
    assert cache.get(topic.quote("sim", "BTC/USDT")) == b"q"  # market state is never evicted
    assert cache.get(topic.market_rules("sim", "BTC/USDT")) == b"r"
    assert cache.get(_signal_topic(0).decode()) == b"s0 again"
    assert cache.get(_signal_topic(999).decode()) == b"s999"
    assert cache.get(_signal_topic(1).decode()) is None  # not updated since: evicted
    assert len(list(cache.matching([topic.SIGNALS]))) == 100
    assert list(cache.matching(["md.sim."])) == [b"q", b"r"]
