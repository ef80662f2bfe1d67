"""A notice's subject and text in the reader's language, and its email rendered from the
Jinja2 templates in bots/templates/email (HTML and plain text, with the ticket and its
timeline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from bots.notices.facts import Facts
from core.model import Customer
from dialogs.catalogue import Catalogue
from dialogs.decisions import SCORES

TEMPLATES = Path(__file__).parent.parent / "templates"


class NoticeWriter:
    """Words and emails of the notices, from the catalogue's `notice.*`."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.templates = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html.j2"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, name: str, context: dict[str, Any]) -> str:
        return self.templates.get_template(f"email/{name}").render(context)

    def context(
        self,
        facts: Facts,
        subject: str,
        text: str,
        customer: Customer | None,
        *,
        rating: bool = False,
        answerable: bool = False,
    ) -> dict[str, Any]:
        """`customer` None: the email goes to the assignee. `answerable`: a reply to the
        email reaches the ticket."""
        ticket = facts.ticket
        language = facts.language
        footer = (
            "assignee" if customer is None else "customer_replies" if answerable else "customer"
        )
        greeting = (
            self.greeting(customer)
            if customer
            else self.catalogue.text("notice.greeting", language, name=facts.agent or "")
        )
        where = facts.fields.get("where") or self.catalogue.text("notice.where.here", language)
        words = self.words(
            language, "ticket", "status", "priority", "agent", "timeline", "answer_with_number"
        )
        words["answer_with_number"] = words["answer_with_number"].replace("{where}", where)
        return {
            "subject": subject,
            "greeting": greeting,
            "text": text,
            # The chat's buttons carry their number ("4 - Very good"); an email numbers once.
            "ratings": (
                [(n, self.catalogue.text(f"notice.rating.{n}", language)) for n in SCORES]
                if rating
                else ()
            ),
            "where": where,
            "words": words,
            "language": self.catalogue.language_for(language),
            "agent": facts.agent,
            "ticket": {
                "reference": ticket.reference,
                "subject": ticket.subject,
                "status": self.catalogue.text(f"status.{ticket.status.value}", language),
                "priority": self.catalogue.text(f"priority.{ticket.priority.value}", language),
            },
            "timeline": facts.timeline,
            "footer": self.catalogue.text(f"notice.footer.{footer}", language, **facts.fields),
        }

    def fill(self, kind: str, facts: Facts) -> tuple[str, str]:
        """A notice's email subject and text in the reader's language."""
        language, fields = facts.language, facts.fields
        return (
            self.catalogue.text(f"notice.{kind}.subject", language, **fields),
            self.catalogue.text(f"notice.{kind}.text", language, **fields),
        )

    def greeting(self, customer: Customer) -> str:
        name = customer.display_name.strip()
        if name and name != "erased":
            return self.catalogue.text("notice.greeting", customer.language, name=name)
        return self.catalogue.text("notice.greeting_anonymous", customer.language)

    def words(self, language: str | None, *keys: str) -> dict[str, str]:
        """Texts of the email templates (placeholders left for the caller)."""
        return {key: self.catalogue.text(f"notice.{key}", language) for key in keys}
