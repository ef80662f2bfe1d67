from __future__ import annotations

import json
from pathlib import Path

import pytest

from dialogs.nlu import LocalNLU, import_watson_skill, load_examples
from dialogs.nlu.training import TrainingDataError

WORKSPACE = {
    "name": "Support skill",
    "language": "en",
    "intents": [
        {
            "intent": "General_Greetings",
            "examples": [{"text": t} for t in ["hello", "hi there", "good morning", "hey"]],
        },
        {
            "intent": "Store_Hours",
            "examples": [
                {"text": t}
                for t in [
                    "when are you open",
                    "opening hours",
                    "are you open on sunday",
                    "what time do you close",
                ]
            ],
        },
        {"intent": "Empty_Intent", "examples": []},
    ],
    "entities": [],
    "dialog_nodes": [],
}


def write_skill(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "skill-Support.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_imports_intents_and_examples_from_a_workspace_export(tmp_path: Path) -> None:
    examples = import_watson_skill(write_skill(tmp_path, WORKSPACE))

    assert len(examples) == 8
    assert {e.intent for e in examples} == {"General_Greetings", "Store_Hours"}
    assert ("are you open on sunday", "Store_Hours") in examples


def test_imports_the_newer_skill_wrapper_and_is_picked_by_extension(tmp_path: Path) -> None:
    path = write_skill(tmp_path, {"name": "skill", "workspace": WORKSPACE})

    nlu = LocalNLU.train(load_examples(path), threshold=0.0)

    assert nlu.classify("hello!").intent == "General_Greetings"
    assert nlu.classify("what are your opening hours").intent == "Store_Hours"


def test_a_json_file_that_is_no_skill_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="intents"):
        import_watson_skill(write_skill(tmp_path, {"dialog_nodes": []}))
