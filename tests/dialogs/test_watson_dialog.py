"""Transcripts with Watson: the engine built from settings the way `careline serve` builds it,
the real ibm-watson SDK, and a fake Watson running IBM's published bank customer-care sample
skill (tests/contracts/watson_samples/). Its intents are named the skill's way
(`Help-Connect_to_Agent`, `Billing-Dispute`), not Careline's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import Settings
from core.db.database import Database
from dialogs.engine import DialogEngine
from dialogs.factory import build_nlu
from tests.dialogs.conftest import Customer, Press, make_engine, only_ticket, verify_dialog
from tests.fakes.watson_api import FakeWatson

MAPPING = """\
intents:
  Help-Connect_to_Agent: human
  Billing-Dispute: complain
  Business_Information-Business_Hours: faq
"""


@pytest.fixture(scope="module")
def watson() -> Iterator[FakeWatson]:
    with FakeWatson() as fake:
        yield fake


@pytest.fixture
def engine(
    db: Database, watson: FakeWatson, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DialogEngine]:
    watson.reset()
    monkeypatch.setenv("ASSISTANT_URL", watson.url)
    monkeypatch.setenv("ASSISTANT_AUTH_TYPE", "bearerToken")
    monkeypatch.setenv("ASSISTANT_BEARER_TOKEN", "test-token")
    mapping = tmp_path / "watson-mapping.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=str(tmp_path),
        watson_assistant_id="bank-assistant",
        watson_environment_id="live",
        watson_mapping_file=str(mapping),
    )
    yield make_engine(db, build_nlu(settings))
    watson.assert_no_violations()
    assert not watson.internal_errors


def texts_watson_read(watson: FakeWatson) -> list[str]:
    return [call.params["text"] for call in watson.calls_to("message")]


async def test_an_unmapped_intent_gets_watsons_own_answer(engine: DialogEngine) -> None:
    await verify_dialog(
        engine,
        [
            (
                "Where is the credit card fee information?",  # Banking-Fee_Enquiry, unmapped
                "Some of our credit cards have associated fees and charges.",
            )
        ],
    )


async def test_watsons_options_are_buttons_that_send_their_text_back_to_watson(
    engine: DialogEngine, watson: FakeWatson
) -> None:
    customer = await verify_dialog(
        engine,
        [
            (
                "how can i make payments to my credit card",
                [
                    "I can help you with credit card payments.",
                    "One moment while I retrieve a list of accounts.",
                    "Please select which credit card account you'd like to pay.",
                    "1. Card # 5624",
                ],
            )
        ],
    )
    assert [c.label for c in customer.last[0].choices] == [
        "Card # 5624",
        "Card # 5893",
        "Card # 9225",
    ]

    await customer.say(Press(customer.last[0].choices[1].value))

    # The button's value.input.text, as IBM's web chat would send it.
    assert texts_watson_read(watson)[-1] == "5893"


async def test_typing_the_number_of_a_watson_option_sends_its_text(
    engine: DialogEngine, watson: FakeWatson
) -> None:
    customer = Customer(engine)
    await customer.say("how can i make payments to my credit card")

    await customer.say("3")

    # "3" itself was read first: the choices are known only once the conversation is loaded.
    assert texts_watson_read(watson)[-1] == "9225"


async def test_a_mapped_intent_puts_the_customer_through_to_a_person(
    engine: DialogEngine, db: Database
) -> None:
    await verify_dialog(engine, [("transfer me to a live agent", "number 1 in the queue")])

    assert await only_ticket(db)


async def test_a_mapped_intent_starts_a_complaint_with_the_customers_words(
    engine: DialogEngine,
) -> None:
    await verify_dialog(
        engine,
        [
            ("The line item on my bill is wrong", "Which area is it about?"),
            (Press("cat:billing"), "How urgent"),
        ],
    )


async def test_an_intent_mapped_to_faq_gives_watsons_answer_and_asks_if_it_helped(
    engine: DialogEngine,
) -> None:
    await verify_dialog(
        engine,
        [
            ("what time do you close", ["Our business hours differ", "Did that help?"]),
            ("no", "open a ticket"),
        ],
    )


async def test_no_intent_is_careline_not_understood_which_leads_to_a_person(
    engine: DialogEngine,
) -> None:
    # Not the skill's anything_else text: Careline counts misses and offers a person.
    await verify_dialog(
        engine,
        [
            ("qwerty zxcv", "Sorry, I didn't understand"),
            ("zxcv qwerty", "A person can surely help"),
        ],
    )


async def test_careline_commands_still_work_beside_watson(
    engine: DialogEngine, watson: FakeWatson
) -> None:
    await verify_dialog(engine, [("/status", "You have no tickets yet")])

    assert texts_watson_read(watson) == []
