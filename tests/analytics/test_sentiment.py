"""Sentiment: the scorer on the labelled sample, subject extraction's precision rules, windows and z-scores.

Pure components on crafted data (the actor on a real node is in ``test_sentiment_actor.py``).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from sniperbot.analytics.config import AnalyserConfig
from sniperbot.analytics.sentiment.evaluate import compare, load_sample
from sniperbot.analytics.sentiment.scorer import Scorer, label_of
from sniperbot.analytics.sentiment.subjects import SubjectExtractor
from sniperbot.analytics.sentiment.windows import BucketState, Windows, post_key
from sniperbot.config import decode_config
from sniperbot.topology import analysis_subtree
from tests.conftest import FAST_CONFIG

SAMPLE = Path(__file__).parent / "data" / "sentiment_sample.jsonl"
S = 1_000_000_000  # ns per second
T0 = 1_700_000_000 * S  # a bucket boundary for 60 s buckets (1_700_000_000 = 60 * 28_333_333 + 20)
T0 -= 20 * S


# -- the scorer ---------------------------------------------------------------------------------------


def test_ours_beats_plain_vader_and_the_majority_class_on_the_labelled_sample() -> None:
    sample = load_sample(SAMPLE)
    assert len(sample) >= 200
    results = compare(sample)
    ours, vader, majority = results["ours"], results["vader"], results["majority"]
    # Margins, not just ">": the crypto vocabulary is what a trader's posts are written in.
    assert ours.accuracy >= vader.accuracy + 0.2, results
    assert ours.macro_f1 >= vader.macro_f1 + 0.2, results
    assert ours.accuracy > majority.accuracy and ours.macro_f1 > majority.macro_f1, results


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("$PEPE to the moon 🚀🚀", "positive"),  # emoji read through VADER's descriptions ("rocket")
        ("got rugged, dev pulled the liquidity", "negative"),
        ("this is a honeypot, you cannot sell", "negative"),
        ("wagmi", "positive"),
        ("ngmi", "negative"),  # plain VADER reads "ngmi lol" as positive
        ("stay away, classic pump and dump", "negative"),  # the phrase, not "pump" (+)
        ("buy the dip", "positive"),
        ("📉📉📉", "negative"),
        ("Ethereum upgrade scheduled for Thursday", "neutral"),
    ],
)
def test_crypto_vocabulary(text: str, label: str) -> None:
    assert label_of(Scorer().score(text)) == label


def test_negation_still_applies_to_crypto_words() -> None:
    scorer = Scorer()
    assert scorer.score("I am bullish on ETH") > 0.3
    assert scorer.score("I am not bullish on ETH") < 0


# -- subjects ---------------------------------------------------------------------------------------


@pytest.fixture
def extractor() -> SubjectExtractor:
    return SubjectExtractor(tickers=["BTC", "ETH", "SOL", "PEPE", "ONE", "OP"], aliases={"pepe coin": "PEPE"})


@pytest.mark.parametrize(
    ("text", "subjects"),
    [
        ("$BTC and $wif pumping", {"BTC", "WIF"}),  # any cashtag
        ("SOL is pumping", {"SOL"}),  # a known ticker, bare, in capitals
        ("the solution is SOLID", set()),  # inside a word
        ("stake it as mSOL or jitoSOL", set()),  # other tokens whose names end in a ticker
        ("sol y playa", set()),  # not in capitals
        ("Sol is pumping", set()),
        ("ONE day we will make it", set()),  # an ambiguous ticker needs its cashtag
        ("$ONE is pumping", {"ONE"}),
        ("OP said so", set()),  # 2 letters: never bare
        ("THIS IS THE BEST DAY FOR SOL HOLDERS", set()),  # shouting: capitals say nothing
        ("XYZ is pumping", set()),  # bare, but not a known ticker
        ("Bitcoin, ether and Solana", {"BTC", "ETH", "SOL"}),  # common names, any case
        ("pepe coin mooning", {"PEPE"}),  # a configured alias, a phrase
        ("read https://ethereum.org/en/ for more", set()),  # a site is not a mention
        ("paid US$100 and $5k for $100 of it", set()),  # amounts are not cashtags
        ("$BTC $BTC BTC bitcoin", {"BTC"}),  # once per post
        ("$BTC $ETH $SOL $PEPE $WIF", {"BTC", "ETH", "SOL", "PEPE", "WIF"}),  # 5: still mentions
        ("gems: $BTC $ETH $SOL $PEPE $WIF $BONK", set()),  # 6: a list, not a mention of any
    ],
)
def test_subject_rules(extractor: SubjectExtractor, text: str, subjects: set[str]) -> None:
    assert extractor.subjects(text) == subjects


def test_chain_addresses(extractor: SubjectExtractor) -> None:
    checksummed = "0xde0B295669a9FD93d5F28D9Ec85E40f4cb697BAe"
    mint = "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263"
    # Lower case is written as the chain writes it (EIP-55); a Solana mint as written, even in a link.
    assert extractor.subjects(f"new pair {checksummed.lower()}") == {checksummed}
    assert extractor.subjects(f"chart: https://dexscreener.com/solana/{mint}") == {mint}
    # A wrong checksum (one letter's case flipped) is a typo or a forgery: dropped.
    assert extractor.subjects("0xDe0B295669a9FD93d5F28D9Ec85E40f4cb697BAe") == set()
    # A transaction hash (64 hex digits) is not an address; nor a 32+ char base58 string not 32 bytes long.
    assert extractor.subjects("tx 0x" + "ab" * 32) == set()
    assert extractor.subjects("1" * 40) == set()


def test_the_node_passes_its_traded_assets_as_known_tickers() -> None:
    config = decode_config(FAST_CONFIG + '[[analysers]]\nkind = "sentiment"\nid = "sentiment"\n')
    analysis = analysis_subtree(config)
    assert analysis is not None
    (aggregator,) = analysis.children
    assert aggregator.id == "analyser.sentiment" and aggregator.args["traded"] == ["BTC", "ETH"]


def test_aliases_can_remove_a_default() -> None:
    assert SubjectExtractor(aliases={"ether": ""}).subjects("ether and bitcoin") == {"BTC"}


# -- windows ------------------------------------------------------------------------------------------


def _windows(**kw: object) -> Windows:
    settings: dict[str, object] = {"bucket_s": 60, "windows_s": (300,), "z_history": 6, "min_history": 4}
    settings.update(kw)
    return Windows(**settings)  # type: ignore[arg-type]


def _post(w: Windows, n: int, subject: str, score: float, at_ns: int, now_ns: int) -> None:
    for i in range(n):
        w.add(post_key("x", f"{subject}-{at_ns}-{i}"), {subject}, score, 1.0, "x", at_ns, now_ns)


def test_window_mean_is_engagement_weighted_and_counts_are_not() -> None:
    w = _windows()
    now = T0 + 250 * S
    w.add(post_key("reddit", "a"), {"BTC"}, 0.8, 1.0, "reddit", now - 10 * S, now)
    w.add(post_key("x", "b"), {"BTC"}, -0.4, 3.0, "x", now - 5 * S, now)
    (stats,) = w.stats("BTC", now)
    assert stats.count == 2
    assert stats.sentiment == pytest.approx((0.8 * 1 + -0.4 * 3) / 4)
    assert stats.sources == ("reddit", "x")
    assert stats.confidence == pytest.approx(2 / 12)


def test_duplicates_and_posts_beyond_the_horizon_are_not_counted() -> None:
    w = _windows()
    now = T0 + 250 * S
    key = post_key("reddit", "t3_abc")
    assert w.add(key, {"BTC"}, 0.5, 1.0, "r1", now, now) is not None
    assert w.add(key, {"BTC"}, 0.5, 1.0, "r2", now, now) is None  # same post from another scanner
    assert w.add(post_key("reddit", "old"), {"BTC"}, 0.5, 1.0, "r1", now - 3600 * S, now) is None
    assert w.stats("BTC", now)[0].count == 1


def test_posts_are_bucketed_by_when_they_were_posted_and_windows_roll() -> None:
    w = _windows()
    now = T0 + 10 * 60 * S + 30 * S
    _post(w, 3, "BTC", 0.5, now - 9 * 60 * S, now)  # posted 9 minutes ago: outside the 5 min window
    _post(w, 2, "BTC", 0.5, now - 60 * S, now)
    _post(w, 1, "BTC", 0.5, now + 3600 * S, now)  # a platform clock ahead of ours: counted now
    assert w.stats("BTC", now)[0].count == 3
    assert w.stats("BTC", now + 5 * 60 * S)[0].count == 0  # rolled out
    assert "BTC" not in w.active(now + 5 * 60 * S)


def test_mentions_z_against_its_own_history() -> None:
    w = _windows()
    start = T0  # observation starts here; 6 history windows of 5 minutes, then the current one
    w.observe(start)
    counts = [4, 6, 5, 3, 7, 5]  # mean 5, sample std sqrt(2)
    for k, c in enumerate(counts):
        _post(w, c, "SOL", 0.1, start + k * 300 * S + 10 * S, start + k * 300 * S + 10 * S)
    now = start + 6 * 300 * S + 4 * 60 * S  # the current window: its last bucket just opened
    _post(w, 20, "SOL", 0.1, now, now)
    (stats,) = w.stats("SOL", now)
    assert stats.history == 6 and stats.count == 20
    coverage = 4 / 5  # 4 full buckets + the open one, 0 s into it
    expected, sigma = 5 * coverage, max((2 * coverage) ** 0.5, (5 * coverage) ** 0.5)
    assert stats.z == pytest.approx((20 - expected) / sigma)
    assert stats.z_confidence == 1.0


def test_no_z_score_without_enough_observed_history() -> None:
    w = _windows()
    w.observe(T0)  # the analyser started here: windows before it are unknown, not zeros
    now = T0 + (3 * 300 + 4 * 60 + 10) * S  # 3 whole windows observed before the current one
    _post(w, 50, "PEPE", 0.9, now, now)
    (stats,) = w.stats("PEPE", now)
    assert stats.history == 3 and stats.z is None  # min_history = 4


def test_a_quiet_history_does_not_make_one_mention_infinite() -> None:
    w = _windows()
    w.observe(T0)
    now = T0 + 7 * 300 * S + 299 * S
    _post(w, 1, "WIF", 0.0, now, now)
    (stats,) = w.stats("WIF", now)
    assert stats.history == 6 and stats.z == pytest.approx(1.0, abs=0.01)  # Poisson floor: sigma >= 1


def test_journal_form_round_trips() -> None:
    w = _windows()
    now = T0 + 100 * S
    _post(w, 2, "BTC", 0.4, now, now)
    bucket = w.bucket_of(now)
    state = w.bucket_state(bucket)
    assert state is not None
    raw = msgspec.msgpack.encode(state)
    restored = _windows()
    restored.restore(bucket, msgspec.msgpack.decode(raw, type=BucketState))
    assert restored.stats("BTC", now) == w.stats("BTC", now)
    assert restored.seen.keys() == w.seen.keys()


# -- config ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ({"windows_s": [300, 90]}, "windows_s[1]: 90 is not a positive multiple of bucket_s = 60"),
        ({"windows_s": []}, "windows_s: at least one window"),
        ({"min_history": 30}, "min_history: 30 is more than z_history = 24"),
        ({"sources": ["ok", "bad id"]}, "sources[1]: 'bad id' is not a valid id"),
    ],
)
def test_config_errors_name_the_field(section: dict[str, object], error: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=error.replace("[", r"\[").replace("]", r"\]")):
        msgspec.convert({"kind": "sentiment", "id": "sentiment", **section}, AnalyserConfig)
