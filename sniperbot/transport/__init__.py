"""ZeroMQ transport: the market-data/event bus and the reliable order-flow path."""

from sniperbot.transport.bus import BusProxy, Publisher, Subscriber, bus_message, split_message
from sniperbot.transport.reliable import Inbox, Outbox

__all__ = ["BusProxy", "Inbox", "Outbox", "Publisher", "Subscriber", "bus_message", "split_message"]
