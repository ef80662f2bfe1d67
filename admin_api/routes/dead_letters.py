"""Dead letters: deliveries the relay gave up on, listed and retried by admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from admin_api.deps import AdminDep, UowDep
from admin_api.schemas import NO_NUL, DeadLetter, DeadLetterPage, Id
from core.db.queries import list_dead_letters, retry_dead_letter

router = APIRouter(prefix="/dead-letters", tags=["dead letters"])


@router.get("", response_model=DeadLetterPage, summary="List dead letters, newest first")
async def list_dead(
    _: AdminDep,
    uow: UowDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
) -> DeadLetterPage:
    items, next_cursor = await list_dead_letters(uow.session, limit=limit, cursor=cursor)
    return DeadLetterPage(
        items=[DeadLetter.model_validate(i) for i in items], next_cursor=next_cursor
    )


@router.post(
    "/{delivery_id:int}/retry",
    status_code=202,
    summary="Retry a dead letter",
    description="The delivery goes back to `failed`, due now, and its outbox event to "
    "`pending`: the relay runs the handler again. 409 when it is not dead.",
)
async def retry(delivery_id: Id, _: AdminDep, uow: UowDep) -> dict[str, str]:
    await retry_dead_letter(uow.session, delivery_id)
    await uow.commit()
    return {"status": "failed"}
