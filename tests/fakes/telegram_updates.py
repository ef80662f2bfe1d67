"""Build Telegram ``Update`` JSON as Telegram sends it (checked against the contract in tests).

Usage::

    updates = TelegramUpdates()              # update_id and message_id increase per call
    fake.push_update(updates.text("my card was charged twice"))
    await fake.deliver(updates.command("start"))
    tapped = updates.callback_query("ticket:CR-1042:close")
    Update.de_json(tapped, bot)

A customer is a :class:`Person`; the default one is a private-chat user with id 1001.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Any

BOT: dict[str, Any] = {
    "id": 7000000001,
    "is_bot": True,
    "first_name": "Careline",
    "username": "careline_test_bot",
}


@dataclasses.dataclass(frozen=True)
class Person:
    id: int = 1001
    first_name: str = "Dana"
    last_name: str | None = "Customer"
    username: str | None = "dana_c"
    language_code: str | None = "en"

    def user(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        for name in ("last_name", "username", "language_code"):
            if getattr(self, name) is not None:
                user[name] = getattr(self, name)
        return user

    def private_chat(self) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name:
            chat["last_name"] = self.last_name
        if self.username:
            chat["username"] = self.username
        return chat


CUSTOMER = Person()


class TelegramUpdates:
    """Factory of Update dicts with increasing update_id (and message_id per chat)."""

    def __init__(self, first_update_id: int = 500_000_001, bot: dict[str, Any] | None = None):
        self._update_ids = itertools.count(first_update_id)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self.bot = bot or BOT

    # -- building blocks ---------------------------------------------------------------------
    def next_update_id(self) -> int:
        return next(self._update_ids)

    def _message(self, chat: dict[str, Any], sender: Person, **content: Any) -> dict[str, Any]:
        counter = self._message_ids.setdefault(chat["id"], itertools.count(1))
        return {
            "message_id": next(counter),
            "from": sender.user(),
            "chat": chat,
            "date": int(time.time()),
            **content,
        }

    def _update(self, **kind: Any) -> dict[str, Any]:
        return {"update_id": self.next_update_id(), **kind}

    def message(self, person: Person = CUSTOMER, **content: Any) -> dict[str, Any]:
        """A private-chat message update with arbitrary content fields."""
        return self._update(message=self._message(person.private_chat(), person, **content))

    # -- the kinds Careline meets ------------------------------------------------------------
    def text(self, text: str, person: Person = CUSTOMER) -> dict[str, Any]:
        return self.message(person, text=text)

    def command(self, command: str = "start", args: str = "", person: Person = CUSTOMER):
        """``/start`` (plus optional arguments) with its bot_command entity."""
        text = f"/{command}" + (f" {args}" if args else "")
        entity = {"type": "bot_command", "offset": 0, "length": len(command) + 1}
        return self.message(person, text=text, entities=[entity])

    def callback_query(
        self,
        data: str,
        person: Person = CUSTOMER,
        message_text: str = "Is your issue solved?",
        buttons: list[list[tuple[str, str]]] | None = None,
    ) -> dict[str, Any]:
        """A tap on an inline button; the message is the bot's, carrying the keyboard."""
        rows = buttons or [[(data, data)]]
        keyboard = [
            [{"text": label, "callback_data": value} for label, value in row] for row in rows
        ]
        bot_message = self._message(
            person.private_chat(),
            Person(self.bot["id"], self.bot["first_name"], None, self.bot.get("username"), None),
            text=message_text,
            reply_markup={"inline_keyboard": keyboard},
        )
        bot_message["from"] = dict(self.bot)
        query = {
            "id": str(next(self._update_ids) * 1000 + 7),
            "from": person.user(),
            "message": bot_message,
            "chat_instance": f"-{person.id}42",
            "data": data,
        }
        return self._update(callback_query=query)

    def photo(self, caption: str | None = None, person: Person = CUSTOMER) -> dict[str, Any]:
        sizes = [
            {
                "file_id": f"AgAC-photo-{w}",
                "file_unique_id": f"AQAD{w}",
                "width": w,
                "height": w * 3 // 4,
                "file_size": w * 50,
            }
            for w in (90, 320, 800, 1280)
        ]
        extra = {"caption": caption} if caption else {}
        return self.message(person, photo=sizes, **extra)

    def document(
        self,
        file_name: str = "statement.pdf",
        mime_type: str = "application/pdf",
        person: Person = CUSTOMER,
    ) -> dict[str, Any]:
        document = {
            "file_id": "BQAC-doc-1",
            "file_unique_id": "AgADdoc1",
            "file_name": file_name,
            "mime_type": mime_type,
            "file_size": 48213,
        }
        return self.message(person, document=document)

    def voice(self, duration: int = 4, person: Person = CUSTOMER) -> dict[str, Any]:
        voice = {
            "file_id": "AwAC-voice-1",
            "file_unique_id": "AgADvoice1",
            "duration": duration,
            "mime_type": "audio/ogg",
            "file_size": 9120,
        }
        return self.message(person, voice=voice)

    def sticker(self, emoji: str = "👍", person: Person = CUSTOMER) -> dict[str, Any]:
        sticker = {
            "file_id": "CAAC-sticker-1",
            "file_unique_id": "AgADst1",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "set_name": "HotCherry",
        }
        return self.message(person, sticker=sticker)

    def location(
        self, latitude: float = 52.52, longitude: float = 13.405, person: Person = CUSTOMER
    ) -> dict[str, Any]:
        return self.message(person, location={"latitude": latitude, "longitude": longitude})

    def edited_message(
        self, text: str, message_id: int = 1, person: Person = CUSTOMER
    ) -> dict[str, Any]:
        now = int(time.time())
        message = {
            "message_id": message_id,
            "from": person.user(),
            "chat": person.private_chat(),
            "date": now - 30,
            "edit_date": now,
            "text": text,
        }
        return self._update(edited_message=message)

    def group_text(
        self,
        text: str,
        person: Person = CUSTOMER,
        chat_id: int = -4_000_000_123,
        supergroup: bool = False,
    ) -> dict[str, Any]:
        """A message in a group; ``supergroup=True`` uses a -100... chat id."""
        if supergroup and chat_id > -1_000_000_000_000:
            chat_id = -1_001_000_000_123
        chat = {
            "id": chat_id,
            "type": "supergroup" if supergroup else "group",
            "title": "Customers",
        }
        return self._update(message=self._message(chat, person, text=text))

    def bot_blocked(self, person: Person = CUSTOMER) -> dict[str, Any]:
        """my_chat_member: the user blocked the bot (member -> kicked)."""
        now = int(time.time())
        member = {
            "chat": person.private_chat(),
            "from": person.user(),
            "date": now,
            "old_chat_member": {"status": "member", "user": dict(self.bot)},
            "new_chat_member": {"status": "kicked", "user": dict(self.bot), "until_date": 0},
        }
        return self._update(my_chat_member=member)

    def unknown(
        self, kind: str = "future_update_kind", payload: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """An update type this API version does not know (bots must ignore it, not crash)."""
        return self._update(**{kind: payload or {"id": "x1", "note": "from a newer Bot API"}})
