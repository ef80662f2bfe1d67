"""The knowledge base: articles the support team writes, and the rules for changing them.

An article is a draft until an admin publishes it; only published articles are quoted to
customers. Every save is a new version (who changed what, when), and every change to what
customers may read bumps the knowledge base's revision, which each replica follows to rebuild
its index (dialogs/knowledge.py). Services take the repository and leave the commit to the
caller, like core/services/.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from core.errors import Conflict, InvalidInput, NotFound, Refused

if TYPE_CHECKING:
    from core.ports import KnowledgeRepository


class AlreadyPublished(Refused):
    code = "already_published"


class NotPublished(Refused):
    code = "not_published"


class KeyTaken(Refused):
    code = "key_taken"


class VersionConflict(Conflict):
    code = "version_conflict"


class ArticleStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class Change(StrEnum):
    """What a version recorded."""

    CREATED = "created"
    EDITED = "edited"
    PUBLISHED = "published"
    UNPUBLISHED = "unpublished"


@dataclass(frozen=True, slots=True)
class ArticleText:
    """What an author writes: everything of an article but its bookkeeping."""

    title: str
    body: str  # Markdown; its paragraphs are what the bot quotes
    language: str = "en"
    key: str | None = None  # an NLU intent or FAQ key (`faq_opening_hours`), unique per language
    tags: tuple[str, ...] = ()
    questions: tuple[str, ...] = ()  # example questions it answers

    def fields(self, *, with_key: bool = True) -> dict[str, Any]:
        """As stored and shown: lists, not tuples; the key left out for a version."""
        return {
            **({"key": self.key} if with_key else {}),
            "title": self.title,
            "body": self.body,
            "language": self.language,
            "tags": list(self.tags),
            "questions": list(self.questions),
        }


@dataclass(frozen=True, slots=True)
class Article:
    id: int
    text: ArticleText
    status: ArticleStatus
    version: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str

    @property
    def is_published(self) -> bool:
        return self.status == ArticleStatus.PUBLISHED


@dataclass(frozen=True, slots=True)
class ArticleVersion:
    article_id: int
    version: int
    change: Change
    text: ArticleText
    status: ArticleStatus
    changed_at: datetime
    changed_by: str
    helped: int = 0
    not_helped: int = 0


@dataclass(frozen=True, slots=True)
class ArticleQuery:
    """Which articles a listing shows: words in any field, status, language, tag."""

    q: str | None = None
    status: ArticleStatus | None = None
    language: str | None = None
    tag: str | None = None
    limit: int = 100
    after_id: int = 0


@dataclass(frozen=True, slots=True)
class Edit:
    """The fields an edit changes (None: kept)."""

    title: str | None = None
    body: str | None = None
    language: str | None = None
    key: str | None = None
    tags: tuple[str, ...] | None = None
    questions: tuple[str, ...] | None = None
    clear_key: bool = False

    def applied_to(self, text: ArticleText) -> ArticleText:
        return ArticleText(
            title=text.title if self.title is None else self.title,
            body=text.body if self.body is None else self.body,
            language=text.language if self.language is None else self.language,
            key=None if self.clear_key else (text.key if self.key is None else self.key),
            tags=text.tags if self.tags is None else self.tags,
            questions=text.questions if self.questions is None else self.questions,
        )


@dataclass(frozen=True, slots=True)
class ImportResult:
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)


class GapReason(StrEnum):
    """Why a question is a gap in the knowledge base."""

    NOT_UNDERSTOOD = "not_understood"  # no intent, no article
    UNSURE = "unsure"  # an article matched, too weakly to quote
    NOT_HELPED = "not_helped"  # quoted, and the customer said it did not help


@dataclass(frozen=True, slots=True)
class Gap:
    """A question the bot could not answer, in the customer's words."""

    customer_id: int
    language: str
    question: str
    reason: GapReason
    created_at: datetime
    article_id: int | None = None  # the article that did not help, or matched too weakly
    id: int = 0


@dataclass(frozen=True, slots=True)
class AgentAnswer:
    """What an agent answered on the ticket the customer opened after a gap: the draft of
    the missing article."""

    ticket_id: int
    body: str


def normalise_language(code: str) -> str:
    """`en-GB`, `EN_gb` -> `en-gb`: one spelling, so lookups by language match."""
    return code.strip().lower().replace("_", "-")


async def create_article(
    repo: KnowledgeRepository,
    text: ArticleText,
    *,
    by: str,
    now: datetime,
    publish: bool = False,
) -> Article:
    """A new article, a draft unless `publish` (the caller checks who may publish)."""
    text = checked_text(text)
    await _check_key_free(repo, text, None)
    status = ArticleStatus.PUBLISHED if publish else ArticleStatus.DRAFT
    article = await repo.add(text, status=status, by=by, now=now)
    await repo.add_version(article, Change.CREATED)
    if publish:
        await repo.bump_revision()
    return article


async def edit_article(
    repo: KnowledgeRepository,
    article_id: int,
    edit: Edit,
    *,
    by: str,
    now: datetime,
    expected_version: int | None = None,
) -> Article:
    """Save an edit as a new version; an edit of a published article is live at once."""
    article = await get_article(repo, article_id)
    if expected_version is not None and expected_version != article.version:
        raise VersionConflict(
            f"article {article_id} is at version {article.version}, not {expected_version}; "
            "reload it and edit again"
        )
    text = checked_text(edit.applied_to(article.text))
    if text == article.text:
        return article
    await _check_key_free(repo, text, article.id)
    return await _save(repo, article, replace(article, text=text), Change.EDITED, by=by, now=now)


async def publish_article(
    repo: KnowledgeRepository, article_id: int, *, by: str, now: datetime
) -> Article:
    article = await get_article(repo, article_id)
    if article.is_published:
        raise AlreadyPublished(f"article {article_id} is already published")
    published = replace(article, status=ArticleStatus.PUBLISHED)
    return await _save(repo, article, published, Change.PUBLISHED, by=by, now=now)


async def unpublish_article(
    repo: KnowledgeRepository, article_id: int, *, by: str, now: datetime
) -> Article:
    article = await get_article(repo, article_id)
    if not article.is_published:
        raise NotPublished(f"article {article_id} is not published")
    draft = replace(article, status=ArticleStatus.DRAFT)
    return await _save(repo, article, draft, Change.UNPUBLISHED, by=by, now=now)


async def delete_article(repo: KnowledgeRepository, article_id: int) -> None:
    """Delete an article and its versions; customers stop being answered from it."""
    article = await get_article(repo, article_id)
    await repo.delete(article_id)
    if article.is_published:
        await repo.bump_revision()


async def get_article(repo: KnowledgeRepository, article_id: int) -> Article:
    article = await repo.get(article_id)
    if article is None:
        raise NotFound(f"there is no article {article_id}")
    return article


async def import_articles(
    repo: KnowledgeRepository,
    texts: Sequence[ArticleText],
    *,
    by: str,
    now: datetime,
    publish: bool = False,
    body_only: bool = False,
) -> ImportResult:
    """Create the articles whose key is new in their language, edit those whose text changed.

    An imported article keeps its status when it exists; a new one is a draft unless
    `publish`. Articles without a key are always new. `body_only`: the files carry keys and
    bodies only (the FAQ YAML), so existing articles keep their title, tags and questions.
    """
    result = ImportResult()
    for text in texts:
        existing = await repo.by_key(text.language, text.key) if text.key else None
        if existing is None:
            article = await create_article(repo, text, by=by, now=now, publish=publish)
            result.created.append(article.id)
            continue
        edit = (
            Edit(body=text.body)
            if body_only
            else Edit(text.title, text.body, tags=text.tags, questions=text.questions)
        )
        edited = await edit_article(repo, existing.id, edit, by=by, now=now)
        (result.updated if edited.version != existing.version else result.unchanged).append(
            existing.id
        )
    return result


async def seed_articles(
    repo: KnowledgeRepository, texts: Sequence[ArticleText], *, now: datetime
) -> bool:
    """Publish the shipped articles once per database: on a new install.

    Never again afterwards, so an admin's edits and deletions stay as they are; False when
    this database was already seeded (by this or any other replica).
    """
    if not await repo.claim_seeding(now):
        return False
    for text in texts:
        await create_article(repo, text, by=SEEDER, now=now, publish=True)
    return True


#: Who wrote the articles of a new install.
SEEDER = "careline (shipped FAQ)"


async def _save(
    repo: KnowledgeRepository,
    before: Article,
    after: Article,
    change: Change,
    *,
    by: str,
    now: datetime,
) -> Article:
    saved = replace(after, version=before.version + 1, updated_at=now, updated_by=by)
    if not await repo.save(saved, previous_version=before.version):
        raise VersionConflict(f"article {before.id} was changed at the same time; try again")
    await repo.add_version(saved, change)
    if before.is_published or saved.is_published:  # what customers may read changed
        await repo.bump_revision()
    return saved


async def _check_key_free(repo: KnowledgeRepository, text: ArticleText, own_id: int | None) -> None:
    if text.key is None:
        return
    holder = await repo.by_key(text.language, text.key)
    if holder is not None and holder.id != own_id:
        raise KeyTaken(
            f"article {holder.id} already has the key {text.key!r} in language {text.language!r}"
        )


# Only the spaces every regex dialect agrees on (the API's JSON Schema patterns): trimming
# Python's wider set would turn a text the schema accepted into an empty one.
_SPACE = " \t\r\n"
_SPACES = re.compile(f"[{_SPACE}]+")
#: The longest of each field (the columns' sizes; tags and questions are JSON lists).
LIMITS = {"title": 200, "body": 100_000, "language": 16, "key": 100, "tag": 64, "question": 500}
MAX_TAGS, MAX_QUESTIONS = 50, 200


def checked_text(text: ArticleText) -> ArticleText:
    """The text as stored: whitespace trimmed, tags lower case, no repeats; InvalidInput
    says why not."""
    key = text.key.strip() if text.key else None
    checked = ArticleText(
        title=_SPACES.sub(" ", text.title).strip(" "),
        body=text.body.strip(_SPACE),
        language=normalise_language(text.language),
        key=key or None,
        tags=tuple(dict.fromkeys(t.strip().lower() for t in text.tags if t.strip())),
        questions=tuple(dict.fromkeys(q.strip() for q in text.questions if q.strip())),
    )
    for name in ("title", "body", "language"):
        if not getattr(checked, name):
            raise InvalidInput(f"an article needs a {name}")
    fields = [
        ("title", checked.title),
        ("body", checked.body),
        ("language", checked.language),
        ("key", checked.key or ""),
        *(("tag", tag) for tag in checked.tags),
        *(("question", question) for question in checked.questions),
    ]
    for name, value in fields:
        if len(value) > LIMITS[name] or "\x00" in value:
            raise InvalidInput(f"an article's {name} is longer than {LIMITS[name]} or has NUL")
    if len(checked.tags) > MAX_TAGS or len(checked.questions) > MAX_QUESTIONS:
        raise InvalidInput(f"at most {MAX_TAGS} tags and {MAX_QUESTIONS} questions")
    return checked


async def note_gap(repo: KnowledgeRepository, gap: Gap) -> None:
    """Keep a question the bot could not answer (blank questions are not gaps)."""
    if gap.question.strip():
        await repo.add_gap(gap)


async def record_feedback(
    repo: KnowledgeRepository, article_id: int, version: int, *, helped: bool
) -> None:
    """Count a customer's "did that help?" on the version they were shown (a version since
    deleted counts nowhere)."""
    await repo.count_feedback(article_id, version, helped=helped)
