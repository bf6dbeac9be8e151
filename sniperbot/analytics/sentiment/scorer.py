"""The offline lexicon scorer: VADER (``vaderSentiment``) with the crypto vocabulary of :mod:`.lexicon`.

A post's score is VADER's ``compound`` in [-1, 1]: the sum of its words' valences (with VADER's rules
for negation, boosters, "but", capitals, punctuation and emoji) squashed into [-1, 1]. It runs
offline (the lexicons ship in the wheel), costs tens of microseconds a post, and is deterministic.
:func:`label_of` turns a score into a class with VADER's published thresholds (±0.05).
"""

from __future__ import annotations

from typing import Final, Literal

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from sniperbot.analytics.sentiment.lexicon import CRYPTO_LEXICON, fold_phrases

#: VADER's published thresholds on ``compound`` (its README): >= 0.05 positive, <= -0.05 negative.
POSITIVE_AT: Final = 0.05
NEGATIVE_AT: Final = -0.05

Label = Literal["positive", "negative", "neutral"]
LABELS: Final[tuple[Label, ...]] = ("positive", "negative", "neutral")


class Scorer:
    """Scores a text in [-1, 1]: VADER plus the crypto lexicon and phrases (``crypto=False``: plain VADER)."""

    def __init__(self, crypto: bool = True) -> None:
        self.crypto = crypto
        self._vader = SentimentIntensityAnalyzer()
        if crypto:
            self._vader.lexicon.update(CRYPTO_LEXICON)

    def score(self, text: str) -> float:
        """The text's compound score in [-1, 1] (0 for an empty or wordless text)."""
        if self.crypto:
            text = fold_phrases(text)
        return float(self._vader.polarity_scores(text)["compound"])


def label_of(score: float) -> Label:
    """The class of a score, with VADER's thresholds."""
    if score >= POSITIVE_AT:
        return "positive"
    if score <= NEGATIVE_AT:
        return "negative"
    return "neutral"
