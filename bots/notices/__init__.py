"""What the customer (and the assignee) is told when a ticket changes, and the relay handlers
that tell them.

- `words`: which notice an event causes, rating buttons, waits, the email's timeline;
- `facts`: what one notice needs, loaded in one short transaction before anything is sent;
- `writer`: subjects, texts and emails, from the catalogue's `notice.*` and the templates;
- `handlers`: `CustomerNotices`, the relay handlers.

Texts are the catalogue's `notice.*` (dialogs/messages/<language>.yaml), in the customer's
language; an assignee's email is in the default language. Status, priority and plural words
come from the dialog catalogue too, so chat and email name them alike.
"""

from bots.notices.handlers import CustomerNotices
from bots.notices.words import AgentReply, rating_choices

__all__ = ["AgentReply", "CustomerNotices", "rating_choices"]
