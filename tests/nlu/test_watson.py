"""WatsonNLU with the real ibm-watson SDK against Prism serving Watson Assistant v2's spec."""

from __future__ import annotations

import pytest
from ibm_cloud_sdk_core import ApiException
from ibm_cloud_sdk_core.authenticators import BearerTokenAuthenticator
from ibm_watson import AssistantV2

from dialogs.nlu import OUT_OF_SCOPE
from dialogs.nlu.watson import MAX_TEXT, WatsonNLU

ASSISTANT = "a1b2c3"
ENVIRONMENT = "e4f5"
VERSION = "2024-08-25"


def assistant_client(base_url: str) -> AssistantV2:
    client = AssistantV2(version=VERSION, authenticator=BearerTokenAuthenticator("test-token"))
    client.set_service_url(base_url)
    return client


@pytest.fixture
def watson(watson_mock: str) -> WatsonNLU:
    return WatsonNLU(
        assistant_client(watson_mock),
        assistant_id=ASSISTANT,
        environment_id=ENVIRONMENT,
        intent_names={"hello": "greet"},
    )


async def test_maps_watson_intent_confidence_and_text_answer(watson: WatsonNLU) -> None:
    parse = await watson.parse("Hello")

    # Prism answers with the spec's example: intent "hello" at 0.928 and a text response.
    assert parse.intent == "greet"
    assert parse.confidence == pytest.approx(0.9281370162963867)
    assert parse.answer == "Hello! What can I do for you?"
    assert parse.source == "watson"


async def test_adds_local_entities_to_watson_ones(watson: WatsonNLU) -> None:
    parse = await watson.parse("hello, about CR-1042")

    assert ("ticket_ref", "CR-1042") in {(e.name, e.value) for e in parse.entities}


def test_the_contract_rejects_text_over_2048_characters(watson_mock: str) -> None:
    client = assistant_client(watson_mock)

    with pytest.raises(ApiException) as rejected:
        client.message_stateless(
            ASSISTANT, ENVIRONMENT, input={"message_type": "text", "text": "a" * (MAX_TEXT + 1)}
        )

    assert rejected.value.code in {400, 422}


async def test_long_and_multiline_text_is_cut_to_what_watson_accepts(watson: WatsonNLU) -> None:
    parse = await watson.parse("my card was stolen\n\tplease help " * 200)

    assert parse.source == "watson"
    assert parse.intent == "greet"


async def test_empty_text_is_out_of_scope_without_a_call(watson: WatsonNLU) -> None:
    parse = await watson.parse(" \n ")

    assert parse.intent == OUT_OF_SCOPE


async def test_is_configured_from_the_ibm_environment_variables(
    watson_mock: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSISTANT_URL", watson_mock)
    monkeypatch.setenv("ASSISTANT_AUTH_TYPE", "bearerToken")
    monkeypatch.setenv("ASSISTANT_BEARER_TOKEN", "from-env")

    nlu = WatsonNLU.from_environment(assistant_id=ASSISTANT, environment_id=ENVIRONMENT)
    parse = await nlu.parse("hi")

    assert parse.intent == "hello"  # no name mapping given
    assert parse.answer


def test_needs_assistant_and_environment_ids(watson_mock: str) -> None:
    with pytest.raises(ValueError, match="environment id"):
        WatsonNLU(assistant_client(watson_mock), assistant_id=ASSISTANT, environment_id="")
