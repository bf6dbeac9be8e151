"""The root of the message vocabulary."""

from __future__ import annotations

import msgspec


class Message(msgspec.Struct, frozen=True, tag_field="t", kw_only=True):
    """Base of every payload; each subclass carries an explicit, stable wire tag.

    Tags are part of the public contract: never rename one, never reuse one.
    New fields go at the end and must have defaults (msgspec schema evolution).
    """
