"""The default classifier as plain arrays: served with numpy alone, saved as an ``.npz``.

scikit-learn trains it (``dialogs.nlu.local``); ``TfidfModel.from_pipeline`` copies what
prediction needs (vocabularies, idf weights, coefficients) out of the fitted pipeline.
Serving then imports neither scikit-learn nor scipy, which cost a start-up ~1.5 s and
~130 MB, and gives the same probabilities as the pipeline's ``predict_proba``
(tests/nlu/test_tfidf.py checks it against scikit-learn).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

#: Bump when the saved layout changes; old files are then retrained instead of misread.
ARRAYS_FORMAT = 2

Analyzer = Callable[[str], list[str]]


class ModelFileError(ValueError):
    """The file is not a model of this layout."""


@dataclass(frozen=True)
class Tokenizing:
    """How one TF-IDF vectorizer cuts text into terms (the scikit-learn settings we serve)."""

    analyzer: str  # "word", "char" or "char_wb"
    ngram_range: tuple[int, int]
    lowercase: bool
    token_pattern: str

    def analyzer_function(self) -> Analyzer:
        """The same terms, in any order, as scikit-learn's ``build_analyzer()``."""
        low, high = self.ngram_range
        if self.analyzer == "word":
            tokens = re.compile(self.token_pattern).findall
            return lambda text: _word_ngrams(tokens(self._prepared(text)), low, high)
        if self.analyzer == "char_wb":
            return lambda text: _char_wb_ngrams(self._prepared(text), low, high)
        return lambda text: _char_ngrams(self._prepared(text), low, high)

    def _prepared(self, text: str) -> str:
        return text.lower() if self.lowercase else text


@dataclass(frozen=True)
class _Part:
    tokenizing: Tokenizing
    terms: Any  # numpy str array: terms[i] is feature i
    idf: Any  # numpy float64 array
    offset: int


class TfidfModel:
    """Sublinear TF-IDF of one or more vectorizers, each L2-normalised, side by side, then
    logistic regression: ``predict_proba`` for one text in a fraction of a millisecond
    (an utterance touches ~100 of the thousands of features)."""

    def __init__(self, parts: Sequence[_Part], coef: Any, intercept: Any, classes: Any) -> None:
        self._parts = list(parts)
        self._coef = coef
        self._intercept = intercept
        self.classes_ = classes
        self._analyzers = [(part.tokenizing.analyzer_function(), part) for part in parts]
        self._vocabularies = [
            {term: index for index, term in enumerate(part.terms.tolist())} for part in parts
        ]

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> TfidfModel | None:
        """The arrays of a fitted TF-IDF + logistic-regression pipeline, or ``None`` when the
        pipeline has another shape (it is then served by scikit-learn)."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        if len(getattr(pipeline, "steps", ())) != 2:
            return None
        union, model = pipeline.steps[0][1], pipeline.steps[-1][1]
        vectorizers = [step for _, step in getattr(union, "transformer_list", [])]
        if (
            not isinstance(model, LogisticRegression)
            or getattr(union, "transformer_weights", None)
            or not vectorizers
            or not all(isinstance(v, TfidfVectorizer) and _servable(v) for v in vectorizers)
        ):
            return None
        parts, offset = [], 0
        for vectorizer in vectorizers:
            terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
            parts.append(
                _Part(_tokenizing(vectorizer), np.array(terms, dtype=str), vectorizer.idf_, offset)
            )
            offset += len(terms)
        return cls(parts, model.coef_, model.intercept_, model.classes_)

    def probabilities(self, text: str) -> Any:
        """``predict_proba([text])[0]``."""
        columns: list[int] = []
        values: list[Any] = []
        for (analyzer, part), vocabulary in zip(self._analyzers, self._vocabularies, strict=True):
            counts: dict[int, int] = {}
            for term in analyzer(text):
                index = vocabulary.get(term)
                if index is not None:
                    counts[index] = counts.get(index, 0) + 1
            if not counts:
                continue
            indices = np.fromiter(counts, dtype=np.intp, count=len(counts))
            weights = (1.0 + np.log(np.fromiter(counts.values(), dtype=float))) * part.idf[indices]
            columns.extend(indices + part.offset)
            values.append(weights / np.linalg.norm(weights))
        scores = self._intercept.copy()
        if columns:
            scores += self._coef[:, columns] @ np.concatenate(values)
        if len(scores) == 1:  # two classes: one score and a sigmoid, as scikit-learn does
            positive = 1.0 / (1.0 + np.exp(-scores[0]))
            return np.array([1.0 - positive, positive])
        scores -= scores.max()
        exponentials = np.exp(scores)
        return exponentials / exponentials.sum()

    def predict_proba(self, texts: Sequence[str]) -> Any:
        return np.array([self.probabilities(text) for text in texts])

    def save(self, file: IO[bytes], **meta: Any) -> None:
        """Write the arrays and ``meta`` (JSON values) as one ``.npz``; no pickle inside."""
        arrays: dict[str, Any] = {
            "coef": self._coef,
            "intercept": self._intercept,
            "classes": np.array([str(label) for label in self.classes_], dtype=str),
        }
        tokenizing = []
        for n, part in enumerate(self._parts):
            arrays[f"terms_{n}"] = part.terms
            arrays[f"idf_{n}"] = part.idf
            tokenizing.append(part.tokenizing.__dict__)
        document = {**meta, "format": ARRAYS_FORMAT, "tokenizing": tokenizing}
        np.savez_compressed(file, meta=np.array(json.dumps(document)), **arrays)

    @classmethod
    def load(cls, path: str | Path | IO[bytes]) -> tuple[TfidfModel, dict[str, Any]]:
        """The model and the ``meta`` it was saved with; ``ModelFileError`` if not ours."""
        try:
            with np.load(path, allow_pickle=False) as arrays:
                meta = json.loads(str(arrays["meta"]))
                if meta.get("format") != ARRAYS_FORMAT:
                    raise ModelFileError(f"{path}: not a model of format {ARRAYS_FORMAT}")
                parts, offset = [], 0
                for n, settings in enumerate(meta["tokenizing"]):
                    terms = arrays[f"terms_{n}"]
                    settings["ngram_range"] = tuple(settings["ngram_range"])
                    parts.append(_Part(Tokenizing(**settings), terms, arrays[f"idf_{n}"], offset))
                    offset += len(terms)
                model = cls(parts, arrays["coef"], arrays["intercept"], arrays["classes"])
        except (KeyError, ValueError, OSError) as error:
            if isinstance(error, ModelFileError):
                raise
            raise ModelFileError(f"{path}: not a Careline model file ({error})") from error
        return model, meta


def is_arrays_file(path: str | Path) -> bool:
    """An ``.npz`` is a zip archive; a joblib file (the other backends) is not."""
    with open(path, "rb") as handle:
        return handle.read(4) == b"PK\x03\x04"


def _servable(vectorizer: Any) -> bool:
    """Settings whose analysis and weighting ``TfidfModel`` reproduces exactly."""
    return (
        vectorizer.analyzer in ("word", "char", "char_wb")
        and vectorizer.input == "content"
        and vectorizer.preprocessor is None
        and vectorizer.tokenizer is None
        and vectorizer.strip_accents is None
        and vectorizer.stop_words is None
        and not vectorizer.binary
        and vectorizer.sublinear_tf
        and vectorizer.use_idf
        and vectorizer.norm == "l2"
    )


def _tokenizing(vectorizer: Any) -> Tokenizing:
    return Tokenizing(
        analyzer=vectorizer.analyzer,
        ngram_range=tuple(vectorizer.ngram_range),
        lowercase=bool(vectorizer.lowercase),
        token_pattern=vectorizer.token_pattern,
    )


# The three analyzers below follow scikit-learn's ``_VectorizerMixin`` (sklearn/
# feature_extraction/text.py) term for term; the comparison test holds them to it.


def _word_ngrams(tokens: list[str], low: int, high: int) -> list[str]:
    terms = list(tokens) if low == 1 else []
    for n in range(max(low, 2), min(high, len(tokens)) + 1):
        terms.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return terms


def _char_wb_ngrams(text: str, low: int, high: int) -> list[str]:
    terms = []
    for word in text.split():
        padded = f" {word} "
        for n in range(low, high + 1):
            if n >= len(padded):  # a short word is counted once, whole, then no longer
                terms.append(padded)
                break
            terms.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return terms


_WHITE_SPACES = re.compile(r"\s\s+")


def _char_ngrams(text: str, low: int, high: int) -> list[str]:
    text = _WHITE_SPACES.sub(" ", text)
    return [text[i : i + n] for n in range(low, high + 1) for i in range(len(text) - n + 1)]
