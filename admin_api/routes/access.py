"""Who calls and which keys exist."""

from __future__ import annotations

from fastapi import APIRouter, Response

from admin_api.deps import AdminDep, CallerDep, UowDep
from admin_api.schemas import CallerOut, Id, KeyIn, KeyOut, NewKeyOut
from core.db import keys

router = APIRouter(tags=["access"])


@router.get("/me", response_model=CallerOut, summary="Who this key belongs to")
async def me(caller: CallerDep) -> CallerOut:
    return CallerOut(
        key_id=caller.key_id, name=caller.name, role=caller.role, agent_id=caller.agent_id
    )


@router.get("/keys", response_model=list[KeyOut], summary="List API keys (never the secrets)")
async def list_keys(_: AdminDep, uow: UowDep) -> list[KeyOut]:
    return [KeyOut.model_validate(row) for row in await keys.list_keys(uow.session)]


@router.post("/keys", status_code=201, response_model=NewKeyOut, summary="Create an API key")
async def new_key(body: KeyIn, _: AdminDep, uow: UowDep) -> NewKeyOut:
    created = await keys.create_key(
        uow.session, name=body.name, role=body.role, agent_id=body.agent_id
    )
    await uow.commit()
    return NewKeyOut.model_validate(created)


@router.delete("/keys/{key_id:int}", status_code=204, summary="Revoke an API key")
async def delete_key(key_id: Id, _: AdminDep, uow: UowDep) -> Response:
    await keys.revoke_key(uow.session, key_id)
    await uow.commit()
    return Response(status_code=204)
