"""The operator's admin surface: typed commands, the command layer every face calls, the socket client.

``protocol`` holds the typed commands (:data:`Command`) and replies; ``commands`` the one
command layer (:class:`AdminCommands`, over the :class:`NodeControl` interface); ``client``
the unix/CURVE socket client the CLI uses.
"""

from sniperbot.admin.client import AdminUnavailable, NoNodeRunning, admin_request
from sniperbot.admin.protocol import (
    COMMANDS,
    ERROR_CODES,
    AdminError,
    AdminReply,
    AdminRequest,
    Command,
    Request,
    to_command,
    to_request,
)

__all__ = [
    "COMMANDS",
    "ERROR_CODES",
    "AdminError",
    "AdminReply",
    "AdminRequest",
    "AdminUnavailable",
    "Command",
    "NoNodeRunning",
    "Request",
    "admin_request",
    "to_command",
    "to_request",
]
