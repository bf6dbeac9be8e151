"""Money invariants against an exchange's own records: the journal checked against what the exchange did.

The third witness of a live venue (after the journal and the gateway's ledger) is the exchange
itself. :class:`ExchangeReader` fetches, through ccxt with the venue's own keys (unlocked from the
keystore exactly as ``sniperbot run`` does), every order and trade of the venue's symbols since the
journal's first order there, and the account's balances; :func:`check_exchange` compares them with
the journal. Nothing here is specific to the local test servers: any ccxt exchange with
``fetchOrders`` (or open + closed orders) and ``fetchMyTrades`` can be checked. Its REST calls take
from the venue's shared rate budget (:mod:`sniperbot.venues.ccxt.ratelimit`), so a check never pushes
the node past the exchange's limits.

The checks (each a list of offending ids; ``ok`` is False if any is non-empty):

* ``duplicate_orders``: one client order id executed more than once at the exchange: two exchange
  orders carrying it, or trades under two exchange order ids of it (several exchanges check client id
  uniqueness among *open* orders only, so a filled order's id can trade again), or a fill id journaled
  twice.
* ``lost_fills``: an exchange trade of a journaled order missing from the journal although the journal
  has that order finished. The journal keys fills by the gateway's
  :func:`~sniperbot.venues.ccxt.gateway.fill_id` (``<venue>:<symbol>:<trade id>``).
* ``phantom_fills``: a journaled fill whose trade the exchange does not have.
* ``fill_mismatches``: same trade, different client order id, side, quantity, price or fee (the fee in
  quote currency, as the gateway values it).
* ``unjournaled_orders``: an exchange order the journal never had although it is the node's (placed
  after the session's baseline, or carrying a client order id of one of the journal's strategies):
  journal-first broken.
* ``status_mismatches``: the journal finished an order one way, the exchange another (or the journal
  says filled / cancelled and the exchange never had it).
* ``position_mismatches``: per ``venue:symbol``, the sum of journaled fills against the sum of the
  exchange's trades of the journal's orders, and against the node's reported positions when given.
* ``balance_mismatches`` (only with a :class:`ExchangeBaseline`, taken when the session started): per
  asset of the venue's markets, the exchange's total balance change since the baseline against the
  change the journaled fills since then explain (quantity and price from the journal, the fee in the
  asset the exchange charged it in).

Not failures but not settled (the node is still trading; a check is retried until settled):
``unreconciled`` (the exchange has news about an order the journal still has open, or a trade newer
than the fetch), ``unsent`` (journaled and open, the exchange has not seen it). Balances and positions
are compared only when settled. ``foreign_orders`` (orders on the account the node did not place) are
reported, never a failure.

**Decision:** a chaos session against a real exchange runs on a dedicated (sub-)account: a deposit,
a withdrawal or a manual trade during the session shows as a balance mismatch or an unjournaled order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from sniperbot.journal import TERMINAL_STATUSES, Journal, reopens
from sniperbot.messages import Fill, Order, OrderUpdate
from sniperbot.messages.control import position_key

_EPS = 1e-9
_PAGE = 1000
# A journaled fill this close to (or after) the start of the exchange fetch may simply be newer than it.
_FRESH_MS = 5_000
# The exchange's time window starts this long before the journal's first order (clock skew).
_WINDOW_SLACK_MS = 60_000


class ExchangeVenue(msgspec.Struct, frozen=True, kw_only=True):
    """What the checker needs of a ``[[venues]]`` entry with ``kind = "ccxt"`` and ``mode = "live"``."""

    name: str
    exchange: str
    symbols: tuple[str, ...]
    keys: str = ""
    rest_url: str | None = None
    ws_url: str | None = None
    sandbox: bool = False


def exchange_venues(config: Any) -> list[ExchangeVenue]:
    """The live ccxt venues of a node config (those whose orders reach a real exchange)."""
    from sniperbot.venues.ccxt.config import CcxtVenueConfig

    out: list[ExchangeVenue] = []
    for venue in getattr(config, "venues", None) or ():
        if not isinstance(venue, CcxtVenueConfig) or venue.mode != "live":
            continue
        out.append(
            ExchangeVenue(
                name=venue.name,
                exchange=venue.exchange,
                symbols=tuple(venue.symbols),
                keys=venue.keys,
                rest_url=venue.rest_url,
                ws_url=venue.ws_url,
                sandbox=venue.sandbox,
            )
        )
    return out


class ExchangeRecords(msgspec.Struct, kw_only=True):
    """One consistent fetch of a venue's account: orders, trades (ccxt unified dicts) and balances."""

    venue: str
    exchange: str
    orders: list[dict[str, Any]]
    trades: list[dict[str, Any]]
    balances: dict[str, float]  # asset -> total (free + locked)
    markets: dict[str, tuple[str, str]]  # symbol -> (base, quote)
    fetched_at_ms: int  # our clock when the fetch started: trades after it may be missing


class ExchangeBaseline(msgspec.Struct, kw_only=True):
    """The account when the session started: what the balance check measures changes from."""

    venue: str
    fill_ids: list[str]  # every exchange trade then, as fill ids
    order_ids: list[str]  # every exchange order then
    balances: dict[str, float]
    at_ms: int


class ExchangeReport(msgspec.Struct, kw_only=True):
    """The outcome of one venue's check against the exchange; ``ok`` is False if an invariant broke."""

    ok: bool
    settled: bool
    venue: str
    exchange: str
    orders_journaled: int
    orders_at_exchange: int
    fills_journaled: int
    trades_at_exchange: int
    duplicate_orders: list[str]
    lost_fills: list[str]
    phantom_fills: list[str]
    fill_mismatches: list[str]
    unjournaled_orders: list[str]
    status_mismatches: list[str]
    position_mismatches: list[str]
    balance_mismatches: list[str]
    foreign_orders: list[str]
    unreconciled: list[str]
    unsent: list[str]
    positions: dict[str, float]
    exchange_positions: dict[str, float]
    balance_changes: dict[str, float]
    expected_balance_changes: dict[str, float]
    problems: list[str]


# ---- reading the exchange


class ExchangeReader:
    """A ccxt (REST) client of one live venue, with its keys, on the venue's shared rate budget."""

    def __init__(
        self, venue: ExchangeVenue, run_dir: str, credentials: Any = None, timeout_ms: int = 10_000
    ) -> None:
        import ccxt

        from sniperbot.venues.ccxt.markets import spot_options
        from sniperbot.venues.ccxt.ratelimit import PUBLIC_KEY_NAME, open_limited
        from sniperbot.venues.ccxt.urls import rebase_urls

        if not hasattr(ccxt, venue.exchange):
            raise ValueError(f"venue {venue.name}: exchange {venue.exchange!r} is not a ccxt exchange id")
        self.venue = venue
        config: dict[str, Any] = {"timeout": timeout_ms, "options": spot_options(venue.exchange)}
        if credentials is not None:
            config.update(credentials.ccxt_config())
        key_name = venue.keys or PUBLIC_KEY_NAME
        ex = open_limited(getattr(ccxt, venue.exchange), run_dir, venue.name, key_name, config)
        del config
        if venue.sandbox:
            ex.set_sandbox_mode(True)
        self.ex = rebase_urls(ex, venue.rest_url, venue.ws_url)
        self._markets_loaded = False

    def _markets(self) -> dict[str, tuple[str, str]]:
        if not self._markets_loaded:
            self.ex.load_markets()
            self._markets_loaded = True
        return {
            s: (str(self.ex.market(s)["base"]), str(self.ex.market(s)["quote"])) for s in self.venue.symbols
        }

    def _paged(self, fetch: Callable[..., list[Any]], symbol: str, since: int | None) -> list[dict[str, Any]]:
        """Every row since ``since`` (pages by timestamp; duplicates across pages dropped)."""
        rows: dict[str, dict[str, Any]] = {}
        cursor = since
        while True:
            page = [dict(r) for r in fetch(symbol, cursor, _PAGE)]
            new = [r for r in page if str(r.get("id")) not in rows]
            for r in new:
                rows[str(r.get("id"))] = r
            if len(page) < _PAGE or not new:
                break
            cursor = max(int(r.get("timestamp") or 0) for r in page)
        return sorted(rows.values(), key=lambda r: (int(r.get("timestamp") or 0), str(r.get("id"))))

    def _orders(self, symbol: str, since: int | None) -> list[dict[str, Any]]:
        if self.ex.has.get("fetchOrders"):
            return self._paged(self.ex.fetch_orders, symbol, since)
        return self._paged(self.ex.fetch_open_orders, symbol, since) + self._paged(
            self.ex.fetch_closed_orders, symbol, since
        )

    def _trades(self, since: int | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for symbol in self.venue.symbols:
            out.extend(self._paged(self.ex.fetch_my_trades, symbol, since))
        return out

    def fetch(self, since_ms: int | None, attempts: int = 5) -> ExchangeRecords:
        """Orders, trades and balances; the balances are taken between two identical trade fetches, so
        they reflect exactly the trades returned. Raises ccxt errors (the caller retries).
        """
        from sniperbot.venues.ccxt.gateway import fill_id

        markets = self._markets()
        started = int(time.time() * 1000)
        trades = self._trades(since_ms)
        balances: dict[str, float] = {}
        for _ in range(attempts):
            total = self.ex.fetch_balance().get("total") or {}
            balances = {str(a): float(v or 0.0) for a, v in total.items()}
            again = self._trades(since_ms)
            same = {fill_id(self.venue.name, str(t["symbol"]), str(t["id"])) for t in again} == {
                fill_id(self.venue.name, str(t["symbol"]), str(t["id"])) for t in trades
            }
            trades = again
            if same:
                break
        # Orders last: every fetched trade's order is then in the list.
        orders: list[dict[str, Any]] = []
        for symbol in self.venue.symbols:
            orders.extend(self._orders(symbol, since_ms))
        return ExchangeRecords(
            venue=self.venue.name,
            exchange=self.venue.exchange,
            orders=orders,
            trades=trades,
            balances=balances,
            markets=markets,
            fetched_at_ms=started,
        )

    def baseline(self, since_ms: int | None = None) -> ExchangeBaseline:
        """The account now: balances, and the orders and trades of the venue's symbols since ``since_ms``
        (the window later checks read: :func:`journal_since_ms`; None: the whole history).
        """
        from sniperbot.venues.ccxt.gateway import fill_id

        records = self.fetch(since_ms)
        return ExchangeBaseline(
            venue=self.venue.name,
            fill_ids=sorted(fill_id(self.venue.name, str(t["symbol"]), str(t["id"])) for t in records.trades),
            order_ids=sorted(str(o.get("id")) for o in records.orders),
            balances=records.balances,
            at_ms=records.fetched_at_ms,
        )

    def close(self) -> None:
        """Release the HTTP session."""
        close = getattr(self.ex, "close", None)
        if close is not None:
            close()


# ---- comparing


def _close(a: float, b: float, abs_tol: float = _EPS) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=abs_tol)


def _journal_view(
    records: Iterable[Order | OrderUpdate | Fill | Any], venue: str
) -> tuple[dict[str, Order], dict[str, tuple[str, str]], dict[str, Fill], dict[str, int]]:
    """The venue's journaled orders, last statuses, fills and fill counts."""
    orders: dict[str, Order] = {}
    status: dict[str, tuple[str, str]] = {}
    fills: dict[str, Fill] = {}
    counts: dict[str, int] = {}
    for record in records:
        if getattr(record, "venue", None) != venue:
            continue
        if isinstance(record, Order):
            orders.setdefault(record.client_order_id, record)
        elif isinstance(record, Fill):
            counts[record.fill_id] = counts.get(record.fill_id, 0) + 1
            fills.setdefault(record.fill_id, record)
        elif isinstance(record, OrderUpdate):
            previous = status.get(record.client_order_id, ("", ""))[0]
            # The journal's own rule: nothing reopens a finished order.
            if not reopens(previous, record.status):
                status[record.client_order_id] = (record.status, record.reason)
    return orders, status, fills, counts


def journal_since_ms(journal_records: Iterable[Any], venue: str) -> int | None:
    """Start of the exchange window: the venue's first journaled order, less some clock slack."""
    first = min(
        (r.ts_ns for r in journal_records if isinstance(r, Order) and r.venue == venue and r.ts_ns),
        default=None,
    )
    return None if first is None else max(0, first // 1_000_000 - _WINDOW_SLACK_MS)


def check_exchange(
    journal_records: list[Any],
    records: ExchangeRecords,
    baseline: ExchangeBaseline | None = None,
    node_positions: Mapping[str, float] | None = None,
) -> ExchangeReport:
    """Compare the journal's records (read *after* ``records`` were fetched) with the exchange's."""
    from sniperbot.venues.ccxt.exchange_orders import STATUS, client_id_of, fee_in_quote
    from sniperbot.venues.ccxt.gateway import fill_id

    venue, exchange = records.venue, records.exchange
    orders, status, fills, fill_counts = _journal_view(journal_records, venue)
    r = ExchangeReport(
        ok=True,
        settled=True,
        venue=venue,
        exchange=exchange,
        orders_journaled=len(orders),
        orders_at_exchange=len(records.orders),
        fills_journaled=len(fills),
        trades_at_exchange=len(records.trades),
        duplicate_orders=[],
        lost_fills=[],
        phantom_fills=[],
        fill_mismatches=[],
        unjournaled_orders=[],
        status_mismatches=[],
        position_mismatches=[],
        balance_mismatches=[],
        foreign_orders=[],
        unreconciled=[],
        unsent=[],
        positions={},
        exchange_positions={},
        balance_changes={},
        expected_balance_changes={},
        problems=[],
    )
    # Exchange orders by client order id, and exchange order id -> client order id.
    by_cid: dict[str, list[dict[str, Any]]] = {}
    cid_of_order: dict[str, str] = {}
    for o in records.orders:
        cid = client_id_of(exchange, o)
        cid_of_order[str(o.get("id"))] = cid
        if cid:
            by_cid.setdefault(cid, []).append(o)
    strategies = {o.strategy_id for o in orders.values()}
    baseline_orders = set(baseline.order_ids) if baseline else set()
    for cid, placed in sorted(by_cid.items()):
        if len(placed) > 1:
            ids = ",".join(str(o.get("id")) for o in placed)
            r.duplicate_orders.append(f"{cid}: {len(placed)} exchange orders ({ids})")
        if cid in orders:
            continue
        new = baseline is not None and any(str(o.get("id")) not in baseline_orders for o in placed)
        if new or any(cid.startswith(f"{s}-") for s in strategies):
            r.unjournaled_orders.append(cid)
        else:
            r.foreign_orders.append(cid)
    # Exchange trades, keyed as the gateway journals them.
    trades: dict[str, dict[str, Any]] = {}
    order_ids_of_cid: dict[str, set[str]] = {}
    for t in records.trades:
        fid = fill_id(venue, str(t["symbol"]), str(t["id"]))
        trades[fid] = t
        cid = cid_of_order.get(str(t.get("order")), "")
        if cid:
            order_ids_of_cid.setdefault(cid, set()).add(str(t.get("order")))
    for cid, ids in sorted(order_ids_of_cid.items()):
        if len(ids) > 1 and len(by_cid.get(cid, ())) <= 1:
            r.duplicate_orders.append(
                f"{cid}: trades under {len(ids)} exchange orders ({','.join(sorted(ids))})"
            )
    for fid, count in sorted(fill_counts.items()):
        if count > 1:
            r.duplicate_orders.append(f"journal fill {fid} x{count}")
    # Every exchange trade of a journaled order is journaled, once, identically.
    exchange_fills: list[tuple[str, str, float]] = []  # (symbol, side, quantity) of the journal's orders
    for fid, t in sorted(trades.items()):
        cid = cid_of_order.get(str(t.get("order")), "")
        mine = fills.get(fid)
        if cid in orders:
            exchange_fills.append((str(t["symbol"]), str(t["side"]), float(t["amount"])))
        if mine is None:
            if cid not in orders:
                continue  # a foreign order's trade (its order is reported above)
            if status.get(cid, ("", ""))[0] in TERMINAL_STATUSES:
                r.lost_fills.append(fid)
            else:
                r.unreconciled.append(cid)
            continue
        base, quote = records.markets.get(str(t["symbol"]), ("", ""))
        fee, _ = fee_in_quote(t, base, quote)
        same = (
            mine.client_order_id == cid
            and mine.side == t.get("side")
            and _close(mine.quantity, float(t["amount"]))
            and _close(mine.price, float(t["price"]))
            and math.isclose(mine.fee, fee, rel_tol=1e-6, abs_tol=1e-9)
        )
        if not same:
            r.fill_mismatches.append(fid)
    for fid, mine in sorted(fills.items()):
        if fid in trades:
            continue
        if mine.ts_ns // 1_000_000 >= records.fetched_at_ms - _FRESH_MS:
            r.unreconciled.append(mine.client_order_id)  # newer than the fetch, maybe
        else:
            r.phantom_fills.append(fid)
    # Statuses.
    for cid in sorted(orders):
        mine_status, reason = status.get(cid, ("", ""))
        placed = by_cid.get(cid)
        if not placed:
            if mine_status in ("", "accepted"):
                r.unsent.append(cid)
            elif mine_status == "filled" or (
                mine_status == "cancelled" and reason != "expired_unsent" and fills_of(fills, cid)
            ):
                r.status_mismatches.append(f"{cid}: journal {mine_status}, exchange never had it")
            continue
        theirs, _ = STATUS.get(str(placed[-1].get("status")), ("accepted", ""))
        if mine_status == theirs or (mine_status == "" and theirs == "accepted"):
            continue
        if mine_status in ("", "accepted"):
            r.unreconciled.append(cid)  # the exchange is ahead: the gateway's refresh brings it
        else:
            r.status_mismatches.append(f"{cid}: journal {mine_status}, exchange {theirs}")
    r.unreconciled = sorted(set(r.unreconciled))
    r.unsent = sorted(set(r.unsent))
    r.settled = not (r.unreconciled or r.unsent)
    # Positions: the journal's fills, the exchange's trades of the journal's orders, the node's view.
    r.positions = _signed(((f.symbol, f.side, f.quantity) for f in fills.values()), venue)
    r.exchange_positions = _signed(exchange_fills, venue)
    if r.settled:
        for key in sorted(set(r.positions) | set(r.exchange_positions)):
            a, b = r.positions.get(key, 0.0), r.exchange_positions.get(key, 0.0)
            if not _close(a, b):
                r.position_mismatches.append(f"{key}: journal {a:g} != exchange trades {b:g}")
    if node_positions is not None:
        for key in sorted(set(r.positions) | {k for k in node_positions if k.startswith(f"{venue}:")}):
            a, b = r.positions.get(key, 0.0), float(node_positions.get(key, 0.0))
            if not _close(a, b):
                r.position_mismatches.append(f"{key}: journal {a:g} != node status {b:g}")
    if baseline is not None:
        _balances(r, records, baseline, fills, trades)
    _conclude(r)
    return r


def fills_of(fills: Mapping[str, Fill], cid: str) -> bool:
    """Whether the journal has any fill of ``cid``."""
    return any(f.client_order_id == cid for f in fills.values())


def _signed(rows: Iterable[tuple[str, str, float]], venue: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for symbol, side, quantity in rows:
        key = position_key(venue, symbol)
        out[key] = out.get(key, 0.0) + (quantity if side == "buy" else -quantity)
    return dict(sorted(out.items()))


def _balances(
    r: ExchangeReport,
    records: ExchangeRecords,
    baseline: ExchangeBaseline,
    fills: Mapping[str, Fill],
    trades: Mapping[str, dict[str, Any]],
) -> None:
    """Exchange balance changes since the baseline against what the journaled fills since then explain."""
    assets = sorted({a for pair in records.markets.values() for a in pair})
    before = set(baseline.fill_ids)
    expected = dict.fromkeys(assets, 0.0)
    for fid, f in fills.items():
        t = trades.get(fid)
        if t is None or fid in before:
            continue  # before the session, or not in this fetch (newer: compared next time)
        base, quote = records.markets.get(f.symbol, ("", ""))
        sign = 1.0 if f.side == "buy" else -1.0
        expected[base] = expected.get(base, 0.0) + sign * f.quantity
        expected[quote] = expected.get(quote, 0.0) - sign * f.quantity * f.price
        fee = t.get("fee") or {}
        currency = str(fee.get("currency") or quote)
        expected[currency] = expected.get(currency, 0.0) - abs(float(fee.get("cost") or 0.0))
    changes = {a: records.balances.get(a, 0.0) - baseline.balances.get(a, 0.0) for a in assets}
    r.balance_changes = {a: round(v, 10) for a, v in changes.items()}
    r.expected_balance_changes = {a: round(expected.get(a, 0.0), 10) for a in assets}
    if not r.settled:
        return
    for a in assets:
        scale = max(1.0, abs(records.balances.get(a, 0.0)))
        if not math.isclose(changes[a], expected.get(a, 0.0), rel_tol=0, abs_tol=1e-8 * scale):
            r.balance_mismatches.append(
                f"{a}: exchange balance changed {changes[a]:.10g}, journaled fills explain "
                f"{expected.get(a, 0.0):.10g}"
            )


_CHECKS = (
    ("duplicate_orders", "client order ids executed more than once at the exchange"),
    ("lost_fills", "exchange trades missing from the journal"),
    ("phantom_fills", "journaled fills the exchange never made"),
    ("fill_mismatches", "fills that differ between journal and exchange"),
    ("unjournaled_orders", "orders the exchange has that the journal never had"),
    ("status_mismatches", "orders finished differently in journal and exchange"),
    ("position_mismatches", "positions that differ between journal, exchange trades and node"),
    ("balance_mismatches", "exchange balance changes the journaled fills do not explain"),
)


def _conclude(r: ExchangeReport) -> None:
    for field, what in _CHECKS:
        bad: list[str] = getattr(r, field)
        if bad:
            # Each line starts with the invariant's name (and the venue), as in the ledger check.
            r.problems.append(
                f"{field}: {r.venue}: {len(bad)} {what}: {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}"
            )
    r.ok = not r.problems


def read_journal(run_dir: str) -> list[Any]:
    """Every journal record of a run dir (read-only, node running or not)."""
    from pathlib import Path

    journal = Journal.open(Path(run_dir), readonly=True)
    try:
        return [record for _, record in journal.records()]
    finally:
        journal.close()


def report_dict(report: ExchangeReport) -> dict[str, Any]:
    """The report as plain data (for JSON)."""
    return msgspec.to_builtins(report)
