"""The default supervision tree, built from a :class:`Config`.

::

    root                 one_for_one  (config [supervisor])
    ├─ venue.<name>      rest_for_one 3/30, breaker venue:<name>   one per [[venues]] entry
    │  ├─ feed.<name>                       market data (also the paper gateway's price source)
    │  ├─ paper.<name>                      paper mode: the simulated exchange, with its own ledger
    │  │  (gateway.<name>                   live mode: the venue kind's live gateway)
    │  ├─ executor.<name>                   orders to the gateway, journal first (one generic Executor)
    │  └─ ...                               the venue kind's own (evm with [venues.sniper]: checker, pools)
    ├─ portfolio                            positions, P&L
    ├─ risk              one_for_all 3/30, breaker global
    │  └─ risk_guard                        every intent passes here
    ├─ analysis          one_for_one 5/60, breaker analysis   one actor per [[analysers]] entry
    │  └─ analyser.<id>                     scanners, sentiment, plug-ins: signals before strategies
    ├─ strategies        one_for_one 10/60  one actor per strategy instance (hot-addable)
    │  └─ strategy.<id>                     breaker strategy:<id>: its own crash loop trips only it
    │                                       (also a venue's own: strategy.sniper-<venue>)
    └─ ops               one_for_one 5/60, breaker ops   operator services
       ├─ metrics                           Prometheus /metrics (when [metrics] enabled)
       ├─ alerts                            Telegram, Discord, email, webhook ([alerts])
       ├─ telegram                          the command bot ([telegram])
       ├─ api                               HTTP API, WebSocket stream, web dashboard ([api], on by default)
       └─ archiver                          moves old completed orders to <run dir>/archive ([journal])

The contract between these actors is :mod:`sniperbot.venues.base`.

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

import hashlib
import time

import msgspec

from sniperbot.actors.placement import PRELOAD
from sniperbot.alerts.config import ALERTS_ACTOR, ALERTS_ACTOR_ID
from sniperbot.analytics.base import AnalyserSection
from sniperbot.api.config import API_ACTOR, API_ACTOR_ID
from sniperbot.config import Config, StrategySection
from sniperbot.messages import subject_of
from sniperbot.supervision import ChildSpec, SupFlags, check_unique_ids
from sniperbot.telegram.config import TELEGRAM_ACTOR, TELEGRAM_ACTOR_ID
from sniperbot.venues.base import EXECUTOR, PAPER_GATEWAY
from sniperbot.venues.config import VenueConfig

STRATEGIES_SUPERVISOR = "strategies"
OPS_SUPERVISOR = "ops"
ANALYSIS_SUPERVISOR = "analysis"
STRATEGY_ACTOR = "sniperbot.actors.strategy:StrategyActor"
#: One strategy's own restart intensity: 5 crashes in 60 s trip its breaker (``strategy:<id>``).
STRATEGY_RESTARTS = SupFlags(intensity=5, period_s=60.0)
METRICS_ACTOR = "sniperbot.metrics.exporter:MetricsActor"
#: Housekeeping: keeps the hot journal bounded (``[journal] archive_after_days``).
ARCHIVER_ACTOR_ID = "archiver"
ARCHIVER_ACTOR = "sniperbot.actors.archiver:ArchiverActor"


def _flags(config: Config, flags: SupFlags) -> SupFlags:
    """``flags`` with the node's ``[supervisor] min_uptime_s``: every supervisor tells crash loops apart."""
    return msgspec.structs.replace(flags, min_uptime_s=config.supervisor.min_uptime_s)


def _worker(config: Config, actor_id: str, actor: str, **args: object) -> ChildSpec:
    placement = config.placement
    return ChildSpec(
        id=actor_id,
        actor=actor,
        args=args,
        placement=placement.actors.get(actor_id, placement.default),
    )


def strategy_child(config: Config, section: StrategySection) -> ChildSpec:
    """The child spec of one strategy instance (also used to hot-add one).

    Each strategy has its own breaker ``strategy:<id>`` and restart intensity
    (:data:`STRATEGY_RESTARTS`): a strategy that keeps crashing trips alone, and its
    siblings, its venue and the ``strategies`` supervisor's own intensity are untouched.
    """
    spec = _worker(
        config,
        f"strategy.{section.id}",
        STRATEGY_ACTOR,
        strategy_id=section.id,
        strategy=section.strategy,
        venue=config.strategy_venue(section),
        symbol=section.symbol,
        bar_interval_s=section.bar_interval_s,
        quantity=section.quantity,
        params=dict(section.params),
        history=venue.history_source() if (venue := config.venue(config.strategy_venue(section))) else None,
    )
    flags = _flags(config, STRATEGY_RESTARTS)
    return msgspec.structs.replace(spec, breaker=f"strategy:{section.id}", flags=flags)


def api_settings(config: Config) -> dict[str, object]:
    """The API actor's arguments: ``[api]`` with an inline token replaced by its SHA-256.

    The child spec is readable by any operator (``admin get-childspec``): a secret never goes in it.
    """
    settings = msgspec.to_builtins(config.api)
    token = settings.pop("token")
    settings["token_sha256"] = hashlib.sha256(token.encode()).hexdigest() if token else ""
    settings["venues"] = [v.name for v in config.venues]  # whose quotes feed the price chart
    return settings


def _supervisor(sup_id: str, flags: SupFlags, children: list[ChildSpec], breaker: str = "") -> ChildSpec:
    return ChildSpec(id=sup_id, type="supervisor", flags=flags, children=children, breaker=breaker)


def venue_subtree(config: Config, venue: VenueConfig, epoch_ns: int) -> ChildSpec:
    """``venue.<name>``: feed, gateway (the paper gateway in paper mode), executor."""
    name = venue.name
    feed_actor, feed_args = venue.feed(epoch_ns)
    feed = _worker(config, f"feed.{name}", feed_actor, **feed_args)
    executor_id = f"executor.{name}"
    if venue.mode == "paper":
        # Paper trading is a mode: the paper gateway fills against whatever this venue's
        # feed publishes (the simulated market, or a real exchange's book).
        gateway_id = f"paper.{name}"
        gateway = _worker(
            config,
            gateway_id,
            PAPER_GATEWAY,
            venue=name,
            fee_bps=config.execution.fee_bps,
            slippage_bps=config.execution.slippage_bps,
            executor=executor_id,
            # The simulated exchange's books need to survive its process, not the machine:
            # an fsync here would only slow the simulation down (our own journal still fsyncs).
            durability="process",
            **venue.paper_gateway_args(),
        )
    else:
        gateway_actor, gateway_args = venue.live_gateway()
        gateway_id = f"gateway.{name}"
        gateway = _worker(config, gateway_id, gateway_actor, executor=executor_id, **gateway_args)
    executor = _worker(config, executor_id, EXECUTOR, venue=name, gateway=gateway_id)
    extra = [_worker(config, actor_id, actor, **args) for actor_id, actor, args in venue.venue_actors()]
    return _supervisor(
        f"venue.{name}",
        _flags(config, SupFlags(strategy="rest_for_one", intensity=3, period_s=30.0)),
        [feed, gateway, executor, *extra],
        breaker=f"venue:{name}",
    )


def ops_subtree(config: Config) -> ChildSpec:
    """``ops``: operator services (metrics, alerts, Telegram bot, API), last to start, first to stop.

    Its own breaker ``ops``: a crashing operator service trips only that breaker (the subtree
    cools down and is retried); the root never counts it, so it never takes trading down.
    """
    children = []
    if config.metrics.enabled:
        children.append(
            _worker(
                config,
                "metrics",
                METRICS_ACTOR,
                address=config.metrics.address,
                venues=[v.name for v in config.venues],
            )
        )
    if config.alerts.enabled:
        children.append(
            _worker(config, ALERTS_ACTOR_ID, ALERTS_ACTOR, settings=msgspec.to_builtins(config.alerts))
        )
    if config.telegram.enabled:
        children.append(
            _worker(config, TELEGRAM_ACTOR_ID, TELEGRAM_ACTOR, settings=msgspec.to_builtins(config.telegram))
        )
    if config.api.enabled:
        api = _worker(config, API_ACTOR_ID, API_ACTOR, settings=api_settings(config))
        # The API reads the run dir (admin socket, journal): with a "ray" default it still runs in a
        # process on this machine, unless placement.actors names it explicitly.
        if api.placement == "ray" and API_ACTOR_ID not in config.placement.actors:
            api = msgspec.structs.replace(api, placement="process")
        children.append(api)
    if config.journal.archive_after_days > 0:
        children.append(
            _worker(config, ARCHIVER_ACTOR_ID, ARCHIVER_ACTOR, after_days=config.journal.archive_after_days)
        )
    flags = _flags(config, SupFlags(intensity=5, period_s=60.0))
    return _supervisor(OPS_SUPERVISOR, flags, children, breaker="ops")


def analysis_subtree(config: Config) -> ChildSpec | None:
    """``analysis``: one actor per ``[[analysers]]`` entry (None without any), before the strategies.

    Its own breaker ``analysis``: analysers talk to outside services that fail in their own ways;
    one that keeps crashing trips only this breaker, never trading (strategies treat a missing or
    stale signal as no signal).
    """
    if not config.analysers:
        return None
    children = [
        _worker(config, f"analyser.{a.id}", a.actor_path, **a.actor_args(), **_analyser_extra(config, a))
        for a in config.analysers
    ]
    flags = _flags(config, SupFlags(intensity=5, period_s=60.0))
    return _supervisor(ANALYSIS_SUPERVISOR, flags, children, breaker="analysis")


def _analyser_extra(config: Config, section: AnalyserSection) -> dict[str, object]:
    """What an analyser kind needs from the node's config besides its own section."""
    if section.wants_traded:
        # e.g. tickers in posts are read against the node's traded assets (precision over recall).
        symbols = {s for v in config.venues for s in v.symbol_names()} | {s.symbol for s in config.strategies}
        return {"traded": sorted({subject_of(s) for s in symbols if s})}
    return {}


def build_tree(config: Config, epoch_ns: int | None = None) -> ChildSpec:
    """The root supervisor's spec for ``config``; ``epoch_ns`` anchors the sim clock."""
    epoch_ns = time.time_ns() if epoch_ns is None else epoch_ns
    names = [v.name for v in config.venues]
    risk = _worker(
        config,
        "risk_guard",
        "sniperbot.actors.risk_guard:RiskGuardActor",
        limits={
            "max_order_notional": config.risk.max_order_notional,
            "max_position": config.risk.max_position,
            "position_limits": dict(config.risk.position_limits),
            "max_orders_per_second": config.risk.max_orders_per_second,
            "max_spend_per_symbol": config.risk.max_spend_per_symbol,
            "max_spend_per_day": config.risk.max_spend_per_day,
            "max_open_positions": config.risk.max_open_positions,
        },
        trading_state=config.risk.trading_state,
        executors={name: f"executor.{name}" for name in names},
        daily_loss_limit=config.risk.daily_loss_limit,
        max_drawdown=config.risk.max_drawdown,
        loss_action=config.risk.loss_action,
    )
    portfolio = _worker(
        config,
        "portfolio",
        "sniperbot.actors.portfolio:PortfolioActor",
        snapshot_interval_s=config.portfolio.snapshot_interval_s,
        venues=names,
    )
    strategies = [strategy_child(config, s) for s in config.strategies]
    for venue in config.venues:  # strategies a venue brings (an evm venue's sniper): the same breaker rule
        for actor_id, actor, args in venue.strategy_actors():
            spec = _worker(config, actor_id, actor, **args)
            breaker = "strategy:" + actor_id.removeprefix("strategy.")
            flags = _flags(config, STRATEGY_RESTARTS)
            strategies.append(msgspec.structs.replace(spec, breaker=breaker, flags=flags))
    root = _supervisor(
        "root",
        _flags(config, SupFlags(intensity=config.supervisor.intensity, period_s=config.supervisor.period_s)),
        [
            *(venue_subtree(config, venue, epoch_ns) for venue in config.venues),
            portfolio,
            _supervisor(
                "risk",
                _flags(config, SupFlags(strategy="one_for_all", intensity=3, period_s=30.0)),
                [risk],
                breaker="global",
            ),
            *([analysis] if (analysis := analysis_subtree(config)) else []),
            _supervisor(
                STRATEGIES_SUPERVISOR, _flags(config, SupFlags(intensity=10, period_s=60.0)), strategies
            ),
            ops_subtree(config),
        ],
    )
    check_unique_ids(root)
    return root


def preload_modules(tree: ChildSpec) -> list[str]:
    """Modules the forkserver imports once: the base, then every worker's module in ``tree``.

    Derived from the tree (``spec.actor`` is ``module:Class``), plus the strategy actor
    (strategies can be hot-added into an empty ``strategies`` supervisor), so a new
    venue kind is preloaded without a hand-written list.
    """
    modules = list(PRELOAD)
    actors = [spec.actor for spec in tree.walk() if spec.type == "worker"] + [STRATEGY_ACTOR]
    for actor in actors:
        module = actor.partition(":")[0]
        if module not in modules:
            modules.append(module)
    return modules
