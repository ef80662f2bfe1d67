"""Telegram updates translated into what Careline does with them: a turn for the engine, a
direct answer, or a change of reachability (see the package's notes on groups and files)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from telegram import (
    Message,
    Update,
)

from core.model import Channel
from dialogs.turn import Attachment, Reply, UserSaid

log = logging.getLogger("careline.telegram")

TOO_LARGE = (
    "Sorry, that file is too large for me ({size}). I can take files up to {limit}. "
    "Could you send a smaller one, or describe the problem in words?"
)
UNSUPPORTED = (
    "Sorry, I can't read that kind of message. Please write to me in text; "
    "photos, documents and voice notes are fine too."
)
GROUP_NOTE = (
    "I help with support requests in a private chat, so your details stay private. "
    "Please write to me directly: https://t.me/{username}"
)


@dataclass(frozen=True, slots=True)
class Inbound:
    """What one update asks of us."""

    chat_id: str | None = None  # where answers go, and the ordering key
    said: UserSaid | None = None  # a turn for the engine
    answer: tuple[Reply, ...] = ()  # answered directly, without the engine
    callback_query_id: str | None = None
    user_id: str | None = None
    reachable: bool | None = None  # the user blocked (False) or unblocked (True) the bot


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


def _attachments(message: Message) -> list[Attachment]:
    found: list[Attachment] = []
    if message.photo:
        best = max(message.photo, key=lambda p: (p.file_size or 0, p.width * p.height))
        found.append(Attachment("photo", best.file_id, None, "image/jpeg", best.file_size))
    if message.document:
        d = message.document
        found.append(Attachment("document", d.file_id, d.file_name, d.mime_type, d.file_size))
    if message.voice:
        v = message.voice
        found.append(Attachment("voice", v.file_id, None, v.mime_type, v.file_size))
    if message.audio:
        a = message.audio
        found.append(Attachment("audio", a.file_id, a.file_name, a.mime_type, a.file_size))
    if message.video:
        v2 = message.video
        found.append(Attachment("video", v2.file_id, v2.file_name, v2.mime_type, v2.file_size))
    if message.video_note:
        n = message.video_note
        found.append(Attachment("video", n.file_id, None, "video/mp4", n.file_size))
    return found


def _command_for_us(text: str, username: str) -> str | None:
    """`/start@our_bot args` -> `/start args`; None for a command addressed to another bot."""
    head, _, rest = text.partition(" ")
    command, _, addressee = head.partition("@")
    if addressee and addressee.lower() != username.lower():
        return None
    return f"{command} {rest}".rstrip()


def translate(update: Update, *, username: str, max_upload_bytes: int) -> Inbound:
    """Turn a Telegram update into what Careline does with it."""
    query = update.callback_query
    if query is not None:
        message = query.message
        chat = message.chat if message is not None else None
        if chat is not None and chat.type != "private":
            return Inbound(chat_id=str(chat.id), callback_query_id=query.id)
        label = query.data or ""
        if isinstance(message, Message) and message.reply_markup is not None:
            for row in message.reply_markup.inline_keyboard:
                label = next((b.text for b in row if b.callback_data == query.data), label)
        chat_id = str(chat.id if chat is not None else query.from_user.id)
        said = UserSaid(
            channel=Channel.TELEGRAM,
            user_id=str(query.from_user.id),
            chat_id=chat_id,
            text=label,
            message_id=f"cb:{query.id}",
            display_name=query.from_user.full_name,
            language=query.from_user.language_code or "en",
            choice=query.data,
        )
        return Inbound(chat_id=chat_id, said=said, callback_query_id=query.id)

    member = update.my_chat_member
    if member is not None:
        if member.chat.type != "private":
            return Inbound(chat_id=str(member.chat.id))
        status = member.new_chat_member.status
        return Inbound(
            chat_id=str(member.chat.id),
            user_id=str(member.from_user.id),
            reachable=status not in ("kicked", "left"),
        )

    message = update.message or update.edited_message
    if message is None or message.from_user is None:
        return Inbound()  # channel posts, polls, future kinds: nothing for support
    chat_id = str(message.chat.id)
    text = message.text or message.caption or ""
    if message.chat.type != "private":
        addressed = (
            text.startswith("/") and _command_for_us(text, username) is not None
        ) or f"@{username.lower()}" in text.lower()
        if addressed and not message.from_user.is_bot:
            return Inbound(chat_id=chat_id, answer=(Reply(GROUP_NOTE.format(username=username)),))
        return Inbound(chat_id=chat_id)
    if text.startswith("/"):
        text = _command_for_us(text, username) or text
    attachments = _attachments(message)
    for item in attachments:
        if item.size is not None and item.size > max_upload_bytes:
            note = TOO_LARGE.format(size=_size(item.size), limit=_size(max_upload_bytes))
            return Inbound(chat_id=chat_id, answer=(Reply(note),))
    edited = update.edited_message is not None
    if not text and not attachments:
        return Inbound(chat_id=chat_id, answer=() if edited else (Reply(UNSUPPORTED),))
    key = f"{chat_id}:{message.message_id}"
    if edited and message.edit_date is not None:
        key += f":edit:{int(message.edit_date.timestamp())}"
    user = message.from_user
    said = UserSaid(
        channel=Channel.TELEGRAM,
        user_id=str(user.id),
        chat_id=chat_id,
        text=text,
        message_id=key,
        display_name=user.full_name,
        language=user.language_code or "en",
        attachments=tuple(attachments),
        edited=edited,
    )
    return Inbound(chat_id=chat_id, said=said)
