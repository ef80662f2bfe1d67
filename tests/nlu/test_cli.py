from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from bots.cli_nlu import nlu_app
from dialogs.nlu import LocalNLU

runner = CliRunner()

TEST_CSV = """text,category
hello there,greet
hiya,greet
when do you close today,faq_opening_hours
my delivery came broken,complain
what is the meaning of life,oos
sing me a song,oos
"""


def test_train_saves_a_model_that_loads(small_intents_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.joblib"

    result = runner.invoke(nlu_app, ["train", str(small_intents_file), "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert "3 intents" in result.output
    assert LocalNLU.load(out).classify("hello").intent == "greet"


def test_train_from_a_watson_skill(tmp_path: Path) -> None:
    skill = tmp_path / "skill.json"
    skill.write_text(
        json.dumps(
            {
                "intents": [
                    {"intent": "hello", "examples": [{"text": "hi"}, {"text": "hello"}]},
                    {"intent": "bye", "examples": [{"text": "bye"}, {"text": "see you"}]},
                ]
            }
        )
    )
    out = tmp_path / "skill.joblib"

    result = runner.invoke(nlu_app, ["train", "--watson-skill", str(skill), "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert set(LocalNLU.load(out).intents) == {"hello", "bye"}


def test_eval_prints_accuracy_macro_f1_report_and_oos_recall(
    small_intents_file: Path, tmp_path: Path
) -> None:
    test = tmp_path / "test.csv"
    test.write_text(TEST_CSV, encoding="utf-8")

    result = runner.invoke(
        nlu_app,
        ["eval", "--train", str(small_intents_file), "--test", str(test), "--threshold", "0.5"],
    )

    assert result.exit_code == 0, result.output
    assert "test examples: 6" in result.output
    assert "accuracy:" in result.output and "(out of scope below 0.5)" in result.output
    assert "top-intent accuracy:" in result.output  # the benchmark's figure, no threshold
    assert "macro-F1:" in result.output
    assert "out-of-scope recall:" in result.output
    assert "(threshold only: no out-of-scope examples in training)" in result.output
    assert "faq_opening_hours" in result.output  # the per-intent table


def test_eval_reports_oos_recall_with_a_trained_class_and_with_the_threshold_alone(
    tmp_path: Path,
) -> None:
    """A deployment has no examples of what customers ask off-topic: the second figure is
    the one it gets."""
    rows = ["text,category"]
    for text in ("hello there", "hi", "good morning", "hey", "hello again", "hiya friend"):
        rows.append(f"{text},greet")
    for text in ("when do you open", "opening hours please", "are you open today",
                 "what time do you close", "hours on saturday", "when are you open"):  # fmt: skip
        rows.append(f"{text},faq_opening_hours")
    for text in ("sing me a song", "what is the capital of peru", "tell me a joke",
                 "who won the match", "what is the meaning of life", "recite a poem"):  # fmt: skip
        rows.append(f"{text},oos")
    train = tmp_path / "train.csv"
    train.write_text("\n".join(rows) + "\n", encoding="utf-8")
    test = tmp_path / "test.csv"
    test.write_text(TEST_CSV, encoding="utf-8")

    result = runner.invoke(nlu_app, ["eval", "--train", str(train), "--test", str(test)])

    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "out-of-scope recall" in line]
    assert len(lines) == 2, result.output
    assert lines[0].endswith("(a trained out-of-scope class)")
    assert lines[1].endswith("(threshold only: trained without the out-of-scope examples)")


def test_eval_refuses_an_unknown_backend(small_intents_file: Path) -> None:
    data = str(small_intents_file)

    result = runner.invoke(nlu_app, ["eval", "--train", data, "--test", data, "--backend", "magic"])

    assert result.exit_code != 0
    assert "backend" in result.output.lower()


def test_train_without_data_explains_what_is_missing() -> None:
    result = runner.invoke(nlu_app, ["train"])

    assert result.exit_code != 0
    assert "watson-skill" in result.output
