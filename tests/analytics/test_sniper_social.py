"""The sniper's social gate (issue 15 point 5): a token is bought only when the crowd talks about it.

The EVM sniper tests' harness (``tests/evm/test_sniper.py``: the real sniper and risk guard actors on a
real bus and journal, the checker, feed and executor played by driver actors with their ids) plus one
more driver, ``analyser.social``, publishing :class:`Signal` as an analyser does (the bus's authority
check: source = its own id). Five tokens pass the safety check at once; only the one with a fresh signal
>= ``min_social`` about its address is bought, the others are skipped with the rule that refused them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from sniperbot.messages import Signal
from sniperbot.messages import topics as topic
from sniperbot.venues.dex import SniperParams
from tests.evm.test_sniper import _OUT, BASE0, QUOTE, QUOTE0, Harness
from tests.evm.test_sniper import harness as harness  # the fixture
from tests.venues_ccxt.test_gateway import actors as actors  # the fixture it needs

ANALYSER = "analyser.social"
KIND = "mentions"


def token(n: int) -> str:
    """A checksummed-looking EVM address (mixed case: the subject must match it exactly)."""
    return f"0xAbCdEf{n:034d}"


NO_SIGNAL, TOO_LOW, STALE, OTHER_CASE, GOOD = (token(i) for i in range(1, 6))


def signal(subject: str, value: float, **extra: object) -> Signal:
    return Signal(source="social", subject=subject, kind=KIND, value=value, ts_ns=time.time_ns(), **extra)


def say(*signals: Signal) -> None:
    for s in signals:
        _OUT[ANALYSER].put(("publish", topic.signal(s.subject, s.kind, s.source), s))


@pytest.fixture
def gated(harness: Harness) -> Iterator[Harness]:
    harness.start_risk_guard(max_spend_per_symbol=1.0, max_spend_per_day=10.0)
    harness.actors.start(ANALYSER, "tests.evm.test_sniper:BusDriver", {})
    harness.start_sniper(social_kind=KIND, min_social=5.0, social_max_age_s=60.0, max_report_age_s=4.0)
    # The tests speak once the sniper's bus subscription has joined: until then what the drivers send
    # it is dropped, as through the proxy, and this harness has no node whose last values would bring
    # an analyser's signal back (a node does). A report taken proves the join: none is taken before.
    probe = token(9)
    harness.until(lambda: harness.snipe(f"{probe}/{QUOTE}"), lambda: harness.report(token=probe), "the join")
    yield harness


def test_the_gate_is_off_by_default_and_its_parameters_are_checked() -> None:
    assert SniperParams().social_kind == ""
    with pytest.raises(ValueError, match="social_max_age_s: must be a number > 0"):
        SniperParams(social_kind=KIND, social_max_age_s=0)
    with pytest.raises(ValueError, match="min_social: must be a finite number"):
        SniperParams(social_kind=KIND, min_social=float("nan"))


def quotes_after_reports(harness: Harness, tokens: tuple[str, ...]) -> None:
    """Each pool's quotes once its report is in: the sniper ignores a quote of a token not yet reported,
    and the checker and the feed are different senders, so a quote sent with the report may come first."""
    for _ in range(3):
        for t in tokens:
            harness.quote(BASE0, QUOTE0, symbol=f"{t}/{QUOTE}")
        time.sleep(0.1)


def test_only_a_token_with_a_fresh_strong_enough_signal_is_bought(gated: Harness) -> None:
    refused = (NO_SIGNAL, TOO_LOW, STALE, OTHER_CASE)

    def announce(tokens: tuple[str, ...]) -> None:
        say(signal(TOO_LOW, 1.0), signal(STALE, 9.0, stale=True), signal(OTHER_CASE.lower(), 9.0))
        for t in tokens:
            gated.report(token=t)
            gated.quote(BASE0, QUOTE0, symbol=f"{t}/{QUOTE}")

    gated.until(
        lambda: all(gated.snipe(f"{t}/{QUOTE}") for t in refused), lambda: announce(refused), "reports"
    )
    # GOOD's report last, on its own: its hold (max_report_age_s) starts now, whatever the load before.
    gated.until(
        lambda: gated.snipe(f"{GOOD}/{QUOTE}"), lambda: gated.report(token=GOOD), "GOOD's report taken"
    )
    quotes_after_reports(gated, (*refused, GOOD))
    assert gated.orders("buy") == []  # quotes came, but no signal passes yet: held, not bought
    # The signal comes after the pool's quotes: the held snipe buys on it.
    gated.until(
        lambda: gated.orders("buy"), lambda: say(signal(GOOD, 7.5)), "the buy of the token with a signal"
    )
    reasons = {
        NO_SIGNAL: f"social_gate: no fresh 'mentions' signal about {NO_SIGNAL}",
        TOO_LOW: "social_gate: mentions 1 from social < min_social 5",
        STALE: f"social_gate: no fresh 'mentions' signal about {STALE}",
        OTHER_CASE: f"social_gate: no fresh 'mentions' signal about {OTHER_CASE}",
    }
    for t, why in reasons.items():
        snipe = gated.until(
            lambda t=t: (s := gated.snipe(f"{t}/{QUOTE}")) and s.status == "skipped" and s,
            lambda t=t: gated.quote(BASE0, QUOTE0, symbol=f"{t}/{QUOTE}"),
            f"{t} skipped",
        )
        assert snipe.exit_reason.startswith(why), (t, snipe.exit_reason)
    buys = gated.orders("buy")
    assert [o.symbol for o in buys] == [f"{GOOD}/{QUOTE}"], buys
