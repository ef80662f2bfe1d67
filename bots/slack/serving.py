"""Serving Slack: the HTTP route with its checks before bolt, Socket Mode, and the plug that
builds the desk, the DM channel and the bolt app once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_sdk.web.async_client import AsyncWebClient
from starlette.types import Message

from bots.channels import Mail, PlugStart, TurnEngine
from bots.slack.api import SlackApi
from bots.slack.desk import SlackDesk
from bots.slack.dm import SlackChannel
from bots.slack.files import SlackFiles
from bots.slack.inbound import SlackInbound
from core import jsonguard
from core.config import Settings
from core.db.database import Database
from core.files import FileLinks
from core.jsonguard import RefusedBody, read_capped
from core.ports import FileStore

log = logging.getLogger("careline.slack")

#: Slack's requests are small: a message is at most 40,000 characters and an interaction
#: carries one message of at most 50 blocks (https://docs.slack.dev/reference/block-kit/blocks).
#: 1 MiB leaves room for both and keeps a forged 10 MB post out of memory and out of bolt.
MAX_BODY = 1024 * 1024
BOLT_REFUSAL = '{"error":"invalid request"}'  # what bolt answers a bad signature, with 401
_ID_FIELDS = ("user", "team", "channel", "enterprise")


def _malformed(body: bytes, content_type: str) -> str | None:
    """Why a body can't be a Slack request, or None. Bolt assumes UTF-8 and Slack's shapes."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    if "json" in content_type or text.lstrip().startswith(("{", "[")):
        candidates = [text]
    else:  # form-encoded: interactivity sends its JSON in `payload`
        candidates = parse_qs(text).get("payload", [])
    for candidate in candidates:
        try:
            parsed = jsonguard.loads(candidate)
        except RefusedBody as refused:
            return str(refused)
        if not isinstance(parsed, dict):
            return "the body is not a JSON object"
        if (problem := _unexpected_shape(parsed)) is not None:
            return problem
    return None


def _unexpected_shape(payload: dict[str, Any]) -> str | None:
    """What bolt would trip over before the ack (it answers 500 then), or None.

    Bolt reads these fields as Slack documents them (e.g. `event.get(...)`,
    `len(authorizations)`, `actions[0]["action_id"]`) before any of our code runs.
    """
    event = payload.get("event", {})
    if not isinstance(event, dict) or not isinstance(event.get("type", ""), str):
        return "`event` is not an event object"
    for where, part in (("", payload), ("event.", event)):
        for name in _ID_FIELDS:
            if not isinstance(part.get(name), str | dict | None):
                return f"`{where}{name}` is neither an id nor an object"
    if not _objects(payload.get("authorizations", [])):
        return "`authorizations` is not a list of objects"
    actions = payload.get("actions", [])
    if not _objects(actions):
        return "`actions` is not a list of objects"
    named = actions and all(isinstance(a.get("action_id"), str) for a in actions)
    if payload.get("type") == "block_actions" and not named:
        return "a block_actions payload needs actions with an `action_id`"
    return None


def _objects(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


async def _checked_body(request: Request) -> bytes:
    """The body, read with a cap and checked the way bolt will read it, or RefusedBody."""
    declared = request.headers.get("content-length")
    body = await read_capped(request.stream(), declared=declared, limit=MAX_BODY)
    problem = _malformed(body, request.headers.get("content-type", ""))
    if problem is not None:
        raise RefusedBody(problem)
    return body


def _timestamp_unreadable(request: Request) -> bool:
    """X-Slack-Request-Timestamp present but not a number (slack_sdk's int() raises on it)."""
    timestamp = request.headers.get("x-slack-request-timestamp")
    if timestamp is None:
        return False  # bolt reads it as 0: too old, refused
    try:
        int(timestamp)
    except ValueError:
        return True
    return False


def _with_body(request: Request, body: bytes) -> Request:
    """The same request, its body already read and checked, for bolt to read again."""

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


def _drop(record: logging.LogRecord) -> bool:
    return False


def quiet_bolt_verification() -> None:
    """Silence bolt's log line about a bad signature: it holds the whole unauthenticated body.

    slack_bolt/middleware/request_verification/request_verification.py `_debug_log_error`
    logs it at INFO, and bolt resets that logger's level whenever it builds the middleware,
    so a filter drops it; `slack_router` logs the refusal itself, without the body.
    """
    logging.getLogger("slack_bolt.RequestVerification").addFilter(_drop)


def slack_router(inbound: SlackInbound) -> APIRouter:
    """`/slack/events`, `/slack/interactions`, `/slack/commands` for the server to mount.

    Bolt checks the signature and timestamp (401 otherwise), answers url_verification and acks.
    Before bolt sees a request, its body is read with a cap (413) and checked (400): bolt
    logs and parses what it is given.
    """
    quiet_bolt_verification()
    handler = AsyncSlackRequestHandler(inbound.app)
    router = APIRouter(prefix="/slack", include_in_schema=False)

    async def receive(request: Request) -> Response:
        try:
            body = await _checked_body(request)
        except RefusedBody as refused:  # its text names what is wrong, never the body's text
            log.warning("slack: refused a request to %s: %s", request.url.path, refused)
            return Response(str(refused), status_code=refused.status, media_type="text/plain")
        if _timestamp_unreadable(request):
            response = Response(BOLT_REFUSAL, status_code=401, media_type="application/json")
        else:
            response = await handler.handle(_with_body(request, body))
        if response.status_code == 401:
            log.warning(
                "slack: refused a request to %s: bad or stale signature (%d bytes)",
                request.url.path,
                len(body),
            )
        return response

    for path in ("/events", "/interactions", "/commands"):
        router.add_api_route(path, receive, methods=["POST"])
    return router


async def start_socket_mode(inbound: SlackInbound, app_token: str) -> Any:
    """Connect over Socket Mode (local development); `await handler.close_async()` to stop."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    handler = AsyncSocketModeHandler(inbound.app, app_token)
    try:
        # The SDK's connect() retries a refused apps.connections.open forever, so a wrong token
        # (e.g. the xoxb- bot token) would hang start-up; ask once here and fail loudly instead.
        handler.client.wss_uri = await handler.client.issue_new_wss_url()
        await handler.connect_async()
    except BaseException:
        await handler.close_async()  # its aiohttp session and message processor
        raise
    return handler


@dataclass
class Slack:
    """Everything Slack, built once at start-up; a channel plug (bots.channels.ChannelPlug):
    the agents' desk, and the customers' DMs."""

    api: SlackApi
    desk: SlackDesk
    inbound: SlackInbound
    channel: SlackChannel
    app_token: str | None = None  # Socket Mode (development)
    socket: Any = None
    mail: Mail | None = None  # a chat, not the mail

    def routes(self) -> list[Any]:
        return [slack_router(self.inbound)]

    def register(self, handlers: Any) -> None:
        self.desk.register(handlers)

    async def start(self, start: PlugStart) -> list[asyncio.Task[None]]:
        """Where events are received and the engine runs: replay what a crash left, now and
        later (a delivery whose process died, or that failed after Slack's last retry)."""
        self.inbound.engine = start.engine
        if not start.receives:
            return []
        try:
            await self.inbound.replay_pending()
        except Exception as exc:  # Slack or the database briefly down: the loop retries
            log.warning("could not replay pending Slack events (%s)", type(exc).__name__)
        replay = self.inbound.replay_forever(start.stopping)
        if self.app_token is not None:
            self.socket = await start_socket_mode(self.inbound, self.app_token)
        return [asyncio.create_task(replay, name="slack-replay")]

    async def stop(self, grace: float) -> None:
        if self.socket is not None:
            await self.socket.close_async()


def slack_client(
    settings: Settings, *, timeout: int = 10, token: str | None = None
) -> AsyncWebClient:
    """The bot's client, or with `token` another's (the erasure token)."""
    assert settings.slack_bot_token is not None
    # No retry handlers: a blind retry of chat.postMessage after a dropped connection can post
    # twice; SlackApi decides what is safe to repeat.
    return AsyncWebClient(
        token=token or settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=timeout,
        retry_handlers=[],
    )


def build_slack(
    settings: Settings,
    db: Database,
    store: FileStore | None = None,
    links: Callable[[], FileLinks | None] = lambda: None,
    *,
    engine: TurnEngine | None = None,
    interval: float = 1.0,
    timeout: int = 10,
) -> Slack:
    """The Slack parts from settings (`settings.slack_enabled` must be true)."""
    assert settings.slack_signing_secret is not None and settings.slack_bot_token is not None
    api = SlackApi(slack_client(settings, timeout=timeout), db=db, interval=interval)
    channel = SlackChannel(api)
    files = SlackFiles(
        store,
        settings.slack_bot_token.get_secret_value(),
        api_url=settings.slack_api_url,
        max_bytes=settings.max_upload_bytes,
        links=links,
        link_ttl_seconds=settings.chat_file_link_days * 24 * 3600,
    )
    desk = SlackDesk(
        db,
        api,
        default_channel=settings.slack_support_channel,
        routing=settings.slack_routing,
        files=files,
        eraser=(
            SlackApi(
                slack_client(settings, timeout=timeout, token=erasure.get_secret_value()),
                interval=interval,
            )
            if (erasure := settings.slack_erasure_token) is not None
            else None
        ),
    )
    inbound = SlackInbound(
        db,
        api,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        token=settings.slack_bot_token.get_secret_value(),
        engine=engine,
        customers=channel,
        files=files,
    )
    app_token = settings.slack_app_token
    return Slack(
        api=api,
        desk=desk,
        inbound=inbound,
        channel=channel,
        app_token=app_token.get_secret_value() if app_token is not None else None,
    )
