"""Use cases of the ticket domain, by area: customers, tickets, agents (and who works what),
SLA. Callers use them as `services.open_ticket(...)`.

Each function works inside an open unit of work and does not commit: the caller commits, so a
dialog turn can update its state and open a ticket in one transaction.
"""

from core.services.agents import (
    assign_ticket,
    auto_assign,
    create_agent,
    deactivate_agent,
    unassign_ticket,
)
from core.services.common import DEFAULT_REOPEN_WINDOW, MAX_BODY, MAX_SUBJECT
from core.services.customers import (
    ERASED,
    ERASED_NAME,
    erase_customer,
    export_customer_data,
    find_or_register,
    get_customer,
)
from core.services.sla import SlaBreach, announce_sla_breaches, find_sla_breaches
from core.services.tickets import (
    add_agent_reply,
    add_bot_message,
    add_customer_message,
    add_internal_note,
    auto_close_resolved,
    change_priority,
    change_status,
    close_ticket,
    comment_on_rating,
    get_ticket,
    open_ticket,
    rate_ticket,
    reopen_ticket,
    request_human,
    resolve_ticket,
)

__all__ = [
    "DEFAULT_REOPEN_WINDOW",
    "ERASED",
    "ERASED_NAME",
    "MAX_BODY",
    "MAX_SUBJECT",
    "SlaBreach",
    "add_agent_reply",
    "add_bot_message",
    "add_customer_message",
    "add_internal_note",
    "announce_sla_breaches",
    "assign_ticket",
    "auto_assign",
    "auto_close_resolved",
    "change_priority",
    "change_status",
    "close_ticket",
    "comment_on_rating",
    "create_agent",
    "deactivate_agent",
    "erase_customer",
    "export_customer_data",
    "find_or_register",
    "find_sla_breaches",
    "get_customer",
    "get_ticket",
    "open_ticket",
    "rate_ticket",
    "reopen_ticket",
    "request_human",
    "resolve_ticket",
    "unassign_ticket",
]
