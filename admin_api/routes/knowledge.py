"""Knowledge base articles: write, search, publish, history, import and export.

Agents read every article and write drafts; only admins publish, unpublish, delete, edit a
published article (customers read it at once) or import. A publish reaches every replica's
answers within seconds (dialogs/knowledge.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, BeforeValidator, Field, StringConstraints

from admin_api import article_files
from admin_api.deps import AdminDep, CallerDep, UowDep
from admin_api.problems import Problem
from admin_api.schemas import NO_NUL, SOME_TEXT, Id, In, Language, Out, _whole_number, words
from core import knowledge
from core.access import Caller
from core.db.knowledge import SqlKnowledgeBase
from core.knowledge import (
    Article,
    ArticleQuery,
    ArticleStatus,
    ArticleText,
    ArticleVersion,
    Edit,
    GapReason,
)
from core.model import utcnow
from dialogs.gaps import GapGroup, group_gaps

router = APIRouter(prefix="/articles", tags=["knowledge base"])

Title = Annotated[str, words(200)]
# Not blank, no NUL.
ArticleBody = Annotated[str, StringConstraints(min_length=1, max_length=100_000,
                                               pattern=SOME_TEXT)]  # fmt: skip
Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
Tag = Annotated[str, words(64)]
Question = Annotated[str, words(500)]
Words = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]
FileName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]
FileContent = Annotated[str, StringConstraints(max_length=200_000, pattern=NO_NUL)]
Format = Literal["faq_yaml", "markdown"]
# Like schemas.BodyId: the bounds before the validator, so the OpenAPI states them.
VersionNumber = Annotated[
    int, Field(ge=1, le=2**31 - 1, strict=True), BeforeValidator(_whole_number)
]


class ArticleIn(In):
    title: Title
    body: ArticleBody = Field(description="Markdown; its paragraphs are what the bot quotes.")
    language: Language = "en"
    key: Key | None = Field(
        None, description="An NLU intent (`faq_opening_hours`) or FAQ key; unique per language."
    )
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    questions: list[Question] = Field(
        default_factory=list, max_length=200, description="Example questions it answers."
    )


class ArticlePatch(In):
    title: Title | None = None
    body: ArticleBody | None = None
    language: Language | None = None
    key: Key | None = Field(None, description="null removes the key.")
    tags: list[Tag] | None = Field(None, max_length=50)
    questions: list[Question] | None = Field(None, max_length=200)
    version: VersionNumber | None = Field(
        None, description="The version you edited: 409 if someone saved another since."
    )


class ArticleOut(Out):
    id: int
    key: str | None
    title: str
    body: str
    language: str
    tags: list[str]
    questions: list[str]
    status: ArticleStatus
    version: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str


class ArticlePage(BaseModel):
    items: list[ArticleOut]
    next_after: int | None = Field(None, description="Pass as `after` for the next page.")


class VersionOut(Out):
    version: int
    change: str
    title: str
    body: str
    language: str
    tags: list[str]
    questions: list[str]
    status: ArticleStatus
    changed_at: datetime
    changed_by: str
    helped: int = Field(description="Customers who said this version's answer helped.")
    not_helped: int


class ArticleFile(BaseModel):
    name: FileName
    content: FileContent


class ExportOut(BaseModel):
    format: Format
    files: list[ArticleFile]


class ImportIn(In):
    format: Format
    files: list[ArticleFile] = Field(min_length=1, max_length=1000)
    language: Language = Field("en", description="For files that do not name their language.")
    publish: bool = Field(False, description="Publish the new articles at once.")


class ImportOut(BaseModel):
    created: list[int]
    updated: list[int]
    unchanged: list[int]


def _out(article: Article) -> ArticleOut:
    return ArticleOut(
        id=article.id,
        key=article.text.key,
        **article.text.fields(with_key=False),
        status=article.status,
        version=article.version,
        created_at=article.created_at,
        created_by=article.created_by,
        updated_at=article.updated_at,
        updated_by=article.updated_by,
    )


def _version_out(version: ArticleVersion) -> VersionOut:
    return VersionOut(
        version=version.version,
        change=version.change.value,
        **version.text.fields(with_key=False),
        status=version.status,
        changed_at=version.changed_at,
        changed_by=version.changed_by,
        helped=version.helped,
        not_helped=version.not_helped,
    )


@router.get(
    "",
    response_model=ArticlePage,
    summary="List and search articles",
    description="`q` keeps the articles with every word of it in the title, body, key, tags or "
    "example questions (any case). Drafts included unless `status` says otherwise.",
)
async def list_articles(
    _: CallerDep,
    uow: UowDep,
    q: Annotated[Words | None, Query()] = None,
    status: ArticleStatus | None = None,
    language: Annotated[Language | None, Query()] = None,
    tag: Annotated[Tag | None, Query()] = None,
    after: Annotated[int, Query(ge=0, le=2**53 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ArticlePage:
    query = ArticleQuery(
        q=q,
        status=status,
        language=knowledge.normalise_language(language) if language else None,
        tag=tag,
        limit=limit,
        after_id=after,
    )
    found = await SqlKnowledgeBase(uow.session).find(query)
    last = found[-1].id if len(found) == limit else None
    return ArticlePage(items=[_out(a) for a in found], next_after=last)


@router.post("", status_code=201, response_model=ArticleOut, summary="Write a draft article")
async def create_article(body: ArticleIn, caller: CallerDep, uow: UowDep) -> ArticleOut:
    text = ArticleText(
        title=body.title,
        body=body.body,
        language=body.language,
        key=body.key,
        tags=tuple(body.tags),
        questions=tuple(body.questions),
    )
    repo = SqlKnowledgeBase(uow.session)
    article = await knowledge.create_article(repo, text, by=caller.actor, now=utcnow())
    await uow.commit()
    return _out(article)


@router.get(
    "/export",
    response_model=ExportOut,
    summary="Export articles as files",
    description="`faq_yaml`: the articles with a key, as one file in the format of the shipped "
    "`faq.yaml`. `markdown`: one Markdown file with front matter per article.",
)
async def export_articles(
    _: CallerDep,
    uow: UowDep,
    format: Format = "markdown",
    status: ArticleStatus | None = ArticleStatus.PUBLISHED,
    language: Annotated[Language | None, Query()] = None,
) -> ExportOut:
    repo = SqlKnowledgeBase(uow.session)
    articles = await _all(repo, status, language)
    if format == "faq_yaml":
        content = article_files.faq_yaml(articles, await repo.revision())
        return ExportOut(format=format, files=[ArticleFile(name="faq.yaml", content=content)])
    files = [
        ArticleFile(name=article_files.markdown_name(a), content=article_files.markdown(a))
        for a in articles
    ]
    return ExportOut(format=format, files=files)


@router.post(
    "/import",
    response_model=ImportOut,
    summary="Import articles from files",
    description="Articles whose key already exists in their language are edited (and keep "
    "their status); the others are created as drafts, or published with `publish`.",
)
async def import_articles(body: ImportIn, caller: AdminDep, uow: UowDep) -> ImportOut:
    texts: list[ArticleText] = []
    for file in body.files:
        if body.format == "faq_yaml":
            texts += article_files.read_faq_yaml(file.name, file.content, body.language)
        else:
            texts.append(article_files.read_markdown(file.name, file.content, body.language))
    article_files.check(texts)
    result = await knowledge.import_articles(
        SqlKnowledgeBase(uow.session),
        texts,
        by=caller.actor,
        now=utcnow(),
        publish=body.publish,
        body_only=body.format == "faq_yaml",
    )
    await uow.commit()
    return ImportOut(created=result.created, updated=result.updated, unchanged=result.unchanged)


class GapDraft(BaseModel):
    """An agent's answer to one of these questions, as the start of a new article."""

    title: str
    body: str
    questions: list[str]
    language: str
    ticket_id: int = Field(description="The ticket the agent answered it on.")


class GapGroupOut(BaseModel):
    count: int = Field(description="How often it was asked in the period.")
    examples: list[str] = Field(description="Distinct questions as customers asked, newest first.")
    reasons: dict[GapReason, int]
    language: str
    article_ids: list[int] = Field(description="Articles that matched too weakly or did not help.")
    last_seen: datetime
    draft: GapDraft | None = Field(
        description="When a customer opened a ticket after asking and an agent answered it: "
        "that answer, ready to POST to /articles."
    )


class GapsOut(BaseModel):
    since: datetime
    questions: int = Field(description="Questions read (the newest, at most 5,000).")
    groups: list[GapGroupOut]


#: The longest a customer's ticket can follow their question and still be about it.
GAP_TICKET_WINDOW = timedelta(hours=24)
GAPS_READ = 5000


@router.get(
    "/gaps",
    response_model=GapsOut,
    summary="Questions the bot could not answer, grouped",
    description="What customers asked that no article answered (not understood, answered "
    'with too little confidence, or "that didn\'t help"), grouped by their words, the most '
    "asked first; each group offers an agent's answer as a draft article when there is one.",
)
async def list_gaps(
    _: CallerDep,
    uow: UowDep,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
    language: Annotated[Language | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> GapsOut:
    repo = SqlKnowledgeBase(uow.session)
    since = utcnow() - timedelta(days=days)
    code = knowledge.normalise_language(language).split("-")[0] if language else None
    gaps = await repo.gaps(since=since, language=code, limit=GAPS_READ)
    groups = group_gaps(gaps)[:limit]
    return GapsOut(
        since=since,
        questions=len(gaps),
        groups=[
            GapGroupOut(
                count=group.count,
                examples=group.examples,
                reasons=group.reasons,
                language=group.language,
                article_ids=group.article_ids,
                last_seen=group.last_seen,
                draft=await _draft(repo, group),
            )
            for group in groups
        ],
    )


async def _draft(repo: SqlKnowledgeBase, group: GapGroup) -> GapDraft | None:
    for gap in group.gaps[:20]:  # the newest first: the freshest answer
        answer = await repo.answer_after(gap, within=GAP_TICKET_WINDOW)
        if answer is not None:
            examples = group.examples
            return GapDraft(
                title=examples[0][:200],
                body=answer.body,
                questions=examples,
                language=group.language,
                ticket_id=answer.ticket_id,
            )
    return None


@router.get("/{article_id:int}", response_model=ArticleOut, summary="Get an article")
async def get_article(article_id: Id, _: CallerDep, uow: UowDep) -> ArticleOut:
    return _out(await knowledge.get_article(SqlKnowledgeBase(uow.session), article_id))


@router.patch(
    "/{article_id:int}",
    response_model=ArticleOut,
    summary="Edit an article",
    description="Saves a new version. Agents edit drafts; an edit of a published article is "
    "live at once, so it needs an admin key.",
)
async def edit_article(
    article_id: Id, body: ArticlePatch, caller: CallerDep, uow: UowDep
) -> ArticleOut:
    repo = SqlKnowledgeBase(uow.session)
    article = await knowledge.get_article(repo, article_id)
    _check_may_edit(caller, article)
    sent = body.model_fields_set
    edit = Edit(
        title=body.title,
        body=body.body,
        language=body.language,
        key=body.key,
        tags=tuple(body.tags) if body.tags is not None else None,
        questions=tuple(body.questions) if body.questions is not None else None,
        clear_key="key" in sent and body.key is None,
    )
    edited = await knowledge.edit_article(
        repo, article_id, edit, by=caller.actor, now=utcnow(), expected_version=body.version
    )
    await uow.commit()
    return _out(edited)


@router.delete("/{article_id:int}", status_code=204, summary="Delete an article and its versions")
async def delete_article(article_id: Id, _: AdminDep, uow: UowDep) -> Response:
    await knowledge.delete_article(SqlKnowledgeBase(uow.session), article_id)
    await uow.commit()
    return Response(status_code=204)


@router.post(
    "/{article_id:int}/publish",
    response_model=ArticleOut,
    summary="Publish an article",
    description="Customers are answered from it within seconds, on every replica. 409 if it "
    "is published already.",
)
async def publish_article(article_id: Id, caller: AdminDep, uow: UowDep) -> ArticleOut:
    repo = SqlKnowledgeBase(uow.session)
    article = await knowledge.publish_article(repo, article_id, by=caller.actor, now=utcnow())
    await uow.commit()
    return _out(article)


@router.post(
    "/{article_id:int}/unpublish",
    response_model=ArticleOut,
    summary="Take an article back to draft",
    description="Customers are no longer answered from it. 409 if it is not published.",
)
async def unpublish_article(article_id: Id, caller: AdminDep, uow: UowDep) -> ArticleOut:
    repo = SqlKnowledgeBase(uow.session)
    article = await knowledge.unpublish_article(repo, article_id, by=caller.actor, now=utcnow())
    await uow.commit()
    return _out(article)


@router.get(
    "/{article_id:int}/versions",
    response_model=list[VersionOut],
    summary="An article's versions, newest first",
    description="Who changed what and when, and how often each version's answer helped.",
)
async def article_versions(article_id: Id, _: CallerDep, uow: UowDep) -> list[VersionOut]:
    repo = SqlKnowledgeBase(uow.session)
    await knowledge.get_article(repo, article_id)
    return [_version_out(v) for v in await repo.versions(article_id)]


def _check_may_edit(caller: Caller, article: Article) -> None:
    if article.is_published and not caller.is_admin:
        raise Problem(403, "a published article is edited with an admin key", code="forbidden")


async def _all(
    repo: SqlKnowledgeBase, status: ArticleStatus | None, language: str | None
) -> list[Article]:
    found: list[Article] = []
    query = ArticleQuery(
        status=status,
        language=knowledge.normalise_language(language) if language else None,
        limit=500,
    )
    while page := await repo.find(query):
        found += page
        query = ArticleQuery(
            status=query.status, language=query.language, limit=500, after_id=page[-1].id
        )
    return found
