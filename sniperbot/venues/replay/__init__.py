"""The replay venue: a candle file fed through the real node on the replay clock (see ``feed``)."""
