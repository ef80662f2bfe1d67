"""Files in Slack are real files: an agent's file in a ticket thread and a customer's file in
a DM are copied into Careline's file store with the bot token, and a customer's file shows
in the ticket thread as a signed download link."""

from __future__ import annotations

import re

from core import services
from core.db.files import SqlFileStore
from core.files import FileLinks
from core.model import Author, Channel, Message
from tests.slack.conftest import BILLING, LINK_SECRET, Desk, eventually

PDF = b"%PDF-1.7\n% refund confirmation 4411\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


async def _thread(desk: Desk) -> tuple[int, str]:
    ticket = await desk.open_ticket()
    await desk.drain()
    assert ticket.id is not None
    return ticket.id, await desk.thread_ts(ticket.id)


async def _agent_messages(desk: Desk, ticket_id: int) -> list[Message]:
    async with desk.db.uow() as uow:
        timeline = await uow.tickets.timeline(ticket_id)
    return [m for m in timeline if isinstance(m, Message) and m.author == Author.AGENT]


async def test_an_agents_file_in_the_thread_is_stored_with_the_reply(desk: Desk) -> None:
    ticket_id, thread_ts = await _thread(desk)
    await desk.add_agent()
    file = desk.fake.add_file("refund.pdf", PDF, "application/pdf")
    envelope = desk.events.file_share(BILLING, "Here is the refund", [file], thread_ts=thread_ts)
    assert (await desk.event(envelope)).status_code == 200

    [reply] = await eventually(lambda: _agent_messages(desk, ticket_id))
    assert reply.body == "Here is the refund"
    [attachment] = reply.attachments
    assert attachment["name"] == "refund.pdf" and attachment["file_id"] == file["id"]
    stored = await SqlFileStore(desk.db).read(str(attachment["stored_id"]))
    assert stored is not None
    info, content = stored
    assert content == PDF and info.mime_type == "application/pdf"
    assert info.ticket_id == ticket_id  # erased with the ticket's customer
    assert desk.fake.file_downloads == [(file["id"], True)]  # fetched with the bot token
    desk.fake.assert_no_violations()


async def test_a_file_alone_is_a_reply_too(desk: Desk) -> None:
    ticket_id, thread_ts = await _thread(desk)
    await desk.add_agent()
    file = desk.fake.add_file("receipt.png", PNG, "image/png")
    await desk.event(desk.events.file_share(BILLING, "", [file], thread_ts=thread_ts))
    [reply] = await eventually(lambda: _agent_messages(desk, ticket_id))
    assert reply.body == "" and reply.attachments[0]["mime_type"] == "image/png"


async def test_files_that_are_not_kept_are_named_to_the_agent(desk: Desk) -> None:
    ticket_id, thread_ts = await _thread(desk)
    await desk.add_agent()
    program = desk.fake.add_file("tool.pdf", b"MZ\x90\x00\x03\x00", "application/pdf")
    elsewhere = {**desk.fake.add_file("a.pdf", PDF, "application/pdf")}
    elsewhere["url_private_download"] = "https://attacker.example/steal"
    files = [program, elsewhere]
    await desk.event(desk.events.file_share(BILLING, "Two files", files, thread_ts=thread_ts))

    [reply] = await eventually(lambda: _agent_messages(desk, ticket_id))
    assert reply.body == "Two files" and reply.attachments == []
    [told] = await eventually(lambda: desk.fake.calls_to("chat.postEphemeral"))
    assert "tool.pdf: That kind of file cannot be sent here" in told.params["text"]
    assert "a.pdf: Slack did not hand the file over" in told.params["text"]
    assert [d[0] for d in desk.fake.file_downloads] == [program["id"]]  # no token elsewhere


async def test_a_customers_file_in_a_dm_reaches_the_engine_stored(desk: Desk) -> None:
    desk.fake.add_user("U0CUSTOM1", name="Maria")
    photo = desk.fake.add_file("meter.png", PNG, "image/png", user="U0CUSTOM1")
    envelope = desk.events.file_share(
        "D0CUSTOM1", "my meter", [photo], user="U0CUSTOM1", channel_type="im"
    )
    await desk.event(envelope)
    [said] = await eventually(lambda: desk.engine.turns)
    [attachment] = said.attachments
    assert attachment.name == "meter.png" and attachment.mime_type == "image/png"
    assert attachment.stored_id is not None
    stored = await SqlFileStore(desk.db).info(attachment.stored_id)
    assert stored is not None and stored.owner == "slack:U0CUSTOM1"


async def test_a_customers_stored_file_shows_in_the_thread_as_a_signed_link(desk: Desk) -> None:
    ticket_id, thread_ts = await _thread(desk)
    stored = desk.fake.add_file("statement.pdf", PDF, "application/pdf")
    files = desk.slack.inbound.files
    assert files is not None
    kept = await files.fetch([stored], owner="telegram:42", ticket_id=None)
    async with desk.db.uow() as uow:
        await services.add_customer_message(
            uow,
            ticket_id,
            "Here it is",
            channel=Channel.TELEGRAM,
            attachments=[*map(dict, kept.attachments), {"kind": "voice", "size": 2048}],
        )
        await uow.commit()
    await desk.drain()
    [mirrored] = [
        p
        for p in desk.fake.posted(BILLING)
        if p.get("thread_ts") == thread_ts and "Here" in p["text"]
    ]
    text: str = mirrored["text"]
    link = re.search(
        r"<(https://careline\.example/files/(\w+)\?expires=(\d+)&signature=(\w+))"
        r"\|statement\.pdf> \(PDF, 1 KB\)",
        text,
    )
    assert link is not None, text
    assert FileLinks(LINK_SECRET, None, 0).valid(link[2], link[3], link[4])
    assert ":paperclip: voice (2 KB, not kept)" in text
    desk.fake.assert_no_violations()


async def test_a_file_seen_before_is_not_fetched_again(desk: Desk) -> None:
    desk.fake.add_user("U0CUSTOM1", name="Maria")
    photo = desk.fake.add_file("meter.png", PNG, "image/png", user="U0CUSTOM1")
    for seen, text in enumerate(("my meter", "the same photo again"), start=1):
        envelope = desk.events.file_share(
            "D0CUSTOM1", text, [photo], user="U0CUSTOM1", channel_type="im"
        )
        await desk.event(envelope)
        await eventually(lambda n=seen: len(desk.engine.turns) == n)  # type: ignore[misc]
    turns = desk.engine.turns
    assert turns[0].attachments[0].stored_id == turns[1].attachments[0].stored_id
    assert len(desk.fake.file_downloads) == 1  # the second time it was already kept
