"""The ``kind = "replay"`` venue: a candle file replayed through the real node (paper mode only).

::

    [[venues]]
    name = "replay"
    kind = "replay"
    data = "/data/binance_spot_BTCUSDT_1m_2024-07-26_2024-08-25.csv"   # CSV, Parquet or Feather
    symbol = "BTC/USDT"        # the symbol the node trades it as (strategies name it)
    speed = 0                  # 0: as fast as the node takes it; N: at most N x real time
    strategies = ["sma_btc"]   # the strategy ids the replay waits for at every candle

Checks at load, each naming its field (``sniperbot run`` exits 2): ``data`` is a readable candle
file with at least one bar, ``symbol`` is non-empty, ``speed`` is >= 0, ``strategies`` names at
least one id. ``mode`` must be ``paper``: the paper gateway fills against the replayed book.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar

import msgspec

from sniperbot.venues.base import VenueSection


class ReplayVenueConfig(VenueSection, tag="replay"):
    """A candle file replayed through the node; fills by the paper gateway at the next candle's open.

    ``strategies`` are the ids the feed paces on (flow control, :mod:`sniperbot.venues.replay.feed`):
    it publishes the next candle only when each of them has decided on the previous bar and has no
    intent in flight.
    """

    supported_modes: ClassVar[tuple[str, ...]] = ("paper",)

    data: str
    symbol: str
    speed: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    strategies: list[str] = []

    def __post_init__(self) -> None:
        if not self.symbol:
            raise ValueError("symbol: a symbol is required")
        if not self.strategies:
            raise ValueError("strategies: name the strategy ids the replay waits for")
        if not Path(self.data).is_file():
            raise ValueError(f"data: no such file: {self.data}")

    def symbol_names(self) -> list[str]:
        """The one replayed symbol."""
        return [self.symbol]

    def feed(self, epoch_ns: int) -> tuple[str, dict[str, Any]]:
        """The replay feed (the replay clock is the data's own: ``epoch_ns`` is not used)."""
        return "sniperbot.venues.replay.feed:ReplayFeed", {
            "venue": self.name,
            "symbol": self.symbol,
            "data": str(Path(self.data).resolve()),
            "speed": self.speed,
            "strategies": list(self.strategies),
        }

    def paper_gateway_args(self) -> dict[str, Any]:
        """A market order fills at the candle after its decision, even if it overtakes that candle's quote."""
        return {"hold_for_decision_book": True}

    def live_gateway(self) -> tuple[str, dict[str, Any]]:
        """None: a replay takes paper orders only."""
        raise ValueError("mode: the replay venue supports paper only")

    def preflight(self) -> str | None:
        """Load the candle file once, so a bad one exits 2 before any process starts."""
        from sniperbot.data import DataError, load_ohlcv

        try:
            bars = load_ohlcv(self.data, symbol=self.symbol)
        except (DataError, ValueError, OSError) as e:
            raise ValueError(f"data: {e}") from None
        if len(bars) == 0:
            raise ValueError(f"data: {self.data} has no bars")
        return None
