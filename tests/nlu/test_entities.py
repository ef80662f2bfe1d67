from __future__ import annotations

from dialogs.nlu import Entity, LocalNLU, extract_entities


def test_finds_email_ticket_reference_and_priority_with_spans() -> None:
    text = "Urgent: about cr-1042, write to jo.doe+care@example.co.uk please"

    entities = extract_entities(text)

    assert entities == (
        Entity("priority", "urgent", 0, 6),
        Entity("ticket_ref", "CR-1042", 14, 21),
        Entity("email", "jo.doe+care@example.co.uk", 32, 57),
    )
    assert text[32:57] == "jo.doe+care@example.co.uk"


def test_normalises_ticket_references() -> None:
    refs = [e.value for e in extract_entities("CR 7, CR-8 and cr9") if e.name == "ticket_ref"]

    assert refs == ["CR-7", "CR-8", "CR-9"]


def test_plain_text_has_no_entities() -> None:
    assert extract_entities("my internet keeps dropping in the evening") == ()


def test_local_parse_carries_entities(support_nlu: LocalNLU) -> None:
    parse = support_nlu.classify("status of CR-77 please, it's urgent")

    assert parse.intent == "ticket_status"
    assert {(e.name, e.value) for e in parse.entities} == {
        ("ticket_ref", "CR-77"),
        ("priority", "urgent"),
    }
