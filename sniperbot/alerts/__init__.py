"""Alerts: an actor that journals alerts, then sends them to Telegram, Discord, email and webhooks.

See :mod:`sniperbot.alerts.actor` (what alerts), :mod:`sniperbot.alerts.outbox` (the delivery
guarantee), :mod:`sniperbot.alerts.channels` (the wire formats) and :mod:`sniperbot.alerts.config`
(the ``[alerts]`` section).
"""

from sniperbot.alerts.config import AlertsConfig
from sniperbot.alerts.model import SEVERITIES, Alert, Severity

__all__ = ["SEVERITIES", "Alert", "AlertsConfig", "Severity"]
