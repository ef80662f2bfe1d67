"""One way to store a reply (the inbox's answered replies, the engine's remembered answers),
read back as it was, rows written before included."""

from __future__ import annotations

from dialogs.turn import Choice, Reply


def test_a_reply_round_trips_with_and_without_choices() -> None:
    asked = Reply("Which area?", (Choice("Billing", "billing"), Choice("Other", "other")))
    plain = Reply("Thanks!")
    assert asked.to_json() == {
        "text": "Which area?",
        "choices": [["Billing", "billing"], ["Other", "other"]],
    }
    assert plain.to_json() == {"text": "Thanks!"}
    assert [Reply.from_json(r.to_json()) for r in (asked, plain)] == [asked, plain]


def test_rows_written_before_are_read() -> None:
    # The engine stored "choices": [] for a plain reply; the inbox left it out.
    assert Reply.from_json({"text": "Hi", "choices": []}) == Reply("Hi")
    assert Reply.from_json({"text": "Hi"}) == Reply("Hi")
