"""Every metric sniperbot exports: name -> (type, help). The one home of metric names.

Money is in the venue's quote currency (``_quote``), durations in seconds, counters end in
``_total``. Labels: ``actor`` (bounded by the tree), ``venue``, ``symbol`` (configured
universe), ``status``/``state`` (closed sets), ``reason`` (risk codes; a venue's free-text
reason is counted as ``venue``), ``scope`` (breakers).
"""

from __future__ import annotations

from typing import Final, Literal

Kind = Literal["counter", "gauge", "histogram"]

CATALOG: Final[dict[str, tuple[Kind, str]]] = {
    # -- node: the supervision tree, breakers, trading state (sniperbot.metrics.node)
    "sniperbot_build_info": ("gauge", "Always 1; the running sniperbot version in a label."),
    "sniperbot_node_start_time_seconds": ("gauge", "When this node life started (Unix time)."),
    "sniperbot_actor_up": ("gauge", "1 while the actor's current incarnation is running."),
    "sniperbot_actor_state": ("gauge", "1 for the actor's current supervision state, 0 for the others."),
    "sniperbot_actor_incarnation": ("gauge", "The actor's current incarnation number."),
    "sniperbot_actor_restarts_total": ("counter", "Restarts of the actor in this node life."),
    "sniperbot_actor_missed_heartbeats": ("gauge", "Heartbeat intervals since the actor's last heartbeat."),
    "sniperbot_actor_last_heartbeat_timestamp_seconds": ("gauge", "When the actor last heartbeat."),
    "sniperbot_breaker_state": ("gauge", "1 for the breaker's current state (closed, open, half_open)."),
    "sniperbot_breaker_open": ("gauge", "1 while the breaker is open or half open."),
    "sniperbot_breaker_trips": (
        "gauge",
        "Trips of the breaker in its current streak (it doubles the cooldown).",
    ),
    "sniperbot_trading_state": ("gauge", "1 for the current trading state (ACTIVE, REDUCING, HALTED)."),
    # -- every actor runtime (sniperbot.actors.runtime)
    "sniperbot_messages_handled_total": ("counter", "Messages the actor handled."),
    "sniperbot_invalid_frames_total": (
        "counter",
        "Frames the actor dropped: undecodable, unauthorised, stale.",
    ),
    "sniperbot_bus_gaps_total": (
        "counter",
        "Metrics snapshots of the actor lost on the bus (the bus's drops, seen on the one stream "
        "every actor publishes and one receiver takes whole).",
    ),
    "sniperbot_local_bus_dropped_total": (
        "counter",
        "Bus messages the actor published that a local subscriber was too slow to take (past its "
        "backlog's bound; sniperbot.transport.fanout).",
    ),
    "sniperbot_metrics_snapshot_timestamp_seconds": ("gauge", "When the actor's last snapshot was taken."),
    # -- venues (FeedStatus of each feed; the ccxt rate limiter)
    "sniperbot_venue_connected": ("gauge", "1 while the venue's market-data connection is up."),
    "sniperbot_venue_stale": ("gauge", "1 while the venue's market data is stale."),
    "sniperbot_venue_reconnects_total": ("counter", "Market-data reconnects of the venue."),
    "sniperbot_venue_stale_periods_total": ("counter", "Transitions of the venue's market data to stale."),
    "sniperbot_venue_book_gaps_total": ("counter", "Order-book sequence gaps of the venue's feed."),
    "sniperbot_venue_rest_polls_total": ("counter", "REST fallback polls of the venue's feed."),
    "sniperbot_venue_last_message_timestamp_seconds": (
        "gauge",
        "When the venue's feed last heard the venue.",
    ),
    "sniperbot_venue_rate_limit_used_ratio": (
        "gauge",
        "Share of a rate-limit bucket of the venue in use (0-1), by bucket.",
    ),
    "sniperbot_venue_rate_limited_total": ("counter", "Requests the venue answered with HTTP 429 / 418."),
    # -- trading (executor, risk guard, portfolio)
    "sniperbot_orders_sent_total": ("counter", "Orders the executor journaled and sent to the venue."),
    "sniperbot_order_updates_total": ("counter", "Order status changes, by status."),
    "sniperbot_orders_rejected_total": ("counter", "Rejected orders, by reason (risk code, or venue)."),
    "sniperbot_fills_total": ("counter", "Fills recorded by the executor."),
    "sniperbot_risk_intents_total": ("counter", "Order intents the risk guard decided, by result."),
    "sniperbot_loss_limit_hits_total": ("counter", "Breaches of the daily loss limit or max drawdown."),
    "sniperbot_position_quantity": ("gauge", "Signed position in base units."),
    "sniperbot_position_notional_quote": ("gauge", "Absolute position value at its average entry price."),
    "sniperbot_exposure_quote": ("gauge", "Sum of absolute position values at entry price."),
    "sniperbot_pnl_realized_quote": ("gauge", "Realised P&L."),
    "sniperbot_pnl_unrealized_quote": ("gauge", "Unrealised P&L at the last marks."),
    "sniperbot_fees_quote": ("gauge", "Fees paid."),
    "sniperbot_pnl_net_quote": ("gauge", "Realised plus unrealised P&L minus fees."),
    "sniperbot_reconciliation_pending": ("gauge", "Orders the executor still reconciles with its venue."),
    # -- latency histograms
    "sniperbot_tick_to_intent_seconds": ("histogram", "Market-data message stamp to order intent sent."),
    "sniperbot_intent_to_order_seconds": ("histogram", "Order intent to order sent to the venue."),
    "sniperbot_order_ack_seconds": ("histogram", "Order sent to the venue's acknowledgement."),
    "sniperbot_journal_commit_seconds": ("histogram", "One journal write transaction, fsync included."),
}
