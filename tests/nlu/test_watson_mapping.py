"""The Watson mapping: written from a skill export, checked when Careline starts."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bots.cli_nlu import nlu_app
from core.config import Settings
from dialogs.factory import build_nlu
from dialogs.watson_mapping import (
    WATSON_ANSWER,
    WatsonMappingError,
    load_watson_mapping,
    propose_mapping,
)
from tests.fakes.contracts import contracts_dir, load_contract
from tests.fakes.watson_api import SAMPLE_SKILL

BANK_SKILL = contracts_dir() / SAMPLE_SKILL


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "watson-mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_import_watson_maps_every_intent_of_the_bank_sample(tmp_path: Path) -> None:
    out = tmp_path / "mapping.yaml"

    result = CliRunner().invoke(nlu_app, ["import-watson", str(BANK_SKILL), "--out", str(out)])

    assert result.exit_code == 0, result.output
    mapping = load_watson_mapping(out)  # what it writes passes the start-up check
    assert len(mapping.intents) == 99
    assert mapping.intents["Help-Connect_to_Agent"] == "human"
    assert mapping.intents["Billing-Dispute"] == "complain"
    assert mapping.intents["General_Conversation-Greetings"] == "greet"
    # An agent's capabilities are no request for one; fees are the skill's to answer.
    assert mapping.intents["Help-Agent_Capabilities"] == WATSON_ANSWER
    assert mapping.intents["Banking-Fee_Enquiry"] == WATSON_ANSWER


def test_a_node_that_connects_to_an_agent_maps_its_intent_to_a_person() -> None:
    skill = copy.deepcopy(load_contract(SAMPLE_SKILL))
    node = next(n for n in skill["dialog_nodes"] if "#Banking-Report_Stolen_Card" in str(n))
    node["output"] = {"generic": [{"response_type": "connect_to_agent"}]}
    node["actions"] = [{"name": "block_card", "type": "client", "result_variable": "blocked"}]

    mapping = propose_mapping(skill)

    assert mapping.intents["Banking-Report_Stolen_Card"] == "human"
    assert mapping.actions == {"block_card": WATSON_ANSWER}


def test_an_unknown_target_stops_the_start_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, "intents:\n  Help-Connect_to_Agent: a_person\n")

    with pytest.raises(WatsonMappingError) as refused:
        load_watson_mapping(path)

    message = str(refused.value)
    assert "intent 'Help-Connect_to_Agent' -> 'a_person'" in message
    assert "human" in message and "complain" in message


def test_an_faq_key_the_faq_file_lacks_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "actions:\n  show_hours: faq_opening_hour\n")

    with pytest.raises(WatsonMappingError, match="FAQ file has no answer"):
        load_watson_mapping(path, faq_keys={"faq_opening_hours"})


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WatsonMappingError, match="only 'intents:' and 'actions:'"):
        load_watson_mapping(write(tmp_path, "Help-Connect_to_Agent: human\n"))


def test_careline_does_not_start_on_a_bad_mapping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSISTANT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ASSISTANT_AUTH_TYPE", "noauth")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=str(tmp_path),
        watson_assistant_id="a1",
        watson_environment_id="e1",
        watson_mapping_file=str(write(tmp_path, "intents:\n  Billing-Dispute: open_ticket\n")),
    )

    with pytest.raises(WatsonMappingError, match="'Billing-Dispute' -> 'open_ticket'"):
        build_nlu(settings)
