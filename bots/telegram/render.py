"""Replies as Telegram messages: HTML-escaped, split above 4096 characters (counted in
UTF-16, as Telegram does), choices as inline keyboards."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)

from dialogs.turn import Reply

log = logging.getLogger("careline.telegram")

MAX_MESSAGE = 4096  # Bot API: text of 1-4096 characters after entity parsing
MAX_CALLBACK_DATA = 64  # bytes


def utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def split_message(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Cut plain text into pieces of at most `limit`, at paragraph, line or word breaks."""
    chunks: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        units, end = 0, 0
        for ch in rest:
            units += 2 if ord(ch) > 0xFFFF else 1
            if units > limit:
                break
            end += 1
        window = rest[:end]
        cut = end
        for separator in ("\n\n", "\n", " "):
            at = window.rfind(separator)
            if at > end // 2:
                cut = at
                break
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest.strip() or not chunks:
        chunks.append(rest)
    return chunks


def keyboard_for(reply: Reply) -> InlineKeyboardMarkup | None:
    """Inline buttons for the reply's choices; None when a value cannot be callback data."""
    if not reply.choices:
        return None
    if any(not 1 <= len(c.value.encode()) <= MAX_CALLBACK_DATA for c in reply.choices):
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(c.label[:64], callback_data=c.value)] for c in reply.choices]
    )


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    html: str
    keyboard: InlineKeyboardMarkup | None = None


def render(reply: Reply) -> list[OutgoingMessage]:
    """A reply as Telegram messages: escaped HTML pieces, the keyboard on the last one."""
    keyboard = keyboard_for(reply)
    text = reply.text if keyboard is not None or not reply.choices else reply.as_plain_text()
    if not text.strip():
        if keyboard is None:
            return []
        text = "Please choose:"
    pieces = [html.escape(p, quote=False) for p in split_message(text)]
    return [
        OutgoingMessage(piece, keyboard if i == len(pieces) - 1 else None)
        for i, piece in enumerate(pieces)
    ]
