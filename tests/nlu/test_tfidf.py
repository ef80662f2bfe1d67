"""The default classifier served from plain arrays: the same answers as scikit-learn, without it."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dialogs.data import INTENTS_FILE
from dialogs.nlu import LocalNLU, load_examples
from dialogs.nlu.local import _build_pipeline, _normalise, model_key, shipped_model_file
from dialogs.nlu.tfidf import TfidfModel, Tokenizing

TEXTS = [
    "I forgot my password",
    "hi",
    "zzz",
    "CR-1042 urgent!!",
    "a",
    "x" * 50,
    "",
    "   ",
    "Mon colis n'est JAMAIS arrivé, ÇA suffit",
    "refund refund refund my order my order",
    "where\tis\n\nmy   ticket",
    "Straße über 東京 — émoji 🙂 ok",
]


@pytest.fixture(scope="module")
def fitted_pipeline() -> Any:
    """The default backend's scikit-learn pipeline, fitted on the shipped intents."""
    examples = load_examples(INTENTS_FILE)
    pipeline = _build_pipeline("local", None)
    pipeline.fit([_normalise(e.text) for e in examples], [e.intent for e in examples])
    return pipeline


def saved_and_loaded(model: TfidfModel) -> TfidfModel:
    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    return TfidfModel.load(buffer)[0]  # type: ignore[arg-type]


def test_served_arrays_score_exactly_like_scikit_learn(fitted_pipeline: Any) -> None:
    served = TfidfModel.from_pipeline(fitted_pipeline)
    assert served is not None
    loaded = saved_and_loaded(served)

    reference = fitted_pipeline.predict_proba(TEXTS)
    assert list(loaded.classes_) == list(fitted_pipeline.classes_)
    for text, expected in zip(TEXTS, reference, strict=True):
        assert np.allclose(loaded.probabilities(text), expected, rtol=0, atol=1e-12), text


@pytest.mark.parametrize(
    ("analyzer", "ngram_range"),
    [
        ("word", (1, 2)),
        ("word", (2, 3)),
        ("char_wb", (1, 5)),
        ("char_wb", (2, 4)),
        ("char", (1, 4)),
    ],
)
def test_terms_are_the_ones_scikit_learn_cuts(analyzer: str, ngram_range: tuple[int, int]) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        analyzer=analyzer, ngram_range=ngram_range, token_pattern=r"(?u)\b\w+\b"
    )
    ours = Tokenizing(analyzer, ngram_range, True, r"(?u)\b\w+\b").analyzer_function()
    theirs = vectorizer.build_analyzer()

    for text in TEXTS:
        assert sorted(ours(text)) == sorted(theirs(text)), text


def test_two_intent_model_scores_like_scikit_learn() -> None:
    texts = ["hello", "hi there", "good morning", "bye", "see you", "farewell friend"]
    labels = ["greet", "greet", "greet", "bye", "bye", "bye"]
    pipeline = _build_pipeline("local", None)
    pipeline.fit(texts, labels)

    served = saved_and_loaded(TfidfModel.from_pipeline(pipeline))  # type: ignore[arg-type]

    for text in ("hello friend", "bye bye", "nothing alike", ""):
        expected = pipeline.predict_proba([text])[0]
        assert np.allclose(served.probabilities(text), expected, rtol=0, atol=1e-12), text


def test_default_model_is_served_without_scikit_learn_or_scipy(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from dialogs.nlu import default_nlu\n"
        f"nlu = default_nlu(cache_dir={str(tmp_path)!r})\n"
        "print(nlu.classify('I forgot my password').intent)\n"
        "print(sorted(m for m in ('sklearn', 'scipy', 'joblib') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.split("\n")[:2] == ["faq_reset_password", "[]"]
    assert list(tmp_path.iterdir()) == []  # nothing was trained, so nothing was cached


def test_shipped_model_is_trained_on_the_shipped_intents(support_nlu: LocalNLU) -> None:
    shipped, meta = TfidfModel.load(shipped_model_file())

    assert meta["trained_on"] == model_key(INTENTS_FILE.read_bytes(), "local", False), (
        "dialogs/data/intents.yaml changed: run `python -m dialogs.nlu.shipped`"
    )
    assert list(shipped.classes_) == list(support_nlu.intents)
    for text in TEXTS:
        # Retraining here may run on another scikit-learn or BLAS: close, not bit-equal.
        assert np.allclose(
            shipped.probabilities(_normalise(text)),
            support_nlu._model.probabilities(_normalise(text)),
            atol=1e-4,
        ), text
