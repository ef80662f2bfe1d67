"""Banking77 accuracy and latency of each local NLU backend.

    python -m bench.nlu_banking77 [--data DIR] [--backends local,embeddings] [--seeds 3]
    python -m bench.nlu_banking77 --validate [--seeds 6]

Backend ``embeddings+ft`` is the embeddings backend with its encoder fine-tuned on the
training examples first (extra ``careline[finetune]``; minutes per training run).

For each backend: test accuracy after training on the full training set, mean accuracy
over ``--seeds`` runs that train on ``--shots`` examples per intent, and per-utterance
latency (p50/p99 of single ``classify`` calls on test utterances). A backend whose extra is
not installed is reported as skipped.

``--validate`` is how hyper-parameters are chosen: it never reads test.csv. The full regime
trains on a stratified 80% of train.csv and scores the other 20%; the few-shot regime draws
``--seeds`` samples of ``--shots`` examples per intent from train.csv (seeds 101, 102, ...,
not the benchmark's 0, 1, 2) and scores 2,000 other training rows for each.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from dialogs.nlu.local import BACKENDS, LocalNLU
from dialogs.nlu.training import Example, load_examples

#: The fine-tuned configuration's row name: the embeddings backend with a tuned encoder.
TUNED = "embeddings+ft"


def train_nlu(examples: list[Example], backend: str) -> LocalNLU:
    if backend == TUNED:
        from dialogs.nlu.finetune import FineTuning

        return LocalNLU.train(examples, backend="embeddings", threshold=0.0, finetune=FineTuning())
    return LocalNLU.train(examples, backend=backend, threshold=0.0)


DEFAULT_DATA = Path(__file__).resolve().parent / "data" / "banking77"


def few_shot(examples: list[Example], shots: int, seed: int) -> list[Example]:
    by_intent: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_intent[example.intent].append(example)
    rng = random.Random(seed)
    return [e for intent in sorted(by_intent) for e in rng.sample(by_intent[intent], shots)]


def validation_splits(
    train: list[Example], shots: int, seeds: int
) -> list[tuple[str, list[Example], list[Example]]]:
    """(name, fit on, score on) pairs drawn from the training set alone (see ``--validate``)."""
    by_intent: dict[str, list[Example]] = defaultdict(list)
    for example in train:
        by_intent[example.intent].append(example)
    rng = random.Random(1234)
    fit, held_out = [], []
    for intent in sorted(by_intent):
        rows = by_intent[intent][:]
        rng.shuffle(rows)
        cut = max(1, round(len(rows) * 0.2))
        held_out += rows[:cut]
        fit += rows[cut:]
    splits = [("full", fit, held_out)]
    for seed in range(101, 101 + seeds):
        rng = random.Random(seed)
        sample = [e for intent in sorted(by_intent) for e in rng.sample(by_intent[intent], shots)]
        chosen = set(map(id, sample))
        rest = [e for e in train if id(e) not in chosen]
        rng.shuffle(rest)
        splits.append((f"{shots}-shot seed {seed}", sample, rest[:2000]))
    return splits


def validate(backend: str, train: list[Example], shots: int, seeds: int) -> None:
    scores = {}
    for name, fit, held_out in validation_splits(train, shots, seeds):
        scores[name] = accuracy(train_nlu(fit, backend), held_out)
        print(f"{backend:<11} {name:<18} {scores[name]:.2%}", flush=True)
    few = [score for name, score in scores.items() if name != "full"]
    mean_few = statistics.mean(few)
    print(f"{backend:<11} validation: full {scores['full']:.2%}, {shots}-shot {mean_few:.2%}")


def accuracy(nlu: LocalNLU, test: list[Example]) -> float:
    predicted = nlu.predict([example.text for example in test])
    return sum(p.intent == e.intent for p, e in zip(predicted, test, strict=True)) / len(test)


def latency_ms(nlu: LocalNLU, texts: list[str]) -> tuple[float, float]:
    nlu.classify(texts[0])  # warm-up: first call pays for lazy set-up
    timings = []
    for text in texts:
        started = time.perf_counter()
        nlu.classify(text)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return statistics.median(timings), timings[min(len(timings) - 1, int(len(timings) * 0.99))]


def remember_embeddings(threads: int = 0) -> None:
    """Embed each text once per run in batches: few-shot sets are subsets of the training
    set, and the test set is classified four times."""
    from dialogs.nlu import embeddings

    class Remembering(embeddings.MiniLMEncoder):
        memo: dict[str, Any] = {}

        def encode(self, texts: Any, progress: Any = None, *, with_max: bool = False) -> Any:
            if not with_max or len(texts) == 1:  # single texts: the latency being measured
                return super().encode(texts, progress, with_max=with_max)
            import numpy as np

            missing = [t for t in dict.fromkeys(texts) if t not in self.memo]
            if missing:
                vectors = super().encode(missing, progress, with_max=True)
                self.memo.update(zip(missing, vectors, strict=True))
            if not texts:
                return np.zeros((0, 2 * self.dimensions), dtype=np.float32)
            return np.vstack([self.memo[t] for t in texts])

    embeddings.use_encoder(Remembering(threads))


def bench_backend(
    backend: str, train: list[Example], test: list[Example], shots: int, seeds: int
) -> dict[str, Any]:
    started = time.perf_counter()
    nlu = train_nlu(train, backend)
    train_seconds = time.perf_counter() - started
    full = accuracy(nlu, test)
    p50, p99 = latency_ms(nlu, [example.text for example in test[:1000]])
    few = [
        accuracy(train_nlu(few_shot(train, shots, seed), backend), test) for seed in range(seeds)
    ]
    return {
        "full": full,
        "few": statistics.mean(few),
        "few_seeds": few,
        "train_s": train_seconds,
        "p50_ms": p50,
        "p99_ms": p99,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="train.csv + test.csv")
    parser.add_argument("--backends", default=",".join([*BACKENDS, TUNED]), help="comma-separated")
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=0, help="onnxruntime threads (0: one per core)"
    )
    parser.add_argument(
        "--validate", action="store_true", help="score on held-out training rows, not test.csv"
    )
    args = parser.parse_args()

    train = load_examples(args.data / "train.csv")
    if args.validate:
        for backend in args.backends.split(","):
            if backend in {"embeddings", TUNED}:
                remember_embeddings(args.threads)
            validate(backend, train, args.shots, args.seeds)
        return
    test = load_examples(args.data / "test.csv")
    print(
        f"Banking77: {len(train)} train, {len(test)} test, {len({e.intent for e in train})} intents"
    )
    header = (
        f"{'backend':<11} {'full':>7} {f'{args.shots}-shot':>8} {'(per seed)':>22}"
        f" {'train s':>8} {'p50 ms':>7} {'p99 ms':>7}"
    )
    print(header)
    for backend in args.backends.split(","):
        if backend in {"embeddings", TUNED}:
            try:
                remember_embeddings(args.threads)
                if backend == TUNED:
                    from dialogs.nlu.finetune import require_finetune

                    require_finetune()
            except ImportError as error:
                print(f"{backend:<11} skipped: {error}")
                continue
        r = bench_backend(backend, train, test, args.shots, args.seeds)
        spread = "(" + " ".join(f"{score:.2%}" for score in r["few_seeds"]) + ")"
        print(
            f"{backend:<11} {r['full']:>7.2%} {r['few']:>8.2%} {spread:>22}"
            f" {r['train_s']:>8.1f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
