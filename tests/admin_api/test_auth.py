"""API keys: bearer auth, hashed storage, roles, revocation, bootstrap."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from core.db import tables as t
from core.db.database import Database
from core.db.keys import ensure_bootstrap_admin_key
from tests.admin_api.conftest import Api, assert_problem, build_app


async def test_a_request_without_a_key_is_refused_with_401_problem(api: Api) -> None:
    response = await api.client.get("/tickets")
    body = assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    assert body["instance"] == "/tickets"


async def test_an_unknown_or_malformed_key_is_refused(api: Api) -> None:
    for header in ("Bearer clk_not-a-real-key", "Bearer something", "Basic dXNlcjpwYXNz"):
        response = await api.client.get("/me", headers={"Authorization": header})
        assert response.status_code == 401, header


async def test_a_new_key_is_shown_once_and_stored_only_as_a_hash(api: Api) -> None:
    created = await api.post("/keys", json={"name": "ops laptop", "role": "admin"})
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("clk_") and len(key) > 40
    async with api.db.engine.connect() as conn:
        stored = (await conn.execute(select(t.api_keys.c.key_hash, t.api_keys.c.prefix))).all()
    assert all(row.key_hash != key and key not in row.key_hash for row in stored)
    listing = await api.get("/keys")
    assert listing.status_code == 200
    assert key not in listing.text
    assert all("key" not in item and "key_hash" not in item for item in listing.json())
    assert key[:12] in [item["prefix"] for item in listing.json()]
    me = await api.get("/me", headers={"Authorization": f"Bearer {key}"})
    assert me.json()["name"] == "ops laptop"


async def test_an_agent_key_needs_an_existing_agent(api: Api) -> None:
    missing = await api.post("/keys", json={"name": "x", "role": "agent"})
    assert_problem(missing, 422, "invalid_request")
    unknown = await api.post("/keys", json={"name": "x", "role": "agent", "agent_id": 999})
    assert_problem(unknown, 404, "not_found")
    agent_id = await api.agent()
    made = await api.post("/keys", json={"name": "x", "role": "agent", "agent_id": agent_id})
    assert made.status_code == 201
    me = await api.get("/me", headers={"Authorization": f"Bearer {made.json()['key']}"})
    assert me.json() == {
        "key_id": made.json()["id"],
        "name": "x",
        "role": "agent",
        "agent_id": agent_id,
    }


async def test_a_revoked_key_stops_working_at_once(api: Api) -> None:
    made = (await api.post("/keys", json={"name": "temp", "role": "admin"})).json()
    headers = {"Authorization": f"Bearer {made['key']}"}
    assert (await api.get("/me", headers=headers)).status_code == 200
    revoked = await api.client.delete(f"/keys/{made['id']}", headers=api.admin)
    assert revoked.status_code == 204
    assert_problem(await api.get("/me", headers=headers), 401, "invalid_key")
    again = await api.client.delete(f"/keys/{made['id']}", headers=api.admin)
    assert_problem(again, 404)


async def test_the_first_start_creates_one_admin_key_and_later_starts_none(db: Database) -> None:
    key = await ensure_bootstrap_admin_key(db)
    assert key is not None
    assert await ensure_bootstrap_admin_key(db) is None
    app = build_app(db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        me = await client.get("/me", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200
    assert me.json()["role"] == "admin"


async def test_no_bootstrap_key_when_keys_already_exist(api: Api) -> None:
    assert await ensure_bootstrap_admin_key(api.db) is None
