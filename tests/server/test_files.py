"""Attachments are real files: a web-chat upload is kept in the database (so any replica has
it), and staff read it only through a short-lived signed link, as a download."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from core import services
from core.config import Settings
from core.db.database import Database
from core.files import FileLinks
from core.model import Channel
from dialogs.turn import Reply, UserSaid
from tests.server.support import ServerThread, running
from tests.support.customers import register_customer

SECRET = "a-test-secret-of-the-server"
PDF = b"%PDF-1.4\n% statement of account, page 1\n"


@dataclass
class TicketingEngine:
    """Opens a ticket with whatever the customer sent, as the dialog engine does."""

    url: str
    tickets: list[int] = field(default_factory=list)

    async def handle_turn(self, said: UserSaid) -> list[Reply]:
        db = Database(self.url)
        try:
            async with db.uow() as uow:
                customer, identity = await register_customer(
                    uow, channel=said.channel, external_id=said.user_id, chat_id=said.chat_id
                )
                assert customer.id is not None
                ticket = await services.open_ticket(
                    uow,
                    customer_id=customer.id,
                    description=said.text or "a file",
                    category="billing",
                    channel=Channel.WEBCHAT,
                    identity_id=identity.id,
                    attachments=[a.as_dict() for a in said.attachments],
                )
                await uow.commit()
        finally:
            await db.dispose()
        assert ticket.id is not None
        self.tickets.append(ticket.id)
        return [Reply(f"Ticket {ticket.reference} opened")]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerThread, TicketingEngine]]:
    folder: Path = tmp_path_factory.mktemp("files")
    url = f"sqlite+aiosqlite:///{folder}/careline.db"
    settings = Settings(
        database_url=url,
        data_dir=str(folder / "var"),
        secret_key=SecretStr(SECRET),
        file_link_minutes=5,
        _env_file=None,  # type: ignore[call-arg]
    )
    engine = TicketingEngine(url)
    with running(settings, engine) as thread:
        yield thread, engine


@pytest.fixture(scope="module")
def uploaded(server: tuple[ServerThread, TicketingEngine]) -> tuple[int, str]:
    """A visitor sends a PDF named like a photo; the ticket and the stored file's id."""
    thread, engine = server
    with httpx.Client(base_url=thread.url) as visitor:
        assert visitor.post("/chat/api/session").status_code == 200
        sent = visitor.post(
            "/chat/api/upload", files={"file": ("statement ü.pdf", PDF, "application/pdf")}
        )
    assert sent.status_code == 200, sent.text
    ticket_id = engine.tickets[-1]
    detail = admin(thread).get(f"/api/v1/tickets/{ticket_id}").json()
    (attachment,) = detail["timeline"][0]["attachments"]
    assert attachment["mime_type"] == "application/pdf" and attachment["size"] == len(PDF)
    return ticket_id, str(attachment["stored_id"])


def admin(thread: ServerThread) -> httpx.Client:
    key = thread.app.state.runtime.admin_key
    return httpx.Client(base_url=thread.url, headers={"Authorization": f"Bearer {key}"})


def test_staff_download_the_file_through_a_signed_link(
    server: tuple[ServerThread, TicketingEngine], uploaded: tuple[int, str]
) -> None:
    thread, _ = server
    ticket_id, stored = uploaded
    link = admin(thread).get(f"/api/v1/tickets/{ticket_id}/files/{stored}")
    assert link.status_code == 200, link.text
    body = link.json()
    assert body["name"] == "statement ü.pdf" and body["size"] == len(PDF)
    assert body["url"].startswith(f"/files/{stored}?expires=")
    with httpx.Client(base_url=thread.url) as anyone:  # the link is the key: no API key
        file = anyone.get(body["url"])
    assert file.status_code == 200
    assert file.content == PDF
    assert file.headers["content-type"] == "application/pdf"
    assert file.headers["content-disposition"].startswith('attachment; filename="statement _.pdf"')
    assert "filename*=UTF-8''statement%20%C3%BC.pdf" in file.headers["content-disposition"]
    assert file.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in file.headers["content-security-policy"]
    assert "no-store" in file.headers["cache-control"]
    expires = int(body["url"].split("expires=")[1].split("&")[0])
    assert 4 * 60 < expires - time.time() <= 5 * 60  # CARELINE_FILE_LINK_MINUTES


def test_a_forged_altered_or_expired_link_is_refused(
    server: tuple[ServerThread, TicketingEngine], uploaded: tuple[int, str]
) -> None:
    thread, _ = server
    _, stored = uploaded
    links = FileLinks(SECRET, None, 300)
    good = links.path(stored)
    expired = links.path(stored, now=time.time() - 600)
    longer = good.replace("expires=", "expires=9")  # the same signature, a later expiry
    wrong_key = FileLinks("another-secret", None, 300).path(stored)
    with httpx.Client(base_url=thread.url) as anyone:
        assert anyone.get(good).status_code == 200
        for bad in (expired, longer, wrong_key, f"/files/{stored}"):
            refused = anyone.get(bad)
            assert refused.status_code == 403, bad
            assert "expired or is not valid" in refused.text
            assert PDF not in refused.content


def test_a_link_is_given_only_for_the_tickets_own_files(
    server: tuple[ServerThread, TicketingEngine], uploaded: tuple[int, str]
) -> None:
    thread, _ = server
    ticket_id, stored = uploaded
    client = admin(thread)
    other = client.get(f"/api/v1/tickets/{ticket_id}/files/{'0' * 32}")
    assert other.status_code == 404
    assert "has no attachment" in other.json()["detail"]
    assert client.get(f"/api/v1/tickets/{ticket_id}/files/..%2Fetc").status_code in (404, 422)
    anonymous = httpx.get(f"{thread.url}/api/v1/tickets/{ticket_id}/files/{stored}")
    assert anonymous.status_code == 401


def test_a_file_of_a_kind_we_do_not_keep_is_refused_and_not_stored(
    server: tuple[ServerThread, TicketingEngine],
) -> None:
    thread, engine = server
    before = len(engine.tickets)
    with httpx.Client(base_url=thread.url) as visitor:
        visitor.post("/chat/api/session")
        sent = visitor.post(
            "/chat/api/upload", files={"file": ("page.pdf", b"MZ\x90\x00\x03", "application/pdf")}
        )
    assert sent.status_code == 415
    assert len(engine.tickets) == before
