"""Slack's Web API as the desk and the DMs use it: paced per channel, 429s honoured, and no
blind retry of a post (see the package's notes)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import ClientError
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.channels import PermanentFailure, RetryLater
from bots.slack import blocks as kit
from core.db.database import Database

log = logging.getLogger("careline.slack")

POST_SOURCE = "slack-post"  # attempts of our own posts, recorded before they are made
PACED_METHODS = frozenset({"chat.postMessage", "chat.update", "chat.postEphemeral"})


class UncertainPost(Exception):
    """chat.postMessage may or may not have posted (timeout, dropped connection)."""


class SlackApi:
    """One ``AsyncWebClient``, paced per channel, honouring 429 and never re-posting blindly."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        db: Database | None = None,
        interval: float = 1.0,
        max_inline_wait: float = 5.0,
    ) -> None:
        self.client = client
        self.db = db
        self.interval = interval
        self.max_inline_wait = max_inline_wait
        self._next_slot: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._identity: dict[str, Any] | None = None

    async def identity(self) -> dict[str, Any]:
        """auth.test, once: team id, bot user id and bot id."""
        if self._identity is None:
            self._identity = dict((await self.call("auth.test")).data)
        return self._identity

    async def team_id(self) -> str:
        return str((await self.identity())["team_id"])

    async def call(self, method: str, **params: Any) -> Any:
        """One Web API call; waits out short 429s, raises RetryLater for long ones."""
        # Slack allows about one message per second per channel; pace what writes messages.
        channel = params.get("channel") if method in PACED_METHODS else None
        for _ in range(3):
            if channel is not None:
                await self._pace(channel)
            try:
                return await self.client.api_call(method, json=_drop_none(params))
            except SlackApiError as error:
                status = error.response.status_code
                if status == 429:
                    wait = _retry_after(error)
                    if channel is not None:
                        self._next_slot[channel] = time.monotonic() + wait
                    if wait > self.max_inline_wait:
                        raise RetryLater(f"Slack rate limit on {method}", wait) from error
                    if channel is None:
                        await asyncio.sleep(wait)
                    continue
                if status >= 500:
                    # Slack answered, so the post is not in flight; a marked post is still
                    # looked for before the next attempt.
                    raise RetryLater(f"Slack {method}: HTTP {status}", 5) from error
                raise
            except (TimeoutError, ClientError) as error:
                if method == "chat.postMessage":
                    raise UncertainPost(f"{method}: {type(error).__name__}") from error
                raise RetryLater(f"Slack {method}: {type(error).__name__}", 5) from error
        raise RetryLater(f"Slack keeps rate-limiting {method}", self.interval * 5)

    async def _pace(self, channel: str) -> None:
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            delay = self._next_slot.get(channel, 0.0) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next_slot[channel] = time.monotonic() + self.interval

    async def post(
        self,
        channel: str,
        text: str,
        blocks: list[kit.Block],
        *,
        thread_ts: str | None = None,
        marker: str | None = None,
    ) -> str:
        """Post a message and return its ts; with a marker, at most once whatever happens.

        The attempt is recorded before the call. A later attempt under the same marker first
        looks for the message in Slack; if it cannot tell, it gives up loudly rather than risk
        a double post.
        """
        if marker is not None and self.db is not None and not await self._record_attempt(marker):
            found, checked = await self.find(channel, marker, thread_ts)
            if found is not None:
                await self._finish_attempt(marker, found)
                return found
            if not checked:
                raise PermanentFailure(
                    f"an earlier post to {channel} may have gone through and Slack cannot "
                    "say; not posting again (check the channel, then retry)"
                )
        try:
            answer = await self.call(
                "chat.postMessage",
                channel=channel,
                text=kit.clip(text, 39_000),
                blocks=blocks,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
        except UncertainPost as error:
            if marker is None:
                # No marker, no way to tell: a second copy is worse than a visible failure.
                raise PermanentFailure(f"{error}; not retried to avoid a double post") from error
            found, _ = await self.find(channel, marker, thread_ts)
            if found is not None:
                await self._finish_attempt(marker, found)
                return found
            raise RetryLater(f"{error}; will check Slack before any new post", 5) from error
        ts = str(answer["ts"])
        if marker is not None:
            await self._finish_attempt(marker, ts)
        return ts

    async def find(
        self, channel: str, marker: str, thread_ts: str | None
    ) -> tuple[str | None, bool]:
        """(ts of our message carrying `marker` or None, whether Slack could be checked)."""
        try:
            if thread_ts is not None:
                answer = await self.call("conversations.replies", ts=thread_ts, channel=channel)
            else:
                answer = await self.call("conversations.history", channel=channel, limit=200)
        except (SlackApiError, RetryLater) as error:
            log.warning("cannot look for an earlier post in %s: %s", channel, error)
            return None, False
        messages = answer.get("messages")
        if not isinstance(messages, list):
            return None, False
        for message in messages:
            if kit.has_marker(message, marker):
                return str(message["ts"]), True
        return None, True

    async def _record_attempt(self, marker: str) -> bool:
        assert self.db is not None
        async with self.db.uow() as uow:
            first = await uow.inbox.record(POST_SOURCE, marker)
            await uow.commit()
        return first

    async def _finish_attempt(self, marker: str, ts: str) -> None:
        if self.db is None:
            return
        async with self.db.uow() as uow:
            await uow.inbox.mark(POST_SOURCE, marker, "done", error=None)
            await uow.commit()
        log.debug("posted %s as %s", marker, ts)


def _drop_none(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _retry_after(error: SlackApiError) -> float:
    raw = error.response.headers.get("retry-after") or error.response.headers.get("Retry-After")
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    try:
        return max(float(raw), 0.0) if raw is not None else 1.0
    except ValueError:
        return 1.0


def slack_error(error: SlackApiError) -> str:
    return str(error.response.get("error") or error)
