"""The web chat's rate limits: messages and uploads per visitor, messages and new visitors
per client address.

Every message a visitor sends can reach the agents' Slack channel, and a new visitor costs
nothing to make, so both are counted. The counters are behind the `RateLimiter` port
(core/db/ratelimit.py): on PostgreSQL every replica shares them. A refusal answers 429 with
`Retry-After` and an `error` the page shows as it is (bots/static/chat.js); over the
WebSocket the same `error` comes as a message and the socket stays open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection

from admin_api.ratelimit import client_address
from core.config import Settings
from core.db.database import Database
from core.db.ratelimit import InProcessRateLimiter, rate_limiter_for
from core.ports import RateLimit, RateLimiter


@dataclass(frozen=True, slots=True)
class TooFast:
    """A refused request: how long to wait and what the visitor reads."""

    wait: int
    error: str

    @property
    def body(self) -> dict[str, Any]:
        return {"error": self.error, "retry_after": self.wait}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=429, headers={"Retry-After": str(self.wait)})


@dataclass(frozen=True, slots=True)
class WebChatLimits:
    limiter: RateLimiter
    messages: RateLimit  # per visitor
    address_messages: RateLimit  # per client address
    sessions: RateLimit  # new visitors per client address
    uploads: RateLimit  # per visitor

    @classmethod
    def from_settings(cls, settings: Settings, db: Database) -> WebChatLimits:
        s = settings
        return cls(
            limiter=rate_limiter_for(db),
            messages=RateLimit("chat.messages", s.webchat_messages_per_minute, 60),
            address_messages=RateLimit(
                "chat.address_messages", s.webchat_address_messages_per_minute, 60
            ),
            sessions=RateLimit("chat.sessions", s.webchat_sessions_per_10_minutes, 600),
            uploads=RateLimit("chat.uploads", s.webchat_uploads_per_10_minutes, 600),
        )

    @classmethod
    def off(cls) -> WebChatLimits:
        return cls(
            limiter=InProcessRateLimiter(),
            messages=RateLimit("chat.messages", 0, 60),
            address_messages=RateLimit("chat.address_messages", 0, 60),
            sessions=RateLimit("chat.sessions", 0, 600),
            uploads=RateLimit("chat.uploads", 0, 600),
        )

    async def message(self, visitor: str, connection: HTTPConnection) -> TooFast | None:
        wait = await self.limiter.hit(self.messages, visitor) or await self.limiter.hit(
            self.address_messages, client_address(connection)
        )
        return _refused(wait, f"You are sending messages too fast. Please wait {_time(wait)}.")

    async def upload(self, visitor: str, connection: HTTPConnection) -> TooFast | None:
        wait = await self.limiter.hit(self.uploads, visitor)
        return _refused(wait, f"You are sending files too fast. Please wait {_time(wait)}.")

    async def new_session(self, connection: HTTPConnection) -> TooFast | None:
        wait = await self.limiter.hit(self.sessions, client_address(connection))
        return _refused(
            wait, f"Too many new chats from your network. Please try again in {_time(wait)}."
        )


def _refused(wait: int, error: str) -> TooFast | None:
    return TooFast(wait, error) if wait else None


def _time(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{-(-seconds // 60)} minutes"
