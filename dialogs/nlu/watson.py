"""Watson Assistant v2 as an NLU. The only module that imports ibm_watson.

Credentials and URL come the IBM SDK way from the environment (service name
``assistant``: ``ASSISTANT_URL``, ``ASSISTANT_APIKEY``, ``ASSISTANT_AUTH_TYPE``, ...); our
settings give the assistant id, environment id and API version date.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from ibm_cloud_sdk_core import get_authenticator_from_environment
from ibm_watson import AssistantV2

from dialogs.nlu.base import OUT_OF_SCOPE, AnswerChoice, AssistantAnswer, Entity, Parse
from dialogs.nlu.entities import extract_entities

#: Watson rejects longer input with 400 (``input.text`` maxLength in the v2 API definition).
MAX_TEXT = 2048
DEFAULT_VERSION = "2024-08-25"
SERVICE_NAME = "assistant"


class WatsonNLU:
    """Stateless message calls to one assistant environment, mapped into ``Parse``.

    The SDK is synchronous, so each call runs in a worker thread; the client is built once
    and shared (its requests session is thread-safe for independent calls).
    """

    def __init__(
        self,
        client: AssistantV2,
        *,
        assistant_id: str,
        environment_id: str,
        intent_names: Mapping[str, str] | None = None,
        action_names: Mapping[str, str] | None = None,
    ) -> None:
        if not assistant_id or not environment_id:
            raise ValueError("Watson needs both an assistant id and an environment id")
        self._client = client
        self.assistant_id = assistant_id
        self.environment_id = environment_id
        # Skills name intents their own way ("hello" vs our "greet"); the mapping file
        # (dialogs/watson_mapping.py) names the ones that lead to a Careline flow.
        self._intent_names = dict(intent_names or {})
        self._action_names = dict(action_names or {})

    @classmethod
    def from_environment(
        cls,
        *,
        assistant_id: str,
        environment_id: str,
        version: str = DEFAULT_VERSION,
        timeout: float | None = 2.0,
        intent_names: Mapping[str, str] | None = None,
        action_names: Mapping[str, str] | None = None,
    ) -> WatsonNLU:
        """Build the one client of the process from ``ASSISTANT_*`` variables."""
        authenticator = get_authenticator_from_environment(SERVICE_NAME)
        client = AssistantV2(
            version=version, authenticator=authenticator, service_name=SERVICE_NAME
        )
        if timeout is not None:
            # Bound the worker thread too; asyncio's timeout alone would leave it waiting.
            client.set_http_config({"timeout": timeout})
        return cls(
            client,
            assistant_id=assistant_id,
            environment_id=environment_id,
            intent_names=intent_names,
            action_names=action_names,
        )

    async def parse(self, text: str) -> Parse:
        cleaned = watson_text(text)
        if not cleaned:
            return Parse(OUT_OF_SCOPE, 0.0, extract_entities(text), source="watson")
        result = await asyncio.to_thread(self._message, cleaned)
        return self.to_parse(result, cleaned)

    def _message(self, text: str) -> dict[str, Any]:
        response = self._client.message_stateless(
            self.assistant_id,
            self.environment_id,
            input={"message_type": "text", "text": text},
        )
        return dict(response.get_result())

    def to_parse(self, result: Mapping[str, Any], text: str) -> Parse:
        """Map a message response: the top intent (or a mapped client action), Watson's
        entities plus our regex ones, and Watson's own answer from ``output.generic``."""
        output = result.get("output") or {}
        name, confidence = self._intent(output)
        entities = [_entity(entity) for entity in output.get("entities") or []]
        known = {(entity.name, entity.value) for entity in entities}
        entities += [e for e in extract_entities(text) if (e.name, e.value) not in known]
        answer = assistant_answer(output.get("generic") or [])
        return Parse(
            intent=name,
            confidence=confidence,
            entities=tuple(entities),
            source="watson",
            answer="\n".join(answer.texts) or None,
            assistant=answer or None,
        )

    def _intent(self, output: Mapping[str, Any]) -> tuple[str, float]:
        # A client action the skill requests is its explicit instruction: it wins.
        for action in output.get("actions") or []:
            target = self._action_names.get(str(action.get("name")))
            if target is not None:
                return target, 1.0
        intents = output.get("intents") or []
        if not intents:
            return OUT_OF_SCOPE, 0.0
        best = max(intents, key=lambda intent: intent.get("confidence", 0.0))
        name = self._intent_names.get(best["intent"], best["intent"])
        return name, float(best.get("confidence", 0.0))


def assistant_answer(generic: Sequence[Mapping[str, Any]]) -> AssistantAnswer:
    """Watson's response items as text first: texts, option and suggestion titles with
    their choices, images as their title and link; a pause or unknown type adds nothing.
    Response types: https://cloud.ibm.com/apidocs/assistant-v2#message (RuntimeResponseGeneric).
    """
    texts: list[str] = []
    choices: list[AnswerChoice] = []
    to_agent = False
    for item in generic:
        kind = item.get("response_type")
        if kind == "text":
            texts.append(_clean(item.get("text")))
        elif kind in ("option", "suggestion"):
            texts += [_clean(item.get("title")), _clean(item.get("description"))]
            for offered in item.get("options") or item.get("suggestions") or []:
                choices.append(_choice(offered))
        elif kind == "image":
            texts.append(" ".join(filter(None, [_clean(item.get("title")), item.get("source")])))
        elif kind == "connect_to_agent":
            to_agent = True
    return AssistantAnswer(
        tuple(t for t in texts if t), tuple(c for c in choices if c.label and c.text), to_agent
    )


def _choice(offered: Mapping[str, Any]) -> AnswerChoice:
    # Picking an option sends its value.input.text back to the assistant, as if typed.
    value = offered.get("value") or {}
    typed = (value.get("input") or {}).get("text") or offered.get("label")
    return AnswerChoice(_clean(offered.get("label")), _clean(typed))


def _clean(text: Any) -> str:
    return str(text).strip() if text else ""


def watson_text(text: str) -> str:
    """Text as Watson accepts it: no CR, LF or tab, at most ``MAX_TEXT`` characters."""
    return " ".join(text.split())[:MAX_TEXT].rstrip()


def _entity(raw: Mapping[str, Any]) -> Entity:
    location = raw.get("location") or [None, None]
    return Entity(str(raw["entity"]), str(raw.get("value", "")), location[0], location[1])
