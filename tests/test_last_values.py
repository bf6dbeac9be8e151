"""The node's last-value cache stays bounded however many signal subjects a node hears of (issue #14)."""

from __future__ import annotations

from sniperbot.kernel.last_values import LastValues
from sniperbot.messages import topics as topic
from sniperbot.transport.bus import bus_message


def _signal_topic(i: int) -> str:
    return topic.signal(f"TOKEN{i}", "mentions", "sentiment", 300)


def test_signal_topics_are_bounded_least_recently_updated_first_and_market_topics_are_kept() -> None:
    cache = LastValues(max_signal_topics=100)
    cache.put(bus_message(topic.quote("sim", "BTC/USDT"), b"q"))
    cache.put(bus_message(topic.market_rules("sim", "BTC/USDT"), b"r"))
    for i in range(1_000):
        cache.put(bus_message(_signal_topic(i), b"s%d" % i))
        if i % 10 == 0:
            cache.put(bus_message(_signal_topic(0), b"s0 again"))  # updated all along: never the oldest
    assert len(cache) == 2 + 100
    assert cache.get(topic.quote("sim", "BTC/USDT")) == b"q"  # market state is never evicted
    assert cache.get(topic.market_rules("sim", "BTC/USDT")) == b"r"
    assert cache.get(_signal_topic(0)) == b"s0 again"
    assert cache.get(_signal_topic(999)) == b"s999"
    assert cache.get(_signal_topic(1)) is None  # not updated since: evicted
    assert len(list(cache.matching([topic.SIGNALS]))) == 100
    assert list(cache.matching(["md.sim."])) == [b"q", b"r"]
