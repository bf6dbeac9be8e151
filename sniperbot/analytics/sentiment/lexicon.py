"""The crypto vocabulary added to VADER's lexicon, and the phrases folded into one token first.

**Scale.** VADER's lexicon rates each word from -4 (most negative) to +4 (most positive): the mean
of ten human raters, where ±1 is "slightly", ±2 "clearly" and ±3 "strongly" positive or negative
(Hutto & Gilbert, ICWSM 2014). Our weights sit on that scale, chosen by the author for what a word
says *about the price or the holders of a coin*, since that is what a trader reads a post for:

* ±3 and more: an event that destroys (or makes) the holders' money and is not a matter of opinion:
  ``rugged``, ``honeypot``, ``rekt``, ``depeg``, ``insolvent``; no word of joy reaches it, since euphoria
  is cheap on social media and losses are not.
* ±2.5: the community's explicit verdicts on direction: ``bullish``/``bearish``, ``moon``, ``ATH``,
  ``wagmi``/``ngmi``, ``liquidated``.
* ±1.5 to ±2: strong but hedged or slangy: ``rally``, ``breakout``, ``lambo``, ``gem``, ``shill``,
  ``bagholder``, ``dumping``.
* ±1 and less: words with a weak or two-sided reading: ``pump`` (bullish to a holder, a red flag in
  "pump and dump", which is folded into one negative token first), ``dip`` (a loss, or a chance in
  "buy the dip", folded too), ``FUD`` (negative talk, but often quoted to dismiss it), ``FOMO``.

Words VADER already rates for general English are overridden only where crypto usage differs:
``dump`` and ``exploit`` (a hack, not "make use of"), ``hacked``, ``crash``, and ``fire`` (the 🔥 emoji,
which VADER reads as the word "fire", is praise on crypto social media, not a disaster).

**Emoji.** VADER replaces each emoji by its description (🚀 -> "rocket", 🌕 -> "full moon",
📉 -> "chart decreasing", 💎 -> "gem stone") before scoring; the words those descriptions use in
crypto posts are rated here (``rocket``, ``moon``, ``gem``, ``increasing``, ``decreasing``, ``clown``,
``skull``), so emoji count exactly as VADER counts them, with crypto weights.

**Phrases.** VADER scores single tokens; the multi-word expressions below are rewritten to one
token (case-insensitively, on word boundaries) before scoring, so "pump and dump" is not read as
"pump" (+) "dump" (-).
"""

from __future__ import annotations

import re
from typing import Final

#: Word (lower case) -> valence on VADER's -4..+4 scale (see the module docstring for the rationale).
CRYPTO_LEXICON: Final[dict[str, float]] = {
    # direction verdicts
    "bullish": 2.5,
    "bearish": -2.5,
    "moon": 2.5,
    "mooning": 2.8,
    "moonshot": 2.0,
    "rocket": 2.0,  # 🚀
    "ath": 2.5,  # all-time high
    "wagmi": 2.5,  # "we're all gonna make it"
    "ngmi": -2.5,  # "not gonna make it"
    "lfg": 2.2,  # "let's f-ing go"
    "bullrun": 2.3,
    "bullmarket": 1.8,
    "bearmarket": -1.8,
    "rally": 2.0,
    "rallying": 2.0,
    "breakout": 1.8,
    "pump": 1.0,
    "pumping": 1.8,
    "pumped": 1.5,
    "pamp": 1.5,
    "increasing": 1.0,  # 📈 chart increasing
    "decreasing": -1.0,  # 📉 chart decreasing
    "undervalued": 1.5,
    "overvalued": -1.2,
    "10x": 2.0,
    "100x": 2.2,
    "1000x": 2.2,
    "lambo": 2.0,
    "gem": 2.0,  # 💎 gem stone, "hidden gem"
    "hodl": 1.5,
    "hodling": 1.5,
    "diamondhands": 1.8,
    "paperhands": -1.2,
    "btfd": 1.2,  # "buy the dip"
    "fomo": 1.0,
    "airdrop": 1.0,
    "listing": 1.2,
    "listed": 1.2,
    "partnership": 1.2,
    "adoption": 1.2,
    "fire": 1.0,  # 🔥 (VADER: -1.4, a disaster in general English)
    # losses and red flags
    "dump": -2.0,  # VADER: -1.6
    "dumping": -2.0,
    "dumped": -2.0,
    "pumpanddump": -3.0,
    "dip": -1.0,
    "bleeding": -2.0,
    "crash": -2.5,  # VADER: -1.7
    "crashing": -2.5,
    "crashed": -2.5,
    "plunge": -2.0,
    "plunging": -2.2,
    "tanking": -2.2,
    "selloff": -1.8,
    "capitulation": -2.0,
    "liquidated": -2.5,
    "liquidation": -1.8,
    "liquidations": -1.8,
    "rekt": -2.8,
    "rug": -3.0,
    "rugged": -3.2,
    "rugpull": -3.4,
    "rugpulled": -3.4,
    "scam": -2.7,  # as VADER
    "scammers": -2.7,
    "honeypot": -3.2,
    "exploit": -2.5,  # VADER: -0.4 ("make use of")
    "exploited": -2.8,
    "hacked": -2.8,  # VADER: -1.7
    "hack": -2.5,
    "drained": -2.5,
    "depeg": -2.8,
    "depegged": -3.0,
    "insolvent": -3.0,
    "delisted": -2.5,
    "delisting": -2.3,
    "fud": -1.2,  # VADER: -1.1
    "shill": -1.5,
    "shilling": -1.5,
    "shitcoin": -1.8,
    "bagholder": -2.0,
    "bagholders": -2.0,
    "clown": -1.5,  # 🤡
    "skull": -1.0,  # 💀
    "cope": -1.0,
    "outage": -1.5,
}

#: Multi-word expressions (regex, case-insensitive) -> the single token they are scored as.
CRYPTO_PHRASES: Final[tuple[tuple[str, str], ...]] = (
    (r"pump\s*(?:and|&|n)\s*dump", "pumpanddump"),
    (r"rug\s*-?\s*pull(?:ed)?", "rugpull"),
    (r"all[\s-]+time[\s-]+highs?", "ath"),
    (r"to\s+the\s+moon", "moon"),
    (r"buy(?:ing)?\s+the\s+dip", "btfd"),
    (r"bull\s+run", "bullrun"),
    (r"bull\s+market", "bullmarket"),
    (r"bear\s+market", "bearmarket"),
    (r"diamond\s+hands", "diamondhands"),
    (r"paper\s+hands", "paperhands"),
    (r"sell[\s-]+off", "selloff"),
    (r"exit\s+scam", "rugpull"),
)

# One pass over the text for every phrase (a pattern per phrase would scan it once each).
_PHRASES: Final = re.compile(
    r"\b(?:" + "|".join(f"(?P<p{i}>{p})" for i, (p, _) in enumerate(CRYPTO_PHRASES)) + r")\b", re.IGNORECASE
)
_TOKENS: Final = {f"p{i}": token for i, (_, token) in enumerate(CRYPTO_PHRASES)}


def fold_phrases(text: str) -> str:
    """``text`` with every crypto phrase replaced by its one token (see :data:`CRYPTO_PHRASES`)."""
    return _PHRASES.sub(lambda m: _TOKENS[str(m.lastgroup)], text)
