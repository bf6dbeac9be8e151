"""The ``kind = "sim"`` venue: a seeded simulated market (paper mode only)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec

from sniperbot.venues.base import Positive, VenueSection


class SymbolSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One simulated instrument."""

    symbol: str
    start_price: Positive
    base_vol_bps: Positive = 2.0
    spread_bps: Positive = 1.0
    top_size: Positive = 1.0
    trade_prob: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.6


def _default_symbols() -> list[SymbolSection]:
    return [
        SymbolSection(symbol="BTC/USDT", start_price=60_000.0, top_size=0.5),
        SymbolSection(symbol="ETH/USDT", start_price=3_000.0, base_vol_bps=2.5, top_size=5.0),
    ]


class SimVenueConfig(VenueSection, tag="sim"):
    """The simulated market: seed, tick cadence and instruments; fills by the paper gateway.

    ``mode`` must be ``paper``: there is no exchange to send live orders to.
    """

    supported_modes: ClassVar[tuple[str, ...]] = ("paper",)

    seed: int = 7
    tick_interval_s: Positive = 0.1
    symbols: list[SymbolSection] = msgspec.field(default_factory=_default_symbols)

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError("symbols: at least one symbol is required")
        names = [s.symbol for s in self.symbols]
        if len(set(names)) != len(names):
            raise ValueError("symbols: symbols must be unique")

    def symbol_names(self) -> list[str]:
        """The simulated symbols, in config order."""
        return [s.symbol for s in self.symbols]

    def feed(self, epoch_ns: int) -> tuple[str, dict[str, Any]]:
        """The seeded feed; ``epoch_ns`` anchors its clock (tick ``i`` at ``epoch + i * interval``)."""
        return "sniperbot.venues.sim.feed:SimFeed", {
            "venue": self.name,
            "seed": self.seed,
            "tick_interval_s": self.tick_interval_s,
            "symbols": [msgspec.to_builtins(s) for s in self.symbols],
            "epoch_ns": epoch_ns,
        }

    def live_gateway(self) -> tuple[str, dict[str, Any]]:
        """None: the simulated market takes paper orders only."""
        raise ValueError("mode: the sim venue supports paper only")
