"""The outbox relay: carries out every domain event's effects, each exactly once.

A relay claims outbox rows (leases, `FOR UPDATE SKIP LOCKED` on PostgreSQL, see
core/db/outbox.py) and runs, per event type, a list of named handlers. One row in
`outbox_deliveries` per (event, handler) is the idempotency key: `sending` is committed
before a handler's side effect and `done` (with the provider's id) after it, so a crash
repeats at most the message that was in flight, never one already recorded as done.

Each handler succeeds, retries (exponential backoff with jitter, at least what the platform
asked for in `RetryLater.seconds`) or is parked as a dead letter on its own; a row is done
when all its handlers are. Rows are worked concurrently, one task each, so a chat that a
channel adapter is pacing never holds up other chats. Order is kept per destination: each
handler belongs to a lane (the customer's chat, their email, the Slack desk, ...), and a
ticket's deliveries in one lane go out in the order of its events, within a relay. Lanes do
not wait for each other: an agent's reply reaches the customer's chat while the desk's
Slack updates, paced by Slack, are still queued. A claim marks the claimed rows' deliveries
`sending` in the same transaction (a delivery waiting behind an earlier one of its ticket
and lane is marked when its turn comes); the results (`done`, retries) and the rows'
release are group-committed: whatever the running tasks need written is flushed together in
one transaction. On PostgreSQL the relay keeps one connection for claims and one for the
journal (no pool checkout and pre-ping per transaction; a stale one after a server restart
is replaced and the transaction retried at once).

The rules live in this package (handlers, bookkeeping, worker); their SQL (the journal's
statements, the held connections, LISTEN) is core/db/journal.py.

Pickup is prompt: a commit in the relay's own process wakes it at once; other processes'
commits reach it by LISTEN/NOTIFY on PostgreSQL (channel `careline_outbox`), by a short poll
on SQLite, where only one relay process may run (`SqliteRelayLock`).
"""

from bots.relay.handlers import (
    FINAL,
    Delivery,
    Handler,
    Handlers,
    RetryPolicy,
    Skip,
    delivery_names,
)
from bots.relay.worker import Relay, default_worker_name

__all__ = [
    "FINAL",
    "Delivery",
    "Handler",
    "Handlers",
    "Relay",
    "RetryPolicy",
    "Skip",
    "default_worker_name",
    "delivery_names",
]
