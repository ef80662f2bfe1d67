"""Knowledge gaps: what the bot could not answer is kept, in the customer's words, for the
admins' list; what it answered well is not. SQLite and PostgreSQL (the `db` fixture)."""

from __future__ import annotations

from datetime import timedelta

from core.db.database import Database
from core.db.knowledge import SqlKnowledgeBase
from core.knowledge import Gap, GapReason
from core.model import utcnow
from dialogs.gaps import group_gaps
from dialogs.knowledge import LiveKnowledge
from tests.dialogs.conftest import Press, verify_dialog
from tests.dialogs.test_knowledge import CANADA, SHIPPING, engine_with, live, write

__all__ = ["live"]  # the fixture, shared with the knowledge tests


async def gaps(db: Database) -> list[Gap]:
    async with db.uow() as uow:
        found = await SqlKnowledgeBase(uow.session).gaps(
            since=utcnow() - timedelta(hours=1), language=None, limit=100
        )
    return sorted(found, key=lambda g: g.id)


async def test_each_question_the_bot_could_not_answer_is_kept_with_why(
    db: Database, live: LiveKnowledge
) -> None:
    article = await write(db, SHIPPING)
    await live.refresh()
    engine = engine_with(db, live)
    await verify_dialog(
        engine,
        [
            ("qwxz vbnm plokij", "didn't understand"),
            ("can my parcel carry a live lobster through customs", "not sure"),
            (Press("no_thanks", "No, thanks"), "OK"),
            ("parcel to Canada?", CANADA),
            (Press("no", "No"), "Sorry about that"),
            (Press("no_thanks", "No, thanks"), "OK"),
            ("parcel to Canada?", CANADA),
            (Press("yes", "Yes"), "Glad"),
        ],
    )
    kept = [(g.question, g.reason, g.article_id, g.language) for g in await gaps(db)]
    assert kept == [
        ("qwxz vbnm plokij", GapReason.NOT_UNDERSTOOD, None, "en"),
        ("can my parcel carry a live lobster through customs", GapReason.UNSURE, article, "en"),
        ("parcel to Canada?", GapReason.NOT_HELPED, article, "en"),
    ]  # the answer that helped is no gap


def gap(question: str, minutes_ago: int, reason: GapReason = GapReason.NOT_UNDERSTOOD) -> Gap:
    return Gap(1, "en", question, reason, utcnow() - timedelta(minutes=minutes_ago), id=minutes_ago)


def test_questions_that_ask_the_same_are_one_group_the_most_asked_first() -> None:
    groups = group_gaps(
        [
            gap("Do you deliver to Iceland?", 1),
            gap("Can I pay with PayPal?", 2),
            gap("delivery to iceland??", 3, GapReason.UNSURE),
            gap("Do you deliver to Iceland?", 4),
            gap("Is PayPal accepted?", 5),
            gap("What?", 6),
            gap("what ?", 7),
        ]
    )
    assert [g.count for g in groups] == [3, 2, 2]
    iceland, paypal, what = groups
    assert iceland.examples == ["Do you deliver to Iceland?", "delivery to iceland??"]
    assert iceland.reasons == {GapReason.NOT_UNDERSTOOD: 2, GapReason.UNSURE: 1}
    assert paypal.examples == ["Can I pay with PayPal?", "Is PayPal accepted?"]
    assert what.examples == ["What?", "what ?"]  # only stopwords: alike when asked alike
    assert iceland.last_seen > paypal.last_seen
