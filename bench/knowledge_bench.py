"""Grounded answers from the knowledge base: which article the bot quotes, when it abstains,
and how long finding it takes.

    python -m bench.knowledge_bench [--data DIR] [--examples 10] [--held-out 10] [--seeds 3]

The knowledge base is built from Banking77 (bench/data/banking77, CC BY 4.0): one published
article per intent, its example questions drawn from train.csv (``--examples`` per intent),
its title the intent's name. ``--held-out`` intents get no article (chosen at random per
seed): their questions are ones the knowledge base cannot answer, so the right answer is
"not sure" and a person. Questions are asked with no NLU intent, so retrieval alone decides.

Per seed:
- **validation** (never test.csv): other training rows of every intent are asked; each
  threshold of the grid gets in-scope accuracy (the right article quoted), coverage (share
  of in-scope questions answered) and out-of-scope abstention; the threshold chosen is the
  one with the best balanced score (right answers among in-scope questions + abstentions
  among out-of-scope ones, halved);
- **test**: test.csv asked once, scored at the chosen threshold and at Careline's default
  (CARELINE_KNOWLEDGE_MIN_CONFIDENCE).

Latency: one index of ``--articles`` articles (10,000 by default: each intent's examples
spread over many articles, as a real base has many near neighbours), each test question
answered once by ``KnowledgeIndex.find``; p50 and p99 in milliseconds.
Medians over seeds are printed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.config import Settings
from core.knowledge import Article, ArticleStatus, ArticleText
from core.model import utcnow
from dialogs.knowledge import Encoder, KnowledgeIndex
from dialogs.nlu.training import Example, load_examples

DATA = Path(__file__).parent / "data" / "banking77"
GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


@dataclass(frozen=True, slots=True)
class Score:
    threshold: float
    accuracy: float  # in-scope questions answered with their own intent's article
    coverage: float  # in-scope questions answered at all
    abstention: float  # out-of-scope questions not answered

    @property
    def balanced(self) -> float:
        return (self.accuracy + self.abstention) / 2


def article(number: int, intent: str, questions: Sequence[str]) -> Article:
    now = utcnow()
    title = intent.replace("_", " ").capitalize()
    text = ArticleText(
        title=title,
        body=f"{title}: what to do, step by step.",
        key=intent,
        questions=tuple(questions),
    )
    return Article(number, text, ArticleStatus.PUBLISHED, 1, now, "bench", now, "bench")


def by_intent(examples: Sequence[Example]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for example in examples:
        grouped[example.intent].append(example.text)
    return grouped


def answers(
    index: KnowledgeIndex, keys: dict[int, str], questions: Sequence[tuple[str, str]]
) -> list[tuple[str, float]]:
    """(intent of the article found, or "", confidence) for each question."""
    found = []
    for text, _ in questions:
        passage = index.find(text, "", "en")
        if passage is None:
            found.append(("", 0.0))
        else:
            found.append((keys[passage.article_id], passage.confidence))
    return found


def score(
    found: Sequence[tuple[str, float]],
    questions: Sequence[tuple[str, str]],
    present: set[str],
    threshold: float,
) -> Score:
    right = answered = inside = abstained = outside = 0
    for (key, confidence), (_, intent) in zip(found, questions, strict=True):
        answers_it = bool(key) and confidence >= threshold
        if intent in present:
            inside += 1
            answered += answers_it
            right += answers_it and key == intent
        else:
            outside += 1
            abstained += not answers_it
    return Score(
        threshold,
        right / max(inside, 1),
        answered / max(inside, 1),
        abstained / max(outside, 1),
    )


def one_seed(
    train: list[Example],
    test: list[Example],
    seed: int,
    per_intent: int,
    held_out: int,
    encoder: Encoder | None = None,
) -> tuple[Score, Score, Score]:
    rng = random.Random(seed)
    grouped = by_intent(train)
    intents = sorted(grouped)
    absent = set(rng.sample(intents, held_out))
    present = set(intents) - absent
    articles, validation, keys = [], [], {}
    for number, intent in enumerate(intents, start=1):
        rows = grouped[intent][:]
        rng.shuffle(rows)
        if intent in present:
            articles.append(article(number, intent, rows[:per_intent]))
            keys[number] = intent
        validation += [(text, intent) for text in rows[per_intent : per_intent + 20]]
    index = KnowledgeIndex(articles, 1, min_confidence=0.0, encoder=encoder)
    on_validation = answers(index, keys, validation)
    grid = [score(on_validation, validation, present, t) for t in GRID]
    chosen = max(grid, key=lambda s: (s.balanced, -s.threshold))
    asked = [(e.text, e.intent) for e in test]
    on_test = answers(index, keys, asked)
    default = Settings(_env_file=None).knowledge_min_confidence  # type: ignore[call-arg,unused-ignore]
    return (
        chosen,
        score(on_test, asked, present, chosen.threshold),
        score(on_test, asked, present, default),
    )


def latency(train: list[Example], test: list[Example], count: int) -> tuple[float, float]:
    grouped = by_intent(train)
    intents = sorted(grouped)
    rng = random.Random(7)
    articles = []
    for number in range(1, count + 1):
        intent = intents[number % len(intents)]
        articles.append(article(number, intent, rng.sample(grouped[intent], 5)))
    started = time.perf_counter()
    index = KnowledgeIndex(articles, 1)
    built = time.perf_counter() - started
    timings = []
    for example in test:
        started = time.perf_counter()
        index.find(example.text, "", "en")
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    print(f"index of {count:,} articles built in {built:.2f} s")
    return statistics.median(timings), timings[int(len(timings) * 0.99) - 1]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--examples", type=int, default=10, help="example questions per article")
    parser.add_argument("--held-out", type=int, default=10, help="intents with no article")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--limit", type=int, default=0, help="test rows (0: all), for a quick run")
    parser.add_argument(
        "--embeddings",
        action="store_true",
        help="fuse BM25 with MiniLM sentence vectors (the embeddings extra)",
    )
    args = parser.parse_args(argv)
    train = load_examples(args.data / "train.csv")
    test = load_examples(args.data / "test.csv")
    if args.limit:
        test = random.Random(0).sample(test, args.limit)
    encoder = None
    if args.embeddings:
        from dialogs.nlu.embeddings import shared_encoder

        encoder = shared_encoder().encode
    results = [
        one_seed(train, test, seed, args.examples, args.held_out, encoder)
        for seed in range(args.seeds)
    ]
    median = statistics.median
    retrieval = "BM25 fused with MiniLM sentence vectors" if encoder else "BM25"
    print(f"retrieval: {retrieval}")
    print(f"Banking77 knowledge base: {77 - args.held_out} articles of {args.examples} questions,")
    print(f"{args.held_out} intents without one; {len(test):,} test questions; {args.seeds} seeds")
    print("threshold        chosen on  in-scope right  coverage  out-of-scope abstained")
    for name, column in (("chosen", 1), ("default", 2)):
        rows = [r[column] for r in results]
        print(
            f"{name:8} {median(s.threshold for s in rows):8.2f}  "
            f"{'validation' if column == 1 else 'settings':>9}  "
            f"{median(s.accuracy for s in rows):14.1%}  {median(s.coverage for s in rows):8.1%}  "
            f"{median(s.abstention for s in rows):24.1%}"
        )
    if encoder is not None:
        return  # the latency figure is BM25's (run without --embeddings)
    p50, p99 = latency(train, test, args.articles)
    print(f"answer latency with {args.articles:,} articles: p50 {p50:.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    main()
