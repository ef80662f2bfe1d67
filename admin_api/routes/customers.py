"""Customers: profile and tickets (both roles); export and erasure (admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from admin_api.deps import AdminDep, CallerDep, UowDep
from admin_api.routes.tickets import ticket_page
from admin_api.schemas import NO_NUL, CustomerOut, Id, TicketPage
from core import services
from core.db.queries import Sort, TicketFilter

router = APIRouter(prefix="/customers", tags=["customers"])


@router.get("/{customer_id:int}", response_model=CustomerOut, summary="Get a customer")
async def get_customer(customer_id: Id, _: CallerDep, uow: UowDep) -> CustomerOut:
    return CustomerOut.model_validate(await services.get_customer(uow, customer_id))


@router.get("/{customer_id:int}/tickets", response_model=TicketPage, summary="A customer's tickets")
async def customer_tickets(
    customer_id: Id,
    _: CallerDep,
    uow: UowDep,
    sort: Sort = "-created_at",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
) -> TicketPage:
    await services.get_customer(uow, customer_id)
    return await ticket_page(
        uow, TicketFilter(customer_id=customer_id), sort=sort, limit=limit, cursor=cursor
    )


@router.get(
    "/{customer_id:int}/export",
    response_model=dict[str, Any],
    summary="Export everything stored about a customer (data-subject access)",
)
async def export_customer(customer_id: Id, _: AdminDep, uow: UowDep) -> dict[str, Any]:
    return await services.export_customer_data(uow, customer_id)


@router.post(
    "/{customer_id:int}/erase",
    response_model=CustomerOut,
    summary="Erase a customer's personal data",
    description="Keeps anonymised ticket figures; closes the customer's open tickets.",
)
async def erase_customer(customer_id: Id, _: AdminDep, uow: UowDep) -> CustomerOut:
    await services.erase_customer(uow, customer_id)
    await uow.commit()
    return CustomerOut.model_validate(await services.get_customer(uow, customer_id))
