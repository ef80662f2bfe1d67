"""The outbound SMS channel: a reply (a turn's or a notice) as one or more texts."""

from __future__ import annotations

import asyncio

from bots.channels import PermanentFailure, RetryLater
from bots.sms.api import TwilioApi
from bots.sms.text import render, split_text
from core.db.sms import SmsMenus
from core.model import Channel
from dialogs.turn import Reply

#: Tries of a reply's later texts once its first is out: a retry of the whole reply would
#: send the first again.
LATER_TEXT_TRIES = 3


class SmsChannel:
    channel = Channel.SMS

    def __init__(self, api: TwilioApi, menus: SmsMenus, *, max_segments: int = 10) -> None:
        self.api = api
        self.menus = menus
        self.max_segments = max_segments

    async def send(self, chat_id: str, reply: Reply) -> str:
        """Text `reply` to the number `chat_id`; the first text's SID (its delivery report
        names it). Its choices become the number's menu: "2" picks the second."""
        texts = [text for text in split_text(render(reply), self.max_segments) if text]
        if not texts:
            raise PermanentFailure("an empty reply: nothing to text")
        first = await self.api.text(chat_id, texts[0])
        for text in texts[1:]:
            await self._later(chat_id, text)
        await self.menus.remember(chat_id, [(c.label, c.value) for c in reply.choices])
        return first

    async def _later(self, chat_id: str, text: str) -> None:
        for attempt in range(1, LATER_TEXT_TRIES + 1):
            try:
                await self.api.text(chat_id, text)
                return
            except RetryLater as error:
                if attempt == LATER_TEXT_TRIES:
                    raise
                await asyncio.sleep(error.seconds * attempt)
