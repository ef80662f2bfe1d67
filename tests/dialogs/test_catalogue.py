"""Every text key the engine uses exists in English; other languages fall back to it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.lifecycle import Status
from core.model import Priority
from dialogs.catalogue import Catalogue, MissingText, load_catalogue
from dialogs.config import DEFAULT_CATEGORIES

SOURCES = ["dialogs/policy/*.py", "dialogs/engine.py", "dialogs/views.py"]
LITERAL_KEY = re.compile(
    r'(?:Say|Phrase|Option|text)\(\s*"([a-z_]+(?:\.[a-z_0-9]+)*)"'
    r'|(?:key=|, )"([a-z_]+\.[a-z_0-9]+)"'
)


def used_keys() -> set[str]:
    root = Path(__file__).resolve().parents[2]
    keys: set[str] = set()
    files = [path for pattern in SOURCES for path in sorted(root.glob(pattern))]
    assert len(files) > 3
    for source in files:
        for match in LITERAL_KEY.finditer(source.read_text(encoding="utf-8")):
            key = match.group(1) or match.group(2)
            if "." in key or key in {"greet", "help", "goodbye", "thanks"}:
                keys.add(key)
    return keys


def test_every_literal_key_in_the_engine_exists_in_english() -> None:
    catalogue = load_catalogue()
    keys = used_keys()
    assert len(keys) > 60  # the scan found the keys, it did not silently match nothing
    missing = sorted(
        k for k in keys if not catalogue.has(k) and not k.startswith(("dialogs.", "core."))
    )
    assert missing == []


def test_every_computed_key_exists_in_english() -> None:
    catalogue = load_catalogue()
    computed = [f"status.{s.value}" for s in Status]
    computed += [f"priority.{p.value}" for p in Priority]
    computed += [f"rate.score_{n}" for n in range(1, 6)]
    computed += [f"category.{c}" for c in DEFAULT_CATEGORIES]
    computed += [
        f"activity.{k}" for k in ("status_changed", "assigned", "rated", "human_requested")
    ]
    assert [k for k in computed if not catalogue.has(k)] == []


def test_missing_translation_falls_back_to_english_and_placeholders_fill() -> None:
    catalogue = Catalogue(
        {"en": {"greet": "Hi {name}", "bye": "Bye"}, "de": {"greet": "Hallo {name}"}}
    )
    assert catalogue.text("greet", "de-CH", name="Ada") == "Hallo Ada"
    assert catalogue.text("bye", "de") == "Bye"
    assert catalogue.text("greet", "pt", name="Ada") == "Hi Ada"
    assert catalogue.text("greet", "en") == "Hi {name}"  # unfilled placeholders stay visible


def test_strict_catalogue_raises_on_an_unknown_key_and_lenient_shows_the_key() -> None:
    with pytest.raises(MissingText):
        Catalogue({"en": {}}, strict=True).text("nope.nothing")
    assert Catalogue({"en": {}}).text("nope.nothing") == "nope.nothing"


def test_shipped_english_placeholders_are_well_formed() -> None:
    catalogue = load_catalogue()
    for key in sorted(catalogue.keys()):
        text = catalogue.text(key)
        assert text.count("{") == text.count("}"), key


@pytest.mark.parametrize(
    ("minutes", "text"),
    [(1, "1 minute"), (5, "5 minutes"), (60, "1 hour"), (180, "3 hours"), (48 * 60, "2 days")],
)
def test_durations_use_the_plural_the_number_needs(minutes: int, text: str) -> None:
    from datetime import timedelta

    from dialogs.views import Renderer

    assert Renderer(load_catalogue(strict=True), "en").duration(timedelta(minutes=minutes)) == text


def test_plural_forms_follow_each_languages_rule_and_number_format() -> None:
    catalogue = Catalogue(
        {
            "en": {"left": {"one": "{n} try left", "other": "{n} tries left"}},
            "fr": {"left": {"one": "{n} essai restant", "other": "{n} essais restants"}},
            "pl": {"left": {"one": "{n} próba", "few": "{n} próby", "many": "{n} prób",
                            "other": "{n} próby"}},
        }
    )  # fmt: skip
    assert catalogue.text("left", "en", n=1) == "1 try left"
    assert catalogue.text("left", "en", n=0) == "0 tries left"
    assert catalogue.text("left", "en", n=1000) == "1,000 tries left"
    assert catalogue.text("left", "fr", n=0) == "0 essai restant"  # French: 0 is singular
    assert catalogue.text("left", "pl", n=3) == "3 próby"
    assert catalogue.text("left", "pl", n=5) == "5 prób"
    assert catalogue.text("left", "de", n=2) == "2 tries left"  # falls back to English


def test_help_reads_as_sentences_with_the_commands_on_their_own_line() -> None:
    text = load_catalogue(strict=True).text("help", "en", commands="/start /help")
    first, commands = text.split("\n")
    assert first.startswith("I can answer") and first.endswith("/language switches.")
    assert commands == "Commands: /start /help"
