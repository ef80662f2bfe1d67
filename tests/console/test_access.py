"""Signing in, invitations, sessions, CSRF and who may do what in the console."""

from __future__ import annotations

from sqlalchemy import select

from admin_api.console.invitations import first_admin_link, invitation_url
from admin_api.console.security import InvitationLinks
from core.db import staff
from core.db import tables as t
from tests.console.conftest import BASE, PASSWORD, SECRET, Console, Person, build, field


async def invite(console: Console, admin: Person, email: str, role: str = "agent") -> str:
    """An admin invites someone; the link the relay would mail."""
    answer = await admin.post(
        "/console/agents/invite", name=email.split("@")[0].title(), email=email, role=role,
        skills="delivery, billing", capacity="3",
    )  # fmt: skip
    assert answer.status_code == 303, answer.text
    async with console.db.sessions() as session:
        found = [i for i in await staff.open_invitations(session) if i.email == email]
    assert found
    return invitation_url(BASE, InvitationLinks(SECRET), found[0])


async def test_the_first_admin_comes_from_the_first_start_link(console: Console) -> None:
    link = await first_admin_link(console.db, SECRET, BASE)
    assert link is not None and link.startswith(f"{BASE}/console/invitations/")
    assert await first_admin_link(console.db, SECRET, BASE) == link  # shown again, same link
    admin = await console.accept(link, name="Ada Admin", email="Ada@Example.com")
    cookie = next(c for c in admin.client.cookies.jar if c.name == "careline_console")
    assert cookie.path == "/console" and cookie.has_nonstandard_attr("HttpOnly")
    queue = await admin.page("/console/")
    assert queue.status_code == 200 and "Ada Admin" in queue.text
    assert await first_admin_link(console.db, SECRET, BASE) is None  # an admin exists now
    again = await console.client().get(link.removeprefix(BASE))
    assert again.status_code == 404 and "already used" in again.text


async def test_a_forged_or_changed_invitation_link_is_refused(console: Console) -> None:
    link = await first_admin_link(console.db, SECRET, BASE)
    assert link is not None
    invitation_id, mac = link.rsplit("/", 1)[1].split(".", 1)
    other = InvitationLinks("another secret").token(int(invitation_id), "guess")
    for token in (f"{invitation_id}.{mac[:-2]}xx", other, "1.x", "nonsense", f"{invitation_id}"):
        answer = await console.client().get(f"/console/invitations/{token}")
        assert answer.status_code == 404, token


async def test_signing_in_makes_a_new_session_and_signing_out_ends_it(console: Console) -> None:
    await console.first_admin()
    person, wrong = await console.sign_in("admin@example.com", "not the password!")
    assert wrong.status_code == 401 and "do not match" in wrong.text
    # Session fixation: a session id planted before sign-in is never the one signed in.
    person.client.cookies.set("careline_console", "planted-value", path="/console")
    answer = await person.client.post(
        "/console/sign-in",
        data={"form_token": field((await person.client.get("/console/sign-in")).text,
                                  "form_token"),
              "email": "ADMIN@example.com", "password": PASSWORD},
    )  # fmt: skip
    assert answer.status_code == 303
    token = answer.cookies["careline_console"]
    assert token != "planted-value" and len(token) >= 40
    planted = console.client()
    planted.cookies.set("careline_console", "planted-value", path="/console")
    assert (await planted.get("/console/")).status_code == 303  # still nobody
    signed = Person(console.client())
    signed.client.cookies.set("careline_console", token, path="/console")
    assert (await signed.page("/console/")).status_code == 200
    ended = await signed.post("/console/sign-out")
    assert ended.status_code == 303
    stale = console.client()
    stale.cookies.set("careline_console", token, path="/console")
    assert (await stale.get("/console/")).status_code == 303  # back to the sign-in page


async def test_signing_out_everywhere_ends_every_session(console: Console) -> None:
    first = await console.first_admin()
    second, answer = await console.sign_in("admin@example.com")
    assert answer.status_code == 303
    assert (await second.page("/console/")).status_code == 200
    assert (await first.post("/console/sign-out-everywhere")).status_code == 303
    gone = await second.client.get("/console/")
    assert gone.status_code == 303 and "/console/sign-in" in gone.headers["location"]


async def test_a_form_without_its_token_or_from_another_site_is_refused(console: Console) -> None:
    admin = await console.first_admin()
    ticket_id = await console.ticket()
    await admin.page("/console/")
    path = f"/console/tickets/{ticket_id}/status"
    missing = await admin.client.post(path, data={"status": "waiting"})
    wrong = await admin.client.post(path, data={"status": "waiting", "csrf": "x" * 43})
    foreign = await admin.client.post(
        path, data={"status": "waiting", "csrf": admin.csrf},
        headers={"Origin": "https://evil.example"},
    )  # fmt: skip
    for refused in (missing, wrong, foreign):
        assert refused.status_code == 403, refused.text
    async with console.db.sessions() as session:
        status = await session.scalar(select(t.tickets.c.status).where(t.tickets.c.id == ticket_id))
    assert status == "new"  # nothing changed
    done = await admin.post(path, status="waiting")
    assert done.status_code == 303


async def test_sign_in_is_throttled_even_for_the_right_password(console: Console) -> None:
    console.app = build(console.db, console_sign_ins_per_quarter_hour=3)
    await console.first_admin()
    for _ in range(3):
        _, answer = await console.sign_in("admin@example.com", "wrong password, sorry")
        assert answer.status_code == 401
    _, throttled = await console.sign_in("admin@example.com")
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    assert "careline_console" not in throttled.cookies


async def test_an_agent_is_invited_signs_up_and_cannot_do_an_admins_work(
    console: Console,
) -> None:
    admin = await console.first_admin()
    link = await invite(console, admin, "grace@example.com")
    async with console.db.sessions() as session:
        events = (await session.execute(select(t.outbox.c.event_type))).scalars().all()
    assert "StaffInvited" in events  # the relay mails the link
    agent = await console.accept(link, name="Grace Hopper")
    queue = await agent.page("/console/")
    assert queue.status_code == 200 and "Grace Hopper" in queue.text
    assert 'href="/console/agents"' not in queue.text  # no admin pages in the menu
    for path in ("/console/agents", "/console/canned"):
        assert (await agent.page(path)).status_code == 403
    ticket_id = await console.ticket()
    for path, data in (
        ("/console/agents/invite", {"name": "Eve", "email": "eve@example.com"}),
        (f"/console/tickets/{ticket_id}/assign", {"agent_id": "1"}),
        (f"/console/tickets/{ticket_id}/priority", {"priority": "urgent"}),
        ("/console/settings/auto-assign", {"enabled": "on"}),
    ):
        assert (await agent.post(path, **data)).status_code == 403, path


async def test_an_agent_cannot_work_another_agents_ticket(console: Console) -> None:
    admin = await console.first_admin()
    grace = await console.accept(await invite(console, admin, "grace@example.com"), name="Grace")
    alan = await console.accept(await invite(console, admin, "alan@example.com"), name="Alan")
    ticket_id = await console.ticket()
    assert (await grace.post(f"/console/tickets/{ticket_id}/claim")).status_code == 303
    for path, data in (
        (f"/console/tickets/{ticket_id}/reply", {"body": "Hello from Alan"}),
        (f"/console/tickets/{ticket_id}/note", {"body": "psst"}),
        (f"/console/tickets/{ticket_id}/status", {"status": "resolved"}),
        (f"/console/tickets/{ticket_id}/priority", {"priority": "urgent"}),
    ):
        assert (await alan.post(path, **data)).status_code == 403, path
    raised = await grace.post(f"/console/tickets/{ticket_id}/priority", priority="urgent")
    assert raised.status_code == 303  # her own ticket
    taken = await alan.post(f"/console/tickets/{ticket_id}/claim")
    assert taken.status_code == 409 and "assigned to another agent" in taken.text
    assert (await grace.post(f"/console/tickets/{ticket_id}/reply", body="Hi!")).status_code == 303


async def test_deactivating_an_agent_signs_them_out(console: Console) -> None:
    admin = await console.first_admin()
    grace = await console.accept(await invite(console, admin, "grace@example.com"), name="Grace")
    assert (await grace.page("/console/")).status_code == 200
    async with console.db.sessions() as session:
        agent_id = await session.scalar(
            select(t.agents.c.id).where(t.agents.c.email == "grace@example.com")
        )
    assert (await admin.post(f"/console/agents/{agent_id}/deactivate")).status_code == 303
    assert (await grace.client.get("/console/")).status_code == 303
