"""Phone calls about what must not wait: an urgent ticket resolved, to a customer who opted in.

A customer who texts the support number may opt in with /calls. When their urgent ticket is
resolved the relay rings the number they text from and Twilio says the news (TwiML <Say>,
in their language) as well as the text and email they get anyway. No call is made during
quiet hours at the number's local time (`CARELINE_CALL_QUIET_HOURS`, by the number's time
zones; every one must be outside them): the text carries the news alone then.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone

from bots.relay import Delivery, Handlers, Skip
from bots.sms.api import TwilioApi
from core import events as ev
from core.db.database import Database
from core.model import Channel, Priority, Status
from dialogs.catalogue import Catalogue, shipped_catalogue


def quiet_hours(spec: str) -> tuple[int, int]:
    """`"21-8"` -> (21, 8): from 21:00 to 08:00."""
    start, _, end = spec.partition("-")
    hours = int(start), int(end)
    if not all(0 <= h <= 24 for h in hours):
        raise ValueError(f"quiet hours {spec!r}: hours are 0-24, as START-END")
    return hours


def is_quiet(number: str, now: datetime, hours: tuple[int, int]) -> bool:
    """Whether it is within quiet hours anywhere the number may be."""
    start, end = hours
    if start == end:
        return False
    zones = [z for z in timezone.time_zones_for_number(phonenumbers.parse(number)) if "/" in z]
    local_hours = []
    for zone in zones or ["UTC"]:
        try:
            local_hours.append(now.astimezone(ZoneInfo(zone)).hour)
        except ZoneInfoNotFoundError:  # "Etc/Unknown": the number does not say
            local_hours.append(now.astimezone(UTC).hour)
    if start < end:
        return any(start <= h < end for h in local_hours)
    return any(h >= start or h < end for h in local_hours)


def spoken_reference(reference: str) -> str:
    """`CR-1042` -> `C R 1 0 4 2`: read out one sign at a time."""
    return " ".join(reference.replace("-", ""))


class SmsCalls:
    def __init__(
        self,
        db: Database,
        api: TwilioApi,
        *,
        quiet: str = "21-8",
        catalogue: Catalogue | None = None,
    ) -> None:
        self.db = db
        self.api = api
        self.quiet = quiet_hours(quiet)
        self.catalogue = catalogue or shipped_catalogue()

    def register(self, handlers: Handlers) -> None:
        handlers.add(ev.TicketStatusChanged, "customer_call", self.resolved)

    async def resolved(self, delivery: Delivery) -> str | None:
        event = delivery.event
        assert isinstance(event, ev.TicketStatusChanged)
        if event.new_status != Status.RESOLVED.value:
            raise Skip("only a resolution is worth a call")
        async with self.db.uow() as uow:
            ticket = await uow.tickets.get(event.ticket_id)
            if ticket is None or ticket.priority != Priority.URGENT:
                raise Skip("only an urgent ticket's news is worth a call")
            customer = await uow.customers.get(ticket.customer_id)
            if customer is None or customer.erased_at is not None or not customer.calls:
                raise Skip("the customer did not ask for calls")
            identity = (
                await uow.customers.identity_by_id(ticket.identity_id)
                if ticket.identity_id is not None
                else None
            )
        if identity is None or identity.channel != Channel.SMS or not identity.reachable:
            raise Skip("no number to call: the ticket was not raised by text")
        if is_quiet(identity.chat_id, datetime.now(UTC), self.quiet):
            raise Skip("quiet hours where the number is: the text tells them")
        words = self.catalogue.text(
            "notice.call.resolved",
            customer.language,
            reference=spoken_reference(ticket.reference),
        )
        return await self.api.call(identity.chat_id, words, customer.language)
