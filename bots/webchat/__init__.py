"""The built-in web chat: a page at /chat talking to the dialog engine over a WebSocket.

The visitor's identity is a random id in a signed token that expires and is renewed (`Visitors`):
a cookie, and a copy the page keeps so an embedded iframe works where third-party cookies are
blocked. It is never in a URL: the WebSocket takes it from a subprotocol or the cookie. Every line
of the conversation is stored in `webchat_messages`, so a reload restores it and any replica
can serve a reconnecting visitor. Agent replies and notices arrive through the relay's
`WebChatChannel.send`, which stores the line and wakes the visitor's socket; other replicas
notice new lines by a short poll (PostgreSQL only: SQLite runs a single process).

Without a WebSocket the page falls back to plain HTTP: POST to send, GET to poll.
"""

from bots.webchat.lines import WebChatChannel, WebChatLines, reply_body
from bots.webchat.plug import WebChatPlug
from bots.webchat.routes import SendBody, WebChat, visitor_export, visitor_tickets, webchat_router
from bots.webchat.visitors import COOKIE, HEADER, Visitors, allowed_origins

__all__ = [
    "COOKIE",
    "HEADER",
    "SendBody",
    "Visitors",
    "WebChat",
    "WebChatChannel",
    "WebChatLines",
    "WebChatPlug",
    "allowed_origins",
    "reply_body",
    "visitor_export",
    "visitor_tickets",
    "webchat_router",
]
