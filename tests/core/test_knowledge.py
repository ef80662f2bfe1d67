"""The knowledge base's rules on both databases: seeding once, versions, the revision."""

from __future__ import annotations

import asyncio

from core import knowledge
from core.db.database import Database
from core.db.knowledge import SqlKnowledgeBase, read_revision
from core.knowledge import ArticleQuery, ArticleText, Edit
from core.model import utcnow
from dialogs.knowledge import shipped_articles

SHIPPED = shipped_articles()


async def seed(db: Database) -> bool:
    async with db.uow() as uow:
        seeded = await knowledge.seed_articles(SqlKnowledgeBase(uow.session), SHIPPED, now=utcnow())
        await uow.commit()
    return seeded


async def test_a_new_install_is_seeded_once_and_admin_edits_survive_every_restart(
    db: Database,
) -> None:
    assert await seed(db)
    async with db.uow() as uow:
        repo = SqlKnowledgeBase(uow.session)
        assert len(await repo.published()) == len(SHIPPED)
        hours = await repo.by_key("en", "faq_opening_hours")
        pricing = await repo.by_key("en", "faq_pricing")
        assert hours is not None and pricing is not None
        assert hours.text.questions  # the intent's examples teach the article its questions
        await knowledge.edit_article(repo, hours.id, Edit(body="Open 24/7."), by="a", now=utcnow())
        await knowledge.delete_article(repo, pricing.id)
        await uow.commit()
    assert not await seed(db)
    async with db.uow() as uow:
        repo = SqlKnowledgeBase(uow.session)
        assert len(await repo.find(ArticleQuery())) == len(SHIPPED) - 1
        assert await repo.by_key("en", "faq_pricing") is None
        edited = await repo.by_key("en", "faq_opening_hours")
        assert edited is not None and edited.text.body == "Open 24/7."


async def test_replicas_starting_together_seed_once(db: Database) -> None:
    assert sorted(await asyncio.gather(seed(db), seed(db), seed(db))) == [False, False, True]
    async with db.uow() as uow:
        assert len(await SqlKnowledgeBase(uow.session).published()) == len(SHIPPED)


async def test_the_revision_moves_only_when_what_customers_may_read_changes(
    db: Database,
) -> None:
    async def step(action: str, *args: object, **kw: object) -> int:
        async with db.uow() as uow:
            repo = SqlKnowledgeBase(uow.session)
            result = await getattr(knowledge, action)(repo, *args, by="a", now=utcnow(), **kw)
            await uow.commit()
        step.last = result  # type: ignore[attr-defined]
        return await read_revision(db)

    start = await read_revision(db)
    text = ArticleText("Returns", "Within 30 days.")
    assert await step("create_article", text) == start  # a draft
    article = step.last.id  # type: ignore[attr-defined]
    assert await step("edit_article", article, Edit(body="Within 60 days.")) == start
    assert await step("publish_article", article) == start + 1
    assert await step("edit_article", article, Edit(body="Within 90 days.")) == start + 2
    assert await step("unpublish_article", article) == start + 3
    assert await step("edit_article", article, Edit(title="Returns policy")) == start + 3
