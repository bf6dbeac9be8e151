"""ZeroMQ transport: the market-data/event bus and the reliable order-flow path."""

from sniperbot.transport.bus import BusProxy, Publisher, Subscriber
from sniperbot.transport.reliable import Inbox, Outbox

__all__ = ["BusProxy", "Inbox", "Outbox", "Publisher", "Subscriber"]
