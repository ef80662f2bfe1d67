"""Answers grounded in the knowledge base: the published articles, found by BM25, quoted as
written.

Each process keeps one `KnowledgeIndex` of the published articles per language, built from
the database and swapped whole; `LiveKnowledge.follow` reads the knowledge base's revision
every few seconds and rebuilds the index in a worker thread when an admin changed something,
so a publish reaches every replica within seconds and turns never wait for a rebuild.

Confidence is how much of the question an article covers: the share of the question's word
weight (BM25's idf) found in the article. BM25 ranks; the share decides whether to answer.
A small BM25 of our own (no bm25s, which brings scipy): `careline serve` must stay small.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import knowledge
from core.db.database import Database
from core.db.knowledge import SqlKnowledgeBase, read_published, read_revision
from core.knowledge import Article, ArticleText, normalise_language
from core.model import utcnow
from dialogs.decisions import Passage
from dialogs.following import refresh_every

log = logging.getLogger("careline.dialogs")

DEFAULT_MIN_CONFIDENCE = 0.5
#: BM25's usual parameters (Robertson & Zaragoza, "The Probabilistic Relevance Framework").
K1, B = 1.2, 0.75
_WORD = re.compile(r"\w+")
# Words that say nothing about which article is meant (English; other languages keep all).
_STOPWORDS = frozenset(
    (  # noqa: SIM905 - a word list reads best as words
        "a about an and any are as at be been but by can could did do does doing for from get "
        "got had has have how i i'd i'm if in into is it it's its me my of on or our please "
        "should so than that the their them then there these they this to too us was we were "
        "what when where which who why will with would you your yours hi hello hey thanks"
    ).split()
)


def words(text: str, language: str = "en") -> list[str]:
    """The words of a text as the index compares them: case-folded, and for English without
    stopwords and with plural and verb endings cut (`opening` and `opens` both give `open`)."""
    found = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    if not language.startswith("en"):
        return found
    return [_stem(w) for w in found if w not in _STOPWORDS]


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def paragraphs(body: str) -> list[str]:
    """The quotable passages of a Markdown body: its blank-line separated paragraphs, as
    written (headings alone are not an answer)."""
    parts = [p.strip() for p in re.split(r"\n[ \t]*\n", body)]
    quotable = [p for p in parts if p and not re.fullmatch(r"#+ .*", p)]
    return quotable or [body.strip()]


@dataclass(frozen=True, slots=True)
class _Document:
    article: Article
    passages: tuple[str, ...]
    passage_words: tuple[frozenset[str], ...]
    words: frozenset[str]
    length: int


#: Text -> unit-length sentence vectors (dialogs.nlu.embeddings' MiniLM, when installed).
Encoder = Callable[[Sequence[str]], np.ndarray]
RRF_K = 60  # reciprocal rank fusion's constant (Cormack, Clarke & Buettcher, SIGIR 2009)


class _Meanings:
    """Sentence vectors of each article's title and example questions: a question is as
    close to an article as to the nearest of them."""

    def __init__(self, encoder: Encoder, documents: Sequence[_Document]) -> None:
        self.encoder = encoder
        texts, owners = [], []
        for number, document in enumerate(documents):
            text = document.article.text
            for phrase in (text.title, *text.questions):
                texts.append(phrase)
                owners.append(number)
        self.vectors = encoder(texts) if texts else np.zeros((0, 1), dtype=np.float32)
        self.owners = np.asarray(owners, dtype=np.int64)
        self.count = len(documents)

    def similarities(self, question: str) -> np.ndarray:
        """Each article's cosine similarity to the question (its nearest phrase)."""
        best = np.full(self.count, -1.0)
        if len(self.owners):
            np.maximum.at(best, self.owners, self.vectors @ self.encoder([question])[0])
        return best


class _Language:
    """The BM25 index of one language's published articles (fused with sentence vectors
    when an encoder is given)."""

    def __init__(
        self, language: str, articles: Sequence[Article], encoder: Encoder | None = None
    ) -> None:
        self.language = language
        self.documents: list[_Document] = []
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.by_key: dict[str, int] = {}
        for number, article in enumerate(articles):
            text = article.text
            passages = paragraphs(text.body)
            fields = (text.title, *text.tags, *text.questions, text.body)
            counts = Counter(words(" ".join(fields), language))
            for word, count in counts.items():
                self.postings[word].append((number, count))
            self.documents.append(
                _Document(
                    article,
                    tuple(passages),
                    tuple(frozenset(words(p, language)) for p in passages),
                    frozenset(counts),
                    sum(counts.values()),
                )
            )
            if text.key:
                self.by_key[text.key] = number
        total = len(self.documents)
        self.average_length = sum(d.length for d in self.documents) / total if total else 0.0
        # An unknown word weighs like the rarest: a question about something no article
        # mentions is covered less, not more.
        self.unknown_weight = self._idf(0)
        self.weights = {word: self._idf(len(posting)) for word, posting in self.postings.items()}
        # Each word's BM25 term scores, computed once: a question then adds a few arrays.
        average = self.average_length or 1.0
        self.term_scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for word, posting in self.postings.items():
            numbers = np.fromiter((n for n, _ in posting), dtype=np.int64, count=len(posting))
            frequencies = np.fromiter((c for _, c in posting), np.float64, count=len(posting))
            lengths = np.fromiter(
                (self.documents[n].length for n, _ in posting), dtype=np.float64, count=len(posting)
            )
            norm = K1 * (1 - B + B * lengths / average)
            scores = self.weights[word] * frequencies * (K1 + 1) / (frequencies + norm)
            self.term_scores[word] = (numbers, scores)
        self.meanings = _Meanings(encoder, self.documents) if encoder is not None else None

    def _idf(self, frequency: int) -> float:
        total = len(self.documents)
        return math.log(1 + (total - frequency + 0.5) / (frequency + 0.5))

    def find(self, question: str, intent: str, min_confidence: float) -> Passage | None:
        asked = list(dict.fromkeys(words(question, self.language)))
        keyed = self.by_key.get(intent)
        if self.meanings is not None and keyed is None and self.documents:
            return self._fused(question, asked, min_confidence)
        best = self._best(asked)
        if keyed is not None:
            # The NLU was sure of this FAQ intent; another article wins only on the words.
            if best is not None and best != keyed:
                best_cover, keyed_cover = self._cover(asked, best), self._cover(asked, keyed)
                if best_cover >= min_confidence and best_cover > keyed_cover:
                    return self._passage(best, asked, best_cover, confident=True)
            return self._passage(keyed, asked, 1.0, confident=True)
        if best is None:
            return None
        cover = self._cover(asked, best)
        return self._passage(best, asked, cover, confident=cover >= min_confidence)

    def _fused(self, question: str, asked: Sequence[str], min_confidence: float) -> Passage:
        """BM25 and meaning ranked apart and fused by reciprocal rank; the confidence is the
        mean of the word cover and the similarity of the article found."""
        assert self.meanings is not None
        similar = self.meanings.similarities(question)
        fused = 1.0 / (RRF_K + _ranks(-similar))
        scores = self._scores(asked)
        if scores is not None:
            matched = scores > 0
            fused[matched] += 1.0 / (RRF_K + _ranks(-scores)[matched])
        best = int(np.argmax(fused))
        confidence = (self._cover(asked, best) + max(0.0, float(similar[best]))) / 2
        return self._passage(best, asked, confidence, confident=confidence >= min_confidence)

    def _scores(self, asked: Iterable[str]) -> np.ndarray | None:
        found = [self.term_scores[word] for word in asked if word in self.term_scores]
        if not found:
            return None
        numbers = np.concatenate([n for n, _ in found])
        weights = np.concatenate([s for _, s in found])
        return np.bincount(numbers, weights=weights, minlength=len(self.documents))

    def _best(self, asked: Iterable[str]) -> int | None:
        """The article with the highest BM25 score (the first on a tie); None when no
        article has a word of the question."""
        scores = self._scores(asked)
        return None if scores is None else int(np.argmax(scores))

    def _cover(self, asked: Sequence[str], number: int) -> float:
        """The share of the question's word weight that the article contains."""
        total = sum(self.weights.get(w, self.unknown_weight) for w in asked)
        if not total:
            return 0.0
        contained = self.documents[number].words
        return sum(self.weights[w] for w in asked if w in contained) / total

    def _passage(
        self, number: int, asked: Sequence[str], confidence: float, *, confident: bool
    ) -> Passage:
        document = self.documents[number]

        # The paragraph with the most question weight; the first when none has any.
        def weight(i: int) -> tuple[float, int]:
            found = document.passage_words[i].intersection(asked)
            return sum(self.weights.get(w, 0.0) for w in found), -i

        best = max(range(len(document.passages)), key=weight)
        article = document.article
        return Passage(
            text=document.passages[best],
            title=article.text.title,
            article_id=article.id,
            version=article.version,
            confidence=round(confidence, 3),
            confident=confident,
        )


def remembering(encoder: Encoder, limit: int = 200_000) -> Encoder:
    """`encoder` with the vectors of the phrases it has seen kept (up to `limit` phrases)."""
    known: dict[str, np.ndarray] = {}

    def encode(texts: Sequence[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in known]
        if new:
            if len(known) + len(new) > limit:
                known.clear()
            known.update(zip(new, encoder(new), strict=True))
        if not texts:
            return encoder(texts)
        return np.vstack([known[t] for t in texts])

    return encode


def _ranks(values: np.ndarray) -> np.ndarray:
    """1 for the smallest value, 2 for the next, ..."""
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[np.argsort(values, kind="stable")] = np.arange(1, len(values) + 1)
    return ranks


class KnowledgeIndex:
    """The published articles of one revision, by language. Immutable: rebuilt and swapped."""

    def __init__(
        self,
        articles: Sequence[Article] = (),
        revision: int = -1,
        *,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        default_language: str = "en",
        encoder: Encoder | None = None,
    ) -> None:
        self.revision = revision
        self.min_confidence = min_confidence
        self.default_language = default_language
        grouped: dict[str, list[Article]] = defaultdict(list)
        for article in articles:
            if article.is_published:
                grouped[article.text.language].append(article)
        # The sentence encoder reads English (all-MiniLM-L6-v2); other languages keep BM25.
        self._languages = {
            code: _Language(code, found, encoder if code.startswith("en") else None)
            for code, found in grouped.items()
        }

    def __len__(self) -> int:
        return sum(len(index.documents) for index in self._languages.values())

    def find(self, question: str, intent: str, language: str | None) -> Passage | None:
        index = self._language(language)
        if index is None:
            return None
        return index.find(question, intent, self.min_confidence)

    def _language(self, code: str | None) -> _Language | None:
        """The customer's language (`en-gb`, else `en`), else the default language."""
        if code:
            code = normalise_language(code)
            for candidate in (code, code.split("-")[0]):
                if candidate in self._languages:
                    return self._languages[candidate]
        return self._languages.get(self.default_language)


@dataclass(frozen=True, slots=True)
class _Answers:
    """The KnowledgeAnswers of one turn: the index as it was, in the customer's language."""

    index: KnowledgeIndex
    language: str | None

    def find(self, question: str, intent: str) -> Passage | None:
        return self.index.find(question, intent, self.language)


class LiveKnowledge:
    """The index every turn reads, kept at the database's revision of the knowledge base."""

    def __init__(
        self,
        db: Database,
        *,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        refresh_seconds: float = 2.0,
        default_language: str = "en",
        seeds: Sequence[ArticleText] = (),
        encoder: Encoder | None = None,
    ) -> None:
        self.db = db
        # Each phrase encoded once per process: a publish re-encodes only what changed.
        self.encoder = remembering(encoder) if encoder is not None else None
        self.min_confidence = min_confidence
        self.refresh_seconds = refresh_seconds
        self.default_language = default_language
        self.seeds = seeds
        self.index = KnowledgeIndex(min_confidence=min_confidence)
        self._rebuilding = asyncio.Lock()

    def answers(self, language: str | None) -> _Answers:
        return _Answers(self.index, language)

    async def start(self) -> None:
        """Seed a new install with the shipped articles, then load the index."""
        if self.seeds:
            async with self.db.uow() as uow:
                seeded = await knowledge.seed_articles(
                    SqlKnowledgeBase(uow.session), self.seeds, now=utcnow()
                )
                await uow.commit()
            if seeded:
                log.info("knowledge base: seeded %d shipped articles", len(self.seeds))
        await self.refresh()

    async def refresh(self) -> bool:
        """Rebuild the index if the knowledge base changed since it was built; True if so."""
        async with self._rebuilding:
            if await read_revision(self.db) == self.index.revision:
                return False
            revision, articles = await read_published(self.db)
            # Off the event loop: 10,000 articles take a while to index, and turns go on.
            self.index = await asyncio.to_thread(
                KnowledgeIndex,
                articles,
                revision,
                min_confidence=self.min_confidence,
                default_language=self.default_language,
                encoder=self.encoder,
            )
        log.info("knowledge base: revision %d, %d published articles", revision, len(self.index))
        return True

    async def follow(self, stopping: asyncio.Event) -> None:
        """Keep the index current until `stopping` is set (one background task a process)."""
        await refresh_every(self.refresh_seconds, stopping, self.refresh, "knowledge base")


def shipped_articles(
    faq_file: str | Path | None = None, intents_file: str | Path | None = None
) -> list[ArticleText]:
    """The FAQ file's answers as articles (the seed of a new install): the intent is the key,
    the title is made from it, and the intent's training examples are its questions."""
    from dialogs.nlu import load_examples, load_faq

    faq = load_faq(faq_file)
    examples: dict[str, list[str]] = defaultdict(list)
    if intents_file is not None or faq_file is None:
        from dialogs.data import INTENTS_FILE

        for example in load_examples(intents_file or INTENTS_FILE):
            examples[example.intent].append(example.text)
    return [
        ArticleText(
            title=title_of(key),
            body=answer,
            language="en",
            key=key,
            tags=("faq",),
            questions=tuple(examples.get(key, ())),
        )
        for key, answer in faq.answers.items()
    ]


def title_of(key: str) -> str:
    """`faq_opening_hours` -> `Opening hours`."""
    words_ = key.removeprefix("faq_").replace("_", " ").strip()
    return words_[:1].upper() + words_[1:] if words_ else key
