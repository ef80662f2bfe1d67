"""The knowledge base in SQL: articles, their versions, and the revision replicas follow."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, cast, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import tables as t
from core.db.database import Database
from core.knowledge import (
    AgentAnswer,
    Article,
    ArticleQuery,
    ArticleStatus,
    ArticleText,
    ArticleVersion,
    Change,
    Gap,
    GapReason,
)
from core.model import Author

a = t.knowledge_articles.c
v = t.knowledge_article_versions.c
s = t.knowledge_state.c
g = t.knowledge_gaps.c
STATE_ROW = 1


class SqlKnowledgeBase:
    """The KnowledgeRepository port on one session (the caller's unit of work)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, article_id: int) -> Article | None:
        row = (await self.session.execute(_articles().where(a.id == article_id))).first()
        return None if row is None else _article(row._mapping)

    async def by_key(self, language: str, key: str) -> Article | None:
        query = _articles().where(a.language == language, a.key == key)
        row = (await self.session.execute(query)).first()
        return None if row is None else _article(row._mapping)

    async def find(self, query: ArticleQuery) -> Sequence[Article]:
        statement = _articles().where(a.id > query.after_id).order_by(a.id).limit(query.limit)
        if query.status is not None:
            statement = statement.where(a.status == query.status.value)
        if query.language is not None:
            statement = statement.where(a.language == query.language)
        if query.tag:
            # JSON lists as text: '["a","b"]' (SQLite) or '["a", "b"]' (PostgreSQL).
            quoted = f'"{query.tag.lower()}"'
            statement = statement.where(cast(a.tags, String).contains(quoted, autoescape=True))
        if query.q:
            statement = statement.where(_matches(query.q))
        rows = (await self.session.execute(statement)).all()
        return [_article(row._mapping) for row in rows]

    async def published(self) -> Sequence[Article]:
        statement = _articles().where(a.status == ArticleStatus.PUBLISHED.value).order_by(a.id)
        return [_article(row._mapping) for row in (await self.session.execute(statement)).all()]

    async def add(
        self, text: ArticleText, *, status: ArticleStatus, by: str, now: datetime
    ) -> Article:
        values = {
            **text.fields(),
            "status": status.value,
            "version": 1,
            "created_at": now,
            "created_by": by,
            "updated_at": now,
            "updated_by": by,
        }
        new_id = await self.session.scalar(
            insert(t.knowledge_articles).values(values).returning(a.id)
        )
        assert new_id is not None
        return Article(int(new_id), text, status, 1, now, by, now, by)

    async def save(self, article: Article, *, previous_version: int) -> bool:
        changed = await self.session.execute(
            update(t.knowledge_articles)
            .where(a.id == article.id, a.version == previous_version)
            .values(
                **article.text.fields(),
                status=article.status.value,
                version=article.version,
                updated_at=article.updated_at,
                updated_by=article.updated_by,
            )
        )
        return bool(getattr(changed, "rowcount", 0))

    async def add_version(self, article: Article, change: Change) -> None:
        await self.session.execute(
            insert(t.knowledge_article_versions).values(
                **article.text.fields(with_key=False),
                article_id=article.id,
                version=article.version,
                change=change.value,
                status=article.status.value,
                changed_at=article.updated_at,
                changed_by=article.updated_by,
            )
        )

    async def versions(self, article_id: int) -> Sequence[ArticleVersion]:
        rows = await self.session.execute(
            select(t.knowledge_article_versions)
            .where(v.article_id == article_id)
            .order_by(v.version.desc())
        )
        return [_version(row._mapping) for row in rows]

    async def delete(self, article_id: int) -> None:
        # Versions first: SQLite enforces ON DELETE CASCADE only with foreign_keys on.
        await self.session.execute(
            delete(t.knowledge_article_versions).where(v.article_id == article_id)
        )
        await self.session.execute(delete(t.knowledge_articles).where(a.id == article_id))

    async def revision(self) -> int:
        value = await self.session.scalar(select(s.revision).where(s.id == STATE_ROW))
        return int(value or 0)

    async def bump_revision(self) -> None:
        new = self._insert().values(id=STATE_ROW, revision=1)
        await self.session.execute(
            new.on_conflict_do_update(index_elements=[s.id], set_={"revision": s.revision + 1})
        )

    async def claim_seeding(self, now: datetime) -> bool:
        # The row exists after the migration; tests that empty every table remove it.
        await self.session.execute(
            self._insert().values(id=STATE_ROW, revision=0).on_conflict_do_nothing()
        )
        # One replica wins: the others wait on its row lock, then find seeded_at set.
        claimed = await self.session.execute(
            update(t.knowledge_state)
            .where(s.id == STATE_ROW, s.seeded_at.is_(None))
            .values(seeded_at=now)
        )
        return bool(getattr(claimed, "rowcount", 0))

    async def count_feedback(self, article_id: int, version: int, *, helped: bool) -> None:
        column = v.helped if helped else v.not_helped
        await self.session.execute(
            update(t.knowledge_article_versions)
            .where(v.article_id == article_id, v.version == version)
            .values({column.name: column + 1})
        )

    async def add_gap(self, gap: Gap) -> None:
        await self.session.execute(
            insert(t.knowledge_gaps).values(
                customer_id=gap.customer_id,
                language=gap.language,
                question=gap.question,
                reason=gap.reason.value,
                article_id=gap.article_id,
                created_at=gap.created_at,
            )
        )

    async def gaps(self, *, since: datetime, language: str | None, limit: int) -> Sequence[Gap]:
        query = (
            select(t.knowledge_gaps)
            .where(g.created_at >= since)
            .order_by(g.created_at.desc(), g.id.desc())
            .limit(limit)
        )
        if language is not None:
            query = query.where(g.language == language)
        return [
            Gap(
                id=row.id,
                customer_id=row.customer_id,
                language=row.language,
                question=row.question,
                reason=GapReason(row.reason),
                article_id=row.article_id,
                created_at=row.created_at,
            )
            for row in (await self.session.execute(query)).all()
        ]

    async def answer_after(self, gap: Gap, *, within: timedelta) -> AgentAnswer | None:
        tk, m = t.tickets.c, t.messages.c
        query = (
            select(m.ticket_id, m.body)
            .join(t.tickets, tk.id == m.ticket_id)
            .where(
                tk.customer_id == gap.customer_id,
                tk.created_at >= gap.created_at,
                tk.created_at <= gap.created_at + within,
                m.author == Author.AGENT,
            )
            .order_by(tk.created_at, m.id)
            .limit(1)
        )
        row = (await self.session.execute(query)).first()
        return None if row is None else AgentAnswer(ticket_id=row.ticket_id, body=row.body)

    def _insert(self) -> Any:
        dialect = self.session.get_bind().dialect.name
        return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(t.knowledge_state)


async def read_revision(db: Database) -> int:
    """The knowledge base's revision, in one short read (each replica, every few seconds)."""
    async with db.engine.connect() as conn:
        value = await conn.scalar(select(s.revision).where(s.id == STATE_ROW))
    return int(value or 0)


async def read_published(db: Database) -> tuple[int, list[Article]]:
    """The revision and every published article, read together in one transaction."""
    async with db.uow() as uow:
        repo = SqlKnowledgeBase(uow.session)
        return await repo.revision(), list(await repo.published())


def _articles() -> Any:
    return select(t.knowledge_articles)


def _matches(q: str) -> Any:
    """Every word of `q` in the title, body, key, tags or questions (any case)."""
    fields = (a.title, a.body, a.key, cast(a.tags, String), cast(a.questions, String))
    return and_(
        *(
            or_(*(func.lower(f).contains(word, autoescape=True) for f in fields))
            for word in q.lower().split()[:10]
        )
    )


def _text(row: Any) -> ArticleText:
    return ArticleText(
        title=row["title"],
        body=row["body"],
        language=row["language"],
        key=row["key"],
        tags=tuple(row["tags"] or ()),
        questions=tuple(row["questions"] or ()),
    )


def _article(row: Any) -> Article:
    return Article(
        id=int(row["id"]),
        text=_text(row),
        status=ArticleStatus(row["status"]),
        version=int(row["version"]),
        created_at=row["created_at"],
        created_by=row["created_by"],
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
    )


def _version(row: Any) -> ArticleVersion:
    return ArticleVersion(
        article_id=int(row["article_id"]),
        version=int(row["version"]),
        change=Change(row["change"]),
        text=ArticleText(
            title=row["title"],
            body=row["body"],
            language=row["language"],
            tags=tuple(row["tags"] or ()),
            questions=tuple(row["questions"] or ()),
        ),
        status=ArticleStatus(row["status"]),
        changed_at=row["changed_at"],
        changed_by=row["changed_by"],
        helped=int(row["helped"]),
        not_helped=int(row["not_helped"]),
    )
