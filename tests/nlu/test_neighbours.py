"""The nearest-examples scorer of the embeddings blend and the training-only validation of the
Banking77 benchmark. Plain numpy vectors: no ``embeddings`` extra needed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from bench.nlu_banking77 import main, validation_splits
from dialogs.nlu.embeddings import EmbeddingsBlend, NearestExamples
from dialogs.nlu.training import Example


def unit(*rows: list[float]) -> np.ndarray:
    vectors = np.array(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_an_intent_with_two_clusters_wins_near_either_of_them() -> None:
    # "card" has examples at both ends; its mean points where "fee" lives.
    vectors = unit([1, 0, 0], [0, 1, 0], [0.7, 0.7, 0.1], [0.72, 0.68, 0.12])
    labels = ["card", "card", "fee", "fee"]
    scorer = NearestExamples(vectors, labels, ["card", "fee"], k=1, temperature=0.05)

    near_one_end, near_the_mean = scorer.probabilities(unit([0.95, 0.05, 0], [0.7, 0.7, 0.1]))

    assert near_one_end.argmax() == 0
    assert near_the_mean.argmax() == 1
    assert near_one_end.sum() == pytest.approx(1.0)


def test_intents_with_fewer_examples_than_k_are_scored_on_those_they_have() -> None:
    vectors = unit([1, 0], [0.9, 0.1], [0.8, 0.2], [0, 1])
    scorer = NearestExamples(vectors, ["a", "a", "a", "b"], ["a", "b"], k=3, temperature=0.1)

    (probabilities,) = scorer.probabilities(unit([0, 1]))

    assert np.isfinite(probabilities).all()
    assert probabilities[1] > 0.9


def test_the_blend_gives_the_neighbours_their_share() -> None:
    blend = EmbeddingsBlend(text_model=None, weight=0.5, neighbour_share=0.2)
    blend.neighbours = NearestExamples(unit([1, 0], [0, 1]), ["a", "b"], ["a", "b"], 1, 0.01)
    meaning, wording = np.array([[0.5, 0.5]]), np.array([[0.5, 0.5]])

    (blended,) = blend._blend(meaning, wording, unit([1, 0]))

    assert blended[0] == pytest.approx(0.8 * 0.5 + 0.2 * 1.0, abs=1e-6)


def test_a_blend_saved_before_the_neighbours_still_classifies() -> None:
    blend = EmbeddingsBlend(text_model=None)
    state = blend.__getstate__()
    del state["neighbours"], state["neighbour_share"]
    old = EmbeddingsBlend.__new__(EmbeddingsBlend)
    old.__dict__.update(state)

    (blended,) = old._blend(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), None)

    assert blended == pytest.approx([old.weight, 1 - old.weight])


def examples(intents: int, per_intent: int) -> list[Example]:
    return [
        Example(f"question {n} about topic {i} word{i}", f"intent_{i}")
        for i in range(intents)
        for n in range(per_intent)
    ]


def test_validation_splits_hold_out_training_rows_only() -> None:
    train = examples(4, 20)

    splits = validation_splits(train, shots=3, seeds=2)

    assert [name for name, _, _ in splits] == ["full", "3-shot seed 101", "3-shot seed 102"]
    _, fit, held_out = splits[0]
    assert len(held_out) == 16  # 20% of each intent
    assert not set(map(id, fit)) & set(map(id, held_out))
    for _, sample, scored in splits[1:]:
        assert len(sample) == 12
        assert not set(map(id, sample)) & set(map(id, scored))
        assert all(any(e is t for t in train) for e in scored)


def test_validate_never_reads_the_test_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ["text,category"] + [f"{e.text},{e.intent}" for e in examples(3, 12)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    argv = ["nlu_banking77", "--data", str(tmp_path), "--validate", "--backends", "local"]
    monkeypatch.setattr(sys, "argv", [*argv, "--shots", "2", "--seeds", "1"])

    main()  # no test.csv in the folder: reading it would fail

    assert "local       validation: full 100.00%, 2-shot" in capsys.readouterr().out
