from __future__ import annotations

import pytest

from dialogs.nlu import OUT_OF_SCOPE, LocalNLU
from dialogs.nlu.evaluation import evaluate, score
from dialogs.nlu.training import Example


def test_out_of_scope_rows_are_right_only_when_rejected() -> None:
    truth = ["greet", "greet", "oos", "oos", "oos", "bye"]
    predicted = ["greet", "bye", "oos", "greet", "oos", "bye"]

    result = score(truth, predicted)

    assert result.count == 6
    assert result.accuracy == pytest.approx(4 / 6)
    assert result.oos_recall == pytest.approx(2 / 3)
    assert result.per_intent["greet"].recall == pytest.approx(0.5)
    assert result.per_intent[OUT_OF_SCOPE].precision == pytest.approx(1.0)
    f1s = [s.f1 for s in result.per_intent.values()]
    assert result.macro_f1 == pytest.approx(sum(f1s) / 3)


def test_without_oos_rows_there_is_no_oos_recall() -> None:
    result = score(["greet", "bye"], ["greet", "greet"])

    assert result.oos_recall is None
    assert result.accuracy == 0.5


def test_evaluates_a_classifier_on_held_out_text(support_nlu: LocalNLU) -> None:
    test = [
        Example("good morning!", "greet"),
        Example("I'd like my money back", "faq_refund_policy"),
        Example("put me through to an agent", "human"),
        Example("who won the football match yesterday", OUT_OF_SCOPE),
    ]

    result = evaluate(support_nlu, test)

    assert result.accuracy == 1.0
    assert result.oos_recall == 1.0
    assert result.top_accuracy == 1.0  # the support intents train an out-of-scope class
    strict = evaluate(support_nlu.with_threshold(0.999), test)
    assert strict.accuracy == 0.25  # all refused: only the out-of-scope question is right
    assert strict.top_accuracy == 1.0  # the top intents are still the right ones
