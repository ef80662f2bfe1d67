from __future__ import annotations

from pathlib import Path

import pytest

from dialogs.data import INTENTS_FILE
from dialogs.nlu import LocalNLU
from tests.fakes.prism import CONTRACTS, prism_fixture

SMALL_INTENTS = """\
intents:
  greet: [hi, hello, hey there, good morning, hello bot]
  faq_opening_hours: [when are you open, opening hours, what time do you close,
                      are you open on sunday, business hours]
  complain: [I want to complain, something is broken, open a ticket,
             my order arrived damaged, report a problem]
"""


#: Prism serving Watson Assistant v2's published spec (one process for the whole run).
watson_mock = prism_fixture(CONTRACTS / "watson_assistant_v2.json")


@pytest.fixture(scope="session")
def support_nlu() -> LocalNLU:
    """The local classifier on the shipped support intents (trained once per run)."""
    return LocalNLU.from_file(INTENTS_FILE)


@pytest.fixture
def small_intents_file(tmp_path: Path) -> Path:
    path = tmp_path / "intents.yaml"
    path.write_text(SMALL_INTENTS, encoding="utf-8")
    return path
