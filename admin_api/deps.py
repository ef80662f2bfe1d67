"""FastAPI dependencies: the unit of work, the caller and the role checks.

Authentication is `Authorization: Bearer KEY`. Roles and what they may do are listed in
admin_api/__init__.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Protocol, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from admin_api.problems import Problem
from admin_api.ratelimit import ApiLimits, client_address, too_many
from core import access
from core.access import Caller
from core.config import Settings
from core.db.database import Database, Session
from core.db.keys import authenticate
from core.policy import SlaPolicy
from core.ports import RateLimiter, UnitOfWork

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `careline admin create-key`, sent as `Bearer KEY`.",
)


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_sla(request: Request) -> SlaPolicy:
    sla: SlaPolicy = request.app.state.sla
    return sla


class AdminUnitOfWork(UnitOfWork, Protocol):
    """The services' unit of work plus its session, for the admin API's own queries."""

    session: Session


async def get_uow(db: Annotated[Database, Depends(get_db)]) -> AsyncIterator[AdminUnitOfWork]:
    """One unit of work per request; routes commit what they change.

    Every dependency here is `async def`: FastAPI runs plain `def` ones in a thread pool,
    a hop that costs more than the work they do."""
    async with db.uow() as uow:
        # SqlUnitOfWork fits the protocol; mypy cannot see it through the repositories'
        # invariant attribute types.
        yield cast(AdminUnitOfWork, uow)


def is_postgres(uow: AdminUnitOfWork) -> bool:
    return uow.session.get_bind().dialect.name == "postgresql"


DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SlaDep = Annotated[SlaPolicy, Depends(get_sla)]
UowDep = Annotated[AdminUnitOfWork, Depends(get_uow)]


async def get_caller(
    request: Request,
    uow: UowDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The key's owner. The key is checked before any limit, so that only invalid keys
    count against (and are refused by) the failed-key limit of their address."""
    if credentials is None:
        raise Problem(
            401,
            "send an API key as `Authorization: Bearer KEY`",
            code="unauthenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    caller = await authenticate(uow.session, credentials.credentials)
    # Give the lookup's connection back first: the limiter counts on a connection of its
    # own, and requests that each hold one while waiting for another can drain the pool.
    await uow.rollback()
    limiter: RateLimiter = request.app.state.limiter
    limits: ApiLimits = request.app.state.limits
    if caller is None:
        if wait := await limiter.hit(limits.failed_keys, client_address(request)):
            raise too_many(
                wait,
                "too many invalid API keys from this address; try again later",
                "too_many_failed_keys",
            )
        raise Problem(
            401,
            "this API key is not valid",
            code="invalid_key",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if wait := await limiter.hit(limits.requests, str(caller.key_id)):
        raise too_many(wait, "this key made too many requests; slow down", "too_many_requests")
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


async def require_admin(caller: CallerDep) -> Caller:
    access.require_admin(caller)
    return caller


async def require_agent(caller: CallerDep) -> Caller:
    access.require_agent(caller)
    return caller


AdminDep = Annotated[Caller, Depends(require_admin)]
AgentDep = Annotated[Caller, Depends(require_agent)]
