"""Measuring a scorer on a labelled sample: accuracy and macro-F1 against the plain baselines.

The sample is JSON lines ``{"id", "text", "label"}`` with ``label`` one of ``positive``, ``negative``,
``neutral`` (``tests/analytics/data/sentiment_sample.jsonl`` ships with the tests; its README says how it
was labelled). Three predictors are compared: the majority class (what a scorer must beat to say
anything), plain VADER, and ours (VADER with the crypto lexicon); a score becomes a class with VADER's
thresholds (:func:`~sniperbot.analytics.sentiment.scorer.label_of`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sniperbot.analytics.sentiment.scorer import LABELS, Scorer, label_of


@dataclass(frozen=True)
class Example:
    """One labelled post."""

    text: str
    label: str


@dataclass(frozen=True)
class Metrics:
    """How a predictor did on a sample."""

    accuracy: float
    macro_f1: float
    n: int


def load_sample(path: Path) -> list[Example]:
    """The labelled sample at ``path``; ValueError naming the line of a bad entry."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            text, label = entry["text"], entry["label"]
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{number}: not a {{text, label}} object ({e})") from None
        if label not in LABELS:
            raise ValueError(f"{path}:{number}: label {label!r} is not one of {', '.join(LABELS)}")
        out.append(Example(text=text, label=label))
    return out


def metrics(truth: Sequence[str], predicted: Sequence[str]) -> Metrics:
    """Accuracy and macro-F1 (the unweighted mean of each class's F1; 0 for a class never right)."""
    pairs = list(zip(truth, predicted, strict=True))
    accuracy = sum(t == p for t, p in pairs) / len(pairs) if pairs else 0.0
    f1s = []
    for label in LABELS:
        tp = sum(t == p == label for t, p in pairs)
        fp = sum(p == label and t != label for t, p in pairs)
        fn = sum(t == label and p != label for t, p in pairs)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return Metrics(accuracy=accuracy, macro_f1=sum(f1s) / len(f1s), n=len(pairs))


def evaluate(predict: Callable[[str], str], sample: Sequence[Example]) -> Metrics:
    """``predict``'s metrics on ``sample``."""
    return metrics([e.label for e in sample], [predict(e.text) for e in sample])


def compare(sample: Sequence[Example]) -> dict[str, Metrics]:
    """Majority class, plain VADER and ours on ``sample``."""
    majority = Counter(e.label for e in sample).most_common(1)[0][0]
    plain, ours = Scorer(crypto=False), Scorer()
    return {
        "majority": evaluate(lambda _text: majority, sample),
        "vader": evaluate(lambda text: label_of(plain.score(text)), sample),
        "ours": evaluate(lambda text: label_of(ours.score(text)), sample),
    }
