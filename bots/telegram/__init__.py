"""The Telegram channel, with python-telegram-bot (the only package importing `telegram`).

Inbound: a webhook (`POST /telegram/webhook`, Telegram's `X-Telegram-Bot-Api-Secret-Token`
compared in constant time) in production, or a `getUpdates` loop for local development
(`TELEGRAM_MODE=polling`). After the secret, the body is read with a cap (413 above
`MAX_BODY`) and parsed by `core.jsonguard` (400 when too deep or not JSON), before anything
is recorded or logged. Each update is turned into a channel-neutral `UserSaid` and
handed to the dialog engine; its replies go back as HTML messages (escaped, split above
4096 characters, choices as inline keyboards).

Durability: every update is recorded in the inbox (key = update_id) before its effects are
final (see core/db/inbox.py). A plain message is recorded in the turn's own transaction, so
the record and the turn commit together, one commit; the record is written at the turn's
end, with the replies to send, in one statement (a redelivery found there rolls the turn
back). A turn that fails takes its record with it, and the attempt is then counted on its
own. Other updates (files, buttons, blocks) are recorded in a transaction of their own
first. A redelivery is a no-op, except that stored replies which may not have gone out are
sent again. A failure answers 500, so Telegram delivers the update again (polling retries
it in place), until `telegram_max_attempts`; then, or at once when it can never succeed (a
malformed update, a domain error, a reply Telegram refuses), the update is parked with its
reason. Updates of one chat are handled one at a time and in order, other chats
concurrently (in-process locks; across replicas the engine's optimistic concurrency
decides).

Reply in the webhook answer: Telegram runs one Bot API method given in the body of the
webhook's answer (https://core.telegram.org/bots/api#making-requests-when-getting-updates),
which saves a round trip; the last reply of a turn goes that way when it fits one message.
Its result is not reported back, so a 403 there goes unnoticed until the next API call.

Group chats: support conversations carry personal data, so Careline serves customers in
private chats only. In a group it answers only commands addressed to it and mentions of
`@bot_username`, with a short note inviting the person to a private chat; other group
messages are recorded and ignored. Nothing from a group reaches the dialog engine.

Files: the largest photo size, documents, voice notes, audio and video are passed on by
`file_id` (never a download URL: those contain the bot token), up to `max_upload_bytes`
(20 MB, the Bot API's own download limit); above it the customer gets a clear message.
Before the turn, each file of a kind Careline keeps (core.files) is fetched (`getFile`, then
the file itself) into the file store, once per Telegram file however often the update is
delivered; when Telegram does not hand it over, the update is retried a few times and then
goes on with the file named but not kept.
Edited messages reach the engine as new turns flagged `edited` (the earlier text is kept
where it was stored). Stickers, locations, contacts, polls, ... get a polite answer.

Outbound: `AIORateLimiter` with about 1 message/s per private chat (bursts of 3), 30/s
overall and 20/min per group; 429 `retry_after` is honoured. A 403 (blocked by the user)
marks the channel identity unreachable, so notices fall back to e-mail.
"""

from bots.telegram.application import build_application, register_webhook, unregister_webhook
from bots.telegram.bot import TelegramBot
from bots.telegram.channel import TelegramChannel
from bots.telegram.limits import CarelineRateLimiter, bot_key
from bots.telegram.plug import TelegramPlug
from bots.telegram.render import split_message

__all__ = [
    "CarelineRateLimiter",
    "TelegramBot",
    "TelegramChannel",
    "TelegramPlug",
    "bot_key",
    "build_application",
    "register_webhook",
    "split_message",
    "unregister_webhook",
]
