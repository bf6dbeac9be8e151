"""Sentiment: accuracy on the labelled sample, and posts scored per second, against plain VADER.

Accuracy and macro-F1 on ``tests/analytics/data/sentiment_sample.jsonl`` (204 hand-labelled posts) of
the majority class, plain VADER and ours (VADER + the crypto lexicon). Throughput, in one run on the
same posts (the sample, cycled): plain VADER (the floor), our scorer alone (phrase folding + the bigger
lexicon), and the aggregator's whole per-post path without the bus (dedup key, subject extraction,
scoring, the windows' tallies), each as posts per second and as a ratio to the floor.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench._common import REPO, emit, parse_args
from sniperbot.analytics.sentiment.evaluate import compare, load_sample
from sniperbot.analytics.sentiment.scorer import Scorer
from sniperbot.analytics.sentiment.subjects import SubjectExtractor
from sniperbot.analytics.sentiment.windows import Windows, post_key, post_weight

SAMPLE = REPO / "tests" / "analytics" / "data" / "sentiment_sample.jsonl"


def _rate(make: Callable[[], Callable[[int, str], object]], texts: list[str], n: int) -> float:
    """Posts per second of ``make()(i, text)`` over ``n`` posts (the texts cycled), best of 3 fresh runs."""
    best = 0.0
    for _ in range(3):
        fn = make()
        start = time.perf_counter()
        for i in range(n):
            fn(i, texts[i % len(texts)])
        best = max(best, n / (time.perf_counter() - start))
    return best


def main() -> None:
    args = parse_args(__doc__ or "")
    sample = load_sample(SAMPLE)
    n = 2_000 if args.quick else 20_000
    figures: dict[str, object] = {"sample": len(sample), "posts": n}

    print(f"labelled sample: {len(sample)} posts")
    for name, m in compare(sample).items():
        figures[f"{name}_accuracy"] = round(m.accuracy, 3)
        figures[f"{name}_macro_f1"] = round(m.macro_f1, 3)
        print(f"  {name:<9} accuracy {m.accuracy:6.1%}   macro-F1 {m.macro_f1:.3f}")

    texts = [e.text for e in sample]
    plain, ours = Scorer(crypto=False), Scorer()
    extractor = SubjectExtractor(tickers=["BTC", "ETH", "SOL", "PEPE"])
    now = time.time_ns()

    def pipeline() -> Callable[[int, str], object]:
        windows = Windows(bucket_s=60, windows_s=(300, 3600), z_history=24)  # fresh: no post seen yet

        def one(i: int, text: str) -> None:
            key = post_key("x", str(i))
            if key in windows.seen:
                return
            subjects = extractor.subjects(text)
            if subjects:
                score, weight = ours.score(text), post_weight(float(i % 50))
                windows.add(key, subjects, score, weight, "x", now - i * 1_000_000, now)

        return one

    floor = _rate(lambda: lambda _i, t: plain.score(t), texts, n)
    scorer = _rate(lambda: lambda _i, t: ours.score(t), texts, n)
    full = _rate(pipeline, texts, n)
    figures.update(
        vader_posts_per_s=round(floor),
        scorer_posts_per_s=round(scorer),
        pipeline_posts_per_s=round(full),
        scorer_ratio_to_vader=round(scorer / floor, 2),
        pipeline_ratio_to_vader=round(full / floor, 2),
    )
    print(f"throughput ({n} posts, best of 3):")
    print(f"  plain VADER (floor)          {floor:>10,.0f} posts/s")
    print(f"  our scorer                   {scorer:>10,.0f} posts/s   {scorer / floor:.2f}x the floor")
    print(f"  extract + score + windows    {full:>10,.0f} posts/s   {full / floor:.2f}x the floor")
    emit("sentiment", figures)


if __name__ == "__main__":
    main()
