"""The simulated venue: a seeded market (``market``, ``feed``) and the paper gateway.

The paper gateway (``gateway``: matching engine ``paper``, durable ``ledger``) fills
against whatever feed publishes the venue's quotes, so it also serves the paper mode
of every other venue kind.
"""
