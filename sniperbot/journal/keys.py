"""The keys of the node state kept beside the record log (``Journal.put_state``), in one place.

Each is written by one owner and read by whoever needs it after a restart:

* :data:`RUNNING` (node): ``b"1"`` while a node runs, ``b"0"`` after an orderly stop; a
  ``b"1"`` at start means the last run did not stop in order (start fail-closed).
* :data:`TRADING_STATE` (node, risk guard): ``{"state", "reason"}`` JSON, one of
  ``sniperbot.messages.control.TRADING_STATES``.
* :data:`LOSS_MARKS` (risk guard): the day's starting net P&L and the peak, for loss limits.
* :data:`BREAKER` + scope (breaker board): each circuit breaker as JSON.
* :data:`INCARNATION` + actor id (node): the actor's highest incarnation over every node life.
* :data:`SPEC` + supervisor id + ``/`` + child id (node): a child added at run time.
* :data:`VENUE_BASELINE` + venue (live gateway): the balances and the net of journaled fills at the
  venue's first reconciliation, and each market's fee asset, for the balance drift.
* :data:`BARS` + venue ``/`` symbol ``/`` interval in ms ``/`` start ns (strategy actors): closed
  bars for warm restarts (:mod:`sniperbot.market.bar_store`), the last few thousand per key.
* :data:`STRATEGY_STATE` + strategy id (its strategy actor): the strategy's own ``on_save`` state.
* :data:`POOL_CURSOR` + venue ``/`` factory address (its pool watcher): the block cursor and the last
  published pool (:class:`sniperbot.venues.evm.pool_watcher.PoolCursor`, JSON).
* :data:`NODE_LIFE` (node): the node life of the latest start, journaled before the run-dir marker
  (:data:`sniperbot.rundir.MARKER_NAME`) is written: a marker next to a journal without it (nor
  :data:`RUNNING`) means the journal was replaced by an empty or foreign one.
* :data:`STORAGE_PROBE` (node): a timestamp written by the node's storage check while a storage fault
  holds trading stopped; the write succeeding is what proves the journal can be written again.
* :data:`SOLANA_POOL_CURSOR` + venue ``/`` pools program (its Solana pool watcher): the slot floor and
  the pools handled above it (:class:`sniperbot.venues.solana.pool_watcher.PoolCursor`, JSON).
* :data:`SENTIMENT` + analyser id (its sentiment analyser): ``/since`` (the first observed bucket and the
  bucket size, JSON) and ``/b/`` + bucket start in unix seconds (12 digits): that bucket's per-subject
  tallies and post dedup keys (:class:`sniperbot.analytics.sentiment.windows.BucketState`, msgpack).
* :data:`SCANNER_CURSOR` + analyser id ``/`` a hash of the target (its social scanner): where the scanner
  is in one subreddit, query, channel or feed and the ids it published last
  (:class:`sniperbot.analytics.scanners.base.TargetCursor`, JSON).
* :data:`SIGNAL_REPLAY` + analyser id (its ``signal_replay`` actor): how many of its file's signals it
  has published (a restart goes on from there, never publishing one twice as new).
"""

from __future__ import annotations

from typing import Final

RUNNING: Final = "node/running"
TRADING_STATE: Final = "risk/trading_state"
LOSS_MARKS: Final = "risk/loss"
BREAKER: Final = "breaker/"
INCARNATION: Final = "incarnation/"
SPEC: Final = "spec/"
VENUE_BASELINE: Final = "venue/baseline/"
BARS: Final = "bars/"
STRATEGY_STATE: Final = "strategy/"
POOL_CURSOR: Final = "evm/pools/"
SOLANA_POOL_CURSOR: Final = "solana/pools/"
SENTIMENT: Final = "analytics/sentiment/"
SCANNER_CURSOR: Final = "analytics/scanner/"
STORAGE_PROBE: Final = "node/storage_probe"
NODE_LIFE: Final = "node/life"
SIGNAL_REPLAY: Final = "analytics/replay/"
