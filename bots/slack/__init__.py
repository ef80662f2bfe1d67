"""Slack: the agents' desk (one thread per ticket) and Slack DMs as a customer channel.

The only package that imports slack_bolt / slack_sdk. Four parts, built once by
:func:`build_slack` (``serving``) in the composition root:

- :class:`SlackApi` (``api``) — the Web API client with per-channel pacing (about 1
  message/s), 429 ``Retry-After`` honoured, and no blind retry of ``chat.postMessage``: every
  desk post carries a marker (a ``block_id``) and its attempt is recorded first, so after a
  timeout or a crash the next attempt looks for the marker (``conversations.replies`` /
  ``.history``) before posting.
- :class:`SlackDesk` (``desk``) — outbound relay handlers (open the ticket thread, mirror
  customer messages, update the root message and note every change, announce SLA breaches,
  confirm or report the delivery of an agent's reply).
- :class:`SlackInbound` (``inbound``) — the bolt ``AsyncApp``: thread replies, buttons,
  ``/careline``, DMs. Served over HTTP by :func:`slack_router` or over Socket Mode by
  :func:`start_socket_mode`.
- :class:`SlackChannel` (``dm``) — ``ChatChannel.send`` into a customer's DM.

**The note rule.** In a ticket thread, an agent's reply goes to the customer; a reply that
starts with ``note:`` (any case, e.g. ``Note: checked the logs``) is an internal note and never
leaves Slack. Replies from people who are not Careline agents go nowhere (they get an
ephemeral refusal), and so do edits, deletions and messages of other bots.

**Who is an agent.** A Slack user whose id is linked to an active agent (through the admin
API), or whose ``users.info`` email matches an agent's email on their first desk action (the
id is then linked). Anyone else gets an ephemeral refusal.

**Redeliveries.** Every Events API delivery is recorded in ``inbox`` (source ``slack``) under
``channel:ts`` for messages, else the ``event_id``, before the ack, and claimed there for
``CLAIM_LEASE`` by a conditional UPDATE: one copy at a time does the work, whichever process
(replica) it reached. A retry (``X-Slack-Retry-Num``) of a finished delivery, or one arriving
while another copy holds the claim, is a no-op; of an unfinished, unclaimed one (the first
attempt failed and let go, or its process died and the lease ran out) it runs again: the
services dedupe on ``channel:ts`` and the dialog engine gives a redelivered DM the answer it
remembers. Each answer in a DM is posted under a marker (``answer:<channel:ts>:<n>``), so
when an earlier attempt already posted it (and died before recording the delivery done), the
marker is found in the DM and nothing is posted twice. :meth:`SlackInbound.replay_pending`
re-runs deliveries left pending (at start and every ``REPLAY_EVERY`` seconds), up to
``MAX_ATTEMPTS``. Bolt drops the bot's own events (``bot_id`` / bot user), and the message
listener ignores every other bot too, so nothing loops.
"""

from bots.slack.api import SlackApi
from bots.slack.desk import SlackDesk
from bots.slack.dm import SlackChannel
from bots.slack.inbound import SlackInbound
from bots.slack.serving import Slack, build_slack, slack_router, start_socket_mode

__all__ = [
    "Slack",
    "SlackApi",
    "SlackChannel",
    "SlackDesk",
    "SlackInbound",
    "build_slack",
    "slack_router",
    "start_socket_mode",
]
