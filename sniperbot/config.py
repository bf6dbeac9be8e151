"""The node's configuration: a TOML file decoded by msgspec into frozen Structs.

Unknown keys are rejected, types are strict, and impossible values are caught
before any process starts; every error names the field path, for example
``risk.max_position``. The defaults of these Structs *are* the embedded default
configuration, spelled out in ``config/default.toml``.

Decisions (the same rules hold for the config file and for admin commands):

- **Ids.** Every strategy id and venue name follows one grammar, :data:`ID_RULE`:
  1 to :data:`NAME_MAX_LEN` (32) characters from ``A-Z a-z 0-9 _ . -``, not starting
  with ``.`` and without ``..``. Names become socket files, journal keys and bus
  topics, so a ``/``, a space or a path step must never reach them. A child id (admin
  ``start-child``, e.g. ``strategy.<id>``) follows the same grammar with up to
  :data:`CHILD_ID_MAX_LEN` (48) characters.
- **Numbers.** Every float must be finite: ``inf`` and ``nan`` are refused everywhere
  (``inf`` would switch a limit off silently, ``nan`` compares false with everything).
- **Minimums** (below them a node half-starts or never trades): ``bar_interval_s`` >=
  :data:`MIN_BAR_INTERVAL_S` (0.01 s), ``heartbeat_interval_s`` >= 0.05 s (the node's loop
  tick), ``start_timeout_s`` >= 1 s (an actor process needs that long to start on a busy host).
- **Venues.** ``[[venues]]`` entries (:mod:`sniperbot.venues.config`, a tagged union on
  ``kind``; ``sim`` today): at least one, names unique, ``mode`` one the kind supports
  (``sim``: ``paper`` only). The embedded default is one sim venue named ``sim``. The old
  single ``[market]`` section is gone (an unknown field now): write one ``[[venues]]`` entry
  with ``kind = "sim"`` and the same keys instead.
- **Strategies** name their venue (``venue = NAME``; empty: the first venue) and must trade
  a symbol of that venue. ``strategies = []`` is valid: strategies can be hot-added later.
- **Per-symbol limits.** Every key of ``risk.position_limits`` must be a symbol some venue
  trades: a typo would otherwise remove a limit without a word. (The built-in default,
  ``{"ETH/USDT" = 10}``, is exempt: it applies only if ETH/USDT is traded.) A limit holds for
  the position of that symbol *on each venue* (positions are keyed by venue and symbol).
- **Files.** ``admin.server_key`` and ``admin.authorized_clients`` are checked by
  :func:`check_files` before the node creates anything.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from sniperbot.alerts.config import AlertsConfig
from sniperbot.analytics.config import AnalyserConfig
from sniperbot.api.config import ApiSection
from sniperbot.telegram.config import TelegramConfig
from sniperbot.venues.base import NonNegative, Positive
from sniperbot.venues.config import SimVenueConfig, VenueConfig

PlacementName = Literal["process", "thread", "ray"]
TradingStateName = Literal["ACTIVE", "REDUCING", "HALTED"]

NAME_MAX_LEN = 32
CHILD_ID_MAX_LEN = 48
ID_RULE = "1-{n} characters from A-Z a-z 0-9 _ . -, not starting with '.', no '..'"
_ID_RE = re.compile(r"(?!.*\.\.)[A-Za-z0-9_-][A-Za-z0-9_.-]*")
MIN_BAR_INTERVAL_S = 0.01
MIN_HEARTBEAT_INTERVAL_S = 0.05
MIN_START_TIMEOUT_S = 1.0


def id_error(value: object, max_len: int = NAME_MAX_LEN) -> str | None:
    """Why ``value`` is not a valid id (see :data:`ID_RULE`), or None if it is one."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if len(value) > max_len or not _ID_RE.fullmatch(value):
        shown = value if len(value) <= 60 else value[:60] + "..."
        return f"{shown!r} is not a valid id ({ID_RULE.format(n=max_len)})"
    return None


def check_id(value: object, field: str, max_len: int = NAME_MAX_LEN) -> None:
    """Raise ValueError naming ``field`` if ``value`` is not a valid id."""
    error = id_error(value, max_len)
    if error is not None:
        raise ValueError(f"{field}: {error}")


def _check_unique(section: str, field: str, values: list[str], what: str) -> None:
    """Every value a valid id and none twice; the error names ``section[index].field``."""
    seen: set[str] = set()
    for index, value in enumerate(values):
        check_id(value, f"{section}[{index}].{field}")
        if value in seen:
            raise ValueError(f"{section}[{index}].{field}: duplicate {what} {value!r}")
        seen.add(value)


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section: strict, immutable."""


class NodeSection(_Section):
    """The node process: liveness timing, logging, and how its actors' bus messages travel.

    ``heartbeat_interval_s`` >= 0.05 s (the node's loop tick: faster heartbeats cannot be
    relayed) and ``start_timeout_s`` >= 1 s (a process actor cannot start faster on a busy host).
    ``local_bus`` (default on): actors of this machine send each other bus messages directly
    (:mod:`sniperbot.transport.fanout`), not through the node's proxy; off, everything goes through
    the proxy (to compare, or to rule it out).
    """

    heartbeat_interval_s: Positive = 0.5
    heartbeat_liveness: Annotated[int, msgspec.Meta(ge=2)] = 4
    start_timeout_s: Positive = 10.0
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    local_bus: bool = True

    def __post_init__(self) -> None:
        if self.heartbeat_interval_s < MIN_HEARTBEAT_INTERVAL_S:
            raise ValueError(
                f"heartbeat_interval_s: must be >= {MIN_HEARTBEAT_INTERVAL_S} s (the node's loop tick)"
            )
        if self.start_timeout_s < MIN_START_TIMEOUT_S:
            raise ValueError(
                f"start_timeout_s: must be >= {MIN_START_TIMEOUT_S} s (time for an actor process to start)"
            )


class SupervisorSection(_Section):
    """The root supervisor's restart intensity (nested supervisors get their own); min uptime for all."""

    intensity: Annotated[int, msgspec.Meta(ge=0)] = 10
    period_s: Positive = 60.0
    # Only a child that dies within this long of becoming ready counts toward any supervisor's
    # intensity (a crash loop); a longer-lived child's death is an independent fault, restarted
    # without counting (sniperbot/supervision/intensity.py). 0: every restart counts (OTP).
    min_uptime_s: NonNegative = 1.0


class JournalSection(_Section):
    """The LMDB journal: ``fsync`` survives power loss, ``process`` survives process crashes.

    ``archive_after_days``: completed orders (with their updates and fills) and token safety reports
    older than this move from the hot journal to ``<run dir>/archive`` (:mod:`sniperbot.journal.archive`),
    so a node that trades for weeks keeps a bounded journal; 0 never archives. It is also the
    exactly-once window for orders and fills by id: their dedup entries leave the hot journal with them
    (what stays, and why that is safe, is written in :mod:`sniperbot.journal.archive`).
    """

    durability: Literal["fsync", "process"] = "fsync"
    archive_after_days: Annotated[float, msgspec.Meta(ge=0)] = 7.0


class StrategySection(_Section):
    """One strategy instance: which strategy, on which venue and symbol, with which parameters.

    ``id`` follows :data:`ID_RULE`; ``bar_interval_s`` >= :data:`MIN_BAR_INTERVAL_S`.
    ``venue`` names a ``[[venues]]`` entry; empty means the first one. ``params`` take
    numbers, booleans and text (``mode = "long-short"``).
    """

    id: str
    symbol: str
    quantity: Positive
    venue: str = ""
    strategy: str = "sma_cross"
    bar_interval_s: Annotated[float, msgspec.Meta(ge=MIN_BAR_INTERVAL_S)] = 1.0
    params: dict[str, int | float | bool | str] = {}

    def __post_init__(self) -> None:
        check_id(self.id, "id")


def _default_strategies() -> list[StrategySection]:
    return [
        StrategySection(
            id="sma_btc", venue="sim", symbol="BTC/USDT", quantity=0.05, params={"fast": 2, "slow": 5}
        ),
        StrategySection(
            id="sma_eth", venue="sim", symbol="ETH/USDT", quantity=1.0, params={"fast": 3, "slow": 8}
        ),
    ]


# The built-in default; unlike limits an operator writes, it may name a symbol a config does not trade.
_DEFAULT_POSITION_LIMITS = {"ETH/USDT": 10.0}


class RiskSection(_Section):
    """Pre-trade limits enforced by the risk guard, and its trading state at start.

    ``max_position`` is the absolute position limit of every symbol (base units);
    ``position_limits`` overrides it per symbol, since one number cannot suit BTC and ETH.
    A breach of ``daily_loss_limit`` or ``max_drawdown`` (net P&L after fees) moves the
    trading state to ``loss_action``; only an operator's ``resume`` lifts it. The state
    in force is journaled, so it survives restarts; ``trading_state`` here applies only
    to a fresh run directory.
    """

    max_order_notional: Positive = 10_000.0
    max_position: Positive = 0.5
    position_limits: dict[str, Positive] = msgspec.field(
        default_factory=lambda: dict(_DEFAULT_POSITION_LIMITS)
    )
    max_orders_per_second: Positive = 5.0
    # Spend caps on buys that open or grow a position (a sniper's budget), per UTC day, in quote; 0 = off.
    max_spend_per_symbol: NonNegative = 0.0
    max_spend_per_day: NonNegative = 0.0
    max_open_positions: Annotated[int, msgspec.Meta(ge=0)] = 0  # instruments with exposure at once
    trading_state: TradingStateName = "ACTIVE"
    daily_loss_limit: NonNegative = 0.0  # quote currency lost since 00:00 UTC; 0 = off
    max_drawdown: NonNegative = 0.0  # quote currency below the peak of net P&L; 0 = off
    loss_action: Literal["REDUCING", "HALTED"] = "HALTED"


class ExecutionSection(_Section):
    """The paper executor's cost model."""

    fee_bps: NonNegative = 10.0
    slippage_bps: NonNegative = 1.0


class BreakersSection(_Section):
    """Circuit breakers: cooldown after a trip (doubling per trip, capped) and probe period."""

    cooldown_s: Positive = 5.0
    max_cooldown_s: Positive = 300.0
    probe_s: Positive = 10.0


class PortfolioSection(_Section):
    """How often the portfolio publishes its snapshot."""

    snapshot_interval_s: Positive = 0.5


class AdminSection(_Section):
    """The admin socket: always the 0600 unix socket in the run dir; optionally TCP with CURVE.

    ``tcp_endpoint`` (e.g. ``tcp://0.0.0.0:7701``) needs ``server_key`` (a secret
    certificate made by ``sniperbot keygen``) and ``authorized_clients`` (a
    directory of client public certificates): only those keys may connect.
    """

    tcp_endpoint: str = ""
    server_key: str = ""
    authorized_clients: str = ""

    def __post_init__(self) -> None:
        if self.tcp_endpoint and not (self.server_key and self.authorized_clients):
            raise ValueError("tcp_endpoint needs server_key and authorized_clients (CURVE)")
        if self.tcp_endpoint and not self.tcp_endpoint.startswith("tcp://"):
            raise ValueError("tcp_endpoint must start with tcp://")


class MetricsSection(_Section):
    """Prometheus metrics: every actor's snapshot every ``interval_s``, served on ``address``.

    ``address`` is ``HOST:PORT``; the default ``127.0.0.1:0`` binds loopback on any free port
    (several nodes on one host never collide) and the node writes the address it actually
    serves to ``<run dir>/endpoints.json`` as ``{"metrics": "http://HOST:PORT"}``; set a fixed
    port for a static Prometheus scrape config. Binding a non-loopback host exposes positions
    and P&L (read-only) to that network: put it behind a firewall or proxy.
    ``enabled = false`` removes the exporter actor and makes every metric call a no-op.
    """

    enabled: bool = True
    address: str = "127.0.0.1:0"
    interval_s: Positive = 1.0

    def __post_init__(self) -> None:
        host, sep, port = self.address.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(
                f"address: {self.address!r} is not HOST:PORT (e.g. 127.0.0.1:9464; port 0: any free port)"
            )

    @property
    def host_port(self) -> tuple[str, int]:
        """``(host, port)`` of :attr:`address` (IPv6 brackets removed)."""
        host, _, port = self.address.rpartition(":")
        return host.strip("[]"), int(port)


class PlacementSection(_Section):
    """Where actors run: a default, and overrides by actor id."""

    default: PlacementName = "process"
    actors: dict[str, PlacementName] = {}


class ClusterSection(_Section):
    """Ray placement (``sniperbot run --ray auto|ADDRESS``): the node's tcp endpoints and Ray options.

    ``host`` is the address the node binds its tcp endpoints on (bus, control,
    inboxes) and that Ray actors connect to: ``127.0.0.1`` for a local cluster,
    ``auto`` for the address Ray uses for this machine (a real cluster). Every
    tcp port comes from ``port_min..port_max`` (outside Ray's worker ports and
    the kernel's ephemeral range). ``actor_resources`` are custom Ray resources
    each Ray-placed actor requests, e.g. ``{ sniperbot_node = 1 }`` to keep it on
    the Ray node that mounts the run directory. ``num_cpus`` is what a local
    cluster (``--ray auto``) offers.
    """

    host: str = "127.0.0.1"
    port_min: Annotated[int, msgspec.Meta(ge=1024, le=65535)] = 20000
    port_max: Annotated[int, msgspec.Meta(ge=1024, le=65535)] = 29999
    namespace: str = "sniperbot"
    num_cpus: Annotated[int, msgspec.Meta(ge=1)] = 2
    actor_resources: dict[str, Positive] = {}

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("host must not be empty")
        if self.port_max - self.port_min < 16:
            raise ValueError("port_max must be at least port_min + 16")
        if not self.namespace:
            raise ValueError("namespace must not be empty")


class KeystoreSection(_Section):
    """Where the encrypted keystore of exchange keys lives (``sniperbot keys``, :mod:`sniperbot.keystore`).

    ``~`` is the user's home; ``--keystore DIR`` on the command line overrides it.
    """

    dir: str = "~/.sniperbot/keystore"

    def __post_init__(self) -> None:
        if not self.dir:
            raise ValueError("dir: must not be empty")


class SentrySection(_Section):
    """``[sentry]``: error reporting from every actor process (:mod:`sniperbot.observability.sentry`)."""

    dsn: str = ""  # "" = the SENTRY_DSN environment variable, or off


class Config(_Section):
    """The whole node configuration."""

    node: NodeSection = NodeSection()
    supervisor: SupervisorSection = SupervisorSection()
    journal: JournalSection = JournalSection()
    venues: list[VenueConfig] = msgspec.field(default_factory=lambda: [SimVenueConfig(name="sim")])
    strategies: list[StrategySection] = msgspec.field(default_factory=_default_strategies)
    risk: RiskSection = RiskSection()
    breakers: BreakersSection = BreakersSection()
    execution: ExecutionSection = ExecutionSection()
    portfolio: PortfolioSection = PortfolioSection()
    admin: AdminSection = AdminSection()
    placement: PlacementSection = PlacementSection()
    cluster: ClusterSection = ClusterSection()
    keystore: KeystoreSection = KeystoreSection()
    alerts: AlertsConfig = AlertsConfig()
    sentry: SentrySection = SentrySection()
    telegram: TelegramConfig = TelegramConfig()
    metrics: MetricsSection = MetricsSection()
    api: ApiSection = ApiSection()
    analysers: list[AnalyserConfig] = []

    def __post_init__(self) -> None:
        if not self.venues:
            raise ValueError("venues: at least one [[venues]] entry is required")
        _check_unique("venues", "name", [v.name for v in self.venues], "venue name")
        for index, venue in enumerate(self.venues):
            if venue.mode not in venue.supported_modes:
                raise ValueError(
                    f"venues[{index}].mode: {venue.mode!r} is not supported by kind "
                    f"{type(venue).__struct_config__.tag!r} (supported: {', '.join(venue.supported_modes)})"
                )
        symbols = {symbol for venue in self.venues for symbol in venue.symbol_names()}
        for symbol in self.risk.position_limits:
            if symbol not in symbols and self.risk.position_limits != _DEFAULT_POSITION_LIMITS:
                raise ValueError(
                    f"risk.position_limits.{symbol}: {symbol!r} is not a traded symbol "
                    f"(venues' symbols: {', '.join(sorted(symbols))})"
                )
        ids: set[str] = set()
        for index, strategy in enumerate(self.strategies):
            problem = self.strategy_problem(strategy)
            if problem is not None:
                raise ValueError(f"strategies[{index}].{problem}")
            if strategy.id in ids:
                raise ValueError(f"strategies[{index}].id: duplicate strategy id {strategy.id!r}")
            ids.add(strategy.id)
        _check_unique("analysers", "id", [a.id for a in self.analysers], "analyser id")

    def venue(self, name: str) -> VenueConfig | None:
        """The ``[[venues]]`` entry called ``name``, or None."""
        return next((v for v in self.venues if v.name == name), None)

    def strategy_venue(self, section: StrategySection) -> str:
        """The venue a strategy trades on: its ``venue``, or the first configured venue."""
        return section.venue or self.venues[0].name

    def strategy_problem(self, section: StrategySection) -> str | None:
        """``"field: what"`` if ``section`` names an unknown venue or a symbol its venue does not trade."""
        venue = self.venue(self.strategy_venue(section))
        if venue is None:
            known = ", ".join(v.name for v in self.venues)
            return f"venue: {section.venue!r} is not a configured venue (venues: {known})"
        if section.symbol not in venue.symbol_names():
            return f"symbol: {section.symbol!r} is not traded on venue {venue.name!r}"
        return None


def ray_placements(config: Config) -> list[str]:
    """The config fields that ask for ``placement = "ray"`` (they need ``run --ray``)."""
    fields = ['placement.default = "ray"'] if config.placement.default == "ray" else []
    fields += [f'placement.actors."{a}" = "ray"' for a, p in config.placement.actors.items() if p == "ray"]
    return fields


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and field path."""


_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def _field_path(message: str) -> tuple[str, str]:
    """Split msgspec's ``"... - at `$.a.b`"`` into (``a.b``, what was wrong)."""
    match = _PATH.search(message)
    path = match.group("path").lstrip(".") if match else ""
    what = message[: match.start()] if match else message
    unknown = re.match(r"Object contains unknown field `(?P<name>[^`]+)`", what)
    if unknown:
        path = f"{path}.{unknown.group('name')}" if path else unknown.group("name")
        what = "unknown field"
    # Our own checks (__post_init__) say "field: what"; the field continues the path.
    ours = re.match(r"(?P<field>[A-Za-z_][\w.\[\]/-]*): (?P<what>.*)", what, re.S)
    if ours:
        path = f"{path}.{ours.group('field')}" if path else ours.group("field")
        what = ours.group("what")
    return path, what


def validation_message(error: msgspec.ValidationError) -> str:
    """``"<field path>: <what was wrong>"`` for a msgspec validation error."""
    path, what = _field_path(str(error))
    return f"{path}: {what}" if path else what


def _non_finite(value: Any, path: str) -> str | None:
    """The path of the first non-finite float in ``value`` (a Struct, dict or list), or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, msgspec.Struct):
        items: Any = ((f"{path}.{k}" if path else k, getattr(value, k)) for k in value.__struct_fields__)
    elif isinstance(value, dict):
        items = ((f"{path}.{k}", v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for sub_path, sub in items:
        found = _non_finite(sub, sub_path)
        if found is not None:
            return found
    return None


def check_finite(value: Any, source: str, where: str = "") -> None:
    """Raise ConfigError naming the field if any float in ``value`` is ``inf`` or ``nan``."""
    found = _non_finite(value, where)
    if found is not None:
        raise ConfigError(f"invalid config {source} at {found}: must be a finite number (not inf or nan)")


def decode_config(data: bytes | str, source: str = "<config>") -> Config:
    """Decode TOML text into a :class:`Config`, raising :class:`ConfigError` on any problem."""
    try:
        config = msgspec.toml.decode(data, type=Config)
    except msgspec.ValidationError as e:
        path, what = _field_path(str(e))
        where = f" at {path}" if path else ""
        raise ConfigError(f"invalid config {source}{where}: {what}") from None
    except msgspec.DecodeError as e:
        raise ConfigError(f"invalid config {source}: not valid TOML: {e}") from None
    check_finite(config, source)
    _check_strategy_params(config, source)
    return config


def check_files(config: Config, source: str = "<config>") -> None:
    """Raise ConfigError if a file the config points at is missing or unusable.

    Called by ``sniperbot run`` before the node creates its run directory, lock or sockets.
    """
    admin = config.admin
    if not admin.tcp_endpoint:
        return
    key = Path(admin.server_key)
    if not key.is_file():
        raise ConfigError(f"invalid config {source} at admin.server_key: no such file {key}")
    from zmq.auth import load_certificate

    try:
        _, secret = load_certificate(key)
    except (OSError, ValueError) as e:
        raise ConfigError(f"invalid config {source} at admin.server_key: cannot read {key}: {e}") from None
    if secret is None:
        raise ConfigError(f"invalid config {source} at admin.server_key: {key} holds no secret key")
    if not Path(admin.authorized_clients).is_dir():
        raise ConfigError(
            f"invalid config {source} at admin.authorized_clients: "
            f"no such directory {admin.authorized_clients}"
        )


def check_venues(config: Config, source: str = "<config>") -> list[str]:
    """Run each venue's :meth:`~sniperbot.venues.base.VenueSection.preflight` (e.g. symbols listed).

    Raises ConfigError naming ``venues[i].<field>``; returns warnings (``venues[i]: what``) for
    checks that could not run. Called by ``sniperbot run`` before any process starts.
    """
    warnings: list[str] = []
    for index, venue in enumerate(config.venues):
        try:
            warning = venue.preflight()
        except ValueError as e:
            raise ConfigError(f"invalid config {source} at venues[{index}].{e}") from None
        if warning:
            warnings.append(f"venues[{index}] ({venue.name}): {warning}")
    return warnings


def load_config(path: str | Path | None) -> Config:
    """Load a TOML file, or the embedded default when ``path`` is None."""
    if path is None:
        return Config()
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {file}") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {file}: {e.strerror}") from None
    return decode_config(data, str(file))


def _check_strategy_params(config: Config, source: str) -> None:
    """Build each strategy once so that bad parameters fail here, naming the field."""
    for index, section in enumerate(config.strategies):
        check_strategy(config, section, source, f"strategies[{index}]")


def check_strategy(config: Config, section: StrategySection, source: str, where: str = "strategy") -> None:
    """Raise ConfigError if ``section`` names an unknown strategy or invalid parameters."""
    from sniperbot.strategies.loader import StrategyLoadError, load_strategy

    check_finite(section, source, where)
    try:
        cls = load_strategy(section.strategy)
    except StrategyLoadError as e:
        raise ConfigError(f"invalid config {source} at {where}.strategy: {e}") from None
    problem = config.strategy_problem(section)
    if problem is not None:
        raise ConfigError(f"invalid config {source} at {where}.{problem}")
    try:
        cls(
            strategy_id=section.id,
            venue=config.strategy_venue(section),
            symbol=section.symbol,
            quantity=section.quantity,
            **section.params,
        )
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid config {source} at {where}.params: {e}") from None


def with_overrides(config: Config, **changes: Any) -> Config:
    """A copy of ``config`` with fields of every simulated venue replaced (``seed`` from the CLI)."""
    venues = [
        msgspec.structs.replace(v, **changes) if isinstance(v, SimVenueConfig) else v for v in config.venues
    ]
    return msgspec.structs.replace(config, venues=venues)
