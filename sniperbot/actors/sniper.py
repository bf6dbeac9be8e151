"""The new-pool sniper: a token the safety check passed is bought once, then its position is managed.

One actor per on-chain venue (``kind = "evm"`` or ``"solana"``: the same code) with a ``[venues.sniper]``
table, ``strategy.sniper-<venue>`` (strategy id ``sniper-<venue>``), in the ``strategies`` supervisor.
**Why an actor and not a** :class:`Strategy`: the strategy API decides on bar closes for one configured
symbol; a sniper reacts to events (a safety report, each pool quote) on symbols it learns at run time.
The order plumbing is the strategy actor's: deterministic intent ids
(:func:`~sniperbot.messages.orders.make_intent_id` with the node life), sent reliably to the risk guard
(acknowledged once the executor has the order), fills and order updates on ``ev.<strategy id>.``, and
the intent sequence restored from the journal (:func:`~sniperbot.actors.strategy.journaled_history`).

**The life of a snipe** (``symbol = "<token address>/<quote symbol>"``):

1. A :class:`~sniperbot.messages.TokenSafetyReport` on ``chain.<venue>.token_safety.`` with verdict
   ``buy``, fresher than ``max_report_age_s``, for a token never sniped before (the journaled state
   remembers every token it acted on, across restarts): the sniper waits for the feed's first quote of
   the pair (the feed starts quoting a pair when a "buy" report names its token). Any other report
   buys nothing. When in doubt, it does not buy: a stale report, a quote that does not come within
   ``max_report_age_s`` of the report, a rejected buy (never retried).
2. **The buy**: one market intent for the tokens ``budget`` quote buys at the quoted reserves (the
   Uniswap V2 ``getAmountOut`` of the reserves the quote implies, :func:`sniperbot.venues.dex.
   pool_reserves`), with ``limit_price = budget / quantity``: the most it pays per token, so the risk
   guard values the order (spend caps per token and per day, open positions) before any fill. The
   venue's gateway sends it through the venue's route (``route = "flashbots"``: a private bundle).
   The token is journaled as taken *before* the intent is sent: a crash never buys it twice.
3. **The position**: from the journaled fills (quantity and average price paid, tax included).
   Each quote of the pair is valued at what selling one token would return: ``bid x (1 - sell tax of
   the report)``. Exits, first match wins:

   * ``liquidity_pulled``: the pool's depth (``sqrt(base reserve x quote reserve)``, which swaps do not
     move and only adding or removing liquidity does) fell by more than ``liquidity_drop`` (a fraction)
     below its highest value since the buy: the liquidity is being pulled, sell now;
   * ``stop_loss``: value <= entry x (1 - stop_loss_pct %);
   * ``take_profit``: value >= entry x (1 + take_profit_pct %);
   * ``trailing_stop``: once the value has been above the entry, it fell trailing_stop_pct % below its
     highest value since the buy (0 = off);
   * ``max_hold``: ``max_hold_s`` seconds after the first buy fill (checked by a timer, quotes or not).

   An exit is one market sell of the whole position, ``reduce_only`` (through the same route). A sell
   that is rejected or cancelled, or leaves tokens behind, is retried after ``exit_retry_s``: once an
   exit has triggered, the sniper keeps selling until the position is gone.

**The social gate** (issue 15; off by default, on with ``social_kind``): the buy also needs the crowd.
The sniper follows every ``sig.`` signal of kind ``social_kind`` (from ``social_source``, "" = any
analyser; the node's last-value cache gives it the current ones at start) and, when a snipe's first quote
comes, buys only if the newest of them about the token (subject = the token's address exactly as the
chain writes it: EVM checksummed, Solana base58) is not stale, at most ``social_max_age_s`` old and
``>= min_social``. Otherwise it does not buy yet: a token is often mentioned only seconds after its pool
appears, so it waits as long as it waits for a quote (``max_report_age_s`` after the report), buying on
the first quote or signal that passes; then it skips the token for good with the rule that refused it
(``social_gate: ...``) in its journaled state and in a ``snipe_skipped`` log line. No signal is no buy.

**Risk limits** (the risk guard sees every intent): the spend caps ``[risk] max_spend_per_symbol``,
``max_spend_per_day`` and ``max_open_positions`` are the snipes' real budget. ``max_position`` is in base
units, and a new token's quantity (thousands or billions of units) says nothing about its value: a node
that snipes sets it high (e.g. ``1e12``), or every buy is refused ``max_position``.

**How liquidity reaches the sniper** (decision): through the feed's quotes. The on-chain feeds' sizes are a
fixed fraction of the base reserve and its bid/ask straddle the reserves' ratio
(:func:`sniperbot.venues.dex.pool_quote`); :func:`~sniperbot.venues.dex.pool_reserves`
inverts them, so no new message kind is needed and the depth is as fresh as the price.

**State and restarts** (decision, for a sniper left alone for weeks). The state of the *live* snipes
(awaiting a quote, buying, open: status, exit reason, highest value and depth, sell tax, entry time, and
the position, quantity bought and cost) is journaled under ``keys.STRATEGY_STATE + <strategy id>``
whenever it changes, together with the journal seq its positions reflect (``through``) and the next
intent sequence (:class:`SniperState`). A finished snipe (closed, skipped) is written once under
``<that key>/done/<token>`` and leaves the live state: what is rewritten on every change stays as small
as what is live, and "never twice" looks the token up there. Fills and order updates are booked *only*
from the journal, in seq order (a bus message for this strategy is the cue to read it: the executor and
the risk guard journal before they publish), so the saved ``through`` always says exactly which records
the saved positions hold. A restart therefore reads the live state and the journal records after
``through``, not every fill since the first snipe: it does not grow with the journal. A state saved by
an older version (a list of every snipe) is read once the old way (every fill of this strategy).
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import msgspec

from sniperbot.actors.base import Actor, ActorContext
from sniperbot.actors.recent import RecentIds
from sniperbot.actors.strategy import journaled_history
from sniperbot.analytics.signals import SignalBook
from sniperbot.journal import TERMINAL_STATUSES, keys
from sniperbot.messages import (
    Envelope,
    Fill,
    Order,
    OrderIntent,
    OrderUpdate,
    Quote,
    Signal,
    TokenSafetyReport,
)
from sniperbot.messages import topics as topic
from sniperbot.messages.orders import make_intent_id, parse_intent_seq
from sniperbot.venues.dex import SniperParams, sniper_id

#: Period of the timer that checks holding times, quote waits and exit retries.
CLOCK_S = 0.25
#: Positions smaller than this share of what was bought are gone (rounding dust of token units).
_DUST = 1e-9
#: Uniswap V2's 0.3 % fee on the input, as ``getAmountOut`` applies it.
_AFTER_FEE = 0.997

Status = Literal["awaiting_quote", "buying", "open", "closed", "skipped"]


class Snipe(msgspec.Struct, kw_only=True):
    """What the sniper journals about one token (see the module docstring)."""

    token: str
    status: Status
    report_ns: int = 0  # when the check published its "buy"
    sell_tax_bps: int = 0
    buy_intent: str = ""
    exit_reason: str = ""
    exit_intent: str = ""
    exit_after_ns: int = 0  # no new sell before this (a retry's wait)
    opened_ns: int = 0  # the first buy fill
    peak_value: float = 0.0  # highest value per token since the buy
    peak_depth: float = 0.0  # highest pool depth since the buy
    # From the journal's fills, through SniperState.through.
    bought: float = 0.0
    position: float = 0.0
    cost: float = 0.0


#: A snipe in one of these is finished: journaled once under its own key, out of the live state.
_DONE: tuple[Status, ...] = ("closed", "skipped")


class SniperState(msgspec.Struct, kw_only=True):
    """The sniper's journaled state: its live snipes, and how far into the journal their positions go."""

    through: int  # every fill and order update of this strategy up to this journal seq is booked
    next_seq: int  # the next intent sequence
    snipes: list[Snipe]


class SniperActor(Actor):
    """Buys what the safety check passed, once, and exits on TP / SL / trailing / time / liquidity."""

    def __init__(
        self,
        ctx: ActorContext,
        *,
        venue: str,
        quote: str,
        params: dict[str, Any],
        risk_guard: str = "risk_guard",
    ) -> None:
        super().__init__(ctx)
        self.venue = venue
        self.quote = quote
        self.params = msgspec.convert(params, SniperParams)
        self.strategy_id = sniper_id(venue)
        self.risk_guard = risk_guard
        self.topics = (
            topic.token_safety(venue),
            topic.quotes(venue),
            topic.strategy_events(self.strategy_id),
            *((topic.SIGNALS,) if self.params.social_kind else ()),  # subjects are learnt at run time
        )
        self.social = SignalBook()
        self._awaiting_quote: dict[str, Quote] = {}  # a snipe held by the social gate: its last quote
        self.snipes: dict[str, Snipe] = {}  # by symbol
        self._seen_fills = RecentIds()
        self._read_through = 0  # the journal seq whose fills and updates are booked (see _read_journal)
        self._next_seq = 1
        self._saved = b""
        self._state_key = ""  # set in on_start

    # -- lifecycle ---------------------------------------------------------------------------
    def on_start(self) -> None:
        """Restore the live snipes, their positions and the intent sequence (module docstring)."""
        journal = self.ctx.journal
        self._state_key = keys.STRATEGY_STATE + self.strategy_id
        raw = journal.get_state(self._state_key)
        if raw is not None and raw.lstrip().startswith(b"["):
            self._restore_legacy(raw)
        else:
            if raw is not None:
                state = msgspec.json.decode(raw, type=SniperState)
                self.snipes = {self.symbol_of(snipe.token): snipe for snipe in state.snipes}
                self._read_through, self._next_seq = state.through, state.next_seq
                self._saved = raw
            # What happened while this actor was down: fills, buys or sells that ended, and orders
            # (the intent sequence goes on after the highest one journaled).
            self._read_journal(restoring=True)
        for snipe in self.snipes.values():
            for intent_id in (snipe.buy_intent, snipe.exit_intent):
                self._next_seq = max(self._next_seq, (parse_intent_seq(intent_id, self.strategy_id) or 0) + 1)
        self._save()
        self.ctx.every(CLOCK_S, self._clock)
        self.ctx.log.info(
            "sniper ready",
            extra={
                "event": "sniper_ready",
                "venue": self.venue,
                "open": [s for s, n in self.snipes.items() if n.status == "open"],
                "next_intent_seq": self._next_seq,
            },
        )

    def _restore_legacy(self, raw: bytes) -> None:
        """A state saved by an older version: every snipe ever, positions from every fill of this strategy."""
        journal = self.ctx.journal
        # Before the restore's reads: what is journaled after them is booked by _read_journal.
        self._read_through = journal.last_seq()
        for snipe in msgspec.json.decode(raw, type=list[Snipe]):
            snipe.bought = snipe.position = snipe.cost = 0.0
            self.snipes[self.symbol_of(snipe.token)] = snipe
        fills, last_seq = journaled_history(journal, self.strategy_id)
        self._next_seq = last_seq + 1
        for fill in fills:
            self._book(fill, restoring=True)
        for _, record in journal.strategy_records(self.strategy_id, kinds=(OrderUpdate,)):
            if isinstance(record, OrderUpdate):
                self._on_update(record)

    def _done_key(self, token: str) -> str:
        return f"{self._state_key}/done/{token}"

    def _snipe(self, symbol: str) -> Snipe | None:
        """The snipe of ``symbol``: live, or finished (then it is live again, for a late fill to correct)."""
        snipe = self.snipes.get(symbol)
        if snipe is None:
            raw = self.ctx.journal.get_state(self._done_key(symbol.partition("/")[0]))
            if raw is not None:
                snipe = self.snipes[symbol] = msgspec.json.decode(raw, type=Snipe)
        return snipe

    def symbol_of(self, token: str) -> str:
        """The pair of a sniped token: ``"<token address>/<quote symbol>"``."""
        return f"{token}/{self.quote}"

    def on_message(self, envelope: Envelope) -> None:
        """Reports start snipes, quotes drive buys and exits, fills and updates keep positions true."""
        payload = envelope.payload
        if isinstance(payload, Quote):
            snipe = self.snipes.get(payload.symbol)
            if snipe is not None and payload.venue == self.venue:
                self._on_quote(snipe, payload)
        elif isinstance(payload, TokenSafetyReport):
            self._on_report(payload)
        elif isinstance(payload, Signal):
            self._on_signal(payload)
        elif isinstance(payload, Fill | OrderUpdate) and payload.strategy_id == self.strategy_id:
            self._read_journal()  # booked from the journal, in seq order (module docstring)

    # -- the buy -----------------------------------------------------------------------------
    def _on_report(self, report: TokenSafetyReport) -> None:
        if report.venue != self.venue:
            return
        symbol = self.symbol_of(report.token)
        if symbol in self.snipes or self.ctx.journal.get_state(self._done_key(report.token)) is not None:
            return  # acted on already (bought, refused, or let go): never twice
        if report.verdict != "buy":
            return  # the checker has logged and journaled why
        age_s = (time.time_ns() - report.ts_ns) / 1e9
        if age_s > self.params.max_report_age_s:
            self._skip(report.token, symbol, f"report {age_s:.1f} s old > max_report_age_s")
            return
        self.snipes[symbol] = Snipe(
            token=report.token,
            status="awaiting_quote",
            report_ns=report.ts_ns,
            sell_tax_bps=max(report.sell_tax_bps, 0),
        )
        self._save()

    def _on_signal(self, signal: Signal) -> None:
        p = self.params
        if signal.kind != p.social_kind or (p.social_source and signal.source != p.social_source):
            return
        self.social.put(signal)
        symbol = self.symbol_of(signal.subject)
        quote = self._awaiting_quote.get(symbol)
        snipe = self.snipes.get(symbol)
        if quote is not None and snipe is not None and snipe.status == "awaiting_quote":
            self._on_quote(snipe, quote)  # the signal a held snipe was waiting for

    def social_refusal(self, token: str) -> str:
        """Why the social gate refuses to buy ``token`` now ("" when it lets the buy through, or is off)."""
        p = self.params
        if not p.social_kind:
            return ""
        reading = self.social.get(
            token, p.social_kind, source=p.social_source, max_age_s=p.social_max_age_s, now_ns=time.time_ns()
        )
        if reading is None:
            return (
                f"social_gate: no fresh {p.social_kind!r} signal about {token} "
                f"(none, stale, or older than social_max_age_s {p.social_max_age_s:g} s)"
            )
        if not reading.value >= p.min_social:
            return (
                f"social_gate: {p.social_kind} {reading.value:g} from {reading.source} "
                f"< min_social {p.min_social:g}"
            )
        return ""

    def _skip(self, token: str, symbol: str, why: str) -> None:
        self.snipes[symbol] = Snipe(token=token, status="skipped", exit_reason=why)
        self._save()
        self.ctx.log.warning(
            "snipe skipped", extra={"event": "snipe_skipped", "venue": self.venue, "token": token, "why": why}
        )

    def _buy(self, snipe: Snipe, symbol: str, quote: Quote) -> None:
        from sniperbot.venues.dex import pool_reserves

        base_reserve, quote_reserve = pool_reserves(quote)
        budget = self.params.budget * _AFTER_FEE
        quantity = base_reserve * budget / (quote_reserve + budget)  # Uniswap V2 getAmountOut
        if not (quantity > 0 and math.isfinite(quantity)):
            self._skip(snipe.token, symbol, f"no usable pool quote (bid {quote.bid}, ask {quote.ask})")
            return
        limit_price = self.params.budget / quantity
        intent = self._intent(symbol, "buy", quantity, limit_price=limit_price)
        snipe.status = "buying"
        snipe.buy_intent = intent.intent_id
        self._save()  # journaled before it is sent: a restart never buys this token again
        self.ctx.send(self.risk_guard, intent)
        self.ctx.log.info(
            "snipe buy",
            extra={
                "event": "snipe_buy",
                "venue": self.venue,
                "symbol": symbol,
                "intent_id": intent.intent_id,
                "quantity": quantity,
                "limit_price": limit_price,
                "budget": self.params.budget,
                "report_to_intent_ms": round((time.time_ns() - snipe.report_ns) / 1e6, 3),
            },
        )

    def _intent(
        self, symbol: str, side: Literal["buy", "sell"], quantity: float, **extra: Any
    ) -> OrderIntent:
        seq = self._next_seq
        self._next_seq += 1
        return OrderIntent(
            intent_id=make_intent_id(self.strategy_id, seq, self.ctx.node_life),
            strategy_id=self.strategy_id,
            intent_seq=seq,
            venue=self.venue,
            symbol=symbol,
            side=side,
            quantity=quantity,
            order_type="market",
            reduce_only=side == "sell",
            ts_ns=time.time_ns(),
            **extra,
        )

    # -- the position ------------------------------------------------------------------------
    def _on_quote(self, snipe: Snipe, quote: Quote) -> None:
        symbol = quote.symbol
        if snipe.status == "awaiting_quote":
            refusal = self.social_refusal(snipe.token)
            if refusal:
                # Held, not skipped yet: the signal may come a moment after the pool (module docstring).
                if symbol not in self._awaiting_quote:
                    self.ctx.log.info(
                        "snipe waits for its social signal",
                        extra={
                            "event": "snipe_social_wait",
                            "venue": self.venue,
                            "token": snipe.token,
                            "why": refusal,
                        },
                    )
                self._awaiting_quote[symbol] = quote
                return
            self._awaiting_quote.pop(symbol, None)
            self._buy(snipe, symbol, quote)
            return
        if snipe.status not in ("buying", "open"):
            return
        from sniperbot.venues.dex import pool_reserves

        base_reserve, quote_reserve = pool_reserves(quote)
        depth = math.sqrt(base_reserve * quote_reserve)
        value = quote.bid * (1 - snipe.sell_tax_bps / 10_000)
        changed = depth > snipe.peak_depth
        snipe.peak_depth = max(snipe.peak_depth, depth)
        if snipe.status != "open" or snipe.position <= 0:
            if changed:
                self._save()
            return
        entry = snipe.cost / snipe.bought
        if value > snipe.peak_value:
            snipe.peak_value = value
            changed = True
        p = self.params
        reason = ""
        if snipe.exit_reason:
            reason = snipe.exit_reason  # an exit under way: retried below once its wait is over
        elif depth < snipe.peak_depth * (1 - p.liquidity_drop):
            kept = 1 - p.liquidity_drop
            reason = f"liquidity_pulled: pool depth {depth:.6g} < {kept:g} x {snipe.peak_depth:.6g}"
        elif value <= entry * (1 - p.stop_loss_pct / 100):
            reason = f"stop_loss: value {value:.6g} <= entry {entry:.6g} - {p.stop_loss_pct:g} %"
        elif value >= entry * (1 + p.take_profit_pct / 100):
            reason = f"take_profit: value {value:.6g} >= entry {entry:.6g} + {p.take_profit_pct:g} %"
        elif (
            p.trailing_stop_pct
            and snipe.peak_value > entry
            and value <= snipe.peak_value * (1 - p.trailing_stop_pct / 100)
        ):
            reason = (
                f"trailing_stop: value {value:.6g} <= peak {snipe.peak_value:.6g} - {p.trailing_stop_pct:g} %"
            )
        if reason:
            self._exit(snipe, symbol, reason)
        elif changed:
            self._save()

    def _read_journal(self, restoring: bool = False) -> None:
        """Book this strategy's fills and order updates journaled since the last look, in seq order.

        The only way they are booked (module docstring): on each clock tick, on each bus message of
        this strategy's (the cue: the executor and the risk guard journal before they publish), and at
        start (``restoring``: no save and no log per fill). Reading rather than taking the bus copy
        also covers a message lost while a restarted sniper's subscription was joining the bus: a
        snipe that missed its buy's fill would never be sold (or one that missed its sell, sold twice
        over). Orders and updates also move the intent sequence past theirs.
        """
        records, through = self.ctx.journal.since(
            self._read_through, (Fill, OrderUpdate, Order), self.strategy_id
        )
        for seq, record in records:
            # Booked through this record: a save while booking it records exactly that.
            self._read_through = seq
            if isinstance(record, Fill):
                self._book(record, restoring)
            elif isinstance(record, OrderUpdate):
                self._on_update(record)
            if isinstance(record, Order | OrderUpdate):
                seq_of = parse_intent_seq(record.client_order_id, self.strategy_id) or 0
                self._next_seq = max(self._next_seq, seq_of + 1)
        self._read_through = through

    def _clock(self) -> None:
        self._read_journal()
        now = time.time_ns()
        for symbol, snipe in list(self.snipes.items()):  # a finished snipe leaves the dict (_save)
            if snipe.status == "awaiting_quote":
                if (now - snipe.report_ns) / 1e9 > self.params.max_report_age_s:
                    held = self._awaiting_quote.pop(symbol, None) is not None
                    why = self.social_refusal(snipe.token) if held else ""
                    self._skip(snipe.token, symbol, why or "no quote of the pool within max_report_age_s")
            elif snipe.status == "open" and snipe.position > 0:
                held_s = (now - snipe.opened_ns) / 1e9
                if snipe.exit_reason:
                    self._exit(snipe, symbol, snipe.exit_reason)  # a retry, once its wait is over
                elif held_s >= self.params.max_hold_s:
                    limit = self.params.max_hold_s
                    self._exit(snipe, symbol, f"max_hold: held {held_s:.1f} s >= {limit:g} s")

    def _exit(self, snipe: Snipe, symbol: str, reason: str) -> None:
        """One sell of the whole position, unless one is in flight or a retry must still wait."""
        if snipe.exit_intent or time.time_ns() < snipe.exit_after_ns:
            return
        first = not snipe.exit_reason
        snipe.exit_reason = reason
        intent = self._intent(symbol, "sell", snipe.position)
        snipe.exit_intent = intent.intent_id
        self._save()
        self.ctx.send(self.risk_guard, intent)
        self.ctx.log.info(
            "snipe exit",
            extra={
                "event": "snipe_exit",
                "venue": self.venue,
                "symbol": symbol,
                "reason": reason,
                "retry": not first,
                "intent_id": intent.intent_id,
                "quantity": snipe.position,
            },
        )

    def _book(self, fill: Fill, restoring: bool = False) -> None:
        if not self._seen_fills.add(fill.fill_id):
            return
        snipe = self._snipe(fill.symbol)
        if snipe is None:  # a fill of a snipe whose state was never journaled: manage it all the same
            snipe = self.snipes[fill.symbol] = Snipe(token=fill.symbol.partition("/")[0], status="buying")
        if fill.side == "buy":
            snipe.bought += fill.quantity
            snipe.cost += fill.quantity * fill.price
            snipe.position += fill.quantity
            if not snipe.opened_ns:
                snipe.opened_ns = fill.ts_ns or time.time_ns()
            if snipe.status != "open":
                # Whatever the sniper thought (a buy it saw refused, a state older than the fill): a
                # position exists, so it is managed.
                snipe.status = "open"
                snipe.peak_value = max(snipe.peak_value, fill.price)
        else:
            snipe.position -= fill.quantity
            if snipe.position <= snipe.bought * _DUST:
                snipe.position = 0.0
                snipe.status = "closed"
                snipe.exit_intent = ""
        if not restoring:
            self._save()
            self.ctx.log.info(
                "snipe fill",
                extra={
                    "event": "snipe_fill",
                    "venue": self.venue,
                    "symbol": fill.symbol,
                    "side": fill.side,
                    "quantity": fill.quantity,
                    "price": fill.price,
                    "position": snipe.position,
                    "status": snipe.status,
                },
            )

    def _on_update(self, update: OrderUpdate) -> None:
        snipe = self.snipes.get(update.symbol)
        if snipe is None or update.status not in TERMINAL_STATUSES:
            return
        cid = update.client_order_id
        if cid == snipe.buy_intent and snipe.status == "buying" and update.status != "filled":
            # A refused buy is not retried: when in doubt, do not buy.
            snipe.status = "skipped"
            snipe.exit_reason = f"buy {update.status}: {update.reason}"
            self._save()
            self.ctx.log.warning(
                "snipe buy not done",
                extra={"event": "snipe_buy_failed", "symbol": update.symbol, "reason": update.reason},
            )
        elif cid == snipe.exit_intent:
            snipe.exit_intent = ""
            if snipe.position > 0:
                # Refused, cancelled, or filled short of the position: sell the rest after a wait.
                snipe.exit_after_ns = time.time_ns() + int(self.params.exit_retry_s * 1e9)
                self.ctx.log.warning(
                    "snipe exit not done; retried later",
                    extra={
                        "event": "snipe_exit_retry",
                        "symbol": update.symbol,
                        "status": update.status,
                        "reason": update.reason,
                        "position": snipe.position,
                    },
                )
            self._save()

    def _save(self) -> None:
        """Journal the live state when it changed, and a finished snipe under its own key: one transaction."""
        items: dict[str, bytes | None] = {}
        for symbol, snipe in list(self.snipes.items()):
            if snipe.status in _DONE:
                items[self._done_key(snipe.token)] = msgspec.json.encode(snipe)
                del self.snipes[symbol]
        state = SniperState(
            through=self._read_through, next_seq=self._next_seq, snipes=list(self.snipes.values())
        )
        encoded = msgspec.json.encode(state)
        if encoded != self._saved:
            items[self._state_key] = encoded
        if items:
            self.ctx.journal.put_states(items)
            self._saved = encoded
