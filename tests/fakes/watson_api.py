"""Fake Watson Assistant v2 message endpoint that answers from a real skill export.

Prism can only answer the spec's one example (intent ``hello``); this fake runs a dialog
skill (by default IBM's published bank customer-care sample,
``contracts/watson_samples/bank_simple_workspace.json``) closely enough for tests: it picks
the intent whose examples share most words with the input, finds the dialog node that
answers it (``#Intent`` in its conditions), and turns the node's design-time output
(``output.text.values``, ``output.generic``) into the runtime ``output.generic`` Watson
sends. Client actions of the node (``actions``) come back as ``output.actions``.

Every request is checked against the Watson Assistant v2 OpenAPI contract
(``contracts/watson_assistant_v2.json``: path, the ``version`` query parameter, the
``MessageRequestStateless`` body), and so is every answer (``MessageResponseStateless``).

    with FakeWatson() as fake:
        client = AssistantV2(version="2024-08-25", authenticator=BearerTokenAuthenticator("t"))
        client.set_service_url(fake.url)
        client.message_stateless("a1", "e1", input={"message_type": "text", "text": "hi"})
        fake.assert_no_violations()

As a subprocess: ``python -m tests.fakes.watson_api --port 0``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
from aiohttp import web
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from tests.fakes.contracts import Call, FakeServer, load_contract, serve_main

CONTRACT = "watson_assistant_v2.json"
SAMPLE_SKILL = "watson_samples/bank_simple_workspace.json"
#: Below this word overlap Watson's answer carries no intent (its ``anything_else`` node).
MIN_CONFIDENCE = 0.2
_WORD = re.compile(r"[a-z0-9']+")


class FakeWatson(FakeServer):
    """Watson Assistant v2 ``message`` (stateless), answering from one dialog skill."""

    contract_files = (CONTRACT, SAMPLE_SKILL)

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        skill: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(host, port)
        self.skill: Mapping[str, Any] = skill or load_contract(SAMPLE_SKILL)

    def routes(self, app: web.Application) -> None:
        app.router.add_post(
            "/v2/assistants/{assistant_id}/environments/{environment_id}/message", self.message
        )
        app.router.add_post("/v2/assistants/{assistant_id}/message", self.message)

    # --- the endpoint ---------------------------------------------------------------------

    async def message(self, request: web.Request) -> web.Response:
        body = await request.json()
        problems = self._request_problems(request, body)
        for problem in problems:
            self.violate("message", problem, body)
        text = str(((body or {}).get("input") or {}).get("text") or "")
        self.record(Call("message", {"text": text, "version": request.query.get("version")}, 0.0))
        if problems:
            error = {"error": "; ".join(problems), "code": 400}
            return web.json_response(error, status=400)
        fault = await self.apply_fault("message", None)
        if fault is not None:
            return fault
        answer = self.answer(text)
        _validate(answer, "MessageResponseStateless")  # a broken answer is the fake's bug
        return web.json_response(answer)

    def _request_problems(self, request: web.Request, body: Any) -> list[str]:
        problems = []
        if not request.query.get("version"):
            problems.append("query parameter 'version' is required")
        if not request.headers.get("Authorization"):
            problems.append("no Authorization header")
        try:
            _validate(body, "MessageRequestStateless")
        except jsonschema.ValidationError as error:
            problems.append(f"body: {error.message}")
        return problems

    # --- running the skill ------------------------------------------------------------------

    def answer(self, text: str) -> dict[str, Any]:
        """What Watson would answer to ``text`` (stateless: no dialog context)."""
        intents = self.classify(text)
        node = self.node_for(intents[0]["intent"] if intents else None)
        output: dict[str, Any] = {"intents": intents, "entities": [], "generic": []}
        if node is not None:
            output["generic"] = [g for out in self._outputs(node) for g in _runtime_generic(out)]
            if node.get("actions"):
                output["actions"] = copy.deepcopy(list(node["actions"]))
        context = {"global": {"system": {"turn_count": 1}}, "skills": {}}
        return {"output": output, "context": context}

    def classify(self, text: str) -> list[dict[str, Any]]:
        """The best intent by word overlap with its examples, as Watson lists it (top one)."""
        words = set(_WORD.findall(text.lower()))
        best, confidence = None, 0.0
        for intent in self.skill.get("intents") or []:
            for example in intent.get("examples") or []:
                theirs = set(_WORD.findall(str(example.get("text", "")).lower()))
                if words and theirs:
                    overlap = len(words & theirs) / len(words | theirs)
                    if overlap > confidence:
                        best, confidence = intent["intent"], overlap
        if best is None or confidence < MIN_CONFIDENCE:
            return []
        return [{"intent": best, "confidence": round(confidence, 4)}]

    def node_for(self, intent: str | None) -> Mapping[str, Any] | None:
        """The first node conditioned on ``#intent`` (``anything_else`` without one)."""
        for node in self.skill.get("dialog_nodes") or []:
            conditions = str(node.get("conditions") or "")
            if intent is None and conditions.strip() == "anything_else":
                return node
            if intent is not None and intent in re.findall(r"#([\w-]+)", conditions):
                return node
        return None

    def _outputs(self, node: Mapping[str, Any], depth: int = 0) -> Iterator[Mapping[str, Any]]:
        """The node's output, then (when it has none, or skips user input) that of its
        first unconditional child (``true``), as Watson's runtime goes on to it."""
        output = node.get("output") or {}
        yield output
        empty = not (output.get("text") or output.get("generic"))
        skips = (node.get("next_step") or {}).get("behavior") == "skip_user_input"
        if depth > 5 or not (empty or skips):
            return
        for child in self.skill.get("dialog_nodes") or []:
            if child.get("parent") == node.get("dialog_node") and child.get("conditions") == "true":
                yield from self._outputs(child, depth + 1)
                return


def _runtime_generic(output: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Design-time responses as the runtime sends them: the first of several values."""
    legacy = output.get("text")
    if isinstance(legacy, Mapping) and legacy.get("values"):
        yield {"response_type": "text", "text": str(legacy["values"][0])}
    for item in output.get("generic") or []:
        kind = item.get("response_type")
        if kind == "text" and item.get("values"):
            yield {"response_type": "text", "text": str(item["values"][0].get("text", ""))}
        elif kind in {"option", "image", "pause", "connect_to_agent"}:
            runtime = {k: v for k, v in item.items() if k not in {"selection_policy", "values"}}
            if kind == "pause":
                runtime.setdefault("time", 0)
            yield copy.deepcopy(runtime)


def _validate(instance: Any, schema_name: str) -> None:
    contract = load_contract(CONTRACT)
    registry: Registry[Any] = Registry().with_resource(
        "urn:watson", Resource.from_contents(contract, default_specification=DRAFT7)
    )
    schema = {"$ref": f"urn:watson#/components/schemas/{schema_name}"}
    _OpenApiValidator(schema, registry=registry).validate(instance)


def _one_of(validator: Any, one_of: Any, instance: Any, schema: Mapping[str, Any]) -> Any:
    # OpenAPI picks a oneOf branch by its discriminator (response_type); plain JSON Schema
    # would find a text response valid as connect_to_agent too, whose fields are optional.
    discriminator = schema.get("discriminator") or {}
    if not discriminator.get("mapping") or not isinstance(instance, Mapping):
        yield from _PLAIN_ONE_OF(validator, one_of, instance, schema)
        return
    name = discriminator["propertyName"]
    branch = discriminator["mapping"].get(instance.get(name))
    if branch is None:
        yield jsonschema.ValidationError(f"{name} {instance.get(name)!r} is not one of the API's")
        return
    yield from validator.descend(instance, {"$ref": branch})


_PLAIN_ONE_OF = jsonschema.Draft7Validator.VALIDATORS["oneOf"]
_OpenApiValidator = jsonschema.validators.extend(jsonschema.Draft7Validator, {"oneOf": _one_of})


if __name__ == "__main__":
    serve_main(FakeWatson)
