"""Every venue: the contract (:mod:`sniperbot.venues.base`), ``_template/`` to copy, ``sim/``, ``ccxt/``.

Importing this package imports nothing else: the node config imports venue configs,
and actor processes import only the venue modules they run.
"""
