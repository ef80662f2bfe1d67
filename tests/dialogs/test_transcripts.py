"""Every customer path as a transcript: what the customer says or presses, what the bot answers.

Each test runs on SQLite and on PostgreSQL (the `db` fixture).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core import services
from core.db import tables as t
from core.db.database import Database
from core.lifecycle import Status
from core.model import Author, Message, Notify, utcnow
from dialogs.engine import DialogEngine
from dialogs.turn import Attachment
from tests.dialogs.conftest import (
    Customer,
    Press,
    Send,
    file_complaint_steps,
    new_agent,
    only_ticket,
    verify_dialog,
)


async def ticket_row(db: Database, ticket_id: int) -> dict:
    async with db.engine.connect() as conn:
        row = (
            (await conn.execute(select(t.tickets).where(t.tickets.c.id == ticket_id)))
            .mappings()
            .one()
        )
    return dict(row)


async def messages_of(db: Database, ticket_id: int) -> list[tuple[str, str]]:
    async with db.uow() as uow:
        timeline = await uow.tickets.timeline(ticket_id)
    return [(m.author.value, m.body) for m in timeline if isinstance(m, Message)]


async def file_complaint(engine: DialogEngine) -> Customer:
    return await verify_dialog(engine, file_complaint_steps())


# --- greet, help, commands -------------------------------------------------------------


async def test_greeting_introduces_the_bot_and_offers_the_menu(engine: DialogEngine) -> None:
    customer = await verify_dialog(engine, [("hello", ["Hi Ada", "Report a problem", "1."])])
    assert [c.value for c in customer.last[0].choices] == ["/new", "/status", "/human", "/mydata"]


async def test_help_lists_what_the_bot_does_and_its_commands(engine: DialogEngine) -> None:
    await verify_dialog(
        engine,
        [
            ("what can you do", ["answer common questions", "/status", "/mydata"]),
            ("/help", ["open a ticket", "/human"]),
            ("/start", "Hi Ada"),
            ("/start@careline_bot", "Hi Ada"),  # Telegram group form
        ],
    )


async def test_unknown_command_lists_the_ones_that_work(engine: DialogEngine) -> None:
    await verify_dialog(engine, [("/frobnicate", ["don't know that command", "/new"])])


async def test_typed_number_selects_a_choice(engine: DialogEngine) -> None:
    await verify_dialog(engine, [("hi", "Hi"), ("1", "describe the problem")])


async def test_typed_label_selects_a_choice(engine: DialogEngine) -> None:
    await verify_dialog(engine, [("hi", "Hi"), ("my tickets", "no tickets yet")])


# --- FAQ -------------------------------------------------------------------------------------


async def test_faq_answer_then_yes_is_glad(engine: DialogEngine) -> None:
    await verify_dialog(
        engine,
        [
            ("when are you open?", ["Monday to Friday 9:00-18:00", "Did that help?"]),
            (Press("yes"), "Glad"),
        ],
    )


async def test_faq_answer_that_did_not_help_offers_a_ticket_or_a_person(
    engine: DialogEngine,
) -> None:
    await verify_dialog(
        engine,
        [
            ("how do refunds work", ["30 days", "Did that help?"]),
            ("no", ["Open a ticket", "Talk to a person"]),
            ("1", "describe the problem"),
        ],
    )


async def test_faq_without_an_answer_is_treated_as_not_understood(engine: DialogEngine) -> None:
    await verify_dialog(engine, [("tell me about the warp drive", "didn't understand")])


async def test_faq_uses_the_nlu_answer_when_it_gives_one(db: Database) -> None:
    from dialogs.nlu import Parse
    from tests.dialogs.conftest import make_engine

    class WatsonLike:
        async def parse(self, text: str) -> Parse:
            return Parse(
                "faq_opening_hours", 0.99, source="watson", answer="Open 24/7, says Watson."
            )

    await verify_dialog(make_engine(db, WatsonLike()), [("hours?", "says Watson")])


# --- complaint intake --------------------------------------------------------------------------


async def test_complaint_opens_a_ticket_with_a_reference_and_what_happens_next(
    db: Database, engine: DialogEngine
) -> None:
    customer = await file_complaint(engine)
    answer = customer.last[0].text
    assert "within 4 hours" in answer  # the SLA's first response for high priority
    ticket = await ticket_row(db, await only_ticket(db))
    assert ticket["category"] == "telecom"
    assert ticket["priority"] == "high"
    assert ticket["description"] == "My internet has been down since Monday"
    assert ticket["channel"] == "telegram"
    async with db.engine.connect() as conn:
        events = (await conn.execute(select(t.outbox.c.event_type))).scalars().all()
    assert "TicketOpened" in events


async def test_complaint_said_in_one_sentence_skips_the_description_question(
    engine: DialogEngine,
) -> None:
    await verify_dialog(
        engine,
        [
            ("my router is broken and nothing works", "which area"),
            ("2", "how urgent"),  # typed number: Telecom
            ("urgent", "email"),  # typed label
            ("skip", "Telecom"),
            ("yes", "CR-1001"),
        ],
    )


async def test_invalid_category_and_priority_are_asked_again(engine: DialogEngine) -> None:
    await verify_dialog(
        engine,
        [
            ("/new", "describe"),
            ("The bill is wrong", "which area"),
            ("gardening", "which area"),
            ("billing", "how urgent"),
            ("whenever you like", "email"),  # "whenever" means low
        ],
    )


async def test_complaint_categories_come_from_the_config(db: Database) -> None:
    from dialogs.config import DialogConfig
    from tests.dialogs.conftest import make_engine

    engine = make_engine(db, config=DialogConfig(categories=("roaming", "handsets")))
    customer = await verify_dialog(
        engine, [("/new", "describe"), ("No signal abroad at all", "area")]
    )
    assert [c.label for c in customer.last[0].choices] == ["Roaming", "Handsets"]


async def test_complaint_with_email_verification_code(db: Database, engine: DialogEngine) -> None:
    customer = await verify_dialog(
        engine,
        [
            ("/new", "describe"),
            ("Charged twice for March", "area"),
            ("billing", "urgent"),
            ("normal", "email"),
            ("not an address", "doesn't look like an email"),
            ("Ada@Example.com", "sent a 6-digit code to ada@example.com"),
        ],
    )
    async with db.engine.connect() as conn:
        code = (await conn.execute(select(t.email_verifications.c.code))).scalar_one()
        events = (await conn.execute(select(t.outbox.c.event_type))).scalars().all()
    assert events == ["EmailVerificationRequested"]
    wrong = "000000" if code != "000000" else "111111"
    await verify_dialog(
        customer,
        [
            (wrong, "doesn't match (4 tries left)"),
            (code, ["ada@example.com is confirmed", "keep you posted"]),
            (Press("notify:email"), ["Updates go to ada@example.com.", "open it"]),
            (Press("confirm"), ["CR-1001", "reply by email to ada@example.com"]),
        ],
    )
    async with db.uow() as uow:
        row = await ticket_row(db, await only_ticket(db))
        person = await uow.customers.get(row["customer_id"])
        assert person is not None
        assert person.email == "ada@example.com"
        assert person.email_verified
        assert person.notify == Notify.EMAIL


async def test_email_code_can_be_skipped_and_the_address_is_not_used(
    db: Database, engine: DialogEngine
) -> None:
    await verify_dialog(
        engine,
        [
            ("/new", "describe"),
            ("Charged twice for March", "area"),
            ("billing", "urgent"),
            ("normal", "email"),
            ("ada@example.com", "code"),
            (Press("skip"), "open it"),
            (Press("confirm"), "CR-1001"),
        ],
    )
    async with db.engine.connect() as conn:
        email = (await conn.execute(select(t.customers.c.email))).scalar_one()
    assert email is None


async def test_customer_with_verified_email_is_not_asked_again(
    db: Database, engine: DialogEngine
) -> None:
    customer = await file_complaint(engine)
    async with db.uow() as uow:
        person = await uow.customers.get(1)
        assert person is not None
        person.email, person.email_verified = "ada@example.com", True
        await uow.commit()
    await verify_dialog(
        customer,
        [
            ("/new", "describe"),
            ("Another problem entirely here", "area"),
            ("billing", "urgent"),
            ("low", ["Updates come here, and also go to ada@example.com", "open it"]),
        ],
    )


async def test_cancel_at_any_intake_step_opens_nothing(db: Database, engine: DialogEngine) -> None:
    for number, steps in enumerate(
        (
            [("/new", "describe"), ("cancel", "Cancelled")],
            [("/new", "describe"), ("It broke", "area"), ("/cancel", "Cancelled")],
            [
                ("/new", "describe"),
                ("It broke", "area"),
                ("billing", "urgent"),
                ("low", "email"),
                (Press("skip"), "open it"),
                (Press("/cancel", "Cancel"), "Cancelled"),  # the confirmation's own button
            ],
            [
                ("/new", "describe"),
                ("It broke", "area"),
                ("billing", "urgent"),
                ("low", "email"),
                ("stop", "Cancelled"),
            ],
        )
    ):
        await verify_dialog(engine, steps, user_id=f"u{number}")
    await verify_dialog(engine, [("/cancel", "nothing to cancel")], user_id="fresh")
    async with db.engine.connect() as conn:
        assert (await conn.execute(select(t.tickets.c.id))).first() is None


async def test_the_word_cancel_inside_a_description_is_the_description(
    engine: DialogEngine,
) -> None:
    await verify_dialog(
        engine, [("/new", "describe"), ("I could not cancel my order online", "which area")]
    )


async def test_complaint_with_a_file_keeps_the_attachment(
    db: Database, engine: DialogEngine
) -> None:
    photo = Attachment(kind="photo", file_id="AgAD-photo", size=1200)
    await verify_dialog(
        engine,
        [
            ("/new", "describe"),
            (Send("Screen cracked on arrival", attachments=(photo,)), "area"),
            ("other", "urgent"),
            ("low", "email"),
            ("skip", "open it"),
            ("yes", "CR-1001"),
        ],
    )
    async with db.uow() as uow:
        first = next(m for m in await uow.tickets.timeline(1) if isinstance(m, Message))
    assert first.attachments[0]["file_id"] == "AgAD-photo"


# --- with a human -------------------------------------------------------------------------------


async def test_messages_go_to_the_open_ticket_with_only_a_short_receipt(
    db: Database, engine: DialogEngine
) -> None:
    customer = await file_complaint(engine)
    await verify_dialog(
        customer,
        [
            ("hello? anyone?", "Added to CR-1001"),
            ("when are you open?", "Added to CR-1001"),  # no FAQ answer on the agent's behalf
            (Send(attachments=(Attachment(kind="document", file_id="doc1"),)), "Added to CR-1001"),
        ],
    )
    assert len(customer.last) == 1 and len(customer.last[0].text) < 60
    bodies = await messages_of(db, 1)
    assert ("customer", "hello? anyone?") in bodies
    assert ("customer", "when are you open?") in bodies
    assert not any(author == "bot" for author, _ in bodies)


async def test_talk_to_a_human_attaches_to_the_open_ticket(
    db: Database, engine: DialogEngine
) -> None:
    customer = await file_complaint(engine)
    await verify_dialog(customer, [("/human", ["CR-1001", "number 1 in the queue", "10 minutes"])])
    assert (await ticket_row(db, 1))["human_requested"]


async def test_talk_to_a_human_opens_a_ticket_with_the_conversation_for_the_agent(
    db: Database, engine: DialogEngine
) -> None:
    await verify_dialog(
        engine,
        [
            ("when are you open?", "Did that help"),
            ("no", "person"),
            (Press("/human"), ["CR-1001", "number 1 in the queue"]),
        ],
    )
    timeline = await messages_of(db, 1)
    notes = [body for author, body in timeline if author == Author.NOTE.value]
    assert len(notes) == 1
    assert "customer: when are you open?" in notes[0]
    assert "bot: We're open Monday" in notes[0]
    row = await ticket_row(db, 1)
    assert row["category"] == "other" and row["human_requested"]


async def test_queue_position_counts_tickets_opened_before(
    db: Database, engine: DialogEngine
) -> None:
    await verify_dialog(engine, [("I need a person", "number 1 in the queue")], user_id="first")
    await verify_dialog(engine, [("I need a person", ["number 2", "20 minutes"])], user_id="second")


async def test_human_already_assigned_is_named(db: Database, engine: DialogEngine) -> None:
    customer = await file_complaint(engine)
    agent_id = await new_agent(db)
    async with db.uow() as uow:
        await services.assign_ticket(uow, 1, agent_id)
        await uow.commit()
    await verify_dialog(customer, [("/human", "Grace Hopper is already on CR-1001")])


async def test_cancel_in_a_handover_gives_the_bot_back(engine: DialogEngine) -> None:
    customer = await file_complaint(engine)
    await verify_dialog(
        customer,
        [("/cancel", "Cancelled"), ("when are you open?", "Monday to Friday")],
    )


# --- status ------------------------------------------------------------------------------------


async def test_status_lists_tickets_and_shows_one_with_agent_and_timeline(
    db: Database, engine: DialogEngine
) -> None:
    customer = await file_complaint(engine)
    agent_id = await new_agent(db)
    async with db.uow() as uow:
        await services.assign_ticket(uow, 1, agent_id)
        await services.add_agent_reply(uow, 1, agent_id, "Restarting your line now.")
        await services.add_internal_note(uow, 1, "SECRET: customer is on the legacy plan")
        await uow.commit()
    await verify_dialog(
        customer,
        [
            ("/status", ["CR-1001", "My internet has been down", "being worked on", "1. CR-1001"]),
            (
                "1",
                [
                    "Status: being worked on",
                    "Agent: Grace Hopper",
                    "Assigned to Grace Hopper",
                    "Grace Hopper: Restarting your line now.",
                ],
            ),
        ],
    )
    assert "SECRET" not in customer.last[0].text


async def test_status_by_reference_in_free_text(engine: DialogEngine) -> None:
    customer = await file_complaint(engine)
    await verify_dialog(
        customer, [("/cancel", "Cancelled"), ("status of cr-1001", "Agent: not assigned yet")]
    )


async def test_status_of_someone_elses_ticket_is_refused(engine: DialogEngine) -> None:
    await file_complaint(engine)
    await verify_dialog(engine, [(Press("ticket:1"), "can't find that ticket")], user_id="intruder")


async def test_status_without_tickets_offers_a_complaint(engine: DialogEngine) -> None:
    await verify_dialog(engine, [("/status", ["no tickets", "Report a problem"])])


# --- new or reopen, rating ------------------------------------------------------------------------


async def resolve(db: Database, ticket_id: int, *, days_ago: float = 0) -> None:
    async with db.uow() as uow:
        await services.resolve_ticket(uow, ticket_id, now=utcnow() - timedelta(days=days_ago))
        await uow.commit()


async def test_writing_after_resolution_asks_reopen_or_new_and_reopens(
    db: Database, engine: DialogEngine
) -> None:
    customer = await file_complaint(engine)
    await resolve(db, 1)
    await verify_dialog(
        customer,
        [
            (
                "it is down again!!",
                ["CR-1001", "resolved recently", "About CR-1001", "Something new"],
            ),
            ("1", "reopened CR-1001"),
            ("still nothing", "Added to CR-1001"),
        ],
    )
    assert (await ticket_row(db, 1))["status"] == Status.NEW.value
    assert ("customer", "it is down again!!") in await messages_of(db, 1)


async def test_something_new_after_resolution_starts_a_fresh_ticket(
    db: Database, engine: DialogEngine
) -> None:
    customer = await file_complaint(engine)
    await resolve(db, 1)
    await verify_dialog(
        customer,
        [
            ("/new", "About CR-1001"),
            (Press("new"), "describe"),
            ("A different issue with my invoice", "area"),
            ("billing", "urgent"),
            ("low", "email"),
            ("skip", "open it"),
            ("yes", "CR-1002"),
        ],
    )
    assert (await ticket_row(db, 1))["status"] == Status.RESOLVED.value


async def test_long_resolved_ticket_is_not_offered_for_reopening(
    db: Database, engine: DialogEngine
) -> None:
    customer = await file_complaint(engine)
    await resolve(db, 1, days_ago=30)
    await verify_dialog(customer, [("/new", "describe")])


async def test_rating_after_resolution_with_a_comment(db: Database, engine: DialogEngine) -> None:
    customer = await file_complaint(engine)
    await resolve(db, 1)
    await verify_dialog(
        customer,
        [
            ("I want to rate my ticket", ["How happy", "CR-1001", "5 - Very happy"]),
            ("5", "Anything you'd like to add"),
            ("Quick and friendly", "Thank you"),
        ],
    )
    row = await ticket_row(db, 1)
    assert (row["csat_score"], row["csat_comment"]) == (5, "Quick and friendly")


async def test_rating_button_from_the_resolution_notice_and_skip(
    db: Database, engine: DialogEngine
) -> None:
    customer = await file_complaint(engine)
    await resolve(db, 1)
    await verify_dialog(customer, [(Press("rate:1:2"), "Anything"), (Press("skip"), "Thank you")])
    row = await ticket_row(db, 1)
    assert (row["csat_score"], row["csat_comment"]) == (2, None)


async def test_rating_buttons_the_relay_sends_are_understood(
    db: Database, engine: DialogEngine
) -> None:
    from bots.notices import rating_choices

    customer = await file_complaint(engine)
    await resolve(db, 1)
    four = next(c for c in rating_choices("CR-1001") if c.value.endswith(":4"))
    await verify_dialog(customer, [(Press(four.value), "Anything"), (Press("skip"), "Thank you")])
    assert (await ticket_row(db, 1))["csat_score"] == 4


async def test_a_command_while_a_rating_waits_for_a_comment_keeps_the_score(
    db: Database, engine: DialogEngine
) -> None:
    customer = await file_complaint(engine)
    await resolve(db, 1)
    await verify_dialog(customer, [(Press("rate:1:4"), "Anything"), ("/status", "CR-1001")])
    assert (await ticket_row(db, 1))["csat_score"] == 4


async def test_a_score_is_kept_the_moment_it_is_pressed(db: Database, engine: DialogEngine) -> None:
    customer = await file_complaint(engine)
    await resolve(db, 1)
    await verify_dialog(customer, [(Press("rate:1:5"), "Anything")])
    row = await ticket_row(db, 1)
    assert (row["csat_score"], row["csat_comment"]) == (5, None)  # and the customer leaves


async def test_the_same_score_pressed_twice_is_one_rating(
    db: Database, engine: DialogEngine
) -> None:
    customer = await file_complaint(engine)
    await resolve(db, 1)
    await verify_dialog(
        customer, [(Press("rate:1:5"), "Anything"), (Press("rate:1:5"), "Anything")]
    )
    async with db.uow() as uow:
        timeline = await uow.tickets.timeline(1)
    assert [getattr(e, "kind", None) for e in timeline].count("rated") == 1


async def test_nothing_to_rate(engine: DialogEngine) -> None:
    await verify_dialog(engine, [("rate", "no finished tickets")])


# --- my data ------------------------------------------------------------------------------------


async def test_export_my_data_as_summary_and_json(engine: DialogEngine) -> None:
    customer = await file_complaint(engine)
    await verify_dialog(
        customer,
        [
            ("/mydata", ["Export my data", "Erase my data"]),
            (
                Press("export"),
                [
                    "Name: Ada Lovelace",
                    "telegram",
                    "CR-1001",
                    "· 1 message",  # a plural word, not a cryptic count with an envelope
                    '"reference": "CR-1001"',
                ],
            ),
        ],
    )
    import json

    exported = json.loads(customer.last[1].text)
    assert exported["tickets"][0]["description"] == "My internet has been down since Monday"


async def test_erase_my_data_after_confirmation(db: Database, engine: DialogEngine) -> None:
    customer = await file_complaint(engine)
    await verify_dialog(
        customer,
        [
            ("/mydata", "Erase my data"),
            ("2", "Erase everything?"),
            (Press("erase_yes"), "erased"),
        ],
    )
    row = await ticket_row(db, 1)
    assert row["description"] == "(erased)" and row["status"] == "closed"
    assert row["category"] == "telecom"  # anonymous figures are kept
    async with db.engine.connect() as conn:
        name = (await conn.execute(select(t.customers.c.display_name))).scalar_one()
    assert name == "erased"


async def test_erase_can_be_declined(db: Database, engine: DialogEngine) -> None:
    await verify_dialog(
        engine,
        [("/mydata", "Erase"), (Press("erase"), "Erase everything?"), ("2", "nothing was erased")],
    )


# --- odd input ------------------------------------------------------------------------------------


async def test_nonsense_gets_a_useful_answer_and_then_the_offer_of_a_person(
    engine: DialogEngine,
) -> None:
    await verify_dialog(
        engine,
        [
            ("asdf qwerty", ["didn't understand", "Talk to a person"]),
            ("zzz", ["still didn't get it", "Talk to a person"]),
        ],
    )


async def test_empty_oversize_unsupported_and_edited_input(engine: DialogEngine) -> None:
    await verify_dialog(
        engine,
        [
            ("   ", "didn't get any text"),
            ("x" * 501, "too long for me (over 500 characters)"),
            (Send(attachments=(Attachment(kind="sticker"),)), "only read text"),
            (Send("hello", edited=True), "not edits"),
        ],
    )


async def test_oversize_input_keeps_the_choices_offered(engine: DialogEngine) -> None:
    await verify_dialog(engine, [("hi", "Hi"), ("y" * 600, "too long"), ("2", "no tickets")])


async def test_redelivered_message_has_no_second_effect_but_the_same_answer(
    db: Database, engine: DialogEngine
) -> None:
    customer = await file_complaint(engine)
    again = Send("added once", message_id="dup-1")
    await verify_dialog(customer, [(again, "Added to CR-1001"), (again, "Added to CR-1001")])
    assert [b for _, b in await messages_of(db, 1)].count("added once") == 1


async def test_replies_follow_the_customers_language_with_english_fallback(
    db: Database, tmp_path
) -> None:
    import shutil

    from dialogs.catalogue import MESSAGES_DIR, load_catalogue

    shutil.copy(MESSAGES_DIR / "en.yaml", tmp_path / "en.yaml")
    (tmp_path / "de.yaml").write_text(
        "language: de\nmessages:\n  greet: Hallo {name}!\n", encoding="utf-8"
    )
    from tests.dialogs.conftest import CONFIG, ScriptedNLU

    german = DialogEngine(db, ScriptedNLU(), CONFIG, load_catalogue(tmp_path, strict=True))
    await verify_dialog(
        german,
        [
            (Send("hi", language="de-AT"), ["Hallo Ada!", "Report a problem"]),  # labels: English
            (Send("hi", language="fr"), "Hallo Ada!"),  # remembered: the first platform code
        ],
    )
    await verify_dialog(german, [(Send("hi", language="fr"), "Hi Ada!")], user_id="french")


async def test_oversize_file_is_refused_politely(db: Database, engine: DialogEngine) -> None:
    customer = await file_complaint(engine)
    huge = Attachment(kind="video", file_id="v1", size=50 * 1024 * 1024)
    await verify_dialog(
        customer, [(Send("look", attachments=(huge,)), "too big for me (over 20 MB)")]
    )
    assert ("customer", "look") not in await messages_of(db, 1)


async def test_an_nlu_failure_still_gets_an_answer(db: Database) -> None:
    from dialogs.nlu import Parse
    from tests.dialogs.conftest import make_engine

    class BrokenNLU:
        async def parse(self, text: str) -> Parse:
            raise TimeoutError("the NLU service is down")

    await verify_dialog(
        make_engine(db, BrokenNLU()), [("hello", "didn't understand"), ("/new", "describe")]
    )
