"""Email: out through SendGrid (``sendgrid_mail``, loaded only with a key) or a local mailbox
offline (``senders``), SendGrid's Event Webhook in (``events``: bounces, drops and spam
reports stop mail to that address), and customers' answers by email through Inbound Parse
(``inbound``).

The only package that imports `sendgrid`.
"""

from bots.email.events import apply_email_events, sendgrid_events_router
from bots.email.inbound import ReplyAddresses, email_inbound_router
from bots.email.senders import (
    Email,
    EmailAttachment,
    EmailSender,
    LocalMailbox,
    build_email,
)

__all__ = [
    "Email",
    "EmailAttachment",
    "EmailSender",
    "LocalMailbox",
    "ReplyAddresses",
    "apply_email_events",
    "build_email",
    "email_inbound_router",
    "sendgrid_events_router",
]
