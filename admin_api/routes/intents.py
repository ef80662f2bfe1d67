"""Intent examples: what the bot learns to recognise, edited live.

Everyone reads the intents, their examples and the training; only admins add or remove an
example (the bot understands customers differently at once). An edit is trained in the
background, once for the whole cluster, and every replica serves the new model within
seconds of it being stored (dialogs/nlu/live.py); until then turns use the previous model.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from admin_api.deps import AdminDep, CallerDep, SettingsDep, UowDep
from admin_api.schemas import In, Out, words
from core import intents
from core.config import Settings
from core.db.intents import SqlIntentExamples
from core.errors import NotFound
from core.intents import ExampleEdit, LabelledText, apply_edits, by_intent
from core.model import utcnow
from dialogs.nlu.live import base_examples, examples_key

router = APIRouter(prefix="/intents", tags=["intents"])

IntentName = Annotated[
    str, PathParam(pattern=intents.INTENT_NAME.pattern, max_length=64, examples=["faq_parking"])
]
ExampleId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$")]


class IntentOut(Out):
    intent: str
    examples: int
    added: int = Field(description="Examples the team added.")
    removed: int = Field(description="Examples of the intents file the team took out.")


class ExampleIn(In):
    text: Annotated[str, words(intents.MAX_TEXT)] = Field(
        description="How a customer says it; runs of white space count as one space."
    )


class ExampleOut(Out):
    id: str = Field(description="Stable: the same text of the same intent has the same id.")
    text: str
    source: Literal["file", "added"]
    changed_by: str | None = None
    changed_at: datetime | None = None


class TrainingOut(BaseModel):
    revision: int = Field(description="Grows with every edit of the examples.")
    examples: int
    intents: int
    edits: int
    ready: bool = Field(
        description="The model of the current examples exists; every replica serves it "
        "within seconds. False while it is being trained (turns use the previous model)."
    )
    stage: str | None = Field(None, description="Of the last training: learning, saving, "
                              "done or failed.")  # fmt: skip
    progress: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None


@router.get("", response_model=list[IntentOut], summary="The intents and their examples")
async def list_intents(_: CallerDep, uow: UowDep, settings: SettingsDep) -> list[IntentOut]:
    edits = await SqlIntentExamples(uow.session).edits()
    grouped = by_intent(apply_edits(_base(settings), edits))
    counted = Counter((e.intent, e.removed) for e in edits)
    return [
        IntentOut(
            intent=name,
            examples=len(examples),
            added=counted[name, False],
            removed=counted[name, True],
        )
        for name, examples in grouped.items()
    ]


@router.get(
    "/training",
    response_model=TrainingOut,
    summary="The model of the current examples",
    description="Poll it after an edit: `ready` turns true once the new model is stored.",
)
async def training(_: CallerDep, uow: UowDep, settings: SettingsDep) -> TrainingOut:
    repo = SqlIntentExamples(uow.session)
    state = await repo.state()
    edits = await repo.edits()
    examples = apply_edits(_base(settings), edits)
    ready = not edits or await repo.has_model(examples_key(examples))
    return TrainingOut(
        revision=state.revision,
        examples=len(examples),
        intents=len({e.intent for e in examples}),
        edits=len(edits),
        ready=ready,
        stage=state.stage,
        progress=state.progress,
        started_at=state.started_at,
        finished_at=state.finished_at,
        error=state.error,
    )


@router.get(
    "/{intent}/examples",
    response_model=list[ExampleOut],
    summary="An intent's examples",
)
async def list_examples(
    intent: IntentName, _: CallerDep, uow: UowDep, settings: SettingsDep
) -> list[ExampleOut]:
    edits = await SqlIntentExamples(uow.session).edits()
    found = by_intent(apply_edits(_base(settings), edits)).get(intent)
    if not found:
        raise NotFound(f"no intent {intent}")
    added = {e.example: e for e in edits if not e.removed}
    return [_out(example, added.get(example)) for example in found]


@router.post(
    "/{intent}/examples",
    status_code=201,
    response_model=ExampleOut,
    summary="Teach an intent one more way to say it",
    description="A new intent is made by its first example. 409 if the text is already an "
    "example (of any intent). The model is retrained in the background.",
)
async def add_example(
    intent: IntentName, body: ExampleIn, caller: AdminDep, uow: UowDep, settings: SettingsDep
) -> ExampleOut:
    repo = SqlIntentExamples(uow.session)
    now = utcnow()
    example = await intents.add_example(
        repo, _base(settings), intent, body.text, by=caller.actor, now=now
    )
    await uow.commit()
    edit = ExampleEdit(example.intent, example.text, False, caller.actor, now)
    return _out(example, None if example in _base(settings) else edit)


@router.delete(
    "/{intent}/examples/{example_id}",
    status_code=204,
    summary="Take an example out of an intent",
    description="409 for an intent's last example. The model is retrained in the background.",
)
async def remove_example(
    intent: IntentName,
    example_id: ExampleId,
    caller: AdminDep,
    uow: UowDep,
    settings: SettingsDep,
) -> Response:
    repo = SqlIntentExamples(uow.session)
    await intents.remove_example(
        repo, _base(settings), intent, example_id, by=caller.actor, now=utcnow()
    )
    await uow.commit()
    return Response(status_code=204)


def _out(example: LabelledText, edit: ExampleEdit | None) -> ExampleOut:
    return ExampleOut(
        id=example.id,
        text=example.text,
        source="added" if edit is not None else "file",
        changed_by=edit.changed_by if edit else None,
        changed_at=edit.changed_at if edit else None,
    )


def _base(settings: Settings) -> tuple[LabelledText, ...]:
    return base_examples(settings.nlu_intents_file)
