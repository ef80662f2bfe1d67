"""What a relay runs: named handlers per event type, each in a lane, the delivery one handler
carries out, and how failed deliveries are retried."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.events import Event

FINAL = frozenset({"done", "skipped", "dead"})


class Skip(Exception):
    """Raised by a handler when there is nothing to send (no address, not wanted, erased)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One (event, handler) pair being carried out; `key` is its idempotency key."""

    event_id: int
    event_type: str
    payload: dict[str, Any]
    handler: str
    attempt: int  # 1 for the first try
    created_at: datetime

    @property
    def key(self) -> str:
        """Stable across retries and relays: give it to providers that dedupe by key."""
        return f"careline-{self.event_id}-{self.handler}"

    @property
    def event(self) -> Event:
        return Event.from_payload(self.event_type, self.payload)


Handler = Callable[[Delivery], Awaitable[str | None]]
"""Carries out one effect and returns the provider's id (or None).

Raises `RetryLater` (transient), `PermanentFailure` (never retried), `Skip` (nothing to do);
any other exception is retried like a transient failure and dead-lettered in the end.
"""


class Handlers:
    """The registry of named handlers per event type. Open: any area adds its own.

    A handler's lane is where its messages go (by default its name up to the first dot:
    `slack.open_thread` and `slack.note_change` share the lane `slack`). A ticket's
    deliveries in one lane keep the order of its events; different lanes never wait for
    each other. Handlers that write to the same place under different names share a lane.
    """

    def __init__(self) -> None:
        self._by_event: dict[str, dict[str, Handler]] = {}
        self._lanes: dict[str, str] = {}

    def add(
        self, event: type[Event] | str, name: str, handler: Handler, *, lane: str | None = None
    ) -> None:
        event_type = event if isinstance(event, str) else event.__name__
        if len(name) > 64:
            raise ValueError(f"handler name {name!r} is longer than 64 characters")
        named = self._by_event.setdefault(event_type, {})
        if name in named:
            raise ValueError(f"{event_type} already has a handler named {name!r}")
        lane = lane or name.split(".", 1)[0]
        if self._lanes.setdefault(name, lane) != lane:
            raise ValueError(f"handler {name!r} is in lane {self._lanes[name]!r}, not {lane!r}")
        named[name] = handler

    def lane(self, name: str) -> str:
        return self._lanes.get(name, name)

    def for_event(self, event_type: str) -> list[tuple[str, Handler]]:
        return list(self._by_event.get(event_type, {}).items())

    def names(self, event_type: str) -> list[str]:
        return list(self._by_event.get(event_type, {}))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with equal jitter, never sooner than the platform asked."""

    base_seconds: float = 2.0
    max_seconds: float = 3600.0
    max_attempts: int = 12

    def delay(self, attempt: int, at_least: float = 0.0) -> float:
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        return max(at_least, ceiling / 2 + random.uniform(0, ceiling / 2))


def delivery_names(handlers: Handlers, events: Iterable[type[Event]]) -> dict[str, list[str]]:
    """Which handlers each event type runs (for `careline` diagnostics and docs)."""
    return {e.__name__: handlers.names(e.__name__) for e in events}
