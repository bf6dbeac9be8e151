"""Backtesting: performance metrics (:mod:`.metrics`) and the HTML report (:mod:`.report`)."""
