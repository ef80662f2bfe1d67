"""A customer for a test or a benchmark, registered the product's one way."""

from __future__ import annotations

from core import services
from core.model import Channel, ChannelIdentity, Customer, Priority, Ticket
from core.ports import DialogUnitOfWork


async def register_customer(
    uow: DialogUnitOfWork,
    *,
    channel: Channel,
    external_id: str,
    chat_id: str,
    display_name: str = "",
    language: str = "en",
) -> tuple[Customer, ChannelIdentity]:
    """`core.services.find_or_register`, with the customer and identity as domain objects."""
    record, _ = await services.find_or_register(
        uow.dialogs,
        channel=channel,
        external_id=external_id,
        chat_id=chat_id,
        display_name=display_name,
        language=language,
    )
    customer = await uow.customers.get(record.customer_id)
    identity = await uow.customers.identity_by_id(record.identity_id)
    assert customer is not None and identity is not None
    return customer, identity


async def customer_with_ticket(
    uow: DialogUnitOfWork,
    *,
    channel: Channel,
    external_id: str,
    description: str,
    category: str,
    priority: Priority = Priority.NORMAL,
    display_name: str = "",
) -> tuple[Customer, Ticket]:
    """A customer of `channel` (chat id = `external_id`) and a ticket of theirs, uncommitted."""
    customer, identity = await register_customer(
        uow,
        channel=channel,
        external_id=external_id,
        chat_id=external_id,
        display_name=display_name,
    )
    assert customer.id is not None
    ticket = await services.open_ticket(
        uow,
        customer_id=customer.id,
        description=description,
        category=category,
        priority=priority,
        channel=channel,
        identity_id=identity.id,
    )
    assert ticket.id is not None
    return customer, ticket
