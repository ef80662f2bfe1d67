"""Watson's own answers and the mapping, with the real ibm-watson SDK against the fake Watson
running IBM's published bank customer-care sample skill (tests/contracts/watson_samples/)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from ibm_cloud_sdk_core import ApiException

from dialogs.nlu import OUT_OF_SCOPE
from dialogs.nlu.base import AnswerChoice
from dialogs.nlu.watson import WatsonNLU, assistant_answer
from tests.fakes.contracts import load_contract
from tests.fakes.watson_api import SAMPLE_SKILL, FakeWatson
from tests.nlu.test_watson import ASSISTANT, ENVIRONMENT, assistant_client


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeWatson]:
    with FakeWatson() as server:
        yield server


@pytest.fixture
def bank(fake: FakeWatson) -> Iterator[FakeWatson]:
    fake.reset()
    yield fake
    fake.assert_no_violations()
    assert not fake.internal_errors


def watson_on(fake: FakeWatson, **names: Any) -> WatsonNLU:
    return WatsonNLU(
        assistant_client(fake.url), assistant_id=ASSISTANT, environment_id=ENVIRONMENT, **names
    )


async def test_an_intent_named_the_skills_way_keeps_its_name_and_watsons_answer(
    bank: FakeWatson,
) -> None:
    parse = await watson_on(bank).parse("Where is the credit card fee information?")

    assert parse.intent == "Banking-Fee_Enquiry"
    assert parse.confidence == pytest.approx(1.0)
    assert parse.assistant is not None
    assert parse.assistant.texts[0].startswith("Some of our credit cards have associated fees")


async def test_watsons_options_become_choices_that_send_their_input_text(
    bank: FakeWatson,
) -> None:
    parse = await watson_on(bank).parse("how can i make payments to my credit card")

    assert parse.assistant is not None
    assert parse.assistant.texts == (
        "I can help you with credit card payments.",
        "One moment while I retrieve a list of accounts.",
        "Please select which credit card account you'd like to pay.",
    )
    assert parse.assistant.choices[0] == AnswerChoice("Card # 5624", "5624")
    assert len(parse.assistant.choices) == 3


async def test_a_mapped_intent_becomes_its_careline_target(bank: FakeWatson) -> None:
    watson = watson_on(bank, intent_names={"Help-Connect_to_Agent": "human"})

    parse = await watson.parse("transfer me to a live agent")

    assert parse.intent == "human"
    assert parse.answer == "Our Customer Service agents would be happy to help you."


async def test_a_mapped_client_action_wins_over_the_intent() -> None:
    skill = copy.deepcopy(load_contract(SAMPLE_SKILL))
    node = next(n for n in skill["dialog_nodes"] if "#Billing-Dispute" in str(n.get("conditions")))
    node["actions"] = [{"name": "raise_case", "type": "client", "result_variable": "case"}]
    with FakeWatson(skill=skill) as fake:
        watson = watson_on(fake, action_names={"raise_case": "complain"})

        parse = await watson.parse("The line item on my bill is wrong")

    assert (parse.intent, parse.confidence) == ("complain", 1.0)


async def test_input_no_intent_matches_is_out_of_scope_with_the_skills_fallback_text(
    bank: FakeWatson,
) -> None:
    parse = await watson_on(bank).parse("qwerty zxcv")

    assert parse.intent == OUT_OF_SCOPE
    assert parse.answer is not None and parse.answer.startswith("I'm not sure what you mean.")


def test_the_fake_refuses_what_watson_refuses(bank: FakeWatson) -> None:
    client = assistant_client(bank.url)

    with pytest.raises(ApiException):
        client.message_stateless(ASSISTANT, ENVIRONMENT, input={"text": 42})

    assert bank.violations
    bank.reset()


def test_suggestions_images_and_a_transfer_to_an_agent_read_as_text_first() -> None:
    # Runtime shapes from the v2 API definition (RuntimeResponseGeneric).
    answer = assistant_answer(
        [
            {"response_type": "image", "source": "https://example.com/map.png", "title": "Map"},
            {
                "response_type": "suggestion",
                "title": "Did you mean:",
                "suggestions": [
                    {"label": "Lost card", "value": {"input": {"text": "I lost my card"}}},
                ],
            },
            {"response_type": "pause", "time": 500},
            {"response_type": "connect_to_agent", "message_to_human_agent": "card lost"},
        ]
    )

    assert answer.texts == ("Map https://example.com/map.png", "Did you mean:")
    assert answer.choices == (AnswerChoice("Lost card", "I lost my card"),)
    assert answer.to_agent
