"""The knowledge base over the admin API: drafts, versions, publishing, search, files."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import yaml

from core import services
from core.db.knowledge import SqlKnowledgeBase
from core.knowledge import Gap, GapReason
from core.model import utcnow
from tests.admin_api.conftest import Api, assert_problem

HOURS = {
    "title": "Opening hours",
    "body": "We're open 9:00-18:00.\n\nClosed on Sundays.",
    "key": "faq_opening_hours",
    "tags": ["Hours", "hours", "faq"],
    "questions": ["when are you open?"],
}


async def write(api: Api, body: dict[str, Any] = HOURS, **kw: Any) -> dict[str, Any]:
    response = await api.post("/articles", json=body, **kw)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_an_article_starts_as_a_draft_and_every_change_is_a_version(api: Api) -> None:
    _, agent = await api.agent_key("Grace")
    article = await write(api, headers=agent)
    assert (article["status"], article["version"], article["tags"]) == (
        "draft",
        1,
        ["hours", "faq"],
    )
    assert article["created_by"].startswith("agent:")
    edited = await api.client.patch(
        f"/articles/{article['id']}", json={"body": "We're open 8:00-20:00.", "version": 1},
        headers=agent,
    )  # fmt: skip
    assert edited.json()["version"] == 2
    published = await api.post(f"/articles/{article['id']}/publish")
    assert (published.json()["status"], published.json()["version"]) == ("published", 3)
    history = (await api.get(f"/articles/{article['id']}/versions")).json()
    assert [(v["version"], v["change"], v["status"]) for v in history] == [
        (3, "published", "published"),
        (2, "edited", "draft"),
        (1, "created", "draft"),
    ]
    assert history[1]["body"] == "We're open 8:00-20:00."
    assert history[0]["changed_by"] == "admin:admin key"
    assert history[2]["changed_by"] == article["created_by"]


async def test_state_refusals_are_409_with_their_codes(api: Api) -> None:
    article = await write(api)
    url = f"/articles/{article['id']}"
    assert_problem(await api.post(f"{url}/unpublish"), 409, "not_published")
    await api.post(f"{url}/publish")
    assert_problem(await api.post(f"{url}/publish"), 409, "already_published")
    assert_problem(await api.post("/articles", json=HOURS), 409, "key_taken")
    stale = await api.client.patch(url, json={"title": "Hours", "version": 1}, headers=api.admin)
    assert_problem(stale, 409, "version_conflict")


async def test_invalid_articles_and_files_are_422(api: Api) -> None:
    bad = await api.post("/articles", json={**HOURS, "language": "not a language"})
    assert_problem(bad, 422, "invalid_request")
    untitled = await api.post(
        "/articles/import",
        json={"format": "markdown", "files": [{"name": "x.md", "content": "no title here"}]},
    )
    assert_problem(untitled, 422, "invalid_file")
    not_faq = await api.post(
        "/articles/import",
        json={"format": "faq_yaml", "files": [{"name": "faq.yaml", "content": "- a list"}]},
    )
    assert_problem(not_faq, 422, "invalid_file")
    assert_problem(await api.get("/articles/999"), 404, "not_found")


async def test_search_finds_drafts_by_any_field_and_filters_by_status(api: Api) -> None:
    hours = await write(api)
    refunds = await write(
        api, {"title": "Refunds", "body": "Within 30 days.", "questions": ["money back?"]}
    )
    await api.post(f"/articles/{refunds['id']}/publish")

    async def ids(**params: Any) -> list[int]:
        return [a["id"] for a in (await api.get("/articles", params=params)).json()["items"]]

    assert await ids(q="MONEY back") == [refunds["id"]]
    assert await ids(q="open sundays") == [hours["id"]]
    assert await ids(q="100%_") == []  # LIKE wildcards are words here
    assert await ids(status="published") == [refunds["id"]]
    assert await ids(tag="hours") == [hours["id"]]
    page = (await api.get("/articles", params={"limit": 1})).json()
    assert page["next_after"] == hours["id"]
    assert await ids(after=page["next_after"]) == [refunds["id"]]


async def test_faq_yaml_export_imports_back_unchanged_and_edits_by_key(api: Api) -> None:
    article = await write(api)
    await api.post(f"/articles/{article['id']}/publish")
    exported = (await api.get("/articles/export", params={"format": "faq_yaml"})).json()
    content = exported["files"][0]["content"]
    assert yaml.safe_load(content)["answers"] == {"faq_opening_hours": HOURS["body"]}
    again = await api.post(
        "/articles/import", json={"format": "faq_yaml", "files": exported["files"]}
    )
    assert again.json() == {"created": [], "updated": [], "unchanged": [article["id"]]}
    changed = content.replace("9:00-18:00", "8:00-20:00")
    new = "version: 2\nanswers:\n  faq_pricing: Plans start at 5 euros a month.\n"
    result = await api.post(
        "/articles/import",
        json={"format": "faq_yaml", "files": [
            {"name": "faq.yaml", "content": changed}, {"name": "more.yaml", "content": new}]},
    )  # fmt: skip
    assert result.json()["updated"] == [article["id"]]
    [created] = result.json()["created"]
    edited = (await api.get(f"/articles/{article['id']}")).json()
    assert edited["status"] == "published"
    assert edited["body"] == HOURS["body"].replace("9:00-18:00", "8:00-20:00")
    pricing = (await api.get(f"/articles/{created}")).json()
    assert (pricing["title"], pricing["status"]) == ("Pricing", "draft")
    assert pricing["key"] == "faq_pricing"


async def test_markdown_export_carries_everything_an_article_has(api: Api) -> None:
    article = await write(api)
    await api.post(f"/articles/{article['id']}/publish")
    [file] = (await api.get("/articles/export")).json()["files"]
    assert file["name"] == "faq_opening_hours.en.md"
    assert file["content"].startswith("---\ntitle: Opening hours\n")
    assert file["content"].endswith(f"---\n\n{HOURS['body']}\n")
    await api.client.delete(f"/articles/{article['id']}", headers=api.admin)
    imported = await api.post(
        "/articles/import", json={"format": "markdown", "files": [file], "publish": True}
    )
    [new_id] = imported.json()["created"]
    new = (await api.get(f"/articles/{new_id}")).json()
    for field in ("title", "body", "key", "language", "tags", "questions"):
        assert new[field] == article[field], field
    assert new["status"] == "published"


async def test_a_deleted_article_is_gone_with_its_history(api: Api) -> None:
    article = await write(api)
    deleted = await api.client.delete(f"/articles/{article['id']}", headers=api.admin)
    assert deleted.status_code == 204
    assert_problem(await api.get(f"/articles/{article['id']}/versions"), 404, "not_found")


async def test_gaps_list_what_customers_asked_grouped_with_an_agents_answer_as_draft(
    api: Api,
) -> None:
    ada, bob, cy = await api.customer("Ada"), await api.customer("Bob"), await api.customer("Cy")
    now = utcnow()
    async with api.db.uow() as uow:
        repo = SqlKnowledgeBase(uow.session)
        for customer, question, minutes, language in (
            (ada, "Do you deliver to Iceland?", 30, "en"),
            (bob, "delivery to Iceland?", 20, "en"),
            (cy, "Can I pay with PayPal?", 10, "en"),
            (cy, "¿Aceptan PayPal?", 5, "es"),
        ):
            at = now - timedelta(minutes=minutes)
            await repo.add_gap(Gap(customer, language, question, GapReason.NOT_UNDERSTOOD, at))
        await uow.commit()
    grace, agent = await api.agent_key("Grace")
    ticket = await api.ticket(bob, "Iceland?")  # Bob opened a ticket after asking
    async with api.db.uow() as uow:
        await services.add_agent_reply(uow, ticket, grace, "Yes: Iceland in 5-8 working days.")
        await uow.commit()

    listed = await api.get("/articles/gaps", headers=agent)  # agents read it too
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["questions"] == 4
    iceland = body["groups"][0]
    assert (iceland["count"], iceland["language"]) == (2, "en")
    assert iceland["examples"] == ["delivery to Iceland?", "Do you deliver to Iceland?"]
    assert iceland["reasons"] == {"not_understood": 2}
    draft = iceland["draft"]
    assert draft["body"] == "Yes: Iceland in 5-8 working days."
    assert (draft["ticket_id"], draft["questions"]) == (ticket, iceland["examples"])
    paypal = [(g["language"], g["examples"]) for g in body["groups"][1:]]
    assert paypal == [("es", ["¿Aceptan PayPal?"]), ("en", ["Can I pay with PayPal?"])]
    assert [g["draft"] for g in body["groups"][1:]] == [None, None]  # nobody answered those
    made = await api.post("/articles", json={k: draft[k] for k in ("title", "body", "questions")})
    assert made.status_code == 201, made.text  # the draft is a valid article as it is

    spanish = (await api.get("/articles/gaps", params={"language": "es-MX"})).json()
    assert [g["examples"] for g in spanish["groups"]] == [["¿Aceptan PayPal?"]]
