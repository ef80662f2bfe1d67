"""Slack DMs as a customer channel: replies into a customer's DM."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bots.channels import PermanentFailure, Unreachable
from bots.slack import blocks as kit
from bots.slack.api import SlackApi, slack_error
from core.model import Channel
from dialogs.turn import Reply

log = logging.getLogger("careline.slack")

UNREACHABLE_ERRORS = {
    "channel_not_found",
    "is_archived",
    "not_in_channel",
    "user_disabled",
    "account_inactive",
    "cannot_dm_bot",
    "user_not_found",
}


class SlackChannel:
    """Replies into a customer's Slack DM (``ChatChannel``)."""

    channel = Channel.SLACK

    def __init__(self, api: SlackApi) -> None:
        self.api = api

    async def send(self, chat_id: str, reply: Reply, *, marker: str | None = None) -> str:
        """Post `reply`; with a marker, at most once (see `SlackApi.post`)."""
        try:
            return await self.api.post(
                chat_id, reply.as_plain_text(), kit.reply_blocks(reply, marker), marker=marker
            )
        except SlackApiError as error:
            code = slack_error(error)
            if code in UNREACHABLE_ERRORS:
                raise Unreachable(f"Slack: {code}") from error
            raise PermanentFailure(f"Slack: {code}") from error
