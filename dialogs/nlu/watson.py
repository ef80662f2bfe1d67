"""Watson Assistant v2 as an NLU. The only module that imports ibm_watson.

Credentials and URL come the IBM SDK way from the environment (service name
``assistant``: ``ASSISTANT_URL``, ``ASSISTANT_APIKEY``, ``ASSISTANT_AUTH_TYPE``, ...); our
settings give the assistant id, environment id and API version date.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ibm_cloud_sdk_core import get_authenticator_from_environment
from ibm_watson import AssistantV2

from dialogs.nlu.base import OUT_OF_SCOPE, Entity, Parse
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
    ) -> None:
        if not assistant_id or not environment_id:
            raise ValueError("Watson needs both an assistant id and an environment id")
        self._client = client
        self.assistant_id = assistant_id
        self.environment_id = environment_id
        # Skills often name intents differently ("hello" vs our "greet"): map them here.
        self._intent_names = dict(intent_names or {})

    @classmethod
    def from_environment(
        cls,
        *,
        assistant_id: str,
        environment_id: str,
        version: str = DEFAULT_VERSION,
        timeout: float | None = 2.0,
        intent_names: Mapping[str, str] | None = None,
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
        """Map a message response: top intent, Watson's entities plus our regex ones, and
        the text responses joined as the answer."""
        output = result.get("output") or {}
        intents = output.get("intents") or []
        if intents:
            best = max(intents, key=lambda intent: intent.get("confidence", 0.0))
            name = self._intent_names.get(best["intent"], best["intent"])
            confidence = float(best.get("confidence", 0.0))
        else:
            name, confidence = OUT_OF_SCOPE, 0.0
        entities = [_entity(entity) for entity in output.get("entities") or []]
        known = {(entity.name, entity.value) for entity in entities}
        entities += [e for e in extract_entities(text) if (e.name, e.value) not in known]
        texts = [
            str(item["text"]).strip()
            for item in output.get("generic") or []
            if item.get("response_type") == "text" and str(item.get("text", "")).strip()
        ]
        return Parse(
            intent=name,
            confidence=confidence,
            entities=tuple(entities),
            source="watson",
            answer="\n".join(texts) or None,
        )


def watson_text(text: str) -> str:
    """Text as Watson accepts it: no CR, LF or tab, at most ``MAX_TEXT`` characters."""
    return " ".join(text.split())[:MAX_TEXT].rstrip()


def _entity(raw: Mapping[str, Any]) -> Entity:
    location = raw.get("location") or [None, None]
    return Entity(str(raw["entity"]), str(raw.get("value", "")), location[0], location[1])
