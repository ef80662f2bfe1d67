"""Answers from the knowledge base as customers read them: a passage of a published article,
verbatim, with its title; never a draft's, a deleted one's or a guess.

Each test runs on SQLite and on PostgreSQL (the `db` fixture).
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from core import knowledge
from core.db import tables as t
from core.db.database import Database
from core.db.knowledge import SqlKnowledgeBase
from core.knowledge import ArticleText, Edit
from core.model import utcnow
from dialogs.engine import DialogEngine
from dialogs.knowledge import LiveKnowledge, paragraphs, shipped_articles
from tests.dialogs.conftest import CONFIG, Customer, Press, ScriptedNLU, verify_dialog

SHIPPING = ArticleText(
    title="Shipping abroad",
    body=(
        "# Shipping abroad\n\n"
        "We deliver to the whole EU in 3-5 working days.\n\n"
        "Parcels to Canada and the United States take 7-10 working days and customs duties "
        "are paid on delivery.\n\n"
        "Tracking links arrive by email once the parcel leaves our warehouse."
    ),
    tags=("delivery",),
    questions=("do you ship overseas?",),
)
CANADA = (
    "Parcels to Canada and the United States take 7-10 working days and customs duties are "
    "paid on delivery."
)


def quoted(answer: str) -> tuple[str, str]:
    """The passage and the source title of a grounded answer."""
    passage, rest = answer.split("\n\n(From: ", 1)
    return passage, rest.split(")", 1)[0]


def engine_with(db: Database, live: LiveKnowledge) -> DialogEngine:
    from dialogs.catalogue import load_catalogue

    return DialogEngine(db, ScriptedNLU(), CONFIG, load_catalogue(strict=True), knowledge=live)  # type: ignore[arg-type]


@pytest.fixture
async def live(db: Database) -> LiveKnowledge:
    found = LiveKnowledge(db, seeds=shipped_articles())
    await found.start()
    return found


async def write(db: Database, text: ArticleText, *, publish: bool = True) -> int:
    async with db.uow() as uow:
        article = await knowledge.create_article(
            SqlKnowledgeBase(uow.session), text, by="Grace", now=utcnow(), publish=publish
        )
        await uow.commit()
    return article.id


async def change(db: Database, action: str, article_id: int, **kw: object) -> None:
    async with db.uow() as uow:
        repo = SqlKnowledgeBase(uow.session)
        if action == "delete":
            await knowledge.delete_article(repo, article_id)
        elif action == "edit":
            await knowledge.edit_article(repo, article_id, Edit(**kw), by="Ada", now=utcnow())  # type: ignore[arg-type]
        else:
            await getattr(knowledge, f"{action}_article")(repo, article_id, by="Ada", now=utcnow())
        await uow.commit()


async def test_a_faq_question_gets_the_published_articles_text_and_its_title(
    db: Database, live: LiveKnowledge
) -> None:
    customer = await verify_dialog(
        engine_with(db, live), [("when are you open?", "Did that help?")]
    )
    async with db.uow() as uow:
        article = await SqlKnowledgeBase(uow.session).by_key("en", "faq_opening_hours")
    assert article is not None and article.is_published
    assert quoted(customer.last[0].text) == (article.text.body, "Opening hours")


async def test_a_new_article_answers_with_the_paragraph_that_fits_the_question(
    db: Database, live: LiveKnowledge
) -> None:
    await write(db, SHIPPING)
    await live.refresh()
    customer = Customer(engine_with(db, live))
    await customer.say("How long does a parcel to Canada take?")
    assert quoted(customer.last[0].text) == (CANADA, "Shipping abroad")
    assert CANADA in paragraphs(SHIPPING.body)


async def test_an_edited_published_answer_is_what_customers_read_next(
    db: Database, live: LiveKnowledge
) -> None:
    async with db.uow() as uow:
        hours = await SqlKnowledgeBase(uow.session).by_key("en", "faq_opening_hours")
    assert hours is not None
    await change(db, "edit", hours.id, body="We are open every day from 8:00 to 20:00.")
    await live.refresh()
    await verify_dialog(
        engine_with(db, live),
        [("when are you open?", "We are open every day from 8:00 to 20:00.\n\n(From: Opening")],
    )


@pytest.mark.parametrize("removal", ["unpublish", "delete"])
async def test_an_unpublished_or_deleted_article_is_never_quoted(
    db: Database, live: LiveKnowledge, removal: str
) -> None:
    article_id = await write(db, SHIPPING)
    await live.refresh()
    engine = engine_with(db, live)
    await verify_dialog(engine, [("parcel to Canada?", CANADA)], user_id="before")
    await change(db, removal, article_id)
    assert await live.refresh()
    customer = Customer(engine, user_id="after")
    answer = await customer.say("parcel to Canada?")
    assert "Canada" not in answer and "Shipping abroad" not in answer


async def test_a_draft_is_never_quoted(db: Database, live: LiveKnowledge) -> None:
    await write(db, SHIPPING, publish=False)
    await live.refresh()
    answer = await Customer(engine_with(db, live)).say("parcel to Canada?")
    assert "Canada" not in answer


async def test_a_weak_match_is_not_guessed_but_handed_to_a_person(
    db: Database, live: LiveKnowledge
) -> None:
    await write(db, SHIPPING)
    await live.refresh()
    customer = await verify_dialog(
        engine_with(db, live),
        [
            ("can my parcel carry a live lobster through customs", ["not sure", "person"]),
            (Press("/human", "Talk to a person"), "CR-1001"),
        ],
    )
    assert "Canada" not in customer.last[0].text


async def test_gibberish_is_still_not_understood(db: Database, live: LiveKnowledge) -> None:
    await verify_dialog(engine_with(db, live), [("qwxz vbnm plokij", "didn't understand")])


async def test_did_that_help_is_counted_on_the_article_version_answered(
    db: Database, live: LiveKnowledge
) -> None:
    article_id = await write(db, SHIPPING)
    await live.refresh()
    engine = engine_with(db, live)
    await verify_dialog(engine, [("parcel to Canada?", CANADA), (Press("yes"), "Glad")])
    await verify_dialog(
        engine, [("parcel to Canada?", CANADA), ("no", "open a ticket")], user_id="u2"
    )
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    t.knowledge_article_versions.c.version,
                    t.knowledge_article_versions.c.helped,
                    t.knowledge_article_versions.c.not_helped,
                ).where(t.knowledge_article_versions.c.article_id == article_id)
            )
        ).all()
    assert [tuple(r) for r in rows] == [(1, 1, 1)]


async def test_a_second_replica_answers_from_an_article_published_on_the_first(
    db: Database,
) -> None:
    first = LiveKnowledge(db, seeds=shipped_articles(), refresh_seconds=0.2)
    second = LiveKnowledge(db, seeds=shipped_articles(), refresh_seconds=0.2)
    await first.start()
    await second.start()  # the second start seeds nothing: the database is seeded
    stopping = asyncio.Event()
    follower = asyncio.create_task(second.follow(stopping))
    try:
        article_id = await write(db, SHIPPING, publish=False)
        await change(db, "publish", article_id)
        customer = Customer(engine_with(db, second))
        for _ in range(50):
            if CANADA in await customer.say("parcel to Canada?"):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the second replica never answered from the new article")
    finally:
        stopping.set()
        await follower
    async with db.engine.connect() as conn:
        keys = (await conn.execute(select(t.knowledge_articles.c.key))).scalars().all()
    # Seeded once, though both replicas started with the seeds: each key once, and Shipping.
    assert sorted(k for k in keys if k) == sorted(str(a.key) for a in shipped_articles())
    assert len(keys) == len(shipped_articles()) + 1
