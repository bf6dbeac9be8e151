"""The strategy API: declared parameters, a target exposure, and intents to reach it.

A strategy is a plain class. It declares its parameters (``params``: name ->
:class:`Param` with a default and a valid range, plus ``ordered`` pairs that must be
strictly increasing, such as fast < slow) and decides, on each bar's close, a
*target exposure*: +1 long, 0 flat, -1 short (only with ``mode = "long-short"``).
A position sizer (:mod:`sniperbot.risk.sizing`) turns exposure into quantity; the
default :class:`~sniperbot.risk.sizing.FixedSize` of ``quantity`` keeps the live
node's config working.

Writing one: subclass :class:`Strategy`, set ``name`` and ``params``, build streaming
indicators in :meth:`Strategy.setup`, return the new target (or None: no change) from
:meth:`Strategy.decide`, and give the same decisions for whole arrays in the
classmethod :meth:`Strategy.decide_all` so a backtester can take the vectorised path.
The two must agree bar for bar (the tests check it on 20,000 bars).

Order flow (both in the backtester and in the live node's strategy actor):

* Orders are sent only when the target exposure *changes*: one market intent for
  ``target * sizer.quantity(close, equity) - (position + pending)``, pending being
  what this strategy's in-flight intents still have to fill. A rejected intent is not
  retried until the next change, so a refusing risk guard does not get one intent
  per bar.
* Intent ids are deterministic, made by :func:`sniperbot.messages.orders.make_intent_id`
  (strategy id, the live node's node-life token, intent sequence; the backtester has
  no node life); fills and order updates are matched to intents by ``client_order_id``,
  which in this system equals the ``intent_id``.
* After :meth:`Strategy.restore` (a restart), the restored position's sign is taken
  as the current target: it is held until the strategy's next change of mind.

**Signals** (issue #15: sentiment, mention counts, trending ranks, plug-ins' readings). A strategy
declares the signal kinds it reads in ``signals`` (about its own subject,
:func:`~sniperbot.messages.signals.subject_of` of its symbol: ``"BTC"`` for ``BTC/USDT``), and other
subjects to follow in ``signal_subjects``; whoever runs it feeds every such
:class:`~sniperbot.messages.Signal` through :meth:`Strategy.on_signal` (the live strategy actor from the
bus, the node's last-value cache giving the current ones at start; the backtester from a signal file,
:mod:`sniperbot.analytics.signals`). In :meth:`Strategy.decide` it reads them with
:meth:`Strategy.latest_signal`, which returns the newest reading not flagged stale and at most ``max_age_s``
(default ``signal_max_age_s``) old, else None: no signal is better than a wrong one. Age is judged
against the end of the bar being decided, never the wall clock, and a reading stamped after that end is
not visible yet, so a backtest decides exactly as the live strategy did. A strategy that reads signals
has no vectorised form: backtests take the per-bar path.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec
import numpy as np

from sniperbot.analytics.signals import SignalBook
from sniperbot.messages import Bar, Fill, OrderIntent, OrderUpdate, TradeTick
from sniperbot.messages import topics as topic
from sniperbot.messages.orders import make_intent_id
from sniperbot.messages.signals import Signal, subject_of
from sniperbot.risk.sizing import FixedSize, PositionSizer

__all__ = ["MODE", "Param", "Strategy"]

# Quantities closer than this are the same position (float dust from partial fills).
_QUANTITY_EPSILON = 1e-12

ParamValue = bool | int | float | str


class Param(msgspec.Struct, frozen=True):
    """A declared strategy parameter: its default (which fixes its type), valid range and meaning.

    ``min`` / ``max`` bound numbers (inclusive); ``choices`` lists the allowed strings.
    """

    default: ParamValue
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    doc: str = ""

    @property
    def kind(self) -> type:
        """The parameter's type: bool, int, float or str (that of the default)."""
        return type(self.default)

    def describe_range(self) -> str:
        """The valid values in words, for error messages and help."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        low = "-inf" if self.min is None else _number(self.min)
        high = "inf" if self.max is None else _number(self.max)
        return f"in [{low}, {high}]"

    def check(self, name: str, value: object) -> ParamValue:
        """``value`` converted to this parameter's type, or a ValueError naming ``name`` and the range."""
        kind = self.kind
        if kind is bool:
            if not isinstance(value, bool | np.bool_):
                raise ValueError(f"parameter {name!r} must be true or false, got {value!r}")
            return bool(value)
        if kind is str:
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise ValueError(f"parameter {name!r} must be {self.describe_range()}, got {value!r}")
            return value
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise ValueError(f"parameter {name!r} must be a number {self.describe_range()}, got {value!r}")
        number: int | float
        if kind is int:
            # Grids built with numpy give 10.0 or np.int64(10); both mean the integer 10.
            if not float(value).is_integer():
                raise ValueError(
                    f"parameter {name!r} must be an integer {self.describe_range()}, got {value!r}"
                )
            number = int(value)
        else:
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(f"parameter {name!r} must be a finite number, got {value!r}")
        if (self.min is not None and number < self.min) or (self.max is not None and number > self.max):
            raise ValueError(f"parameter {name!r} must be {self.describe_range()}, got {value!r}")
        return number

    def parse(self, name: str, text: str) -> ParamValue:
        """Parse a command-line value (``--param fast=10``) and check it."""
        kind = self.kind
        value: object = text
        try:
            if kind is bool:
                lowered = text.strip().lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value = lowered in ("true", "1", "yes")
            elif kind is int:
                value = int(text)
            elif kind is float:
                value = float(text)
        except ValueError:
            raise ValueError(f"parameter {name!r} must be {_KIND_WORDS[kind]}, got {text!r}") from None
        return self.check(name, value)


_KIND_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "text"}


def _number(value: float) -> str:
    """A bound without a pointless ``.0``."""
    return str(int(value)) if float(value).is_integer() else str(value)


#: The common long-only / long-short switch; every shipped strategy declares it.
MODE = Param(
    "long",
    choices=("long", "long-short"),
    doc="long: exits go flat; long-short: the opposite signal goes short",
)


class Strategy:
    """Base of all strategies: parameters, target exposure, sizing and the intent bookkeeping."""

    #: Registry name (``sma_cross``); config files and the CLI use it.
    name: ClassVar[str] = ""
    #: Declared parameters, by name.
    params: ClassVar[Mapping[str, Param]] = {}
    #: Pairs ``(a, b)`` of parameters that must satisfy ``a < b``.
    ordered: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: Signal kinds read about the strategy's own subject (``subject_of(symbol)``), e.g.
    #: ``("sentiment", "mentions_z")``; empty: the strategy reads no signals.
    signals: ClassVar[tuple[str, ...]] = ()
    #: Other subjects whose signals of the same kinds are read too (e.g. ``("BTC",)`` as a market gauge).
    signal_subjects: ClassVar[tuple[str, ...]] = ()
    #: :meth:`latest_signal`'s default age limit, seconds: an older reading is no reading.
    signal_max_age_s: ClassVar[float] = 900.0

    def __init__(
        self,
        strategy_id: str,
        venue: str,
        symbol: str,
        quantity: float | None = None,
        *,
        sizer: PositionSizer | None = None,
        next_intent_seq: int = 1,
        **params: Any,
    ) -> None:
        if sizer is None:
            if quantity is None:
                raise ValueError("quantity (or a sizer) is required")
            if isinstance(quantity, bool) or not isinstance(quantity, numbers.Real):
                raise ValueError(f"quantity must be a positive number, got {quantity!r}")
            if not (0 < quantity < math.inf):
                raise ValueError(f"quantity must be a positive number, got {quantity!r}")
            sizer = FixedSize(float(quantity))
        elif quantity is not None:
            raise ValueError("give either quantity or a sizer, not both")
        _check_seq(next_intent_seq)
        self.strategy_id = strategy_id
        self.venue = venue
        self.symbol = symbol
        self.sizer = sizer
        #: Account equity for sizers that need it; whoever runs the strategy keeps it current.
        self.equity: float | None = None
        #: The validated parameters, defaults filled in.
        self.parameters: dict[str, ParamValue] = self.validate_params(params)
        for key, value in self.parameters.items():
            setattr(self, key, value)
        self._exposure = 0.0
        self._position = 0.0
        # intent_id -> signed quantity still to fill
        self._pending: dict[str, float] = {}
        self._next_intent_seq = next_intent_seq
        self._node_life = ""  # set by restore() in a live node
        self._feed_sizer = sizer.update if sizer.uses_prices else None
        self._signals = SignalBook()
        self._decision_ns = 0  # the end of the bar being decided: signals' ages are judged against it
        self.setup()

    def __repr__(self) -> str:
        params = ", ".join(f"{key}={value!r}" for key, value in self.parameters.items())
        return f"{type(self).__name__}({self.strategy_id!r}, {self.symbol!r}, {params}, sizer={self.sizer!r})"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        reserved = set(dir(Strategy)) | {"strategy_id", "venue", "symbol", "sizer", "equity", "parameters"}
        for key in cls.params:
            if key in reserved or key.startswith("_"):
                raise TypeError(f"{cls.__name__}: parameter name {key!r} is reserved")
        for low, high in cls.ordered:
            for key in (low, high):
                if key not in cls.params:
                    raise TypeError(f"{cls.__name__}: ordered names unknown parameter {key!r}")

    # -- parameters ------------------------------------------------------------------

    @classmethod
    def validate_params(cls, params: Mapping[str, object]) -> dict[str, ParamValue]:
        """All parameters with defaults filled in, checked; ValueError naming the first bad one.

        An optimiser can call this to skip invalid grid points (e.g. fast >= slow).
        """
        unknown = [key for key in params if key not in cls.params]
        if unknown:
            known = ", ".join(cls.params) or "none"
            raise ValueError(f"{cls.name or cls.__name__}: unknown parameter {unknown[0]!r} (known: {known})")
        values: dict[str, ParamValue] = {}
        for key, spec in cls.params.items():
            try:
                values[key] = spec.check(key, params[key]) if key in params else spec.default
            except ValueError as e:
                raise ValueError(f"{cls.name or cls.__name__}: {e}") from None
        for low, high in cls.ordered:
            if not values[low] < values[high]:  # type: ignore[operator]
                raise ValueError(
                    f"{cls.name or cls.__name__}: parameter {high!r} ({values[high]!r}) "
                    f"must be greater than {low!r} ({values[low]!r})"
                )
        return values

    @classmethod
    def parse_params(cls, texts: Mapping[str, str]) -> dict[str, ParamValue]:
        """Parameters from command-line text (``{"fast": "10"}``), checked as :meth:`validate_params`."""
        parsed: dict[str, object] = {}
        for key, text in texts.items():
            spec = cls.params.get(key)
            if spec is None:
                parsed[key] = text  # validate_params names it as unknown
                continue
            try:
                parsed[key] = spec.parse(key, text)
            except ValueError as e:
                raise ValueError(f"{cls.name or cls.__name__}: {e}") from None
        return cls.validate_params(parsed)

    # -- signals -----------------------------------------------------------------------

    @property
    def subject(self) -> str:
        """What this strategy's own signals are about: ``subject_of(symbol)`` (``"BTC"`` for ``BTC/USDT``)."""
        return subject_of(self.symbol)

    @classmethod
    def uses_signals(cls) -> bool:
        """Whether the strategy declares signals (then it has no vectorised path)."""
        return bool(cls.signals)

    def signal_topics(self) -> tuple[str, ...]:
        """The ``sig.`` topic prefixes carrying the declared signals (what the strategy actor subscribes)."""
        subjects = dict.fromkeys((self.subject, *self.signal_subjects))
        return tuple(topic.signal(subject, kind) for subject in subjects for kind in self.signals)

    def wants_signal(self, signal: Signal) -> bool:
        """Whether ``signal`` is one this strategy declared (its kind, about its subjects)."""
        return signal.kind in self.signals and (
            signal.subject == self.subject or signal.subject in self.signal_subjects
        )

    def on_signal(self, signal: Signal) -> None:
        """Keep a declared signal for :meth:`latest_signal` (others ignored), before a decision."""
        if self.wants_signal(signal):
            self._signals.put(signal)

    def latest_signal(
        self,
        kind: str,
        source: str = "",
        max_age_s: float | None = None,
        subject: str = "",
        window_s: float | None = None,
    ) -> Signal | None:
        """The newest usable ``kind`` reading about ``subject`` (default: this strategy's) from ``source``.

        "" as ``source`` takes any source's newest; ``window_s`` picks one window of an analyser that
        publishes several (the sentiment aggregator's 300 s and 3600 s), None any window's newest.
        Usable: not stale, stamped at or before the end of the bar being decided and at most
        ``max_age_s`` (default :attr:`signal_max_age_s`) before it; otherwise None (see the module
        docstring). (Not named ``signal``: MACD-style
        strategies have a parameter of that name.)
        """
        return self._signals.get(
            subject or self.subject,
            kind,
            source=source,
            max_age_s=self.signal_max_age_s if max_age_s is None else max_age_s,
            now_ns=self._decision_ns,
            window_s=window_s,
        )

    def _decide_at_close(self, bar: Bar) -> float | None:
        """:meth:`decide` with the decision time (signals' age) set to the bar's end."""
        self._decision_ns = bar.start_ns + round(bar.interval_s * 1e9)
        return self.decide(bar)

    # -- the decision, streaming and vectorised ---------------------------------------

    def setup(self) -> None:
        """Build the streaming indicators (called once from the constructor, parameters set)."""

    def warmup_bars(self) -> int:
        """Closed bars this strategy needs before its decisions mean anything (warm restarts use it).

        Default: one more than its largest integer parameter (the longest window, for the
        window-style parameters every shipped strategy has); override when that is wrong.
        """
        return self.warmup_bars_for(self.parameters)

    @classmethod
    def warmup_bars_for(cls, params: Mapping[str, object]) -> int:
        """:meth:`warmup_bars` for ``params`` (defaults filled in), without building the strategy."""
        values = cls.validate_params(params)
        windows = [v for v in values.values() if isinstance(v, int) and not isinstance(v, bool)]
        return max(windows, default=0) + 1

    def decide(self, bar: Bar) -> float | None:
        """Target exposure after this bar's close, or None to keep the current one."""
        raise NotImplementedError

    @classmethod
    def decide_all(
        cls,
        open: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
        **params: Any,
    ) -> np.ndarray:
        """Vectorised :meth:`decide`: the target exposure after every bar, starting flat.

        Receives validated parameters; call :meth:`target_exposure` instead.
        """
        raise NotImplementedError(f"{cls.__name__} has no vectorised form")

    @classmethod
    def has_vectorised(cls) -> bool:
        """Whether the strategy implements :meth:`decide_all` (a backtester's fast path)."""
        return cls.decide_all.__func__ is not Strategy.decide_all.__func__  # type: ignore[attr-defined]

    @classmethod
    def target_exposure(
        cls,
        open: object,
        high: object,
        low: object,
        close: object,
        volume: object,
        **params: Any,
    ) -> np.ndarray:
        """Target exposure decided on each bar's close (0 during warm-up), for whole arrays.

        Element ``i`` equals ``exposure`` of a fresh instance after ``on_bar`` of bars
        ``0..i``; a backtester acts on it at bar ``i + 1``.
        """
        values = cls.validate_params(params)
        arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in (open, high, low, close, volume)]
        n = len(arrays[3])
        for label, a in zip(("open", "high", "low", "close", "volume"), arrays, strict=True):
            if a.ndim != 1 or len(a) != n:
                raise ValueError(f"{label} must be one-dimensional with the length of close ({n})")
        return cls.decide_all(*arrays, **values)

    # -- callbacks ---------------------------------------------------------------------

    @property
    def exposure(self) -> float:
        """The target exposure the strategy holds now: +1, 0 or -1."""
        return self._exposure

    @property
    def position(self) -> float:
        """Signed quantity this strategy holds, from its own fills."""
        return self._position

    @property
    def pending(self) -> float:
        """Signed quantity of this strategy's intents still in flight."""
        return sum(self._pending.values())

    @property
    def next_intent_seq(self) -> int:
        """Sequence number the next intent will carry."""
        return self._next_intent_seq

    @property
    def short_exposure(self) -> float:
        """What a sell signal targets: -1 in long-short mode, 0 (flat) in long mode."""
        return -1.0 if self.parameters.get("mode") == "long-short" else 0.0

    def on_bar(self, bar: Bar) -> list[OrderIntent]:
        """Decide on the bar's close; if the target exposure changes, return the intent to reach it."""
        if bar.symbol != self.symbol or bar.venue != self.venue:
            return []
        close = bar.close
        if self._feed_sizer is not None:
            self._feed_sizer(close)
        target = self._decide_at_close(bar)
        if target is None or target == self._exposure:
            return []
        intents = self._trade_to(target, close, self._decision_ns)
        self._exposure = target  # only once sized: a sizer that raises leaves the strategy as it was
        return intents

    def on_tick(self, tick: TradeTick) -> list[OrderIntent]:
        """React to a trade; bar strategies return no intents (the actor builds bars)."""
        return []

    def on_fill(self, fill: Fill) -> list[OrderIntent]:
        """Book one of this strategy's fills; returns no intents (fills never trigger trades)."""
        if fill.strategy_id != self.strategy_id or fill.symbol != self.symbol:
            return []
        signed = fill.quantity if fill.side == "buy" else -fill.quantity
        self._position += signed
        if abs(self._position) < _QUANTITY_EPSILON:
            self._position = 0.0
        outstanding = self._pending.get(fill.client_order_id)
        if outstanding is not None:
            remaining = outstanding - signed
            # An over-fill is booked in the position but must not turn pending around.
            if abs(remaining) < _QUANTITY_EPSILON or remaining * outstanding < 0:
                del self._pending[fill.client_order_id]
            else:
                self._pending[fill.client_order_id] = remaining
        return []

    def on_order_update(self, update: OrderUpdate) -> None:
        """Stop counting an intent as in flight once it is rejected, cancelled or filled."""
        if update.strategy_id != self.strategy_id:
            return
        if update.status in ("rejected", "cancelled", "filled"):
            self._pending.pop(update.client_order_id, None)

    def warm(self, bars: list[Bar], keep_target: bool = False) -> None:
        """Run the decision over history without trading: indicators and the target follow it.

        Called on start, restart and hot-add with the last :meth:`warmup_bars` closed bars (the
        node's bar store, or the exchange's candles), before :meth:`restore` sets the target from
        the real position.

        ``keep_target``: the indicators follow ``bars`` but the current target does not (bars
        missed while trading: the target is what the real position says).
        """
        exposure = self._exposure
        for bar in bars:
            target = self._decide_at_close(bar)
            if target is not None:
                self._exposure = target
        if keep_target:
            self._exposure = exposure

    def on_save(self) -> dict[str, Any] | None:
        """The strategy's own state to keep across restarts (JSON-like values), or None for none.

        Called after every bar; what it returns is journaled when it changed and handed to
        :meth:`on_load` when the strategy (same id) starts again, after warm-up.
        """
        return None

    def on_load(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`on_save` returned before a restart (called after warm-up)."""

    def restore(self, position: float, next_intent_seq: int, node_life: str = "") -> None:
        """Resume after a restart from the journaled position and intent sequence.

        Nothing is considered in flight, and the position's sign becomes the current
        target exposure: it is held until the strategy next changes its mind.
        Indicators come back through :meth:`warm` (called first). ``node_life`` (the live
        node's start token) goes into every intent id from now on.
        """
        _check_seq(next_intent_seq)
        self._position = position
        self._next_intent_seq = next_intent_seq
        self._node_life = node_life
        self._pending.clear()
        self._exposure = 0.0 if abs(position) < _QUANTITY_EPSILON else math.copysign(1.0, position)

    def _trade_to(self, target_exposure: float, price: float, ts_ns: int) -> list[OrderIntent]:
        """One market intent for the gap between the target quantity and position plus pending."""
        exposure = self._position + self.pending
        target = 0.0
        if target_exposure != 0.0:
            target = target_exposure * self.sizer.quantity(price, self.equity)
        gap = target - exposure
        if abs(gap) < _QUANTITY_EPSILON:
            return []
        after = exposure + gap
        reduces = abs(after) < abs(exposure) and after * exposure >= 0
        seq = self._next_intent_seq
        self._next_intent_seq += 1
        intent = OrderIntent(
            intent_id=make_intent_id(self.strategy_id, seq, self._node_life),
            strategy_id=self.strategy_id,
            intent_seq=seq,
            venue=self.venue,
            symbol=self.symbol,
            side="buy" if gap > 0 else "sell",
            quantity=abs(gap),
            order_type="market",
            reduce_only=reduces,
            ts_ns=ts_ns,
        )
        self._pending[intent.intent_id] = gap
        return [intent]


def _check_seq(next_intent_seq: int) -> None:
    """Intent sequences start at 1 (ids end in ``-1``, ``-2``, ...)."""
    if isinstance(next_intent_seq, bool) or not isinstance(next_intent_seq, int) or next_intent_seq < 1:
        raise ValueError(f"next_intent_seq must be an integer >= 1, got {next_intent_seq!r}")


# -- helpers for decide_all ------------------------------------------------------------


def hold_last(events: np.ndarray) -> np.ndarray:
    """Forward-fill a series of decisions (NaN = no decision), starting flat (0)."""
    at = np.flatnonzero(~np.isnan(events))
    return _hold(len(events), at, events[at])


def _hold(n: int, at: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Exposure of ``n`` bars that takes ``values[k]`` from bar ``at[k]`` on (0 before the first)."""
    # Decisions are sparse (a few per hundred bars), so repeating each for its run
    # beats a gather over every bar.
    levels = np.empty(len(values) + 1)
    levels[0] = 0.0
    levels[1:] = values
    bounds = np.empty(len(at) + 2, dtype=np.int64)
    bounds[0] = 0
    bounds[1:-1] = at
    bounds[-1] = n
    return np.repeat(levels, np.diff(bounds))


def cross_targets(fast: np.ndarray, slow: np.ndarray, short: float) -> np.ndarray:
    """Exposure from strict crosses: +1 when ``fast`` crosses above ``slow``, ``short`` when below.

    A cross at bar i means ``fast[i-1] < slow[i-1] and fast[i] > slow[i]`` (and the
    mirror image); equal values on either bar are no cross, NaN (warm-up) is no cross.
    """
    n = len(fast)
    if n < 2:
        return np.zeros(n)
    above = fast > slow
    below = fast < slow
    up = below[:-1] & above[1:]
    down = above[:-1] & below[1:]
    at = np.flatnonzero(up | down)
    values = np.where(up[at], 1.0, short)
    return _hold(n, at + 1, values)


def zone_targets(
    enter_long: np.ndarray,
    exit_short: np.ndarray,
    exit_long: np.ndarray,
    enter_short: np.ndarray,
    short: float,
) -> np.ndarray:
    """Exposure of the entry/exit machine used by the band strategies, for whole arrays.

    ``enter_long`` sets +1, ``enter_short`` sets ``short``; ``exit_long`` takes +1 to 0
    and ``exit_short`` takes -1 to 0, leaving other states alone; entries win over
    exits. An entry and the exit of the *same* side must never hold on one bar.
    Vectorised: the state is set by the latest entry, unless an exit of that side
    came after it.
    """
    n = len(enter_long)
    index = np.arange(n)

    def last(mask: np.ndarray) -> np.ndarray:
        """Index of the latest bar <= i where ``mask`` holds (-1 if none)."""
        out = np.where(mask, index, -1)
        np.maximum.accumulate(out, out=out)
        return out

    long_at, short_at = last(enter_long), last(enter_short)
    long_exit_at, short_exit_at = last(exit_long), last(exit_short)
    is_long = (long_at > short_at) & (long_exit_at < long_at)
    is_short = (short_at > long_at) & (short_exit_at < short_at)
    return np.where(is_long, 1.0, np.where(is_short, short, 0.0))


def step_zone(
    state: float, enter_long: bool, exit_short: bool, exit_long: bool, enter_short: bool, short: float
) -> float:
    """One bar of the four-zone machine (the streaming twin of :func:`zone_targets`)."""
    if enter_long:
        return 1.0
    if enter_short:
        return short
    if exit_long and state > 0:
        return 0.0
    if exit_short and state < 0:
        return 0.0
    return state
