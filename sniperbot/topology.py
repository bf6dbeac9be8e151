"""The default supervision tree, built from a :class:`Config`.

::

    root                 one_for_one  (config [supervisor])
    ├─ venue.<venue>     rest_for_one 3/30, breaker venue:<venue>
    │  ├─ feed.<venue>                      market data (also the paper venue's price source)
    │  ├─ paper.<venue>                     the simulated exchange, with its own ledger
    │  └─ executor.<venue>                  orders to the venue, journal first
    ├─ portfolio                            positions, P&L
    ├─ risk              one_for_all 3/30, breaker global
    │  └─ risk_guard                        every intent passes here
    └─ strategies        one_for_one 10/60  one actor per strategy instance (hot-addable)
       └─ strategy.<id>

Why this shape: a venue's actors depend on each other in start order (the
paper venue needs the feed's prices, the executor needs the venue), hence
``rest_for_one``: a venue that restarts also restarts its executor, which then
reconciles every unfinished order with it before it takes new ones; when a venue keeps
failing, its breaker opens instead of taking the node down, and the risk guard
rejects intents for that venue until the venue has recovered. A failing risk
subtree opens the ``global`` breaker: nothing trades without risk. Start order
is top to bottom, so prices flow and orders can be executed before the first
strategy runs; stop order is the reverse, so strategies stop emitting first.
"""

from __future__ import annotations

import time

import msgspec

from sniperbot.config import Config, StrategySection
from sniperbot.supervision import ChildSpec, SupFlags, check_unique_ids

_ACTORS = "sniperbot.actors"
STRATEGIES_SUPERVISOR = "strategies"


def _worker(config: Config, actor_id: str, actor: str, **args: object) -> ChildSpec:
    placement = config.placement
    return ChildSpec(
        id=actor_id,
        actor=f"{_ACTORS}.{actor}",
        args=args,
        placement=placement.actors.get(actor_id, placement.default),
    )


def strategy_child(config: Config, section: StrategySection) -> ChildSpec:
    """The child spec of one strategy instance (also used to hot-add one)."""
    return _worker(
        config,
        f"strategy.{section.id}",
        "strategy:StrategyActor",
        strategy_id=section.id,
        strategy=section.strategy,
        venue=config.market.venue,
        symbol=section.symbol,
        bar_interval_s=section.bar_interval_s,
        quantity=section.quantity,
        params=dict(section.params),
    )


def build_tree(config: Config, epoch_ns: int | None = None) -> ChildSpec:
    """The root supervisor's spec for ``config``; ``epoch_ns`` anchors the sim clock."""
    epoch_ns = time.time_ns() if epoch_ns is None else epoch_ns
    market = config.market
    venue = market.venue

    def worker(actor_id: str, actor: str, **args: object) -> ChildSpec:
        return _worker(config, actor_id, actor, **args)

    feed = worker(
        f"feed.{venue}",
        "sim_feed:SimFeed",
        venue=venue,
        seed=market.seed,
        tick_interval_s=market.tick_interval_s,
        symbols=[msgspec.to_builtins(s) for s in market.symbols],
        epoch_ns=epoch_ns,
    )
    executor_id = f"executor.{venue}"
    paper_id = f"paper.{venue}"
    paper = worker(
        paper_id,
        "paper_venue:PaperVenueActor",
        venue=venue,
        fee_bps=config.execution.fee_bps,
        slippage_bps=config.execution.slippage_bps,
        executor=executor_id,
        # The simulated exchange's books need to survive its process, not the machine:
        # an fsync here would only slow the simulation down (our own journal still fsyncs).
        durability="process",
    )
    executor = worker(executor_id, "paper_executor:PaperExecutor", venue=venue, venue_actor=paper_id)
    risk = worker(
        "risk_guard",
        "risk_guard:RiskGuardActor",
        limits={
            "max_order_notional": config.risk.max_order_notional,
            "max_position": config.risk.max_position,
            "position_limits": dict(config.risk.position_limits),
            "max_orders_per_second": config.risk.max_orders_per_second,
        },
        trading_state=config.risk.trading_state,
        executors={venue: executor_id},
        daily_loss_limit=config.risk.daily_loss_limit,
        max_drawdown=config.risk.max_drawdown,
        loss_action=config.risk.loss_action,
    )
    portfolio = worker(
        "portfolio",
        "portfolio:PortfolioActor",
        snapshot_interval_s=config.portfolio.snapshot_interval_s,
        venues=[venue],
    )
    strategies = [strategy_child(config, s) for s in config.strategies]

    def supervisor(sup_id: str, flags: SupFlags, children: list[ChildSpec], breaker: str = "") -> ChildSpec:
        return ChildSpec(id=sup_id, type="supervisor", flags=flags, children=children, breaker=breaker)

    root = supervisor(
        "root",
        SupFlags(intensity=config.supervisor.intensity, period_s=config.supervisor.period_s),
        [
            supervisor(
                f"venue.{venue}",
                SupFlags(strategy="rest_for_one", intensity=3, period_s=30.0),
                [feed, paper, executor],
                breaker=f"venue:{venue}",
            ),
            portfolio,
            supervisor(
                "risk", SupFlags(strategy="one_for_all", intensity=3, period_s=30.0), [risk], breaker="global"
            ),
            supervisor(STRATEGIES_SUPERVISOR, SupFlags(intensity=10, period_s=60.0), strategies),
        ],
    )
    check_unique_ids(root)
    return root
