"""The default supervision tree, built from a :class:`Config`.

::

    root                 one_for_one  (config [supervisor])
    ├─ market            one_for_one 5/30   venue feeds (price source of the paper venue)
    │  └─ feed.<venue>
    ├─ portfolio                            positions, P&L
    ├─ risk_guard                           every intent passes here
    ├─ execution         one_for_one 5/30   one executor per venue
    │  └─ executor.<venue>
    └─ strategies        one_for_one 10/60  one actor per strategy instance
       └─ strategy.<id>

Start order is top to bottom, so prices flow before anyone trades and the
executor is up before the first strategy; stop order is the reverse, so
strategies stop emitting before the executor and risk guard go away.
"""

from __future__ import annotations

import time

import msgspec

from sniperbot.config import Config
from sniperbot.supervision import ChildSpec, SupFlags, check_unique_ids

_ACTORS = "sniperbot.actors"


def build_tree(config: Config, epoch_ns: int | None = None) -> ChildSpec:
    """The root supervisor's spec for ``config``; ``epoch_ns`` anchors the sim clock."""
    epoch_ns = time.time_ns() if epoch_ns is None else epoch_ns
    market = config.market
    venue = market.venue
    placement = config.placement

    def worker(actor_id: str, actor: str, **args: object) -> ChildSpec:
        return ChildSpec(
            id=actor_id,
            actor=f"{_ACTORS}.{actor}",
            args=args,
            placement=placement.actors.get(actor_id, placement.default),
        )

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
    executor = worker(
        executor_id,
        "paper_executor:PaperExecutor",
        venue=venue,
        fee_bps=config.execution.fee_bps,
        slippage_bps=config.execution.slippage_bps,
    )
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
    )
    portfolio = worker(
        "portfolio",
        "portfolio:PortfolioActor",
        snapshot_interval_s=config.portfolio.snapshot_interval_s,
    )
    strategies = [
        worker(
            f"strategy.{s.id}",
            "strategy:StrategyActor",
            strategy_id=s.id,
            strategy=s.strategy,
            venue=venue,
            symbol=s.symbol,
            bar_interval_s=s.bar_interval_s,
            quantity=s.quantity,
            params=dict(s.params),
        )
        for s in config.strategies
    ]

    def supervisor(sup_id: str, flags: SupFlags, children: list[ChildSpec]) -> ChildSpec:
        return ChildSpec(id=sup_id, type="supervisor", flags=flags, children=children)

    root = supervisor(
        "root",
        SupFlags(intensity=config.supervisor.intensity, period_s=config.supervisor.period_s),
        [
            supervisor("market", SupFlags(intensity=5, period_s=30.0), [feed]),
            portfolio,
            risk,
            supervisor("execution", SupFlags(intensity=5, period_s=30.0), [executor]),
            supervisor("strategies", SupFlags(intensity=10, period_s=60.0), strategies),
        ],
    )
    check_unique_ids(root)
    return root
