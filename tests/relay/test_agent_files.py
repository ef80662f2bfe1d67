"""An agent's files reach the customer: the file itself in a chat that carries files (the web
chat's download link, Telegram's document or photo), a signed link in one that can only point
at it, and as an attachment of the email while it fits."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bots.channels import OutgoingFile, RetryLater
from bots.email import LocalMailbox
from bots.notices import CustomerNotices
from bots.relay import Handlers, Relay, RetryPolicy
from bots.webchat import WebChatChannel, WebChatLines
from core import services
from core.db.database import Database
from core.db.files import SqlFileStore
from core.files import FileLinks, StoredFile, describe
from core.model import Channel, Notify
from tests.relay.support import CollectingChannel, agent, customer_with_ticket, drain
from tests.relay.test_notices import Mail

PDF = b"%PDF-1.4\n% the refund confirmation of order 4411\n"
LINKS = FileLinks("relay-test-secret", "https://help.example", 900)


class FileCollectingChannel(CollectingChannel):
    """A chat that carries files (like Telegram), keeping what it was asked to send."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[tuple[str, OutgoingFile]] = []

    async def send_file(self, chat_id: str, file: OutgoingFile) -> str:
        self.files.append((chat_id, file))
        return f"file-{len(self.files)}"


async def store(db: Database, content: bytes, name: str, ticket_id: int) -> StoredFile:
    file = describe(content, name=name, declared=None, limit=1 << 20, ticket_id=ticket_id)
    return await SqlFileStore(db).put(file, content)


async def reply_with(db: Database, ticket_id: int, *files: StoredFile, body: str = "") -> None:
    anna = await agent(db)
    async with db.uow() as uow:
        await services.add_agent_reply(
            uow,
            ticket_id,
            anna,
            body,
            attachments=[f.attachment() for f in files],
        )
        await uow.commit()


def wire(
    db: Database, tmp_path: Path, channels: dict[Channel, Any], **options: Any
) -> tuple[Relay, Mail]:
    handlers = Handlers()
    CustomerNotices(
        db,
        channels=channels,
        email=LocalMailbox(tmp_path / "mailbox", sender="support@careline.test"),
        files=SqlFileStore(db),
        links=lambda: LINKS,
        chat_link_days=2,
        **options,
    ).register(handlers)
    quick = RetryPolicy(base_seconds=0.01)  # a retried delivery is due again at once
    return Relay(db, handlers, retry=quick), Mail(tmp_path / "mailbox")


async def test_a_chat_that_carries_files_gets_the_file_after_the_text(
    db: Database, tmp_path: Path
) -> None:
    chat = FileCollectingChannel()
    relay, _ = wire(db, tmp_path, {Channel.TELEGRAM: chat})
    _, ticket_id, chat_id = await customer_with_ticket(db, "ola", notify=Notify.CHAT)
    await drain(relay)
    refund = await store(db, PDF, "refund.pdf", ticket_id)
    await reply_with(db, ticket_id, refund, body="Here is the confirmation")
    await drain(relay)

    assert chat.texts(chat_id)[-1] == "Anna Berg: Here is the confirmation"
    [(to, sent)] = chat.files
    assert to == chat_id and sent.content == PDF and sent.name == "refund.pdf"
    assert sent.caption == "Anna Berg sent you a file: refund.pdf"
    assert sent.mime_type == "application/pdf" and sent.sender == "Anna Berg"
    assert sent.link is not None and sent.link.startswith(f"/files/{refund.id}?expires=")


async def test_a_chat_that_cannot_carry_files_gets_a_signed_link_in_its_language(
    db: Database, tmp_path: Path
) -> None:
    chat = CollectingChannel()
    relay, _ = wire(db, tmp_path, {Channel.TELEGRAM: chat})
    _, ticket_id, chat_id = await customer_with_ticket(db, "eva", notify=Notify.CHAT, language="de")
    await drain(relay)
    refund = await store(db, PDF, "Erstattung.pdf", ticket_id)
    await reply_with(db, ticket_id, refund)
    await drain(relay)

    text = chat.texts(chat_id)[-1]
    first, url, last = text.split("\n")
    assert first == "Anna Berg hat Ihnen eine Datei geschickt: Erstattung.pdf"
    assert url.startswith(f"https://help.example/files/{refund.id}?expires=")
    assert last == "Der Link funktioniert 2 Tage lang."
    expires, signature = url.split("expires=")[1].split("&signature=")
    assert LINKS.valid(refund.id, expires, signature)


async def test_the_web_chat_shows_a_download_in_the_agents_bubble(
    db: Database, tmp_path: Path
) -> None:
    lines = WebChatLines(db)
    relay, _ = wire(db, tmp_path, {Channel.WEBCHAT: WebChatChannel(lines)})
    _, ticket_id, chat_id = await customer_with_ticket(
        db, "web", notify=Notify.CHAT, channel=Channel.WEBCHAT
    )
    await drain(relay)
    refund = await store(db, PDF, "refund.pdf", ticket_id)
    await reply_with(db, ticket_id, refund, body="Attached")
    await drain(relay)

    shown = [line for line in await lines.since(chat_id, 0) if line.get("download")]
    [line] = shown
    assert line["agent"] == {"name": "Anna Berg"}
    assert line["download"]["label"] == "refund.pdf (1 KB)"
    assert line["download"]["name"] == "refund.pdf"
    assert line["download"]["href"].startswith(f"/files/{refund.id}?expires=")


async def test_the_email_carries_the_files_that_fit_and_names_the_others(
    db: Database, tmp_path: Path
) -> None:
    relay, mail = wire(
        db, tmp_path, {Channel.TELEGRAM: CollectingChannel()}, max_email_attachments_bytes=1000
    )
    _, ticket_id, _ = await customer_with_ticket(
        db, "ida", email="ida@example.org", notify=Notify.EMAIL, language="es"
    )
    await drain(relay)
    small = await store(db, PDF, "reembolso.pdf", ticket_id)
    large = await store(db, b"%PDF-1.4\n" + b"x" * 2000, "extracto.pdf", ticket_id)
    await reply_with(db, ticket_id, small, large, body="Le envío los documentos")
    await drain(relay)

    [message] = [m for m in mail.messages("ida@example.org") if "respondido" in m["Subject"]]
    attached = [(p.get_filename(), p.get_content()) for p in message.iter_attachments()]
    assert attached == [("reembolso.pdf", PDF)]
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Adjunto: reembolso.pdf" in text
    assert "extracto.pdf (2 KB) era demasiado grande para adjuntarlo a este correo." in text


async def test_an_erased_file_is_not_sent(db: Database, tmp_path: Path) -> None:
    chat = FileCollectingChannel()
    relay, _ = wire(db, tmp_path, {Channel.TELEGRAM: chat})
    _, ticket_id, _ = await customer_with_ticket(db, "zoe", notify=Notify.CHAT)
    await drain(relay)
    gone = describe(PDF, name="gone.pdf", declared=None, limit=1000, ticket_id=ticket_id)
    await reply_with(db, ticket_id, gone, body="see attached")  # named, never stored
    await drain(relay)
    assert chat.files == []


class FlakyFileChannel(FileCollectingChannel):
    """Telegram answers 5xx to the first send of one file (a transient failure)."""

    def __init__(self, flaky: str) -> None:
        super().__init__()
        self.flaky = flaky

    async def send_file(self, chat_id: str, file: OutgoingFile) -> str:
        if file.name == self.flaky:
            self.flaky = ""
            raise RetryLater("telegram: Bad Gateway", 0.0)
        return await super().send_file(chat_id, file)


async def test_each_file_is_delivered_once_when_one_send_fails(
    db: Database, tmp_path: Path
) -> None:
    """One event per file: the retry of the second file does not send the first again."""
    chat = FlakyFileChannel("second.pdf")
    relay, _ = wire(db, tmp_path, {Channel.TELEGRAM: chat})
    _, ticket_id, _ = await customer_with_ticket(db, "ned", notify=Notify.CHAT)
    await drain(relay)
    first = await store(db, PDF, "first.pdf", ticket_id)
    second = await store(db, PDF + b"2", "second.pdf", ticket_id)
    third = await store(db, PDF + b"3", "third.pdf", ticket_id)
    await reply_with(db, ticket_id, first, second, third, body="Three files")
    for _ in range(20):
        await drain(relay)
        if len(chat.files) == 3:
            break
        await asyncio.sleep(0.05)
    assert sorted(f.name for _, f in chat.files) == ["first.pdf", "second.pdf", "third.pdf"]
