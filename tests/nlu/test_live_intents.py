"""Intent examples edited live (core/intents.py, dialogs/nlu/live.py), on SQLite and
PostgreSQL: the rules of an edit, one training for the whole cluster in a child process, the
model shared through the database, and a trainer that dies or fails."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from core import intents
from core.db.database import Database
from core.db.intents import SqlIntentExamples, claim_training, read_model, read_state
from core.errors import InvalidInput, NotFound
from core.intents import ExampleTaken, LabelledText, LastExample
from core.model import utcnow
from dialogs.nlu import LocalNLU
from dialogs.nlu.live import LiveIntents, base_examples, examples_key

PARKING = ["where do I put my automobile", "is there parking", "where can I park my car"]


@pytest.fixture
def base(small_intents_file: Path) -> tuple[LabelledText, ...]:
    return base_examples(small_intents_file)


def replica(db: Database, intents_file: Path, **kw: object) -> LiveIntents:
    model = LocalNLU.from_file(intents_file)
    return LiveIntents(db, model, intents_file=intents_file, refresh_seconds=0.2, **kw)  # type: ignore[arg-type]


async def edit(db: Database, base: Sequence[LabelledText], action: str, *args: str) -> None:
    async with db.uow() as uow:
        repo = SqlIntentExamples(uow.session)
        await getattr(intents, action)(repo, base, *args, by="admin:test", now=utcnow())
        await uow.commit()


async def current(db: Database, base: Sequence[LabelledText]) -> list[LabelledText]:
    async with db.uow() as uow:
        return intents.apply_edits(base, await SqlIntentExamples(uow.session).edits())


async def test_an_added_example_teaches_a_new_intent_and_bumps_the_revision(
    db: Database, base: Sequence[LabelledText]
) -> None:
    before = (await read_state(db)).revision
    await edit(db, base, "add_example", "faq_parking", "  is there   parking ")
    assert LabelledText("faq_parking", "is there parking") in await current(db, base)
    assert (await read_state(db)).revision == before + 1


async def test_the_same_words_are_refused_for_any_intent(
    db: Database, base: Sequence[LabelledText]
) -> None:
    with pytest.raises(ExampleTaken, match="already an example of greet"):
        await edit(db, base, "add_example", "faq_parking", "Hello Bot")
    await edit(db, base, "add_example", "faq_parking", "is there parking")
    with pytest.raises(ExampleTaken):
        await edit(db, base, "add_example", "greet", "IS THERE PARKING")
    with pytest.raises(InvalidInput, match="not an intent name"):
        await edit(db, base, "add_example", "Parking!", "where to park")


async def test_a_files_example_taken_out_and_put_back_leaves_no_edit(
    db: Database, base: Sequence[LabelledText]
) -> None:
    hello = LabelledText("greet", "hello")
    await edit(db, base, "remove_example", "greet", hello.id)
    assert hello not in await current(db, base)
    await edit(db, base, "add_example", "greet", "hello")
    assert await current(db, base) == list(base)
    async with db.uow() as uow:
        assert list(await SqlIntentExamples(uow.session).edits()) == []


async def test_an_added_example_removed_is_forgotten_and_a_files_intent_keeps_one(
    db: Database, base: Sequence[LabelledText]
) -> None:
    await edit(db, base, "add_example", "faq_parking", "is there parking")
    await edit(db, base, "add_example", "faq_parking", "where can I park")
    await edit(db, base, "remove_example", "faq_parking", intents.example_id("faq_parking",
               "is there parking"))  # fmt: skip
    assert [e.text for e in await current(db, base) if e.intent == "faq_parking"] == [
        "where can I park"
    ]
    await edit(db, base, "remove_example", "faq_parking",
               intents.example_id("faq_parking", "where can I park"))  # fmt: skip
    assert "faq_parking" not in {e.intent for e in await current(db, base)}  # the team's own
    for text in ("hello", "hi", "hey there", "good morning"):
        await edit(db, base, "remove_example", "greet", intents.example_id("greet", text))
    with pytest.raises(LastExample, match="hello bot"):
        await edit(db, base, "remove_example", "greet", intents.example_id("greet", "hello bot"))
    with pytest.raises(NotFound):
        await edit(db, base, "remove_example", "greet", "0" * 16)


async def test_one_replica_trains_and_every_replica_serves_the_stored_model(
    db: Database, small_intents_file: Path, base: Sequence[LabelledText]
) -> None:
    first, second = replica(db, small_intents_file), replica(db, small_intents_file)
    await first.start()
    await second.start()
    assert (await first.parse("where do I put my automobile")).intent != "faq_parking"

    for text in PARKING:
        await edit(db, base, "add_example", "faq_parking", text)
    await first.refresh()  # takes the lease and trains in a child process
    assert not await second.refresh()  # the lease is taken: it waits, serving the old model
    assert first._training is not None and second._training is None
    await asyncio.wait_for(first._training, 60)

    state = await read_state(db)
    assert (state.stage, state.progress, state.error) == ("done", 1.0, None)
    assert state.until is None  # the lease is ended
    key = examples_key(await current(db, base))
    stored = await read_model(db, key)
    assert stored is not None and stored.examples == len(base) + 3 and stored.intents == 4

    assert await second.refresh()  # loads the stored model; never trains
    assert second._training is None
    for live in (first, second):
        assert live.key == key
        parse = await live.parse("Where do I put my automobile?")
        assert parse.intent == "faq_parking"
        assert parse.confidence > 0.5


async def test_undoing_every_edit_serves_the_files_model_again(
    db: Database, small_intents_file: Path, base: Sequence[LabelledText]
) -> None:
    live = replica(db, small_intents_file)
    await live.start()
    await edit(db, base, "add_example", "faq_parking", "is there parking")
    await live.refresh()
    assert live._training is not None
    await asyncio.wait_for(live._training, 60)
    assert live.key is not None
    await edit(db, base, "remove_example", "faq_parking",
               intents.example_id("faq_parking", "is there parking"))  # fmt: skip
    assert await live.refresh()
    assert live.key is None and live.current is live.base


async def test_a_lease_is_taken_over_only_when_its_trainer_is_gone(
    db: Database, base: Sequence[LabelledText]
) -> None:
    await edit(db, base, "add_example", "faq_parking", "is there parking")
    revision = (await read_state(db)).revision
    now, lease = utcnow(), timedelta(seconds=30)

    async def claim(by: str, key: str = "k1", at: object = now, rev: int = revision) -> bool:
        return await claim_training(db, key, revision=rev, by=by, now=at, lease=lease)  # type: ignore[arg-type]

    assert await claim("a")
    assert not await claim("b")  # a is training k1
    assert not await claim("b", rev=revision - 1, key="k0")  # stale examples never take it
    assert await claim("b", at=now + timedelta(seconds=31))  # a's lease ran out: a died
    state = await read_state(db)
    assert (state.key, state.by) == ("k1", "b")


async def test_a_trainer_that_fails_is_reported_and_not_retried(
    db: Database, small_intents_file: Path, base: Sequence[LabelledText]
) -> None:
    live = replica(db, small_intents_file)
    live.trainer = (sys.executable, "-c", "import sys; sys.exit('no memory left')")
    await live.start()
    await edit(db, base, "add_example", "faq_parking", "is there parking")
    await live.refresh()
    assert live._training is not None
    await asyncio.wait_for(live._training, 30)
    state = await read_state(db)
    assert state.stage == "failed" and state.until is None
    assert state.error is not None and "no memory left" in state.error
    await live.refresh()
    assert live._training.done()  # the same examples are not tried again
    assert live.key is None  # customers are still understood, by the model it had
    assert (await live.parse("when are you open")).intent == "faq_opening_hours"

    await edit(db, base, "add_example", "faq_parking", "where can I park")
    live.trainer = LiveIntents.trainer  # new examples are tried again, with the real trainer
    await live.refresh()
    await asyncio.wait_for(live._training, 60)
    assert live.key is not None  # trained, stored and served
    assert (await read_state(db)).stage == "done"
