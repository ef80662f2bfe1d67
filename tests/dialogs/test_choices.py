"""The rating buttons' contract, written by the relay's notice and read by the policy."""

from __future__ import annotations

import pytest

from bots.notices import rating_choices
from dialogs.decisions import rate_choice, read_rate_choice


def test_the_notices_buttons_read_back_as_their_ticket_and_score() -> None:
    values = [choice.value for choice in rating_choices("CL-7")]
    assert [read_rate_choice(value) for value in values] == [("CL-7", n) for n in range(1, 6)]
    assert all(len(value.encode()) <= 64 for value in values)  # Telegram's callback_data


@pytest.mark.parametrize(
    ("value", "read"),
    [
        (rate_choice(12), ("12", None)),
        ("rate:CL-7:9", ("CL-7", None)),
        ("rate:CL-7:4:more", ("CL-7", None)),
        ("rate:", (None, None)),
    ],
)
def test_a_value_without_a_known_score_asks_for_one(
    value: str, read: tuple[str | None, int | None]
) -> None:
    assert read_rate_choice(value) == read
