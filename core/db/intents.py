"""The intent examples in SQL: the team's edits, their revision, the training lease and the
trained models every replica loads (core/intents.py, dialogs/nlu/live.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import tables as t
from core.db.database import Database
from core.intents import ExampleEdit, LabelledText, TrainingState

e = t.intent_examples.c
s = t.nlu_state.c
m = t.nlu_models.c
STATE_ROW = 1
#: Trained models kept: the newest few, so going back to an earlier set of examples is fast.
KEEP_MODELS = 5


@dataclass(frozen=True, slots=True)
class TrainedModel:
    key: str
    backend: str
    model: bytes  # an .npz of plain arrays
    examples: int
    intents: int
    seconds: float
    trained_at: datetime


class SqlIntentExamples:
    """The IntentExamplesRepository port on one session (the caller's unit of work)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def edits(self) -> Sequence[ExampleEdit]:
        rows = await self.session.execute(select(t.intent_examples).order_by(e.id))
        return [_edit(row) for row in rows.all()]

    async def add(self, edit: ExampleEdit) -> None:
        await self.session.execute(
            insert(t.intent_examples).values(
                intent=edit.intent,
                text=edit.text,
                removed=edit.removed,
                changed_by=edit.changed_by,
                changed_at=edit.changed_at,
            )
        )

    async def delete(self, example: LabelledText) -> None:
        await self.session.execute(
            delete(t.intent_examples).where(e.intent == example.intent, e.text == example.text)
        )

    async def bump_revision(self) -> None:
        new = _upsert(self.session).values(id=STATE_ROW, revision=1)
        await self.session.execute(
            new.on_conflict_do_update(index_elements=[s.id], set_={"revision": s.revision + 1})
        )

    async def state(self) -> TrainingState:
        row = (await self.session.execute(select(t.nlu_state).where(s.id == STATE_ROW))).first()
        return _state(row)

    async def has_model(self, key: str) -> bool:
        return (await self.session.scalar(select(m.key).where(m.key == key))) is not None


async def read_state(db: Database) -> TrainingState:
    """The revision and the training lease, in one short read (each replica, every few
    seconds)."""
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(t.nlu_state).where(s.id == STATE_ROW))).first()
    return _state(row)


async def read_edits(db: Database) -> tuple[int, list[ExampleEdit]]:
    """The revision and every edit, read together in one transaction."""
    async with db.uow() as uow:
        repo = SqlIntentExamples(uow.session)
        return (await repo.state()).revision, list(await repo.edits())


async def read_model(db: Database, key: str) -> TrainedModel | None:
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(t.nlu_models).where(m.key == key))).first()
    return None if row is None else TrainedModel(**row._mapping)


async def claim_training(
    db: Database, key: str, *, revision: int, by: str, now: datetime, lease: timedelta
) -> bool:
    """Take the lease to train `key`, made of the examples at `revision`: only while that is
    still the newest revision, nobody else holds a live lease on the same key, and `key` has
    not failed before. A lease on another (older) key is taken over."""
    async with db.uow() as uow:
        await uow.session.execute(
            _upsert(uow.session).values(id=STATE_ROW, revision=0).on_conflict_do_nothing()
        )
        claimed = await uow.session.execute(
            update(t.nlu_state)
            .where(
                s.id == STATE_ROW,
                s.revision == revision,
                s.failed_key.is_distinct_from(key),
                s.training_key.is_distinct_from(key)
                | s.training_until.is_(None)
                | (s.training_until < now),
            )
            .values(
                training_key=key,
                training_by=by,
                training_until=now + lease,
                stage="starting",
                progress=0.0,
                started_at=now,
                finished_at=None,
                error=None,
            )
        )
        await uow.commit()
    return bool(getattr(claimed, "rowcount", 0))


async def report_training(
    db: Database,
    key: str,
    *,
    by: str,
    stage: str,
    progress: float,
    now: datetime,
    lease: timedelta,
) -> bool:
    """Write how far training is and renew the lease; False when the lease was lost (newer
    examples, or another replica took over after this one stalled)."""
    async with db.uow() as uow:
        renewed = await uow.session.execute(
            update(t.nlu_state)
            .where(s.id == STATE_ROW, s.training_key == key, s.training_by == by)
            .values(stage=stage, progress=progress, training_until=now + lease)
        )
        await uow.commit()
    return bool(getattr(renewed, "rowcount", 0))


async def finish_training(db: Database, model: TrainedModel, *, by: str) -> None:
    """Store the model for every replica, keep the newest few, and end the lease."""
    async with db.uow() as uow:
        session = uow.session
        await session.execute(
            _upsert(session, t.nlu_models)
            .values(
                key=model.key,
                backend=model.backend,
                model=model.model,
                examples=model.examples,
                intents=model.intents,
                seconds=model.seconds,
                trained_at=model.trained_at,
            )
            .on_conflict_do_nothing()
        )
        newest = select(m.key).order_by(m.trained_at.desc(), m.key).limit(KEEP_MODELS)
        await session.execute(delete(t.nlu_models).where(m.key.not_in(newest.scalar_subquery())))
        await session.execute(
            update(t.nlu_state)
            .where(s.id == STATE_ROW, s.training_key == model.key, s.training_by == by)
            .values(training_until=None, stage="done", progress=1.0, finished_at=model.trained_at)
        )
        await uow.commit()


async def fail_training(db: Database, key: str, *, by: str, error: str, now: datetime) -> None:
    """End the lease on examples that cannot be trained; they are not tried again."""
    async with db.uow() as uow:
        await uow.session.execute(
            update(t.nlu_state)
            .where(s.id == STATE_ROW, s.training_key == key, s.training_by == by)
            .values(
                training_until=None,
                stage="failed",
                failed_key=key,
                error=error[:2000],
                finished_at=now,
            )
        )
        await uow.commit()


def _upsert(session: AsyncSession, table: Any = t.nlu_state) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _edit(row: Any) -> ExampleEdit:
    return ExampleEdit(
        intent=row.intent,
        text=row.text,
        removed=bool(row.removed),
        changed_by=row.changed_by,
        changed_at=row.changed_at,
    )


def _state(row: Any) -> TrainingState:
    if row is None:
        return TrainingState(revision=0)
    values = dict(row._mapping)
    values.pop("id")
    return TrainingState(
        revision=int(values.pop("revision")),
        key=values.pop("training_key"),
        by=values.pop("training_by"),
        until=values.pop("training_until"),
        **values,
    )
