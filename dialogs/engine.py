"""The turn function: one customer message in, the bot's replies out.

NLU runs before the transaction (it may be slow: Watson). Then one unit of work loads the
customer, the conversation and their tickets, asks the pure policy what to do, does it
through the domain services, saves the conversation and commits: the state change, a new
ticket and the outbox events land together or not at all.

Two turns of one conversation at once: the conversation row carries an optimistic version
and every turn writes it, so the later commit fails with a conflict (or a unique-key clash
for first contacts), and that turn is redone from a fresh read. Turns are thus serialised,
never lost or interleaved.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from core import contact, knowledge, services
from core.errors import Conflict, InvalidInput
from core.knowledge import normalise_language
from core.model import Agent, Author, Notify, Ticket, reference_of, utcnow
from core.ports import DialogUnitOfWork, TicketRecord, Transactions, TurnRecord
from dialogs.catalogue import Catalogue
from dialogs.config import DialogConfig
from dialogs.decisions import (
    Action,
    AddToTicket,
    CommentOnRating,
    ConfirmEmailCode,
    ConfirmPhoneCode,
    Context,
    CustomerView,
    Decision,
    DialogState,
    EraseData,
    ExportData,
    FaqAnswers,
    NoteGap,
    OpenTicket,
    RateAnswer,
    RateTicket,
    RequestEmailCode,
    RequestHuman,
    RequestPhoneCode,
    SetCalls,
    SetLanguage,
    SetNotify,
    SetTexts,
    ShowTicket,
    TicketView,
)
from dialogs.knowledge import LiveKnowledge
from dialogs.language import NativeNames, language_for_turn
from dialogs.nlu.base import NLU, OUT_OF_SCOPE, Parse
from dialogs.policy import chosen_value, decide, picked_assistant_text, reads_contact
from dialogs.turn import Reply, TurnRecorder, UserSaid
from dialogs.views import Renderer, export_json, export_summary, ticket_details

if TYPE_CHECKING:
    from dialogs.nlu.live import LiveIntents

log = logging.getLogger("careline.dialogs")

NOT_PARSED = Parse(OUT_OF_SCOPE, 0.0, source="none")


class DialogEngine:
    """`await engine.handle_turn(said)` for every inbound customer message, on any channel."""

    def __init__(
        self,
        db: Transactions,
        nlu: NLU,
        config: DialogConfig,
        catalogue: Catalogue,
        *,
        faq: FaqAnswers | None = None,
        knowledge: LiveKnowledge | None = None,
        intents: LiveIntents | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.nlu = nlu
        self.config = config
        self.catalogue = catalogue
        self.faq = faq
        self.knowledge = knowledge  # answers from the published articles, kept current
        self.intents = intents  # the classifier behind `nlu`, kept at the edited examples
        self.clock = clock
        # The languages of the catalogue, each named in itself, for /language and detection.
        self.languages = NativeNames(catalogue.languages)

    #: `handle_turn` takes a `recorder`: a channel records its delivery in the turn's
    #: transaction.
    records_in_turn = True

    async def handle_turn(
        self, said: UserSaid, *, recorder: TurnRecorder | None = None
    ) -> list[Reply]:
        """The bot's replies to one message.

        A redelivered message has no second effect; it gets the replies it got the first
        time (when they are still remembered), so an answer lost in transit is not lost.
        A `recorder` writes in the turn's transaction (dialogs.turn.TurnRecorder): what it
        writes commits with the turn, and what it raises ends the turn with nothing written.
        """
        parse = await self._parse(said)
        try:
            return await self._turn_retried(said, parse, picks=True, recorder=recorder)
        except _AssistantChoicePicked as picked:
            # The customer picked one of the assistant's own choices: the assistant reads
            # the choice's text as if typed (Watson: the option's value.input.text).
            said = replace(said, text=picked.text, choice=None)
            parse = await self._parse(said)
            return await self._turn_retried(said, parse, picks=False, recorder=recorder)

    async def _turn_retried(
        self, said: UserSaid, parse: Parse, *, picks: bool, recorder: TurnRecorder | None
    ) -> list[Reply]:
        attempts = max(1, self.config.max_attempts)
        for attempt in range(1, attempts + 1):
            try:
                return await self._turn(said, parse, picks=picks, recorder=recorder)
            except self.db.races as race:
                if attempt == attempts:
                    raise
                log.debug("turn lost a race (%s); retrying", type(race).__name__)
                # Jitter keeps two racing turns from colliding again on the retry.
                await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
        raise AssertionError("unreachable")

    def _detected_language(self, record: TurnRecord, said: UserSaid) -> str | None:
        """The language this message is clearly written in, when it is not the remembered
        one and the customer did not choose theirs (dialogs/language.py)."""
        text = said.text.strip()
        if said.choice is not None or not text or text.startswith("/") or len(self.languages) < 2:
            return None
        return language_for_turn(
            record.language, record.language_chosen, text, self.languages.codes
        )

    async def _parse(self, said: UserSaid) -> Parse:
        text = said.text.strip()
        if (
            said.choice is not None
            or not text
            or text.startswith("/")
            or len(said.text) > self.config.max_text_chars
        ):
            return NOT_PARSED
        try:
            return await self.nlu.parse(text)
        except Exception:  # the customer still gets an answer (the "not understood" one)
            log.exception("NLU failed; treating the message as not understood")
            return NOT_PARSED

    async def _turn(
        self, said: UserSaid, parse: Parse, *, picks: bool, recorder: TurnRecorder | None
    ) -> list[Reply]:
        now = self.clock()
        async with self.db.uow() as uow:
            if recorder is not None:
                await recorder.first(uow)
            store = uow.dialogs
            record, first_contact = await services.find_or_register(
                store,
                channel=said.channel,
                external_id=said.user_id,
                chat_id=said.chat_id,
                display_name=said.display_name,
                language=said.language,
                now=now,
            )
            conversation_id, version = record.conversation_id, record.version or 0
            state = DialogState(
                record.state or "idle", dict(record.slots or {}), tuple(record.history or ())
            )
            seen = list(state.slot("seen", []))
            if said.message_id and not said.edited and said.message_id in seen:
                # A redelivery: it had its effect the first time; repeat what we answered.
                remembered = state.slot("answers", {}).get(said.message_id, [])
                replies = [Reply.from_json(r) for r in remembered]
                if recorder is not None:  # its records commit; the conversation is as it was
                    await recorder.last(uow, replies)
                    await uow.commit()
                return replies
            picked = picked_assistant_text(state, said) if picks else None
            if picked is not None:
                raise _AssistantChoicePicked(picked)  # nothing is written: the turn restarts
            tickets = (
                []
                if first_contact
                else await store.tickets(record.customer_id, self.config.tickets_in_context)
            )
            language = record.language
            detected = self._detected_language(record, said)
            if detected is not None:  # written in another language: answered in it from now
                await contact.set_language(uow, record.customer_id, detected, chosen=False)
                language = detected
            verification = None
            if state.name == "intake_code":
                verification = await uow.email_verifications.latest_pending(record.customer_id)
            elif state.name == "phone_code":
                verification = await uow.email_verifications.latest_pending(
                    record.customer_id, "phone"
                )
            notify, phone, texts = Notify.BOTH, None, False
            if reads_contact(state, said):  # one load, only for the inputs that read it
                customer = await services.get_customer(uow, record.customer_id)
                notify, texts = customer.notify, customer.texts
                phone = customer.phone if customer.phone_verified else None
            ctx = Context(
                now=now,
                config=self.config,
                customer=CustomerView(
                    record.customer_name,
                    record.email,
                    bool(record.email and record.email_verified and not record.email_blocked),
                    notify,
                    phone,
                    texts,
                ),
                tickets=tuple(_view(t) for t in tickets),
                faq=self.faq,
                knowledge=self.knowledge.answers(language) if self.knowledge else None,
                verification=verification,
                languages=self.languages,
            )
            decision = decide(state, parse, said, ctx)
            switched = [a.language for a in decision.actions if isinstance(a, SetLanguage)]
            renderer = Renderer(
                self.catalogue, switched[-1] if switched else language, said.channel.value
            )
            applied = _Applied()
            do = _Doing(uow, record.customer_id, record.identity_id, said, renderer, now, applied)
            for action in decision.actions:
                await self._apply(do, action)
            replies = applied.replies
            if decision.says:
                replies.append(renderer.reply(decision.says))
            saved = await store.save_conversation(
                record.identity_id,
                conversation_id,
                version,
                **self._next_state(state, decision, said, replies, applied, seen),
                now=now,
            )
            if not saved:
                raise Conflict("another turn of this conversation came first")
            if recorder is not None:
                await recorder.last(uow, replies)
            await uow.commit()
        return replies

    # --- doing what the policy decided ------------------------------------------------------

    async def _apply(self, do: _Doing, action: Action) -> None:
        effect = EFFECTS.get(type(action))
        if effect is None:  # pragma: no cover - a new action without its effect is a bug
            raise TypeError(f"no effect for {action!r}")
        await effect(self, do, action)

    async def _handoff_notice(
        self,
        uow: DialogUnitOfWork,
        ticket: Ticket,
        position: int,
        r: Renderer,
        *,
        opened: bool,
        again: bool,
    ) -> str:
        """One message: who has the ticket now, or the place in the queue and the wait."""
        if position == 0:
            agent = await uow.agents.get(ticket.assignee_id or 0)
            key = "human.still_with_agent" if again else "human.with_agent"
            return r.text(
                key, {"reference": ticket.reference, "agent": agent.name if agent else ""}
            )
        wait = r.duration(self.config.minutes_per_queued_ticket * position * _MINUTE)
        key = "human.still_queued" if again else "human.queued_new" if opened else "human.queued"
        return r.text(key, {"reference": ticket.reference, "position": position, "wait": wait})

    # --- saving the conversation -----------------------------------------------------------

    def _next_state(
        self,
        before: DialogState,
        decision: Decision,
        said: UserSaid,
        replies: Sequence[Reply],
        applied: _Applied,
        seen: list[str],
    ) -> dict[str, Any]:
        after = decision.state if not applied.erased else DialogState()
        slots = dict(after.slots)
        if applied.ticket_id is not None:
            slots["ticket_id"] = applied.ticket_id
        if applied.clear_handover:
            slots.pop("ticket_id", None)
        offered = next((reply.choices for reply in reversed(replies) if reply.choices), ())
        if decision.keep_options:
            slots["offered"] = before.slot("offered") or []
        else:
            slots["offered"] = [[c.label, c.value] for c in offered]
        if said.message_id and not said.edited and not applied.erased:
            slots["seen"] = [*seen, said.message_id][-self.config.seen_message_ids :]
            # The answers to the last few messages, for redeliveries (see handle_turn).
            answers = dict(before.slot("answers", {}))
            answers[said.message_id] = [r.to_json() for r in replies]
            slots["answers"] = dict(list(answers.items())[-ANSWERS_KEPT:])
        history: list[dict[str, Any]] = []
        if not applied.erased:
            history = [dict(entry) for entry in after.history]
            customer_text = said.text.strip() or (f"[{said.choice}]" if said.choice else "")
            if said.attachments:
                customer_text += f" [{len(said.attachments)} attachment(s)]"
            entry = {"who": "customer", "text": customer_text[:300]}
            choice = chosen_value(before, said)
            if choice is not None:
                entry["choice"] = choice  # a button or a picked number, not their own words
            history.append(entry)
            bot_text = " / ".join(reply.text for reply in replies)
            if bot_text:
                history.append({"who": "bot", "text": bot_text[:300]})
        return {
            "state": after.name,
            "slots": slots,
            "history": history[-self.config.history_entries :],
        }


_MINUTE = timedelta(minutes=1)


class _AssistantChoicePicked(Exception):
    """The turn's input picks one of the assistant's choices; its text must be parsed first
    (outside the transaction, like every parse)."""

    def __init__(self, text: str) -> None:
        super().__init__("an assistant choice was picked")
        self.text = text


class _Applied:
    """What the actions did: replies to add, and the ticket the customer is now with."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.ticket_id: int | None = None
        self.clear_handover = False
        self.erased = False

    def say(self, text: str) -> None:
        self.replies.append(Reply(text))

    def hand_over(self, ticket: Ticket) -> None:
        self.ticket_id = ticket.id


def _view(ticket: TicketRecord) -> TicketView:
    return TicketView(
        id=ticket.id,
        reference=reference_of(ticket.id),
        subject=ticket.subject,
        status=ticket.status,
        created_at=ticket.created_at,
        resolved_at=ticket.resolved_at,
        assignee_id=ticket.assignee_id,
        rated=ticket.csat_score is not None,
    )


async def _agents(uow: DialogUnitOfWork, ids: Sequence[Any]) -> dict[int, Agent]:
    agents: dict[int, Agent] = {}
    for agent_id in {i for i in ids if isinstance(i, int)}:
        agent = await uow.agents.get(agent_id)
        if agent is not None:
            agents[agent_id] = agent
    return agents


__all__ = ["DialogEngine"]


ANSWERS_KEPT = 5


@dataclass(frozen=True, slots=True)
class _Doing:
    """What every effect of one turn works with."""

    uow: DialogUnitOfWork
    customer_id: int
    identity_id: int
    said: UserSaid
    r: Renderer
    now: datetime
    applied: _Applied


# --- the effect of each action the policy decides (EFFECTS, below) --------------------------


async def _open_ticket(engine: DialogEngine, do: _Doing, action: OpenTicket) -> None:
    uow, r = do.uow, do.r
    ticket = await services.open_ticket(
        uow,
        customer_id=do.customer_id,
        description=action.description,
        category=action.category,
        priority=action.priority,
        channel=do.said.channel,
        identity_id=do.identity_id,
        external_id=action.external_id,
        attachments=[dict(a) for a in action.attachments],
        sla=engine.config.sla,
        now=do.now,
    )
    do.applied.hand_over(ticket)
    first = engine.config.sla.targets[ticket.priority].first_response
    customer = await services.get_customer(uow, do.customer_id)
    # Where the agent's answer goes, as the customer chose (chat, email or both).
    notify = customer.notify if customer.can_receive_email else Notify.CHAT
    do.applied.say(
        r.text(
            f"ticket.opened_{notify.value}",
            {
                "reference": ticket.reference,
                "first_response": r.duration(first),
                "email": customer.email,
            },
        )
    )


async def _add_to_ticket(engine: DialogEngine, do: _Doing, action: AddToTicket) -> None:
    try:
        await services.add_customer_message(
            do.uow,
            action.ticket_id,
            action.text,
            channel=do.said.channel,
            external_id=action.external_id,
            attachments=[dict(a) for a in action.attachments],
            reopen_window=engine.config.reopen_window,
            now=do.now,
        )
    except InvalidInput:
        # Closed meanwhile, or resolved too long ago: the text is not lost, it is refused.
        do.applied.ticket_id = None
        do.applied.clear_handover = True
        do.applied.say(do.r.text("handover.closed"))
        return
    do.applied.ticket_id = action.ticket_id


async def _request_human(engine: DialogEngine, do: _Doing, action: RequestHuman) -> None:
    uow, r = do.uow, do.r
    opened = action.ticket_id is None
    if action.ticket_id is not None:
        ticket = await services.get_ticket(uow, action.ticket_id)
    else:
        # The customer's own words describe it; without any, a note for the agent does,
        # never words put in the customer's mouth.
        ticket = await services.open_ticket(
            uow,
            customer_id=do.customer_id,
            description=action.description or r.text("human.no_description"),
            described_by=Author.CUSTOMER if action.description else Author.NOTE,
            subject=r.text("human.subject"),
            category=engine.config.human_category,
            channel=do.said.channel,
            identity_id=do.identity_id,
            sla=engine.config.sla,
            now=do.now,
        )
    assert ticket.id is not None
    again = ticket.human_requested
    if not again:
        # For the agent only: that a person is wanted, and what was said before.
        key = "human.note_with_summary" if action.summary else "human.note"
        body = r.text(key, {"summary": action.summary})
        await services.add_internal_note(
            uow, ticket.id, body[: services.MAX_BODY], channel=do.said.channel, now=do.now
        )
    # This turn's answer is the customer's one handoff notice (no relay notice repeats it).
    position = await services.request_human(uow, ticket.id, told_in_chat=True, now=do.now)
    do.applied.hand_over(ticket)
    do.applied.say(
        await engine._handoff_notice(uow, ticket, position, r, opened=opened, again=again)
    )


async def _rate_ticket(engine: DialogEngine, do: _Doing, action: RateTicket) -> None:
    await services.rate_ticket(do.uow, action.ticket_id, action.score, now=do.now)


async def _comment_on_rating(engine: DialogEngine, do: _Doing, action: CommentOnRating) -> None:
    await services.comment_on_rating(do.uow, action.ticket_id, action.comment, now=do.now)


async def _show_ticket(engine: DialogEngine, do: _Doing, action: ShowTicket) -> None:
    ticket = await services.get_ticket(do.uow, action.ticket_id)
    timeline = await do.uow.tickets.timeline(action.ticket_id)
    agents = await _agents(
        do.uow, [ticket.assignee_id, *(getattr(e, "agent_id", None) for e in timeline)]
    )
    do.applied.say(ticket_details(do.r, ticket, timeline, agents, engine.config.timeline_size))


async def _export_data(engine: DialogEngine, do: _Doing, action: ExportData) -> None:
    data = await services.export_customer_data(do.uow, do.customer_id)
    do.applied.say(export_summary(do.r, data))
    do.applied.say(export_json(data))


async def _erase_data(engine: DialogEngine, do: _Doing, action: EraseData) -> None:
    await services.erase_customer(do.uow, do.customer_id, now=do.now)
    await contact.forget_email_verifications(do.uow, do.customer_id)
    do.applied.erased = True


async def _request_email_code(engine: DialogEngine, do: _Doing, action: RequestEmailCode) -> None:
    try:
        await contact.request_email_verification(do.uow, do.customer_id, action.email, now=do.now)
    except InvalidInput:
        do.applied.say(do.r.text("email.too_many"))


async def _confirm_email_code(engine: DialogEngine, do: _Doing, action: ConfirmEmailCode) -> None:
    await contact.confirm_email_verification(do.uow, do.customer_id, action.typed, now=do.now)


async def _request_phone_code(engine: DialogEngine, do: _Doing, action: RequestPhoneCode) -> None:
    try:
        await contact.request_phone_verification(do.uow, do.customer_id, action.phone, now=do.now)
    except InvalidInput:
        do.applied.say(do.r.text("email.too_many"))


async def _confirm_phone_code(engine: DialogEngine, do: _Doing, action: ConfirmPhoneCode) -> None:
    await contact.confirm_phone_verification(do.uow, do.customer_id, action.typed, now=do.now)


async def _set_texts(engine: DialogEngine, do: _Doing, action: SetTexts) -> None:
    await contact.set_texts(do.uow, do.customer_id, action.texts)


async def _set_notify(engine: DialogEngine, do: _Doing, action: SetNotify) -> None:
    await contact.set_notify_preference(do.uow, do.customer_id, action.notify)


async def _set_calls(engine: DialogEngine, do: _Doing, action: SetCalls) -> None:
    await contact.set_calls(do.uow, do.customer_id, action.calls)


async def _set_language(engine: DialogEngine, do: _Doing, action: SetLanguage) -> None:
    await contact.set_language(do.uow, do.customer_id, action.language, chosen=action.chosen)


async def _rate_answer(engine: DialogEngine, do: _Doing, action: RateAnswer) -> None:
    articles = do.uow.knowledge
    await knowledge.record_feedback(
        articles, action.article_id, action.version, helped=action.helped
    )


async def _note_gap(engine: DialogEngine, do: _Doing, action: NoteGap) -> None:
    gap = knowledge.Gap(
        customer_id=do.customer_id,
        language=normalise_language(do.said.language or do.r.language).split("-")[0],
        question=action.question,
        reason=action.reason,
        article_id=action.article_id,
        created_at=do.now,
    )
    await knowledge.note_gap(do.uow.knowledge, gap)


Effect = Callable[[DialogEngine, _Doing, Any], Awaitable[None]]
#: What each action the policy decides does, beside the policy's HANDLERS of each state.
EFFECTS: dict[type[Action], Effect] = {
    OpenTicket: _open_ticket,
    AddToTicket: _add_to_ticket,
    RequestHuman: _request_human,
    RateTicket: _rate_ticket,
    CommentOnRating: _comment_on_rating,
    ShowTicket: _show_ticket,
    ExportData: _export_data,
    EraseData: _erase_data,
    RequestEmailCode: _request_email_code,
    ConfirmEmailCode: _confirm_email_code,
    RequestPhoneCode: _request_phone_code,
    ConfirmPhoneCode: _confirm_phone_code,
    SetTexts: _set_texts,
    SetNotify: _set_notify,
    SetCalls: _set_calls,
    SetLanguage: _set_language,
    RateAnswer: _rate_answer,
    NoteGap: _note_gap,
}
