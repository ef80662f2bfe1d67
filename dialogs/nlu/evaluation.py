"""How well a classifier does on labelled test data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from dialogs.nlu.base import OUT_OF_SCOPE
from dialogs.nlu.local import LocalNLU
from dialogs.nlu.training import Example


@dataclass(frozen=True, slots=True)
class IntentScore:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Accuracy and macro-F1 over all test rows; an ``oos`` row counts as right when the
    classifier says out of scope, and ``oos_recall`` is the share of those it caught."""

    count: int
    accuracy: float
    macro_f1: float
    per_intent: dict[str, IntentScore] = field(default_factory=dict)
    oos_recall: float | None = None
    #: The top intent's accuracy, nothing refused (what bench.nlu_banking77 reports): the
    #: threshold's price is the gap to `accuracy`.
    top_accuracy: float | None = None


def evaluate(nlu: LocalNLU, examples: Sequence[Example]) -> Evaluation:
    """Classify every example in one batch and score the predictions, with the classifier's
    out-of-scope threshold and without it (its top intent always)."""
    truth = [example.intent for example in examples]
    texts = [example.text for example in examples]
    predicted = [parse.intent for parse in nlu.predict(texts)]
    top = [parse.intent for parse in nlu.with_threshold(0.0).predict(texts)]
    right = sum(t == p for t, p in zip(truth, top, strict=True))
    return replace(score(truth, predicted), top_accuracy=right / len(truth))


def score(truth: Sequence[str], predicted: Sequence[str]) -> Evaluation:
    """Metrics for parallel lists of true and predicted intents."""
    from sklearn.metrics import precision_recall_fscore_support

    if not truth:
        raise ValueError("nothing to evaluate: the test set is empty")
    labels = sorted(set(truth))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    per_intent = {
        label: IntentScore(float(p), float(r), float(f), int(s))
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    }
    right = sum(t == p for t, p in zip(truth, predicted, strict=True))
    out_of_scope = [p for t, p in zip(truth, predicted, strict=True) if t == OUT_OF_SCOPE]
    oos_recall = (
        sum(p == OUT_OF_SCOPE for p in out_of_scope) / len(out_of_scope) if out_of_scope else None
    )
    return Evaluation(
        count=len(truth),
        accuracy=right / len(truth),
        macro_f1=sum(score.f1 for score in per_intent.values()) / len(per_intent),
        per_intent=per_intent,
        oos_recall=oos_recall,
    )
