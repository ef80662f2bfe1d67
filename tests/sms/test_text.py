"""SMS segments: GSM-7 against UCS-2, splitting between words, the cap per reply."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bots.sms.text import SEGMENTS_PER_TEXT, gsm_friendly, is_gsm, render, segments, split_text
from dialogs.turn import Choice, Reply


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),  # concatenated: 153 a segment
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # an extended character takes two septets
        ("€" * 81, 2),
        ("é" * 160, 1),  # in the GSM alphabet
        ("á" * 70, 1),  # not in it: UCS-2
        ("á" * 71, 2),
        ("🙂" * 35, 1),  # two UTF-16 units each
        ("🙂" * 36, 2),
    ],
)
def test_segments_follow_the_encoding(text: str, expected: int) -> None:
    assert segments(text) == expected


def test_typographic_punctuation_keeps_a_text_in_gsm() -> None:
    text = "It’s “done” — see you… soon"
    assert not is_gsm(text)
    assert gsm_friendly(text) == 'It\'s "done" - see you... soon'
    assert is_gsm(gsm_friendly(text))


def test_choices_become_numbered_lines() -> None:
    reply = Reply("How did we do?", (Choice("Great", "rate:CR-1:5"), Choice("Bad", "rate:CR-1:1")))
    assert render(reply) == "How did we do?\n\n1. Great\n2. Bad"


def test_a_long_reply_is_cut_between_words() -> None:
    words = " ".join(f"word{n}" for n in range(400))
    texts = split_text(words, max_segments=40)
    assert len(texts) > 1
    assert " ".join(texts).split() == words.split()  # nothing lost, no word cut in two
    assert all(segments(t) <= SEGMENTS_PER_TEXT for t in texts)


def test_a_reply_over_the_cap_ends_with_an_ellipsis() -> None:
    texts = split_text("lorem ipsum " * 300, max_segments=5)
    assert sum(segments(t) for t in texts) <= 5
    assert texts[-1].endswith("...")


def test_unicode_replies_are_split_by_ucs2_sizes() -> None:
    texts = split_text("Olá, está tudo bem? " * 40, max_segments=12)
    assert all(segments(t) <= SEGMENTS_PER_TEXT for t in texts)
    assert all(len(t) <= 67 * SEGMENTS_PER_TEXT for t in texts)


@given(st.text(min_size=1, max_size=3000), st.integers(min_value=1, max_value=12))
def test_no_split_exceeds_the_cap(text: str, cap: int) -> None:
    texts = split_text(text, max_segments=cap)
    assert sum(segments(t) for t in texts) <= cap
