"""A deterministic simulated market: quotes and trades for a few symbols, tick by tick.

The model, per symbol (all parameters in ticks, not seconds; ``tick_interval_s`` only
maps wall-clock time to tick numbers):

* **Log-price.** ``mid = start_price * exp(z)`` where ``z`` follows a discrete
  Ornstein-Uhlenbeck walk ``z[t+1] = a * z[t] + drift[t] + sigma[t] * eps[t]`` with
  ``a = exp(-kappa)`` and a half-life of :data:`MEAN_REVERSION_HALF_LIFE_TICKS`. Prices
  are therefore always positive, and the pull towards ``start_price`` is loose (20,000
  ticks is ~33 min at 10 ticks/s): with ``base_vol_bps=2`` the level's stationary stdev
  is ~5 %, so a 24 h run trends and swings by 10-30 % but does not wander off to absurd
  levels.
* **Regimes.** A Markov chain over regime blocks of :data:`TICKS_PER_BLOCK` ticks, with
  states calm, volatile, trend_up and trend_down (three regimes, the trending one having
  a direction). Volatile multiplies ``sigma`` by 4, widens the spread x3 and halves the
  top-of-book size; trending adds a drift of 0.05 ``sigma`` per tick and a slightly wider
  spread. Calm episodes last ~20 blocks on average, volatile ~5, trending ~4.
* **Book and prints.** Each tick quotes ``bid/ask = mid * (1 -/+ spread/2)`` where the
  spread is ``spread_bps`` x the regime multiplier x a small lognormal jitter, with
  random sizes around ``top_size``. With probability ``trade_prob`` the tick also prints
  a trade of random side at the touch (ask for a buy, bid for a sell), random size.

Determinism and fast restart. Everything is a pure function of ``(seed, index)``:

* The tick path is generated in chunks of :data:`TICKS_PER_CHUNK` ticks, each from its own
  RNG seeded by ``(seed, symbol index, chunk index)``.
* Chunks are grouped into pages of :data:`CHUNKS_PER_PAGE` chunks (about 1M ticks, 29 h at
  10 ticks/s, i.e. ~50 mean-reversion half-lives). A page's start level is drawn
  from the stationary distribution with an RNG seeded by ``(seed, symbol, page)`` (page 0
  starts exactly at ``start_price``), so pages are independent of one another.
* Within a page, the regime chain and one Gaussian draw per chunk give the chunk-end
  log-prices ("anchors") directly: the OU sum over a chunk is Gaussian with a variance
  known in closed form from the regimes, so no tick-level loop is needed. The chunk draws
  are conditioned (an exact Gaussian bridge) to land on the next page's start level, and
  each chunk's ticks are in turn conditioned to land on the next chunk's anchor, so the
  path is continuous everywhere.

Asking for any index therefore costs one page (a ~2,000-step regime loop, vector maths)
plus one chunk, whatever the index (a wall-clock index since the Unix epoch, ~1.7e10 at
10 ticks/s, costs the same as index 0) and whatever was asked before; pages and chunks are
kept in small LRU caches for the sequential case. The only seams are at page boundaries,
where the regime chain restarts from a stationary draw.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from typing import Final, NamedTuple

import msgspec
import numpy as np

from sniperbot.messages import Quote, TradeTick

TICKS_PER_BLOCK: Final = 512
BLOCKS_PER_CHUNK: Final = 8
TICKS_PER_CHUNK: Final = TICKS_PER_BLOCK * BLOCKS_PER_CHUNK
CHUNKS_PER_PAGE: Final = 256
BLOCKS_PER_PAGE: Final = CHUNKS_PER_PAGE * BLOCKS_PER_CHUNK
TICKS_PER_PAGE: Final = CHUNKS_PER_PAGE * TICKS_PER_CHUNK
MEAN_REVERSION_HALF_LIFE_TICKS: Final = 20_000

REGIMES: Final = ("calm", "volatile", "trend_up", "trend_down")
_CALM, _VOLATILE, _TREND_UP, _TREND_DOWN = range(4)

# Per-block transition probabilities; rows are "from", columns "to", in REGIMES order.
_TRANSITIONS: Final = np.array(
    [
        [0.95, 0.03, 0.01, 0.01],
        [0.20, 0.80, 0.00, 0.00],
        [0.20, 0.05, 0.75, 0.00],
        [0.20, 0.05, 0.00, 0.75],
    ]
)
_VOL_MULT: Final = np.array([1.0, 4.0, 1.5, 1.5])
_DRIFT_IN_SIGMAS: Final = np.array([0.0, 0.0, 0.05, -0.05])
_SPREAD_MULT: Final = np.array([1.0, 3.0, 1.5, 1.5])
_SIZE_MULT: Final = np.array([1.0, 0.5, 0.8, 0.8])

# RNG stream tags, so chunk, page and page-start draws never share a seed.
_CHUNK_STREAM, _PAGE_STREAM, _PAGE_START_STREAM = 0, 1, 2

_KAPPA: Final = math.log(2.0) / MEAN_REVERSION_HALF_LIFE_TICKS
_A: Final = math.exp(-_KAPPA)
_A_CHUNK: Final = _A**TICKS_PER_CHUNK
_A_PAGE: Final = _A_CHUNK**CHUNKS_PER_PAGE


def _stationary(transitions: np.ndarray) -> np.ndarray:
    """Stationary distribution of a Markov chain (left eigenvector for eigenvalue 1)."""
    n = transitions.shape[0]
    system = np.vstack([transitions.T - np.eye(n), np.ones(n)])
    rhs = np.zeros(n + 1)
    rhs[-1] = 1.0
    return np.linalg.lstsq(system, rhs, rcond=None)[0]


_REGIME_STATIONARY: Final = _stationary(_TRANSITIONS)
_REGIME_CUMULATIVE: Final = [list(np.cumsum(row)) for row in _TRANSITIONS]
_STATIONARY_CUMULATIVE: Final = list(np.cumsum(_REGIME_STATIONARY))

# Tick j of a chunk contributes a**(C-1-j) to the chunk-end level; grouped per block so a
# chunk's end distribution follows from its 8 block regimes alone.
_DECAY_TO_CHUNK_END: Final = _A ** np.arange(TICKS_PER_CHUNK - 1, -1, -1, dtype=float)
_BLOCK_DRIFT_WEIGHT: Final = _DECAY_TO_CHUNK_END.reshape(BLOCKS_PER_CHUNK, -1).sum(axis=1)
_BLOCK_VAR_WEIGHT: Final = (_DECAY_TO_CHUNK_END**2).reshape(BLOCKS_PER_CHUNK, -1).sum(axis=1)
_GROWTH: Final = _A ** np.arange(TICKS_PER_CHUNK, dtype=float)
_INV_GROWTH: Final = _A ** -np.arange(1, TICKS_PER_CHUNK + 1, dtype=float)
_PAGE_DECAY_TO_END: Final = _A_CHUNK ** np.arange(CHUNKS_PER_PAGE - 1, -1, -1, dtype=float)

_PAGE_CACHE_PER_SYMBOL: Final = 2
_CHUNK_CACHE_PER_SYMBOL: Final = 4


class SimSymbol(msgspec.Struct, frozen=True):
    """One simulated instrument: where it starts and how lively its calm regime is."""

    symbol: str
    start_price: float
    base_vol_bps: float
    spread_bps: float
    top_size: float
    trade_prob: float


class _Page(NamedTuple):
    """One page of one symbol: block regimes, chunk-start levels and chunk drifts."""

    regimes: np.ndarray
    anchors: list[float]
    chunk_drift: list[float]


class _Chunk(NamedTuple):
    """One chunk of one symbol's ticks, as plain lists for cheap per-tick reads."""

    bid: list[float]
    ask: list[float]
    bid_size: list[float]
    ask_size: list[float]
    trades: list[bool]
    trade_is_buy: list[bool]
    trade_size: list[float]


def _validate(symbols: list[SimSymbol], tick_interval_s: float) -> None:
    """Refuse parameters that would make the model meaningless (negative prices, etc.)."""
    if not symbols:
        raise ValueError("symbols must not be empty")
    if len({s.symbol for s in symbols}) != len(symbols):
        raise ValueError("symbols must be unique")
    if not tick_interval_s > 0:
        raise ValueError(f"tick_interval_s must be > 0, got {tick_interval_s}")
    for s in symbols:
        if not s.start_price > 0:
            raise ValueError(f"{s.symbol}: start_price must be > 0")
        if not s.base_vol_bps > 0:
            raise ValueError(f"{s.symbol}: base_vol_bps must be > 0")
        # Widest spread is 3x (volatile) times 2x (jitter cap); keep the bid positive.
        if not 0 < s.spread_bps <= 1000:
            raise ValueError(f"{s.symbol}: spread_bps must be in (0, 1000]")
        if not s.top_size > 0:
            raise ValueError(f"{s.symbol}: top_size must be > 0")
        if not 0 <= s.trade_prob <= 1:
            raise ValueError(f"{s.symbol}: trade_prob must be in [0, 1]")


class SimMarket:
    """Deterministic quotes and trades for several symbols; see the module docstring."""

    def __init__(self, venue: str, seed: int, symbols: list[SimSymbol], tick_interval_s: float) -> None:
        _validate(symbols, tick_interval_s)
        self.venue = venue
        self.seed = seed
        self.symbols = list(symbols)
        self.tick_interval_s = tick_interval_s
        self._tick_interval_ns = round(tick_interval_s * 1e9)
        # SeedSequence wants non-negative entropy; any int seed maps to one.
        self._entropy = seed % (1 << 64)
        self._symbol_index = {s.symbol: i for i, s in enumerate(self.symbols)}
        self._pages: OrderedDict[tuple[int, int], _Page] = OrderedDict()
        self._chunks: OrderedDict[tuple[int, int], _Chunk] = OrderedDict()

    def index_at(self, ts_ns: int) -> int:
        """Tick number for a wall-clock time: whole tick intervals since the Unix epoch."""
        return ts_ns // self._tick_interval_ns

    def ts_at(self, index: int) -> int:
        """Wall-clock time at which tick ``index`` starts (inverse of :meth:`index_at`)."""
        return index * self._tick_interval_ns

    def events_at(self, index: int, ts_ns: int) -> list[Quote | TradeTick]:
        """Events of tick ``index``: one Quote per symbol, each maybe followed by its trade."""
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        chunk_no, j = divmod(index, TICKS_PER_CHUNK)
        events: list[Quote | TradeTick] = []
        for i, sym in enumerate(self.symbols):
            c = self._chunk(i, chunk_no)
            bid, ask = c.bid[j], c.ask[j]
            events.append(
                Quote(
                    venue=self.venue,
                    symbol=sym.symbol,
                    bid=bid,
                    bid_size=c.bid_size[j],
                    ask=ask,
                    ask_size=c.ask_size[j],
                    ts_ns=ts_ns,
                )
            )
            if c.trades[j]:
                buy = c.trade_is_buy[j]
                events.append(
                    TradeTick(
                        venue=self.venue,
                        symbol=sym.symbol,
                        price=ask if buy else bid,
                        size=c.trade_size[j],
                        side="buy" if buy else "sell",
                        trade_id=index,
                        ts_ns=ts_ns,
                    )
                )
        return events

    def regime_at(self, symbol: str, index: int) -> str:
        """Name of the regime ``symbol`` is in at tick ``index`` (one of :data:`REGIMES`)."""
        page_no, in_page = divmod(index, TICKS_PER_PAGE)
        page = self._page(self._symbol_index[symbol], page_no)
        return REGIMES[int(page.regimes[in_page // TICKS_PER_BLOCK])]

    def _rng(self, stream: int, symbol_index: int, number: int) -> np.random.Generator:
        """An independent RNG for one (stream, symbol, chunk-or-page) cell."""
        seq = np.random.SeedSequence([self._entropy, stream, symbol_index, number])
        return np.random.Generator(np.random.PCG64(seq))

    def _sigma(self, symbol_index: int) -> float:
        """Calm per-tick stdev of the log return."""
        return self.symbols[symbol_index].base_vol_bps * 1e-4

    def _page_start(self, symbol_index: int, page_no: int) -> tuple[float, int]:
        """Log-level and regime a page starts in, drawn independently of other pages."""
        if page_no == 0:
            return 0.0, _CALM
        rng = self._rng(_PAGE_START_STREAM, symbol_index, page_no)
        u, g = rng.random(), rng.standard_normal()
        regime = bisect.bisect_right(_STATIONARY_CUMULATIVE, u)
        mean_var = float(_REGIME_STATIONARY @ (_VOL_MULT**2)) * self._sigma(symbol_index) ** 2
        stationary_sd = math.sqrt(mean_var / (1.0 - _A * _A))
        return stationary_sd * float(g), min(regime, len(REGIMES) - 1)

    def _page(self, symbol_index: int, page_no: int) -> _Page:
        """Regimes and chunk anchors of one page, from cache or freshly computed."""
        key = (symbol_index, page_no)
        page = self._pages.get(key)
        if page is not None:
            self._pages.move_to_end(key)
            return page
        page = self._build_page(symbol_index, page_no)
        self._pages[key] = page
        if len(self._pages) > _PAGE_CACHE_PER_SYMBOL * len(self.symbols):
            self._pages.popitem(last=False)
        return page

    def _build_page(self, symbol_index: int, page_no: int) -> _Page:
        """Run the regime chain and the chunk-level OU bridge for one page."""
        z_start, regime = self._page_start(symbol_index, page_no)
        z_end, _ = self._page_start(symbol_index, page_no + 1)
        rng = self._rng(_PAGE_STREAM, symbol_index, page_no)
        switches = rng.random(BLOCKS_PER_PAGE).tolist()
        draws = rng.standard_normal(CHUNKS_PER_PAGE)

        chain: list[int] = []
        for u in switches:
            chain.append(regime)
            regime = min(bisect.bisect_right(_REGIME_CUMULATIVE[regime], u), len(REGIMES) - 1)
        regimes = np.array(chain, dtype=np.int8)

        sigma = self._sigma(symbol_index)
        per_chunk = regimes.reshape(CHUNKS_PER_PAGE, BLOCKS_PER_CHUNK)
        chunk_var = ((_VOL_MULT[per_chunk] * sigma) ** 2) @ _BLOCK_VAR_WEIGHT
        chunk_drift = (_DRIFT_IN_SIGMAS[per_chunk] * sigma) @ _BLOCK_DRIFT_WEIGHT
        chunk_sd = np.sqrt(chunk_var)

        # Condition the chunk draws on reaching the next page's start level exactly.
        weights = _PAGE_DECAY_TO_END * chunk_sd
        gap = z_end - _A_PAGE * z_start - float(_PAGE_DECAY_TO_END @ chunk_drift)
        draws = draws + weights * ((gap - float(weights @ draws)) / float(weights @ weights))

        anchors = [z_start]
        z = z_start
        steps = zip(chunk_drift.tolist(), chunk_sd.tolist(), draws.tolist(), strict=True)
        for drift, sd, g in steps:
            z = _A_CHUNK * z + drift + sd * g
            anchors.append(z)
        anchors[-1] = z_end
        return _Page(regimes=regimes, anchors=anchors, chunk_drift=chunk_drift.tolist())

    def _chunk(self, symbol_index: int, chunk_no: int) -> _Chunk:
        """One chunk of ticks, from cache or freshly generated."""
        key = (symbol_index, chunk_no)
        chunk = self._chunks.get(key)
        if chunk is not None:
            self._chunks.move_to_end(key)
            return chunk
        chunk = self._build_chunk(symbol_index, chunk_no)
        self._chunks[key] = chunk
        if len(self._chunks) > _CHUNK_CACHE_PER_SYMBOL * len(self.symbols):
            self._chunks.popitem(last=False)
        return chunk

    def _build_chunk(self, symbol_index: int, chunk_no: int) -> _Chunk:
        """Generate one chunk's ticks as a bridge between its two anchors."""
        sym = self.symbols[symbol_index]
        page_no, k = divmod(chunk_no, CHUNKS_PER_PAGE)
        page = self._page(symbol_index, page_no)
        z_start, z_end = page.anchors[k], page.anchors[k + 1]
        blocks = page.regimes[k * BLOCKS_PER_CHUNK : (k + 1) * BLOCKS_PER_CHUNK]
        regime = np.repeat(blocks, TICKS_PER_BLOCK)

        sigma = self._sigma(symbol_index)
        tick_sd = _VOL_MULT[regime] * sigma
        tick_drift = _DRIFT_IN_SIGMAS[regime] * sigma

        rng = self._rng(_CHUNK_STREAM, symbol_index, chunk_no)
        eps = rng.standard_normal(TICKS_PER_CHUNK)
        spread_jitter = np.clip(np.exp(0.15 * rng.standard_normal(TICKS_PER_CHUNK)), 0.5, 2.0)
        bid_size = rng.exponential(1.0, TICKS_PER_CHUNK)
        ask_size = rng.exponential(1.0, TICKS_PER_CHUNK)
        trades = rng.random(TICKS_PER_CHUNK) < sym.trade_prob
        trade_is_buy = rng.random(TICKS_PER_CHUNK) < 0.5
        trade_size = rng.exponential(0.2, TICKS_PER_CHUNK)

        # Condition the tick shocks so the chunk lands exactly on the next anchor.
        weights = _DECAY_TO_CHUNK_END * tick_sd
        gap = z_end - _A_CHUNK * z_start - page.chunk_drift[k]
        eps += weights * ((gap - float(weights @ eps)) / float(weights @ weights))
        steps = tick_drift + tick_sd * eps
        before = np.concatenate(([0.0], np.cumsum(steps * _INV_GROWTH)[:-1]))
        z = _GROWTH * (z_start + before)

        mid = sym.start_price * np.exp(z)
        half_spread = sym.spread_bps * 1e-4 / 2.0 * _SPREAD_MULT[regime] * spread_jitter
        top = sym.top_size * _SIZE_MULT[regime]
        return _Chunk(
            bid=(mid * (1.0 - half_spread)).tolist(),
            ask=(mid * (1.0 + half_spread)).tolist(),
            bid_size=(top * (0.25 + bid_size)).tolist(),
            ask_size=(top * (0.25 + ask_size)).tolist(),
            trades=trades.tolist(),
            trade_is_buy=trade_is_buy.tolist(),
            trade_size=(sym.top_size * (0.01 + trade_size)).tolist(),
        )
