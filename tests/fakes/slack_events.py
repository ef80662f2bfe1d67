"""Build signed Slack requests: Events API envelopes, block_actions and slash commands.

Usage::

    events = SlackEvents(signing_secret="s3cret")
    body = events.thread_reply(channel="C0DESK", thread_ts="1700000000.000100", text="On it")
    headers = events.sign(body)                       # X-Slack-Signature + timestamp
    httpx.post(f"{careline}/slack/events", content=body, headers=headers)

    events.sign(body, secret="wrong")                 # a forged request
    events.sign(body, age=600)                        # a stale (replayed) request
    events.sign(body, retry_num=1, retry_reason="http_timeout")  # Slack's redelivery

Envelopes validate against ``slack_event_wrapper.schema.json`` (see tests/contract).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from typing import Any


class SlackEvents:
    """Factory of Slack request bodies (bytes) plus their signing headers."""

    def __init__(
        self,
        signing_secret: str = "test-signing-secret",
        team_id: str = "T0CARELINE",
        api_app_id: str = "A0CARELINE",
        bot_user_id: str = "U0BOT0001",
    ) -> None:
        self.signing_secret = signing_secret
        self.team_id, self.api_app_id, self.bot_user_id = team_id, api_app_id, bot_user_id
        self._seq = itertools.count(1)

    def _ts(self) -> str:
        return f"{int(time.time())}.{next(self._seq):06d}"

    # -- Events API --------------------------------------------------------------------------
    def envelope(self, event: dict[str, Any]) -> dict[str, Any]:
        """Wrap an event as an ``event_callback`` (dict; encode with :meth:`body`)."""
        event.setdefault("event_ts", event.get("ts") or self._ts())
        return {
            "token": "legacy-verification-token",
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{next(self._seq):08d}",
            "event_time": int(time.time()),
            "authed_users": [self.bot_user_id],
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{next(self._seq)}",
        }

    def message(self, channel: str, text: str, user: str = "U0AGENT01", **extra: Any):
        ts = self._ts()
        event = {
            "type": "message",
            "client_msg_id": f"c{ts}",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts,
            "team": self.team_id,
            "channel_type": "channel",
            "blocks": [
                {
                    "type": "rich_text",
                    "block_id": "b1",
                    "elements": [
                        {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
                    ],
                }
            ],
            **extra,
        }
        return self.envelope(event)

    def thread_reply(self, channel: str, thread_ts: str, text: str, user: str = "U0AGENT01"):
        """An agent's message in a ticket thread."""
        return self.message(
            channel, text, user, thread_ts=thread_ts, parent_user_id=self.bot_user_id
        )

    def file_share(
        self,
        channel: str,
        text: str,
        files: list[dict[str, Any]],
        user: str = "U0AGENT01",
        thread_ts: str | None = None,
        channel_type: str = "channel",
    ) -> dict[str, Any]:
        """A message with shared files (subtype ``file_share``), in a thread or a DM."""
        extra: dict[str, Any] = {"subtype": "file_share", "files": files, "upload": False}
        if thread_ts:
            extra |= {"thread_ts": thread_ts, "parent_user_id": self.bot_user_id}
        envelope = self.message(channel, text, user, **extra)
        envelope["event"]["channel_type"] = channel_type
        return envelope

    def direct_message(self, text: str, user: str = "U0CUSTOM1", channel: str = "D0CUSTOM1"):
        """message.im: a customer writing to the bot in a DM."""
        return self.message(channel, text, user, channel_type="im")

    def app_mention(self, channel: str, text: str, user: str = "U0AGENT01"):
        envelope = self.message(channel, f"<@{self.bot_user_id}> {text}", user)
        envelope["event"]["type"] = "app_mention"
        envelope["event"].pop("channel_type")
        return envelope

    def bot_message(self, channel: str, text: str, bot_id: str = "B0BOT0001"):
        """A message from a bot (e.g. Careline's own post echoed back)."""
        ts = self._ts()
        event = {
            "type": "message",
            "subtype": "bot_message",
            "channel": channel,
            "text": text,
            "ts": ts,
            "bot_id": bot_id,
            "channel_type": "channel",
        }
        return self.envelope(event)

    def message_changed(self, channel: str, ts: str, new_text: str, user: str = "U0AGENT01"):
        event = {
            "type": "message",
            "subtype": "message_changed",
            "channel": channel,
            "hidden": True,
            "ts": self._ts(),
            "channel_type": "channel",
            "message": {
                "type": "message",
                "user": user,
                "text": new_text,
                "ts": ts,
                "edited": {"user": user, "ts": self._ts()},
            },
            "previous_message": {"type": "message", "user": user, "text": "(before)", "ts": ts},
        }
        return self.envelope(event)

    @staticmethod
    def url_verification(challenge: str = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"):
        return {
            "token": "legacy-verification-token",
            "challenge": challenge,
            "type": "url_verification",
        }

    # -- interactivity and commands ------------------------------------------------------------
    def block_action(
        self,
        action_id: str,
        value: str,
        user: str = "U0AGENT01",
        channel: str = "C0DESK",
        message_ts: str = "1700000000.000100",
    ) -> dict[str, Any]:
        """A button press (``block_actions``); encode with :meth:`interactive_body`."""
        action = {
            "type": "button",
            "action_id": action_id,
            "block_id": "b1",
            "value": value,
            "text": {"type": "plain_text", "text": value, "emoji": True},
            "action_ts": self._ts(),
        }
        return {
            "type": "block_actions",
            "team": {"id": self.team_id, "domain": "careline-test"},
            "user": {"id": user, "username": "agent", "name": "agent", "team_id": self.team_id},
            "api_app_id": self.api_app_id,
            "token": "legacy-verification-token",
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": False,
            },
            "trigger_id": f"{next(self._seq)}.1.abcdef",
            "channel": {"id": channel, "name": "support-desk"},
            "message": {
                "type": "message",
                "user": self.bot_user_id,
                "ts": message_ts,
                "text": "ticket",
            },
            "response_url": "https://hooks.slack.invalid/actions/T0/1/x",
            "actions": [action],
        }

    @staticmethod
    def interactive_body(payload: dict[str, Any]) -> bytes:
        """Interactivity arrives form-encoded with the JSON in a ``payload`` field."""
        return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()

    def slash_command(
        self, command: str, text: str = "", user: str = "U0AGENT01", channel: str = "C0DESK"
    ) -> bytes:
        """A slash command's form body, with the fields of slack_samples/app-backend."""
        fields = {
            "token": "legacy-verification-token",
            "api_app_id": self.api_app_id,
            "team_id": self.team_id,
            "team_domain": "careline-test",
            "channel_id": channel,
            "channel_name": "support-desk",
            "user_id": user,
            "user_name": "agent",
            "command": command,
            "text": text,
            "response_url": "https://hooks.slack.invalid/commands/T0/1/x",
            "trigger_id": f"{next(self._seq)}.1.abcdef",
            "is_enterprise_install": "false",
        }
        return urllib.parse.urlencode(fields).encode()

    # -- encoding and signing ----------------------------------------------------------------
    @staticmethod
    def body(payload: dict[str, Any]) -> bytes:
        return json.dumps(payload).encode()

    def sign(
        self,
        body: bytes | dict[str, Any],
        *,
        secret: str | None = None,
        age: int = 0,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
    ) -> dict[str, str]:
        """Headers of Slack's v0 signing scheme (plus content type and retry headers).

        ``age`` backdates the timestamp (Slack SDKs reject more than 5 minutes).
        """
        raw = self.body(body) if isinstance(body, dict) else body
        timestamp = str(int(time.time()) - age)
        base = b"v0:" + timestamp.encode() + b":" + raw
        key = (secret if secret is not None else self.signing_secret).encode()
        signature = "v0=" + hmac.new(key, base, hashlib.sha256).hexdigest()
        is_json = raw.startswith(b"{")
        headers = {
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature,
            "Content-Type": "application/json" if is_json else "application/x-www-form-urlencoded",
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason
        return headers
