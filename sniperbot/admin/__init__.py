"""The operator's admin socket: protocol and client (the server lives in the node)."""

from sniperbot.admin.client import AdminUnavailable, NoNodeRunning, admin_request
from sniperbot.admin.protocol import AdminError, AdminReply, AdminRequest

__all__ = ["AdminError", "AdminReply", "AdminRequest", "AdminUnavailable", "NoNodeRunning", "admin_request"]
