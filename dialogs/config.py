"""The dialog engine's settings as one plain value (built from `Settings` at start-up)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from core.model import Priority
from core.policy import SlaPolicy

DEFAULT_CATEGORIES = ("billing", "technical", "account", "delivery", "other")


@dataclass(frozen=True, slots=True)
class DialogConfig:
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    priorities: tuple[Priority, ...] = (
        Priority.LOW,
        Priority.NORMAL,
        Priority.HIGH,
        Priority.URGENT,
    )
    sla: SlaPolicy = field(default_factory=SlaPolicy)
    #: An NLU intent below this confidence counts as not understood.
    min_confidence: float = 0.45
    reopen_window: timedelta = timedelta(days=7)
    max_text_chars: int = 4000
    max_upload_bytes: int = 20 * 1024 * 1024
    #: Turns kept in the conversation, for the summary an agent gets on a handover.
    history_entries: int = 20
    #: Misunderstandings in a row before the bot offers a person.
    misses_before_human: int = 2
    #: Queue estimate: minutes per ticket ahead of the customer.
    minutes_per_queued_ticket: int = 10
    #: Category of a ticket opened because the customer asked for a person.
    human_category: str = "other"
    #: Newest tickets a turn knows about (status, reopen, rating, handover).
    tickets_in_context: int = 50
    #: Tickets listed by "my tickets".
    status_list_size: int = 5
    #: Timeline entries shown for one ticket.
    timeline_size: int = 10
    #: Attempts of a turn that lost a race with another turn of the same conversation.
    max_attempts: int = 8
    #: Redelivered message ids remembered per conversation.
    seen_message_ids: int = 20
    #: Notices by text message are offered (/phone): Twilio is configured.
    texts: bool = False
    #: Region of phone numbers typed without a country code (ISO 3166).
    phone_region: str = "US"

    @classmethod
    def from_settings(cls, settings: Any) -> DialogConfig:
        """From `core.config.Settings` (read by attribute, so any object with them works)."""
        categories = tuple(
            c.strip().lower() for c in getattr(settings, "categories", ()) if c.strip()
        )
        categories = categories or DEFAULT_CATEGORIES
        human = "other" if "other" in categories else categories[-1]
        return cls(
            categories=categories,
            sla=SlaPolicy.from_hours(getattr(settings, "sla_hours", {}) or {}),
            min_confidence=float(getattr(settings, "nlu_threshold", 0.45)),
            reopen_window=timedelta(days=float(getattr(settings, "reopen_window_days", 7))),
            max_text_chars=int(getattr(settings, "max_text_chars", 4000)),
            max_upload_bytes=int(getattr(settings, "max_upload_bytes", 20 * 1024 * 1024)),
            human_category=human,
            texts=bool(getattr(settings, "sms_enabled", False)),
            phone_region=str(getattr(settings, "sms_region", "US")),
        )
