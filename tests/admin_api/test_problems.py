"""Every error is problem+json: domain errors, routing, validation, size, server errors."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from admin_api.problems import domain_status
from core.errors import (
    AgentUnavailable,
    CapacityExceeded,
    Conflict,
    DomainError,
    IllegalTransition,
    InvalidInput,
    NotFound,
)
from tests.admin_api.conftest import Api, assert_problem, build_app


@pytest.mark.parametrize(
    ("error", "status"),
    [(NotFound, 404), (IllegalTransition, 409), (Conflict, 409), (CapacityExceeded, 409),
     (AgentUnavailable, 409), (InvalidInput, 422), (DomainError, 422)],
)  # fmt: skip
def test_domain_errors_map_to_their_status(error: type[DomainError], status: int) -> None:
    assert domain_status(error("x")) == status


async def test_an_unknown_route_and_a_wrong_method_are_problems(api: Api) -> None:
    assert_problem(await api.get("/nowhere"), 404)
    assert_problem(await api.get("/tickets/abc"), 404)
    wrong = await api.client.delete("/agents", headers=api.admin)
    assert_problem(wrong, 405)
    assert wrong.headers["allow"] == "GET, POST"


async def test_validation_errors_list_each_field(api: Api) -> None:
    response = await api.post("/agents", json={"name": "", "email": "nope", "capacity": "5"})
    body = assert_problem(response, 422, "invalid_request")
    assert {tuple(e["loc"]) for e in body["errors"]} == {
        ("body", "name"),
        ("body", "email"),
        ("body", "capacity"),
    }
    nul = await api.post("/agents", json={"name": "A\u0000", "email": "a@example.com"})
    assert_problem(nul, 422)
    huge = await api.get("/tickets/9007199254740992")
    assert_problem(huge, 422)


async def test_integers_are_json_schema_integers(api: Api) -> None:
    """21.0 is an integer in JSON Schema (what the OpenAPI document promises); 21.5, "21" and
    true are not."""
    made = await api.post("/agents", json={"name": "Ada", "email": "ada@example.com",
                                           "capacity": 21.0})  # fmt: skip
    assert made.status_code == 201, made.text
    assert made.json()["capacity"] == 21
    for wrong in (21.5, "21", True):
        refused = await api.post("/agents", json={"name": "Bo", "email": "bo@example.com",
                                                  "capacity": wrong})  # fmt: skip
        assert_problem(refused, 422, "invalid_request")
    limited = await api.post("/tickets/auto-assign", json={"limit": 3.0})
    assert limited.status_code == 200, limited.text
    schemas = (await api.client.get("/openapi.json")).json()["components"]["schemas"]
    agent_id = schemas["AssignIn"]["properties"]["agent_id"]
    assert (agent_id["type"], agent_id["minimum"]) == ("integer", 1)  # the bounds documented
    [capacity, _] = schemas["AgentPatch"]["properties"]["capacity"]["anyOf"]
    assert (capacity["minimum"], capacity["maximum"]) == (0, 1000)  # also when optional
    too_many = await api.client.patch("/agents/1", json={"capacity": 1001}, headers=api.admin)
    assert_problem(too_many, 422, "invalid_request")


async def test_bodies_over_the_limit_are_refused_with_413(api: Api) -> None:
    app = build_app(api.db, max_body_bytes=1000)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        declared = await client.post("/tickets/1/notes", headers=api.admin,
                                     json={"body": "x" * 2000})  # fmt: skip
        assert_problem(declared, 413)

        async def chunks():  # no Content-Length: the limit counts what streams in
            for _ in range(20):
                yield b"x" * 100

        streamed = await client.post("/tickets/1/notes", headers=api.admin, content=chunks())
        assert_problem(streamed, 413)


async def test_an_unexpected_failure_is_a_500_problem_without_details(api: Api) -> None:
    async def broken() -> None:
        raise RuntimeError("secret internals: customer ada@example.com")

    api.app.add_api_route("/broken", broken)
    response = await api.get("/broken")
    body = assert_problem(response, 500, "internal")
    assert "secret" not in response.text and "ada@" not in body.get("detail", "")


async def test_the_openapi_document_describes_problem_responses(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    assert "ProblemDetails" in spec["components"]["schemas"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    responses = spec["paths"]["/tickets/{ticket_id}/assign"]["post"]["responses"]
    assert {"401", "403", "404", "409", "413", "422", "429"} <= set(responses)
    assert "application/problem+json" in responses["409"]["content"]
    assert (await api.client.get("/docs")).status_code == 200


async def test_mounted_under_api_v1_the_routes_docs_and_allow_header_work(api: Api) -> None:
    from fastapi import FastAPI

    server = FastAPI()
    server.mount("/api/v1", api.app)
    transport = httpx.ASGITransport(app=server)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        me = await client.get("/api/v1/me", headers=api.admin)
        assert me.status_code == 200
        docs = await client.get("/api/v1/docs")
        assert docs.status_code == 200 and "/api/v1/openapi.json" in docs.text
        assert (await client.get("/api/v1/openapi.json")).status_code == 200
        wrong = await client.delete("/api/v1/agents/1", headers=api.admin)
        assert_problem(wrong, 405)
        assert wrong.headers["allow"] == "GET, PATCH"


async def test_the_openapi_states_every_bound_in_json_schema_keywords(api: Api) -> None:
    """A bound written where pydantic cannot translate it (`Field(le=...)` on an optional
    field) reaches the document as "le": no client or fuzzer reads it, and valid-looking
    requests are refused."""
    spec = (await api.client.get("/openapi.json")).json()
    not_json_schema = {"ge", "le", "gt", "lt", "max_length", "min_length", "strict"}
    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            found.extend(f"{path}/{k}" for k in node if k in not_json_schema)
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    walk(spec, "")
    assert found == []


async def test_a_blank_name_is_refused_and_the_document_says_so(api: Api) -> None:
    """Names are stripped, so white space alone is empty: the schema's pattern refuses it
    too, and a client (or fuzzer) that follows the document never sends it."""
    schemas = (await api.client.get("/openapi.json")).json()["components"]["schemas"]
    pattern = schemas["AgentIn"]["properties"]["name"]["pattern"]
    for blank in ("\r", " \t ", "\u2003"):
        assert re.search(pattern, blank) is None
        made = await api.post("/agents", json={"name": blank, "email": "bo@example.com"})
        assert_problem(made, 422, "invalid_request")
    assert re.search(pattern, " Bo ")
