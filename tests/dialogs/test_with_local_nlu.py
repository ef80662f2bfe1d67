"""A few transcripts with the real local classifier on the shipped intents and FAQ file."""

from __future__ import annotations

import pytest

from core.db.database import Database
from dialogs.data import INTENTS_FILE
from dialogs.engine import DialogEngine
from dialogs.nlu import LocalNLU
from tests.dialogs.conftest import CONFIG, make_engine, verify_dialog


@pytest.fixture(scope="session")
def local_nlu() -> LocalNLU:
    return LocalNLU.from_file(INTENTS_FILE, threshold=CONFIG.min_confidence)


@pytest.fixture
def real_engine(sqlite_db: Database, local_nlu: LocalNLU) -> DialogEngine:
    return make_engine(sqlite_db, local_nlu)


async def test_greeting_and_faq_with_the_local_classifier(real_engine: DialogEngine) -> None:
    await verify_dialog(
        real_engine,
        [
            ("hello", "Hi Ada"),
            ("what are your opening hours?", ["Monday to Friday", "Did that help?"]),
            ("yes", "Glad"),
        ],
    )


async def test_complaint_and_person_with_the_local_classifier(real_engine: DialogEngine) -> None:
    await verify_dialog(
        real_engine,
        [
            ("I want to make a complaint", "describe the problem"),
            ("The parcel arrived damaged and wet", "which area"),
            ("other", "how urgent"),
            ("normal", "email"),
            ("skip", "open it"),
            ("yes", "CR-1001"),
            ("I want to talk to a human", "Added to CR-1001"),  # with a human: goes to the ticket
            ("/human", "number 1 in the queue"),
        ],
    )


async def test_gibberish_is_out_of_scope_with_the_local_classifier(
    real_engine: DialogEngine,
) -> None:
    await verify_dialog(real_engine, [("qwxz vbnm plokij", "didn't understand")])
