"""Order execution venues; today the paper venue used for simulation and dry runs."""

from sniperbot.execution.paper import PaperVenue

__all__ = ["PaperVenue"]
