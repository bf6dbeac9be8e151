"""The ``[[venues]]`` config entry: a msgspec tagged union on ``kind``, one variant per venue kind.

To add a kind (``ccxt``, ``evm``, ``solana``): define ``<Kind>VenueConfig(VenueSection,
tag="<kind>")`` in ``sniperbot/venues/<kind>/config.py`` and add it to :data:`VenueConfig`
below; nothing else in the config changes. ``kind`` selects the variant; write it in every
entry (with a single kind msgspec lets it default, with two it is required).
"""

from __future__ import annotations

from sniperbot.venues.ccxt.config import CcxtVenueConfig
from sniperbot.venues.evm.config import EvmVenueConfig
from sniperbot.venues.replay.config import ReplayVenueConfig
from sniperbot.venues.sim.config import SimVenueConfig, SymbolSection
from sniperbot.venues.solana.config import SolanaVenueConfig

#: One variant per kind.
VenueConfig = SimVenueConfig | CcxtVenueConfig | ReplayVenueConfig | EvmVenueConfig | SolanaVenueConfig

__all__ = [
    "CcxtVenueConfig",
    "EvmVenueConfig",
    "ReplayVenueConfig",
    "SimVenueConfig",
    "SolanaVenueConfig",
    "SymbolSection",
    "VenueConfig",
]
