"""Which subjects a post is about: cashtags, known tickers, common names, chain token addresses.

Precision over recall: a post counted against the wrong asset is worse than a post missed (a
strategy would act on a mention spike that is not there). The rules, in order:

1. **Cashtags** (``$BTC``, ``$pepe``): ``$`` then a letter then 1-9 letters or digits, not glued to a
   word or a number on either side (``US$100``, ``$5k`` and ``$100`` are amounts, not tickers). Any
   cashtag counts: writing one is the author saying "this is a ticker". A cashtag spelling a common
   name (``$bitcoin``) maps through the aliases.
2. **Bare tickers** (``BTC``, ``PEPE``): only tickers *known* to this analyser (the configured
   ``universe`` and the node's traded assets, ``subject_of`` of each symbol), only written in upper
   case as a whole word (``SOL`` in "solution", "Sol" or "sol" never match), at least 3 characters, not
   in :data:`AMBIGUOUS_TICKERS` (upper-case English words such as ``ONE``, ``GAS``, ``NEAR``: those need
   a cashtag), and not in a shouted post (half or more of its 4+ words in capitals: there capitals say
   nothing).
3. **Common names** (``bitcoin``, ``ether``, ``Solana``): whole words (or phrases), any case, from
   :data:`DEFAULT_ALIASES` plus the configured ``aliases`` (which may add names or remove a default by
   mapping it to ``""``). Only names that are unambiguous in English are defaults: ``sol`` (Spanish
   "sun"), ``link``, ``dot``, ``near``, ``avalanche`` are not.
4. **Token addresses**: EVM ``0x`` + 40 hex digits (an all-lower or all-upper address is written in its
   EIP-55 checksum form, as the chain and the pool watcher write it; a mixed-case address with a wrong
   checksum is a typo or a forgery and is dropped; 64 hex digits are a transaction hash, not matched),
   and Solana base58 strings of 32-44 characters that decode to exactly 32 bytes (kept as written:
   base58 is case-sensitive). Addresses are looked for in links too (``dexscreener.com/solana/<mint>``
   is how tokens are shared); names and tickers are not (``ethereum.org`` is a site, not a mention).

A post is about each subject it names once, however many times it names it; a post naming more than
``max_subjects`` (default 5) subjects is a list (a price table, a shill list, a spam wall of cashtags),
not a mention of any of them, and counts for none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

from eth_utils import is_checksum_address, to_checksum_address

#: Upper-case words that are also tickers: never matched bare, only as a cashtag.
AMBIGUOUS_TICKERS: Final = frozenset(
    {
        "ONE", "GAS", "NEAR", "FOR", "THE", "AND", "ALL", "ANY", "NOW", "NEW", "CAN", "GET", "BIG", "HOT",
        "FUN", "WIN", "RUN", "SUN", "KEY", "MOON", "FLOW", "MASK", "ROSE", "SAND", "GOOD", "BEST", "FREE",
        "REAL", "TRUE", "LOVE", "HOPE", "BOND", "JUST", "SAFE", "GOLD", "DOGS", "CAT", "PEOPLE", "MEME",
        "ATH", "FUD", "FOMO", "HODL", "DYOR", "NFA", "CEO", "SEC", "ETF", "API", "USD", "EUR", "LFG",
    }
)  # fmt: skip

#: Common names (lower case, whole words) -> subject. Only names unambiguous in English posts.
DEFAULT_ALIASES: Final[Mapping[str, str]] = {
    "bitcoin": "BTC",
    "btc": "BTC",
    "ether": "ETH",
    "ethereum": "ETH",
    "eth": "ETH",
    "solana": "SOL",
    "dogecoin": "DOGE",
    "ripple": "XRP",
    "xrp": "XRP",
    "cardano": "ADA",
    "litecoin": "LTC",
    "chainlink": "LINK",
    "polkadot": "DOT",
    "binance coin": "BNB",
    "bnb": "BNB",
}

MIN_BARE_TICKER: Final = 3
MAX_SUBJECTS: Final = 5
_B58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX: Final = {c: i for i, c in enumerate(_B58_ALPHABET)}

_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{1,9})(?![\w$])")
_UPPER_WORD = re.compile(r"(?<![\w$])([A-Z][A-Z0-9]{1,9})(?![\w])")
_WORD = re.compile(r"[A-Za-z]{2,}")
_EVM = re.compile(r"(?<![0-9A-Za-z])0x[0-9a-fA-F]{40}(?![0-9A-Za-z])")
_SOLANA = re.compile(rf"(?<![0-9A-Za-z])[{_B58_ALPHABET}]{{32,44}}(?![0-9A-Za-z])")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)


def b58decode(text: str) -> bytes:
    """Base58 (Bitcoin alphabet, as Solana uses) to bytes; KeyError on a character outside it."""
    n = 0
    for c in text:
        n = n * 58 + _B58_INDEX[c]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def evm_subject(address: str) -> str | None:
    """The EIP-55 form of an EVM address, or None when its mixed case is not a valid checksum."""
    digits = address[2:]
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(address):
        return None
    return str(to_checksum_address(address.lower()))


class SubjectExtractor:
    """Finds the subjects of a post's text by the module's rules."""

    def __init__(
        self,
        tickers: Iterable[str] = (),
        aliases: Mapping[str, str] | None = None,
        ambiguous: Iterable[str] = (),
        max_subjects: int = MAX_SUBJECTS,
    ) -> None:
        self.max_subjects = max_subjects
        self.ambiguous = AMBIGUOUS_TICKERS | {t.upper() for t in ambiguous}
        self.tickers = frozenset(
            t.upper() for t in tickers if len(t) >= MIN_BARE_TICKER and t.upper() not in self.ambiguous
        )
        merged = {**DEFAULT_ALIASES, **{k.lower(): v.upper() for k, v in (aliases or {}).items()}}
        self.aliases = {name: subject for name, subject in merged.items() if subject}
        # Longest names first, so "binance coin" wins over a shorter name inside it.
        names = sorted(self.aliases, key=len, reverse=True)
        alternatives = "|".join(r"\s+".join(map(re.escape, n.split())) for n in names)
        self._names = re.compile(rf"(?<![\w$])({alternatives})(?![\w])", re.IGNORECASE) if names else None

    def subjects(self, text: str) -> set[str]:
        """Every subject ``text`` names (see the module docstring for the rules)."""
        found: set[str] = set()
        for match in _EVM.finditer(text):
            if (subject := evm_subject(match.group(0))) is not None:
                found.add(subject)
        for match in _SOLANA.finditer(text):
            candidate = match.group(0)
            try:
                if len(b58decode(candidate)) == 32:
                    found.add(candidate)
            except KeyError:  # pragma: no cover - the pattern admits only the alphabet
                continue
        lowered = text.lower()
        words = _URL.sub(" ", text) if "://" in text or "www." in lowered else text
        if "$" in words:
            for match in _CASHTAG.finditer(words):
                tag = match.group(1)
                found.add(self.aliases.get(tag.lower(), tag.upper()))
        if self.tickers:
            bare = {m.group(1) for m in _UPPER_WORD.finditer(words)} & self.tickers
            if bare and not self._shouted(words):
                found.update(bare)
        if self._names is not None:
            for match in self._names.finditer(words):
                found.add(self.aliases[" ".join(match.group(1).lower().split())])
        return found if len(found) <= self.max_subjects else set()

    @staticmethod
    def _shouted(text: str) -> bool:
        """Whether half or more of the post's 4+ words are in capitals (capitals then say nothing)."""
        words = _WORD.findall(text)
        if len(words) < 4:
            return False
        return sum(w.isupper() for w in words) * 2 >= len(words)
