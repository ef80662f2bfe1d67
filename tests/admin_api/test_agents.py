"""Agents over the API: create, list, get, update, deactivate (with reassignment), activate."""

from __future__ import annotations

from tests.admin_api.conftest import Api, assert_problem, outbox_events


async def test_an_admin_creates_lists_and_gets_agents(api: Api) -> None:
    created = await api.post(
        "/agents",
        json={"name": " Grace Hopper ", "email": "Grace@Example.com", "slack_user_id": "U123ABC",
              "skills": ["Billing", "billing", " telecom"], "capacity": 3},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["name"] == "Grace Hopper"
    assert agent["email"] == "grace@example.com"
    assert agent["skills"] == ["billing", "telecom"]
    assert agent["capacity"] == 3 and agent["active"] and agent["open_tickets"] == 0
    await api.ticket(assignee=agent["id"])
    listed = (await api.get("/agents")).json()
    assert [(a["id"], a["open_tickets"]) for a in listed] == [(agent["id"], 1)]
    one = await api.get(f"/agents/{agent['id']}")
    assert one.json()["slack_user_id"] == "U123ABC"
    assert_problem(await api.get("/agents/999"), 404, "not_found")


async def test_a_second_agent_with_the_same_email_or_slack_user_is_refused(api: Api) -> None:
    first = {"name": "A", "email": "a@example.com", "slack_user_id": "U1AAAA"}
    assert (await api.post("/agents", json=first)).status_code == 201
    same_email = await api.post("/agents", json={"name": "B", "email": "A@example.com"})
    assert_problem(same_email, 409, "refused")
    same_slack = await api.post(
        "/agents", json={"name": "C", "email": "c@example.com", "slack_user_id": "U1AAAA"}
    )
    assert_problem(same_slack, 409, "conflict")


async def test_an_update_changes_only_the_fields_sent(api: Api) -> None:
    agent_id = await api.agent("Grace", slack_user_id="U9GRACE", skills=["billing"])
    response = await api.client.patch(
        f"/agents/{agent_id}", headers=api.admin,
        json={"skills": ["Telecom"], "capacity": 9, "availability": "busy"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    agent = response.json()
    assert (agent["skills"], agent["capacity"], agent["availability"]) == (["telecom"], 9, "busy")
    assert agent["slack_user_id"] == "U9GRACE" and agent["name"] == "Grace"
    cleared = await api.client.patch(
        f"/agents/{agent_id}", headers=api.admin, json={"slack_user_id": None}
    )
    assert cleared.json()["slack_user_id"] is None
    typo = await api.client.patch(f"/agents/{agent_id}", headers=api.admin, json={"capacty": 1})
    assert_problem(typo, 422, "invalid_request")


async def test_deactivation_is_refused_while_the_agent_holds_open_tickets(api: Api) -> None:
    grace = await api.agent("Grace")
    await api.ticket(assignee=grace)
    refused = await api.post(f"/agents/{grace}/deactivate")
    assert_problem(refused, 409, "refused")
    assert (await api.get(f"/agents/{grace}")).json()["active"] is True


async def test_deactivation_with_reassign_to_moves_the_tickets_first(api: Api) -> None:
    grace = await api.agent("Grace")
    alan = await api.agent("Alan")
    tickets = [await api.ticket(assignee=grace) for _ in range(2)]
    response = await api.post(f"/agents/{grace}/deactivate", json={"reassign_to": alan})
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    for ticket in tickets:
        assert (await api.get(f"/tickets/{ticket}")).json()["assignee_id"] == alan
    moved = [p for name, p in await outbox_events(api.db) if name == "TicketAssigned"]
    assert [(p["agent_id"], p["previous_agent_id"]) for p in moved][-2:] == [(alan, grace)] * 2
    to_self = await api.post(f"/agents/{alan}/deactivate", json={"reassign_to": alan})
    assert_problem(to_self, 422, "reassign_to_self")


async def test_a_deactivated_agent_can_be_activated_again(api: Api) -> None:
    grace = await api.agent("Grace")
    assert (await api.post(f"/agents/{grace}/deactivate")).json()["availability"] == "away"
    back = await api.post(f"/agents/{grace}/activate")
    assert back.json()["active"] is True and back.json()["availability"] == "available"


async def test_agents_speak_languages_and_auto_assignment_follows_them(api: Api) -> None:
    await api.post("/agents", json={"name": "Ann", "email": "ann@example.com"})  # first in line
    made = await api.post("/agents", json={"name": "Lucía", "email": "lucia@example.com",
                                           "languages": ["ES", "pt-BR", "es-MX"]})  # fmt: skip
    assert made.status_code == 201, made.text
    lucia = made.json()
    assert lucia["languages"] == ["es", "pt"]
    wrong = await api.post("/agents", json={"name": "X", "email": "x@example.com",
                                            "languages": ["Spanish"]})  # fmt: skip
    assert_problem(wrong, 422, "invalid_request")

    customer = await api.customer("Pilar")
    async with api.db.uow() as uow:
        (await uow.customers.get(customer)).language = "es-ES"  # type: ignore[union-attr]
        await uow.commit()
    ticket = await api.ticket(customer, "Me cobraron dos veces")
    listed = (await api.get("/tickets")).json()["items"]
    assert [t["language"] for t in listed if t["id"] == ticket] == ["es"]
    assigned = await api.post("/tickets/auto-assign", json={})
    assert assigned.status_code == 200, assigned.text
    detail = (await api.get(f"/tickets/{ticket}")).json()
    assert (detail["language"], detail["assignee_id"]) == ("es", lucia["id"])

    patched = await api.client.patch(f"/agents/{lucia['id']}", json={"languages": []},
                                     headers=api.admin)  # fmt: skip
    assert patched.json()["languages"] == []
