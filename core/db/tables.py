"""The schema: one MetaData for every table. Alembic migrations are generated from it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.sql.elements import ColumnElement

from core.db.types import EnumText, UTCDateTime, json_type
from core.lifecycle import Status
from core.model import Author, Availability, Channel, Notify, Priority

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BigInteger ids that still autoincrement on SQLite (which only does so for INTEGER).
BigId = BigInteger().with_variant(Integer(), "sqlite")

# --- the ticket domain -----------------------------------------------------------------

customers = Table(
    "customers",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("display_name", String(200), nullable=False),
    Column("language", String(16), nullable=False, server_default="en"),
    # True once the customer picked it (/language): detection no longer changes it.
    Column("language_chosen", Boolean, nullable=False, server_default=text("false")),
    Column("email", String(320)),
    Column("email_verified", Boolean, nullable=False, server_default=text("false")),
    Column("email_blocked", Boolean, nullable=False, server_default=text("false")),
    Column("phone", String(40)),
    # The phone number was confirmed by a texted code; `texts`: notices also go there by SMS.
    Column("phone_verified", Boolean, nullable=False, server_default=text("false")),
    Column("texts", Boolean, nullable=False, server_default=text("false")),
    Column("notify", EnumText(Notify, 8), nullable=False, server_default="both"),
    # Opted in to a call about urgent news (/calls), at the number they text from.
    Column("calls", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("erased_at", UTCDateTime),
)

channel_identities = Table(
    "channel_identities",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("customer_id", ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("channel", EnumText(Channel), nullable=False),
    Column("external_id", String(128), nullable=False),
    Column("chat_id", String(128), nullable=False),
    Column("display_name", String(200), nullable=False, server_default=""),
    Column("reachable", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("channel", "external_id"),
    Index("ix_channel_identities_customer", "customer_id"),
)

agents = Table(
    "agents",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=False, unique=True),
    Column("slack_user_id", String(32), unique=True),
    Column("skills", json_type(), nullable=False),
    # Languages the agent answers in (ISO 639-1); none listed: the default language only.
    Column("languages", json_type(), nullable=False, server_default="[]"),
    Column("capacity", Integer, nullable=False, server_default="5"),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("availability", EnumText(Availability), nullable=False, server_default="available"),
    Column("created_at", UTCDateTime, nullable=False),
)

tickets = Table(
    "tickets",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("identity_id", ForeignKey("channel_identities.id", ondelete="SET NULL")),
    Column("subject", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("category", String(64), nullable=False),
    Column("priority", EnumText(Priority, 8), nullable=False),
    Column("channel", EnumText(Channel), nullable=False),
    Column("status", EnumText(Status), nullable=False),
    Column("assignee_id", ForeignKey("agents.id")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("first_response_at", UTCDateTime),
    Column("resolved_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    Column("first_response_due", UTCDateTime),
    Column("resolution_due", UTCDateTime),
    Column("csat_score", Integer),
    Column("csat_comment", Text),
    Column("human_requested", Boolean, nullable=False, server_default=text("false")),
    # The customer's language when it opened (ISO 639-1): who can answer it, in what words.
    Column("language", String(16), nullable=False, server_default="en"),
    Column("version", Integer, nullable=False),
    Index("ix_tickets_status_created", "status", "created_at"),
    Index("ix_tickets_assignee_status", "assignee_id", "status"),
    Index("ix_tickets_customer", "customer_id", "created_at"),
    Index("ix_tickets_category", "category", "created_at"),
    Index("ix_tickets_priority", "priority", "created_at"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("ticket_id", ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
    Column("author", EnumText(Author), nullable=False),
    Column("body", Text, nullable=False),
    Column("channel", EnumText(Channel)),
    Column("external_id", String(128)),
    Column("agent_id", ForeignKey("agents.id")),
    Column("attachments", json_type(), nullable=False),
    Column("delivered_id", String(128)),
    Column("created_at", UTCDateTime, nullable=False),
    # A platform's message id is unique per channel: redeliveries find the first copy.
    UniqueConstraint("channel", "external_id"),
    Index("ix_messages_ticket", "ticket_id", "id"),
)

ticket_activities = Table(
    "ticket_activities",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("ticket_id", ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("detail", json_type(), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_ticket_activities_ticket", "ticket_id", "id"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", BigId, primary_key=True),
    Column(
        "identity_id",
        ForeignKey("channel_identities.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("state", String(64), nullable=False),
    Column("slots", json_type(), nullable=False),
    Column("history", json_type(), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False),
)

email_verifications = Table(
    "email_verifications",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("customer_id", ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    # The address the code goes to: an email address, or for `kind` phone an E.164 number.
    Column("email", String(320), nullable=False),
    Column("kind", String(8), nullable=False, server_default="email"),
    # Short-lived and single-use; the relay mails (or texts) it, so it is kept as given.
    Column("code", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("verified_at", UTCDateTime),
)

email_suppressions = Table(
    "email_suppressions",
    metadata,
    Column("email", String(320), primary_key=True),
    Column("reason", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# --- reliable messaging ----------------------------------------------------------------

# Inbound platform deliveries, recorded before processing: a redelivery is a no-op.
inbox = Table(
    "inbox",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("source", String(16), nullable=False),  # telegram, slack, sendgrid, ...
    Column("key", String(200), nullable=False),  # update id, event id, channel+ts
    Column("status", String(16), nullable=False),  # pending, done, parked
    Column("payload", json_type()),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("received_at", UTCDateTime, nullable=False),
    Column("done_at", UTCDateTime),
    # Claimed by a worker until then (a lease; Slack's overlapping redeliveries, replicas).
    Column("claimed_until", UTCDateTime),
    UniqueConstraint("source", "key"),
    Index("ix_inbox_received_at", "received_at"),  # retention deletes the oldest rows
)

# Domain events written in the same transaction as the change that caused them.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("event_type", String(64), nullable=False),
    Column("payload", json_type(), nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),  # pending/done/dead
    Column("created_at", UTCDateTime, nullable=False),
    Column("available_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("locked_by", String(64)),
    Column("locked_until", UTCDateTime),
    Column("processed_at", UTCDateTime),
    Column("last_error", Text),
    Index("ix_outbox_pending", "status", "available_at", "id"),
)

# One row per (event, handler): the idempotency key that makes each effect happen once.
outbox_deliveries = Table(
    "outbox_deliveries",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("event_id", ForeignKey("outbox.id", ondelete="CASCADE"), nullable=False),
    Column("handler", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # sending, done, failed, dead, skipped
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime),
    Column("provider_id", String(200)),
    Column("last_error", Text),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("event_id", "handler"),
    Index("ix_outbox_deliveries_status", "status", "next_attempt_at"),
    # A delivery report (Twilio's status callback) names the message by its provider id.
    Index("ix_outbox_deliveries_provider_id", "provider_id"),
)

# --- integrations ----------------------------------------------------------------------

# A ticket's Slack thread, keyed so that re-routing or reconnecting never orphans it.
slack_threads = Table(
    "slack_threads",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("ticket_id", ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column("team_id", String(32), nullable=False),
    Column("channel_id", String(32), nullable=False),
    Column("thread_ts", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("team_id", "channel_id", "thread_ts"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("role", String(16), nullable=False),  # admin, agent
    Column("prefix", String(16), nullable=False),  # shown in listings; not secret
    Column("key_hash", String(128), nullable=False, unique=True),
    Column("agent_id", ForeignKey("agents.id", ondelete="SET NULL")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
)

settings_flags = Table(
    "settings_flags",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", json_type(), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Fixed-window hit counters of the rate limits (core/db/ratelimit.py): one row per limit and
# key (an address, a visitor, an API key id); housekeeping deletes the ended windows.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("hits", Integer, nullable=False),
    Column("window_ends", UTCDateTime, nullable=False),
    Index("ix_rate_limits_window_ends", "window_ends"),
)

# Send pacing shared by every process (core.db.pacing): per (name, key) the theoretical
# arrival time of the next send (GCRA), in seconds since the epoch on the database's clock.
# UNLOGGED on PostgreSQL (migration 0017): a reservation need not survive a crash.
send_pacing = Table(
    "send_pacing",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("tat", Double, nullable=False),
)

# The numbered choices last texted to a phone number (bots.sms): a customer answers "2" to
# the text they read last, whether a turn or a notice sent it. Personal: erasure deletes it.
sms_menus = Table(
    "sms_menus",
    metadata,
    Column("chat_id", String(32), primary_key=True),  # the customer's number, E.164
    Column("choices", json_type(), nullable=False),  # [[label, value], ...]
    Column("sent_at", UTCDateTime, nullable=False),
)

# --- web chat --------------------------------------------------------------------------

# The web chat's conversation as the visitor sees it: what they sent and what reached them
# (bot answers, agent replies, notices). Any replica can serve a reconnecting visitor.
webchat_messages = Table(
    "webchat_messages",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("visitor_id", String(64), nullable=False),
    Column("direction", String(4), nullable=False),  # in, out
    Column("body", json_type(), nullable=False),  # {"text": ..., "choices": [...], ...}
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_webchat_messages_visitor", "visitor_id", "id"),
)

# --- knowledge base --------------------------------------------------------------------

# Articles the support team writes; the bot quotes the published ones verbatim. `key` ties an
# article to an NLU intent (`faq_opening_hours`) and to the FAQ YAML it was imported from.
knowledge_articles = Table(
    "knowledge_articles",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("key", String(100)),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),  # Markdown; paragraphs are the quotable passages
    Column("language", String(16), nullable=False),
    Column("tags", json_type(), nullable=False),
    Column("questions", json_type(), nullable=False),  # example questions it answers
    Column("status", String(16), nullable=False),  # draft, published
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(100), nullable=False),
    UniqueConstraint("language", "key"),
)

# Every saved version of an article (who changed what, when), and whether its answers helped.
knowledge_article_versions = Table(
    "knowledge_article_versions",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("article_id", ForeignKey("knowledge_articles.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("change", String(16), nullable=False),  # created, edited, published, unpublished
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("language", String(16), nullable=False),
    Column("tags", json_type(), nullable=False),
    Column("questions", json_type(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("changed_by", String(100), nullable=False),
    Column("helped", Integer, nullable=False, server_default="0"),
    Column("not_helped", Integer, nullable=False, server_default="0"),
    UniqueConstraint("article_id", "version"),
)

# One row: `revision` grows with every change to what customers may be answered, so each
# replica learns with one cheap read that it must rebuild its index; `seeded_at` marks that
# the shipped FAQ was loaded once (never again, whatever admins later changed or deleted).
knowledge_state = Table(
    "knowledge_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("revision", BigInteger, nullable=False),
    Column("seeded_at", UTCDateTime),
)

# The team's edits of the intents file (core/intents.py): an example added to an intent, or
# (`removed`) one of the file's examples taken out. Written by staff, not customers.
intent_examples = Table(
    "intent_examples",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("intent", String(64), nullable=False),
    Column("text", String(500), nullable=False),
    Column("removed", Boolean, nullable=False, server_default=text("false")),
    Column("changed_by", String(100), nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    UniqueConstraint("intent", "text"),
)

# One row: `revision` grows with every edit of the intent examples (each replica reads it every
# few seconds); the rest is the training lease: one replica trains the model of `training_key`
# in the background and renews `training_until` as it goes, so another takes over after a
# crash. `failed_key` names examples that could not be trained (not retried until they change).
nlu_state = Table(
    "nlu_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("revision", BigInteger, nullable=False),
    Column("training_key", String(64)),
    Column("training_by", String(100)),
    Column("training_until", UTCDateTime),
    Column("stage", String(32)),
    Column("progress", Double),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("failed_key", String(64)),
    Column("error", Text),
)

# Trained classifiers as plain arrays (an .npz file, never a pickle), by the key of the examples
# they learnt: every replica loads the one its examples name.
nlu_models = Table(
    "nlu_models",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("backend", String(16), nullable=False),
    Column("model", LargeBinary, nullable=False),
    Column("examples", Integer, nullable=False),
    Column("intents", Integer, nullable=False),
    Column("seconds", Double, nullable=False),
    Column("trained_at", UTCDateTime, nullable=False),
)

# What the bot could not answer: not understood, not sure, or "that didn't help". Admins read
# them clustered (GET /articles/gaps) to write the missing articles. The question is the
# customer's own words: erasure deletes their rows.
knowledge_gaps = Table(
    "knowledge_gaps",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("customer_id", ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("language", String(16), nullable=False),
    Column("question", Text, nullable=False),
    Column("reason", String(16), nullable=False),  # not_understood, unsure, not_helped
    Column("article_id", ForeignKey("knowledge_articles.id", ondelete="SET NULL")),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_knowledge_gaps_created", "created_at"),
)

# Attachments (core.files): a customer's upload or an agent's file, by a random id the
# messages name; the bytes here or in an S3 bucket. `owner` is the sender's
# "<channel>:<external id>"; erasure deletes by it, by ticket and by id.
stored_files = Table(
    "stored_files",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("mime_type", String(100), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("owner", String(200)),
    Column("ticket_id", ForeignKey("tickets.id", ondelete="CASCADE")),
    Column("content", LargeBinary),  # NULL when the bytes are in object storage (core.db.s3)
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_stored_files_owner", "owner"),
    Index("ix_stored_files_ticket", "ticket_id"),
)

# --- the console: staff accounts, invitations, sessions, saved replies, presence ---
# Owned by core/db/staff.py. Passwords are argon2id hashes; a session or invitation is
# found by the SHA-256 of its secret, an invitation by its id (its link is an HMAC of its
# nonce under the server secret): no secret is stored.
staff_accounts = Table(
    "staff_accounts",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),  # lower-cased
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),  # admin, agent
    Column("agent_id", ForeignKey("agents.id", ondelete="SET NULL"), unique=True),
    Column("password_hash", String(256)),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("password_set_at", UTCDateTime),
)

staff_invitations = Table(
    "staff_invitations",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("email", String(320)),  # None: the first admin's, who gives it on accepting
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("agent_id", ForeignKey("agents.id", ondelete="CASCADE")),
    Column("nonce", String(64), nullable=False, unique=True),  # the link is its HMAC
    Column("created_by", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime),
)

staff_sessions = Table(
    "staff_sessions",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("staff_id", ForeignKey("staff_accounts.id", ondelete="CASCADE"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Index("ix_staff_sessions_staff", "staff_id"),
)

canned_responses = Table(
    "canned_responses",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("title", String(100), nullable=False, unique=True),
    Column("body", Text, nullable=False),
    Column("updated_by", String(100), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

ticket_presence = Table(
    "ticket_presence",
    metadata,
    Column("ticket_id", ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
    Column("staff_id", ForeignKey("staff_accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("replying", Boolean, nullable=False, server_default=text("false")),
    Column("seen_at", UTCDateTime, nullable=False),
)

# --- admin API indexes ---
# Owned by the admin API (core/db/queries.py). Ticket lists page by keyset over
# (sort column, id), newest first; these keep every page of 1,000,000 tickets an index walk.
Index("ix_tickets_created_id", tickets.c.created_at, tickets.c.id)
Index("ix_tickets_updated_id", tickets.c.updated_at, tickets.c.id)
Index("ix_tickets_assignee_created", tickets.c.assignee_id, tickets.c.created_at)
# The queue and SLA filters look at active tickets only: a small partial index.
Index(
    "ix_tickets_active_created",
    tickets.c.created_at,
    tickets.c.id,
    postgresql_where=text("status IN ('new', 'open', 'waiting')"),
    sqlite_where=text("status IN ('new', 'open', 'waiting')"),
)

# The console (migration 0016): each agent's open load (the assignment picker and the agents'
# page), a category and priority together (a combination with few tickets no longer walks a
# whole category), and the reports' periods.
Index(
    "ix_tickets_active_assignee",
    tickets.c.assignee_id,
    postgresql_where=text("status IN ('new', 'open', 'waiting')"),
    sqlite_where=text("status IN ('new', 'open', 'waiting')"),
)
Index("ix_tickets_category_priority", tickets.c.category, tickets.c.priority, tickets.c.created_at)
Index("ix_tickets_resolved_at", tickets.c.resolved_at)
Index("ix_tickets_first_response_at", tickets.c.first_response_at)


def ticket_search_document() -> ColumnElement[Any]:
    """The full-text document of a ticket (PostgreSQL). Queries must use this same expression
    so the planner matches the GIN expression index below; the 'simple' configuration keeps
    words as written, whatever the customer's language."""
    # text() rather than literal_column(): SQLAlchemy then finds the table of the index.
    return func.to_tsvector(
        text("'simple'::regconfig"),
        tickets.c.subject.op("||")(text("' '")).op("||")(tickets.c.description),
    )


# PostgreSQL only (SQLite searches with LIKE). Needs no extension: to_tsvector is built in.
Index("ix_tickets_search", ticket_search_document(), postgresql_using="gin").ddl_if(
    dialect="postgresql"
)
