"""Five languages, complete: every text in every language with its plural forms and the
same placeholders; the customer's language detected from what they write (never wrongly on
the short messages of tests/dialogs/data), remembered, and switched with /language."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import yaml
from babel import Locale

from core.db.database import Database
from core.model import Channel
from dialogs.catalogue import load_catalogue
from dialogs.engine import DialogEngine
from dialogs.language import SURE, detect
from tests.dialogs.conftest import Press, Send, verify_dialog

SHIPPED = ("de", "en", "es", "fr", "pt")
#: Texts that read the same in a language as in English, on purpose.
SAME_AS_ENGLISH = {
    "faq.answer",  # the answer itself
    "status.line",  # reference · subject · status
    "rate.score_2",
    "rate.score_3",
    "rate.score_4",
    "ticket.bot",  # our name
    "common.no",  # es: No
    "priority.normal",  # es, de, pt: Normal
    "data.export_tickets",  # Tickets ({n}):
    "activity.status_changed",  # de, pt: Status: {new}
    "ticket.agent",  # fr: Agent
    "notice.agent_reply_chat.text",  # {agent}: {body}
    "notice.rating.5",  # fr: Excellent
    "notice.ticket",  # Ticket
    "notice.status",  # de, pt: Status
    "notice.agent",  # fr: Agent
    "notice.where.slack",  # de: in Slack
    "webchat.conversation",  # fr: Conversation
    "webchat.agent",  # fr: Agent
}
SHORT = yaml.safe_load((Path(__file__).parent / "data" / "short_messages.yaml").read_text())


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def texts(value: object) -> list[str]:
    return list(value.values()) if isinstance(value, dict) else [str(value)]


def test_the_shipped_languages_are_the_five() -> None:
    assert load_catalogue(strict=True).languages == SHIPPED


@pytest.mark.parametrize("language", [code for code in SHIPPED if code != "en"])
def test_every_text_is_translated_with_its_plural_forms_and_placeholders(language: str) -> None:
    catalogue = load_catalogue(strict=True)
    english, translated = catalogue._languages["en"], catalogue._languages[language]
    assert set(translated) == set(english), "the same keys as English, no more, no less"
    needed = set(Locale.parse(language).plural_form.tags) | {"other"}
    for key, text in english.items():
        ours = translated[key]
        assert isinstance(ours, dict) == isinstance(text, dict), key
        if isinstance(ours, dict):
            assert needed <= set(ours), f"{language} {key}: plural forms {needed - set(ours)}"
        wanted = set().union(*(placeholders(t) for t in texts(text)))
        for form in texts(ours):
            assert placeholders(form) == wanted, f"{language} {key}: {form!r}"
        if ours == text:
            assert key in SAME_AS_ENGLISH, f"{language} {key} is still in English"


def test_plurals_agree_in_every_language() -> None:
    catalogue = load_catalogue(strict=True)
    assert catalogue.text("duration.hours", "es", n=1) == "1 hora"
    assert catalogue.text("duration.hours", "es", n=3) == "3 horas"
    assert catalogue.text("duration.days", "de", n=1) == "1 Tag"
    assert catalogue.text("duration.days", "de", n=2) == "2 Tage"
    assert catalogue.text("duration.minutes", "fr", n=0) == "0 minute"  # French: 0 is singular
    assert catalogue.text("email.code_wrong", "pt", n=1).startswith("O código não confere (resta 1")
    assert catalogue.text("duration.minutes", "pt", n=1_000_000) == "1.000.000 de minutos"


def test_detection_never_switches_wrongly_on_short_messages() -> None:
    """The figure: decided and right, decided and wrong, left to the remembered language."""
    right = wrong = unsure = 0
    for language, messages in SHORT.items():
        for message in messages:
            found = detect(message, SHIPPED)
            if found is None or found.confidence < SURE:
                unsure += 1
            elif found.language == language:
                right += 1
            else:
                wrong += 1
    total = right + wrong + unsure
    print(f"short messages: {right} right, {wrong} wrong, {unsure} unsure of {total}")
    assert wrong == 0
    assert right >= 0.8 * total


async def test_a_customer_writing_spanish_is_answered_in_spanish_from_then_on(
    engine: DialogEngine,
) -> None:
    await verify_dialog(
        engine,
        [
            (Send("hi", language="en"), "Hi Ada!"),
            ("Hola, me cobraron dos veces en la tarjeta", "Lo siento"),
            ("/status", "Todavía no tiene tickets."),  # too short to tell: remembered
            ("/new", "Describa el problema"),
            ("Me cobraron dos veces el mes pasado", "¿De qué área se trata?"),
            ("1", ["¿Cuánta urgencia tiene?", "Urgente"]),  # the first area, by number
            ("Normal", ["correo electrónico", "Omitir"]),  # a label, as typed
            (Press("skip"), ["Este es su ticket", "Área: Facturación", "¿Lo abro?"]),
            (Press("confirm"), ["Su ticket CR-1001 está abierto", "normalmente en menos de"]),
        ],
    )


async def test_a_chosen_language_wins_over_what_the_customer_writes(
    engine: DialogEngine,
) -> None:
    customer = await verify_dialog(
        engine,
        [
            (Send("/help", language="es-ES"), ["Puedo responder", "/language"]),
            ("/language", "¿En qué idioma prefiere"),
            (Press("lang:de", "Deutsch"), "Ab jetzt schreibe ich Ihnen auf Deutsch."),
            ("Hola, me cobraron dos veces en la tarjeta", "Entschuldigung"),
        ],
    )
    labels = [c.label for c in customer.last[0].choices]
    assert labels == ["Problem melden", "Meine Tickets", "Mit einem Menschen sprechen",
                      "Meine Daten"]  # fmt: skip


async def test_the_language_menu_names_each_language_in_itself(engine: DialogEngine) -> None:
    customer = await verify_dialog(engine, [("/language", "Which language")])
    assert [c.label for c in customer.last[0].choices] == [
        "Deutsch", "English", "Español", "Français", "Português"
    ]  # fmt: skip
    assert [c.value for c in customer.last[0].choices] == [f"lang:{c}" for c in SHIPPED]


async def test_the_remembered_language_is_the_customers_for_notices(
    db: Database, engine: DialogEngine
) -> None:
    await verify_dialog(engine, [("Bonjour, on m'a débité deux fois ce mois-ci", "Désolé")])
    async with db.uow() as uow:
        customer = await uow.customers.get(1)
    assert customer is not None and (customer.language, customer.language_chosen) == ("fr", False)
    assert Channel.TELEGRAM  # the transcript's channel: the notices follow the customer
