"""Agents: create, list, get, update, deactivate. Agent keys may read; admins manage."""

from __future__ import annotations

from fastapi import APIRouter

from admin_api.deps import AdminDep, AdminUnitOfWork, CallerDep, UowDep
from admin_api.problems import Problem
from admin_api.schemas import AgentIn, AgentOut, AgentPatch, DeactivateIn, Id
from core import services
from core.errors import NotFound
from core.model import Agent, Availability, base_language

router = APIRouter(prefix="/agents", tags=["agents"])


async def _out(uow: AdminUnitOfWork, agent: Agent, loads: dict[int, int] | None = None) -> AgentOut:
    if loads is None:
        loads = await uow.agents.open_loads()
    out = AgentOut.model_validate(agent)
    out.open_tickets = loads.get(agent.id or 0, 0)
    return out


async def _agent(uow: AdminUnitOfWork, agent_id: int) -> Agent:
    agent = await uow.agents.get(agent_id)
    if agent is None:
        raise NotFound(f"there is no agent {agent_id}")
    return agent


@router.post("", status_code=201, response_model=AgentOut, summary="Create an agent")
async def create_agent(body: AgentIn, _: AdminDep, uow: UowDep) -> AgentOut:
    agent = await services.create_agent(
        uow,
        name=body.name,
        email=body.email,
        slack_user_id=body.slack_user_id,
        skills=body.skills,
        languages=body.languages,
        capacity=body.capacity,
        availability=body.availability,
    )
    await uow.commit()
    return await _out(uow, agent, {})


@router.get("", response_model=list[AgentOut], summary="List agents")
async def list_agents(_: CallerDep, uow: UowDep, active_only: bool = False) -> list[AgentOut]:
    loads = await uow.agents.open_loads()
    return [await _out(uow, a, loads) for a in await uow.agents.list(active_only=active_only)]


@router.get("/{agent_id:int}", response_model=AgentOut, summary="Get an agent")
async def get_agent(agent_id: Id, _: CallerDep, uow: UowDep) -> AgentOut:
    return await _out(uow, await _agent(uow, agent_id))


@router.patch("/{agent_id:int}", response_model=AgentOut, summary="Update an agent")
async def update_agent(agent_id: Id, body: AgentPatch, _: AdminDep, uow: UowDep) -> AgentOut:
    agent = await _agent(uow, agent_id)
    sent = body.model_fields_set
    if "name" in sent and body.name is not None:
        agent.name = body.name
    if "slack_user_id" in sent:
        agent.slack_user_id = body.slack_user_id
    if "skills" in sent and body.skills is not None:
        agent.skills = sorted({s.lower() for s in body.skills})
    if "languages" in sent and body.languages is not None:
        agent.languages = sorted({base_language(code) for code in body.languages})
    if "capacity" in sent and body.capacity is not None:
        agent.capacity = body.capacity
    if "availability" in sent and body.availability is not None:
        agent.availability = Availability(body.availability)
    await uow.commit()
    return await _out(uow, agent)


@router.post(
    "/{agent_id:int}/deactivate",
    response_model=AgentOut,
    summary="Deactivate an agent",
    description="Refused (409) while the agent holds open tickets, unless `reassign_to` names "
    "an active agent with room for them.",
)
async def deactivate_agent(
    agent_id: Id, _: AdminDep, uow: UowDep, body: DeactivateIn | None = None
) -> AgentOut:
    reassign_to = body.reassign_to if body else None
    if reassign_to == agent_id:
        raise Problem(422, "an agent's tickets cannot be reassigned to the same agent",
                      code="reassign_to_self")  # fmt: skip
    agent = await services.deactivate_agent(uow, agent_id, reassign_to=reassign_to)
    await uow.commit()
    return await _out(uow, agent)


@router.post("/{agent_id:int}/activate", response_model=AgentOut, summary="Reactivate an agent")
async def activate_agent(agent_id: Id, _: AdminDep, uow: UowDep) -> AgentOut:
    agent = await _agent(uow, agent_id)
    agent.active = True
    agent.availability = Availability.AVAILABLE
    await uow.commit()
    return await _out(uow, agent)
