"""The sniper's parameters (``[venues.sniper]``) and its id: shared by every on-chain venue kind."""

from __future__ import annotations

import math

import msgspec


class SniperParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[venues.sniper]`` of an on-chain venue: what one snipe spends and when it exits (a careful trader's
    defaults: a small stake, profits taken at +50 %, losses cut at -25 %, nothing held for more than
    an hour, out at once when a quarter of the pool's liquidity is pulled)."""

    enabled: bool = True
    budget: float = 0.05  # quote (e.g. WETH) spent per snipe
    take_profit_pct: float = 50.0
    stop_loss_pct: float = 25.0
    trailing_stop_pct: float = 20.0  # 0 = off
    max_hold_s: float = 3600.0
    liquidity_drop: float = 0.25  # fraction of the pool's depth gone since the buy that forces an exit
    max_report_age_s: float = 30.0  # a "buy" report older than this (or without a quote by then) is let go
    exit_retry_s: float = 10.0  # a failed or partial exit is tried again after this long
    # The social gate (issue 15), off while social_kind is "": buy only when the newest non-stale signal of
    # this kind about the token (subject = its address as the chain writes it), from social_source ("" =
    # any analyser), at most social_max_age_s old, is >= min_social (see sniperbot.actors.sniper).
    social_kind: str = ""
    min_social: float = 0.0
    social_max_age_s: float = 600.0
    social_source: str = ""

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ValueError:
            # "<field>: ...": the config loader names venues[i].sniper.<field>
            return ValueError(f"{name}: must be {rule}, got {getattr(self, name)!r}")

        for name in (
            "budget",
            "take_profit_pct",
            "max_hold_s",
            "max_report_age_s",
            "exit_retry_s",
            "social_max_age_s",
        ):
            value = getattr(self, name)
            if not (0 < value < float("inf")):
                raise bad(name, "a number > 0")
        if not 0 < self.stop_loss_pct < 100:
            raise bad("stop_loss_pct", "within (0, 100)")
        if not 0 <= self.trailing_stop_pct < 100:
            raise bad("trailing_stop_pct", "within [0, 100) (0 = off)")
        if not 0 < self.liquidity_drop < 1:
            raise bad("liquidity_drop", "a fraction within (0, 1)")
        if not math.isfinite(self.min_social):
            raise bad("min_social", "a finite number")
        if self.social_kind != self.social_kind.strip() or "." in self.social_kind:
            raise bad("social_kind", "a signal kind without dots or spaces (e.g. 'mentions_z'), or '' (off)")


def sniper_id(venue: str) -> str:
    """The one home of a venue's sniper's strategy id (its actor is ``strategy.<id>``)."""
    return f"sniper-{venue}"
