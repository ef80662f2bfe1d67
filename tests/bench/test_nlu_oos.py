"""The Banking77-OOS benchmark keeps its protocol: held-out intents never trained on, the
threshold chosen on training rows, test.csv read only for the figures."""

from __future__ import annotations

import random

import pytest

from bench import nlu_oos
from dialogs.nlu.training import Example


def test_held_out_intents_only_validate_and_the_rest_split_80_20() -> None:
    train = [Example(f"{intent} {n}", intent) for intent in "abcde" for n in range(10)]
    fit, validation = nlu_oos.split(train, {"e"}, random.Random(0))
    assert {e.intent for e in fit} == set("abcd") and len(fit) == 32
    assert sum(e.intent == "e" for e in validation) == 10 and len(validation) == 18
    assert not set(fit) & set(validation)


def test_a_point_counts_answers_refusals_and_coverage() -> None:
    predicted = [("a", 0.9), ("b", 0.9), ("a", 0.2), ("a", 0.8), ("b", 0.1)]
    truth = ["a", "a", "a", "z", "z"]
    point = nlu_oos.point(predicted, truth, {"z"}, 0.5)
    assert (point.accuracy, point.coverage, point.precision) == (1 / 3, 2 / 3, 1 / 2)
    assert point.oos_recall == 1 / 2


def test_a_quick_run_prints_both_thresholds_and_the_curve(
    capsys: pytest.CaptureFixture[str],
) -> None:
    nlu_oos.main(["--seeds", "1", "--limit", "1500"])
    out = capsys.readouterr().out
    chosen = next(line for line in out.splitlines() if line.startswith("chosen on validation"))
    assert float(chosen.split()[3]) in nlu_oos.GRID
    assert "default               0.30" in out
    assert len([line for line in out.splitlines() if line.strip().startswith("0.")]) == 19
