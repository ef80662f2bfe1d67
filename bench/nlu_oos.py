"""Calibrated abstention, the Banking77-OOS way: how well the local NLU refuses what it was
never trained on, at a threshold chosen without the test set.

    python -m bench.nlu_oos [--data DIR] [--held-out 10] [--seeds 3] [--backend local]

Per seed, ``--held-out`` of Banking77's 77 intents are out of scope: none of their rows is
trained on (threshold-only rejection, as a deployment has no examples of what customers ask
off-topic). The other intents' training rows are split 80/20 (stratified): the classifier
trains on the 80%; the threshold is chosen on the 20% together with the held-out intents'
*training* rows, as the one with the best balanced score (in-scope questions answered with
their intent + out-of-scope questions refused, halved). test.csv is read once, at the end:
in-scope accuracy (right intent and not refused) and out-of-scope recall (refused), at the
chosen threshold and at Careline's default (CARELINE_NLU_THRESHOLD), and the accuracy /
coverage curve (among the questions the classifier answers, the share answered rightly).
Medians over seeds.
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.config import Settings
from dialogs.nlu.local import LocalNLU
from dialogs.nlu.training import Example, load_examples

DATA = Path(__file__).parent / "data" / "banking77"
GRID = tuple(round(0.05 * n, 2) for n in range(1, 20))


@dataclass(frozen=True, slots=True)
class Point:
    threshold: float
    accuracy: float  # in-scope: right intent, not refused
    oos_recall: float  # out of scope: refused
    coverage: float  # in-scope: not refused
    precision: float  # in-scope, among those answered: right

    @property
    def balanced(self) -> float:
        return (self.accuracy + self.oos_recall) / 2


def point(
    predicted: Sequence[tuple[str, float]], truth: Sequence[str], absent: set[str], t: float
) -> Point:
    right = answered = inside = refused = outside = 0
    for (intent, confidence), true in zip(predicted, truth, strict=True):
        accepted = confidence >= t
        if true in absent:
            outside += 1
            refused += not accepted
        else:
            inside += 1
            answered += accepted
            right += accepted and intent == true
    return Point(
        t,
        right / max(inside, 1),
        refused / max(outside, 1),
        answered / max(inside, 1),
        right / max(answered, 1),
    )


def split(
    train: list[Example], absent: set[str], rng: random.Random
) -> tuple[list[Example], list[Example]]:
    """(fit, validation): 80/20 of each in-scope intent; every held-out row validates."""
    grouped: dict[str, list[Example]] = defaultdict(list)
    for example in train:
        grouped[example.intent].append(example)
    fit, validation = [], []
    for intent, rows in sorted(grouped.items()):
        if intent in absent:
            validation += rows
            continue
        rows = rows[:]
        rng.shuffle(rows)
        cut = int(len(rows) * 0.8)
        fit += rows[:cut]
        validation += rows[cut:]
    return fit, validation


def one_seed(
    train: list[Example], test: list[Example], seed: int, held_out: int, backend: str
) -> tuple[Point, Point, list[Point]]:
    rng = random.Random(seed)
    absent = set(rng.sample(sorted({e.intent for e in train}), held_out))
    fit, validation = split(train, absent, rng)
    assert not absent & {e.intent for e in fit}, "a held-out intent was trained on"
    nlu = LocalNLU.train(fit, backend=backend, threshold=0.0)

    def predicted(rows: Sequence[Example]) -> list[tuple[str, float]]:
        return [(p.intent, p.confidence) for p in nlu.predict([e.text for e in rows])]

    on_validation = predicted(validation)
    truth = [e.intent for e in validation]
    chosen = max(
        (point(on_validation, truth, absent, t) for t in GRID),
        key=lambda p: (p.balanced, -p.threshold),
    )
    on_test, test_truth = predicted(test), [e.intent for e in test]
    default = Settings(_env_file=None).nlu_threshold  # type: ignore[call-arg,unused-ignore]
    curve = [point(on_test, test_truth, absent, t) for t in GRID]
    return (
        point(on_test, test_truth, absent, chosen.threshold),
        point(on_test, test_truth, absent, default),
        curve,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--held-out", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--backend", default="local")
    parser.add_argument("--limit", type=int, default=0, help="rows of each file (quick runs)")
    args = parser.parse_args(argv)
    train = load_examples(args.data / "train.csv")
    test = load_examples(args.data / "test.csv")
    if args.limit:
        train = random.Random(1).sample(train, args.limit)
        test = random.Random(2).sample(test, args.limit)
    runs = [one_seed(train, test, s, args.held_out, args.backend) for s in range(args.seeds)]
    median = statistics.median
    print(f"Banking77-OOS, {args.backend}: {args.held_out} intents held out of training, ", end="")
    print(f"{args.seeds} seeds, medians; threshold-only rejection")
    print("threshold                 in-scope accuracy  out-of-scope recall")
    for name, column in (("chosen on validation", 0), ("default", 1)):
        points = [run[column] for run in runs]
        print(
            f"{name:20} {median(p.threshold for p in points):5.2f}  "
            f"{median(p.accuracy for p in points):17.1%}  "
            f"{median(p.oos_recall for p in points):19.1%}"
        )
    print("accuracy / coverage on test (in-scope questions):")
    print("threshold  coverage  accuracy of answered  out-of-scope recall")
    for index, t in enumerate(GRID):
        points = [run[2][index] for run in runs]
        print(
            f"{t:9.2f}  {median(p.coverage for p in points):8.1%}  "
            f"{median(p.precision for p in points):20.1%}  "
            f"{median(p.oos_recall for p in points):19.1%}"
        )


if __name__ == "__main__":
    main()
