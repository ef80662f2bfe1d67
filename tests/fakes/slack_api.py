"""Fake Slack Web API checking arguments and Block Kit, answering in the shapes of
``slack_samples/api``.

Usage with the real slack_sdk::

    with FakeSlack() as fake:
        client = AsyncWebClient(token="xoxb-test", base_url=f"{fake.url}/api/")
        posted = await client.chat_postMessage(channel="C0DESK", text="CR-1042 opened")
        await client.chat_postMessage(channel="C0DESK", thread_ts=posted["ts"], text="note")
        fake.assert_no_violations()

A call without a token answers ``not_authed``; a broken one answers ``ok: false`` with
Slack's error code (``invalid_arguments``, ``no_text``, ``invalid_blocks``, ...) and is kept
in ``fake.violations``. Faults: ``fake.fail_rate_limited("chat.postMessage", 3)`` (429 +
Retry-After), ``fake.fail_server_error(...)``, ``fake.delay(method, seconds)``.
Seed state with ``fake.add_user(...)`` and ``fake.add_message(...)``. A shared file:
``fake.add_file(name, content, mimetype)`` (or ``POST /_fake/files`` with JSON name,
mimetype, content_base64) returns its file object for an event's ``files``; its
``url_private_download`` serves the bytes to the bot token only, and answers anything else
with Slack's sign-in page (HTML, status 200) as files.slack.com does.
Socket Mode: set ``fake.socket_url`` to a local WebSocket server; ``apps.connections.open``
answers it to an app-level token (``xapp-``) and refuses bot tokens as Slack does.
As a subprocess: ``python -m tests.fakes.slack_api --port 0``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any

from aiohttp import web

from tests.fakes.contracts import Call, FakeServer, serve_main

BLOCK_TYPES = {
    "section",
    "divider",
    "image",
    "actions",
    "context",
    "input",
    "header",
    "file",
    "rich_text",
    "video",
    "markdown",
    "call",
    "table",
    "context_actions",
}
TEXT_TYPES = {"mrkdwn", "plain_text"}
ELEMENT_TYPES = {
    "button",
    "checkboxes",
    "datepicker",
    "datetimepicker",
    "email_text_input",
    "image",
    "multi_static_select",
    "multi_users_select",
    "multi_conversations_select",
    "multi_channels_select",
    "multi_external_select",
    "number_input",
    "overflow",
    "plain_text_input",
    "radio_buttons",
    "static_select",
    "external_select",
    "users_select",
    "conversations_select",
    "channels_select",
    "timepicker",
    "url_text_input",
    "rich_text_input",
    "file_input",
}
MAX_TEXT = 40_000
# Required arguments per method (Slack's docs); a tuple means "one of these".
REQUIRED: dict[str, list[str | tuple[str, ...]]] = {
    "chat.postMessage": ["channel", ("text", "blocks", "attachments")],
    "chat.update": ["channel", "ts"],
    "chat.postEphemeral": ["channel", "user", ("text", "blocks", "attachments")],
    "reactions.add": ["channel", "timestamp", "name"],
    "users.info": ["user"],
    "users.lookupByEmail": ["email"],
    "conversations.open": [("channel", "users")],
    "conversations.replies": ["channel", "ts"],
    "conversations.history": ["channel"],
    "chat.delete": ["channel", "ts"],
    "files.delete": ["file"],
    "views.open": ["view", ("trigger_id", "interactivity_pointer")],
}


def block_problems(blocks: Any, limit: int = 50) -> list[str]:
    """Block Kit problems (empty list = valid), in the spirit of Slack's invalid_blocks."""
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return ["blocks is not valid JSON"]
    if not isinstance(blocks, list):
        return ["blocks must be an array"]
    problems = [] if len(blocks) <= limit else [f"no more than {limit} items allowed"]
    action_ids: set[str] = set()
    block_ids: set[str] = set()
    for index, block in enumerate(blocks):
        where = f"[json-pointer:/blocks/{index}]"
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            problems.append(f"unknown block type {where}")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in block_ids or len(str(block_id)) > 255:
                problems.append(f"block_id must be unique and <= 255 chars {where}")
            block_ids.add(block_id)
        problems += _block_body_problems(block, where, action_ids)
    return problems


def _text_problems(text: Any, where: str, limit: int, plain_only: bool = False) -> list[str]:
    if not isinstance(text, dict) or text.get("type") not in TEXT_TYPES:
        return [f"must be a text object (mrkdwn or plain_text) {where}"]
    if plain_only and text["type"] != "plain_text":
        return [f"must be a plain_text object {where}"]
    value = text.get("text")
    if not isinstance(value, str) or not value:
        return [f"must be more than 0 characters {where}/text"]
    if len(value) > limit:
        return [f"must be less than {limit + 1} characters {where}/text"]
    return []


def _element_problems(element: Any, where: str, action_ids: set[str]) -> list[str]:
    if not isinstance(element, dict) or element.get("type") not in ELEMENT_TYPES:
        return [f"unknown element type {where}"]
    problems: list[str] = []
    action_id = element.get("action_id")
    if action_id is not None:
        if action_id in action_ids:
            problems.append(f"action_id {action_id!r} already exists {where}")
        if len(str(action_id)) > 255:
            problems.append(f"action_id must be <= 255 characters {where}")
        action_ids.add(action_id)
    if element["type"] == "button":
        problems += _text_problems(element.get("text"), f"{where}/text", 75, plain_only=True)
        if len(str(element.get("value", ""))) > 2000:
            problems.append(f"must be less than 2001 characters {where}/value")
        if len(str(element.get("url", ""))) > 3000:
            problems.append(f"must be less than 3001 characters {where}/url")
        if element.get("style") not in (None, "primary", "danger"):
            problems.append(f"style must be primary or danger {where}/style")
    return problems


def _block_body_problems(block: dict[str, Any], where: str, action_ids: set[str]) -> list[str]:
    kind = block["type"]
    problems: list[str] = []
    if kind == "section":
        if "text" not in block and "fields" not in block:
            problems.append(f"must provide text or fields {where}")
        if "text" in block:
            problems += _text_problems(block["text"], f"{where}/text", 3000)
        fields = block.get("fields", [])
        if not isinstance(fields, list) or len(fields) > 10:
            problems.append(f"fields must be an array of at most 10 {where}/fields")
        else:
            for i, field in enumerate(fields):
                problems += _text_problems(field, f"{where}/fields/{i}", 2000)
        if "accessory" in block:
            problems += _element_problems(block["accessory"], f"{where}/accessory", action_ids)
    elif kind == "header":
        problems += _text_problems(block.get("text"), f"{where}/text", 150, plain_only=True)
    elif kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
            problems.append(f"elements must be 1-25 items {where}/elements")
        else:
            for i, element in enumerate(elements):
                problems += _element_problems(element, f"{where}/elements/{i}", action_ids)
    elif kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
            problems.append(f"elements must be 1-10 items {where}/elements")
        else:
            for i, element in enumerate(elements):
                if isinstance(element, dict) and element.get("type") == "image":
                    continue
                problems += _text_problems(element, f"{where}/elements/{i}", 3000)
    elif kind == "image":
        if not block.get("alt_text") or not (block.get("image_url") or block.get("slack_file")):
            problems.append(f"image needs image_url and alt_text {where}")
    elif kind == "input":
        problems += _text_problems(block.get("label"), f"{where}/label", 2000, plain_only=True)
        problems += _element_problems(block.get("element"), f"{where}/element", action_ids)
    return problems


class FakeSlack(FakeServer):
    """Fake Slack Web API server (see the module docstring)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        team_id: str = "T0CARELINE",
        bot_user_id: str = "U0BOT0001",
        bot_id: str = "B0BOT0001",
    ) -> None:
        super().__init__(host, port)
        self.token = token
        self.team_id, self.bot_user_id, self.bot_id = team_id, bot_user_id, bot_id
        self.users: dict[str, dict[str, Any]] = {}
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.socket_url: str | None = None  # what apps.connections.open hands out
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        # User tokens (xoxp-) and whose they are; a workspace admin may delete anyone's
        # messages and files, a member only their own, a bot only the bot's.
        self.user_tokens: dict[str, str] = {}
        self.admins: set[str] = set()
        self.file_downloads: list[tuple[str, bool]] = []  # (file id, with the bot token)
        self._state = threading.Lock()
        self._ts = itertools.count(100)

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self.handle_method)
        app.router.add_get("/files-pri/{key}/{rest:.+}", self.handle_file)
        app.router.add_post("/_fake/files", self._control_add_file)

    # -- test-facing helpers ---------------------------------------------------------------
    def next_ts(self) -> str:
        with self._state:
            return f"1700000000.{next(self._ts):06d}"

    def add_user(self, user_id: str, email: str | None = None, name: str = "agent", **extra: Any):
        profile = {"real_name": name, "display_name": name, "email": email or ""}
        self.users[user_id] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": False,
            "real_name": name,
            "tz": "Europe/Berlin",
            "tz_label": "CET",
            "tz_offset": 3600,
            "is_bot": False,
            "is_admin": False,
            "updated": int(time.time()),
            "profile": profile,
            **extra,
        }
        return self.users[user_id]

    def add_user_token(self, user_id: str, *, admin: bool = False) -> str:
        """A user token (xoxp-) of `user_id`, a workspace admin or not."""
        token = f"xoxp-{len(self.user_tokens) + 1}-{user_id.lower()}"
        self.user_tokens[token] = user_id
        if admin:
            self.admins.add(user_id)
        return token

    def add_message(
        self,
        channel: str,
        text: str,
        user: str = "U0AGENT01",
        thread_ts: str | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Seed a message (e.g. an agent's reply) so replies/update calls can see it."""
        ts = self.next_ts()
        message = {"type": "message", "user": user, "text": text, "ts": ts, "team": self.team_id}
        if thread_ts:
            message["thread_ts"] = thread_ts
        if files:
            message["files"], message["upload"] = files, False
        self.messages[(channel, ts)] = message
        return message

    def add_file(
        self, name: str, content: bytes, mimetype: str, user: str = "U0AGENT01"
    ) -> dict[str, Any]:
        """A file someone shared, as the `files` of a message event carry it."""
        file_id = f"F0{len(self.files) + 1:08d}"
        now = int(time.time())
        base = f"{self.url}/files-pri/{self.team_id}-{file_id}"
        file = {
            "id": file_id,
            "created": now,
            "timestamp": now,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1].lower() if "." in name else "binary",
            "pretty_type": mimetype,
            "user": user,
            "user_team": self.team_id,
            "editable": False,
            "size": len(content),
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{base}/{name}",
            "url_private_download": f"{base}/download/{name}",
            "permalink": f"https://careline-test.slack.com/files/{user}/{file_id}/{name}",
            "permalink_public": f"https://slack-files.com/{self.team_id}-{file_id}-0",
            "has_rich_preview": False,
            "file_access": "visible",
        }
        self.files[file_id] = (file, content)
        return file

    async def handle_file(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["key"].rpartition("-")[2]
        auth = request.headers.get("Authorization", "")
        authorised = self.token is None or auth == f"Bearer {self.token}"
        authorised = authorised and auth.startswith("Bearer xoxb-")
        self.file_downloads.append((file_id, authorised))
        if not authorised or file_id not in self.files:
            page = "<!DOCTYPE html><html><body>Sign in to Slack</body></html>"
            return web.Response(text=page, content_type="text/html")
        file, content = self.files[file_id]
        return web.Response(body=content, content_type=file["mimetype"])

    async def _control_add_file(self, request: web.Request) -> web.Response:
        import base64

        spec = await request.json()
        content = base64.b64decode(spec["content_base64"])
        user = spec.get("user", "U0AGENT01")
        return web.json_response(self.add_file(spec["name"], content, spec["mimetype"], user))

    def posted(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Parameters of successful chat.postMessage calls."""
        return [
            c.params
            for c in self.calls_to("chat.postMessage")
            if c.status == 200 and c.params.get("_ok") and channel in (None, c.params["channel"])
        ]

    def fail_rate_limited(self, method: str, retry_after: int = 1, times: int = 1) -> None:
        self.add_fault(
            method,
            status=429,
            times=times,
            headers={"Retry-After": str(retry_after)},
            body={"ok": False, "error": "ratelimited"},
        )

    def fail_server_error(self, method: str, times: int = 1) -> None:
        self.add_fault(method, status=500, times=times, body={"ok": False, "error": "fatal_error"})

    def delay(self, method: str, seconds: float, times: int = 1) -> None:
        self.add_fault(method, delay=seconds, times=times)

    # -- request handling ------------------------------------------------------------------
    async def _read(self, request: web.Request) -> tuple[dict[str, Any], str | None]:
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                params.update(
                    {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
                )
        for name in ("blocks", "attachments", "view", "users"):
            if isinstance(params.get(name), str) and params[name][:1] in "[{":
                params[name] = json.loads(params[name])
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
        return params, token or params.pop("token", None)

    async def handle_method(self, request: web.Request) -> web.Response:
        started = time.time()
        method = request.match_info["method"]
        params, token = await self._read(request)
        if not token:
            return self._fail(method, params, started, "not_authed", contract=False)
        if self.token and token != self.token and token not in self.user_tokens:
            return self._fail(method, params, started, "invalid_auth", contract=False)
        if (method == "apps.connections.open") != token.startswith("xapp-"):
            # App-level tokens only open Socket Mode connections, and only they can.
            return self._fail(method, params, started, "not_allowed_token_type", contract=False)
        problem = self._validate(method, params)
        if problem is not None:
            error, messages = problem
            return self._fail(method, params, started, error, messages=messages)
        fault = await self.apply_fault(method, params.get("channel"))
        if fault is not None:
            self.record(Call(method, params, started, fault.status or 200))
            return fault
        try:
            if method in ("chat.delete", "files.delete"):
                result = self._delete(method, params, self.user_tokens.get(token))
            else:
                result = self._answer(method, params)
        except _SlackError as error:
            return self._fail(method, params, started, error.code, contract=False)
        self.record(Call(method, {**params, "_ok": True}, started))
        return web.json_response({"ok": True, **result})

    def _fail(
        self,
        method: str,
        params: dict[str, Any],
        started: float,
        error: str,
        messages: list[str] | None = None,
        contract: bool = True,
    ) -> web.Response:
        if contract:
            for message in messages or [error]:
                self.violate(method, f"{error}: {message}" if messages else error, params)
        self.record(Call(method, params, started))
        body: dict[str, Any] = {"ok": False, "error": error}
        if messages:
            body["response_metadata"] = {"messages": [f"[ERROR] {m}" for m in messages]}
        return web.json_response(body)

    def _validate(self, method: str, params: dict[str, Any]) -> tuple[str, list[str]] | None:
        for required in REQUIRED.get(method, []):
            names = required if isinstance(required, tuple) else (required,)
            if not any(params.get(n) not in (None, "", []) for n in names):
                if "text" in names:
                    return "no_text", []
                return "invalid_arguments", [f"missing required field: {' or '.join(names)}"]
        if len(str(params.get("text", ""))) > MAX_TEXT:
            return "msg_too_long", []
        if "blocks" in params:
            problems = block_problems(params["blocks"])
            if problems:
                return "invalid_blocks", problems
        view = params.get("view")
        if method.startswith("views.") and isinstance(view, dict):
            problems = block_problems(view.get("blocks", []), limit=100)
            if view.get("type") not in ("modal", "home") or problems:
                return "invalid_arguments", problems or ["view type must be modal or home"]
        return None

    # -- results --------------------------------------------------------------------------
    def _message(self, params: dict[str, Any], ts: str) -> dict[str, Any]:
        message = {
            "bot_id": self.bot_id,
            "type": "message",
            "text": params.get("text", ""),
            "user": self.bot_user_id,
            "ts": ts,
            "team": self.team_id,
            "bot_profile": {
                "id": self.bot_id,
                "deleted": False,
                "name": "careline",
                "updated": int(time.time()),
                "app_id": "A0CARELINE",
                "team_id": self.team_id,
            },
        }
        for name in ("blocks", "attachments", "thread_ts"):
            if name in params:
                message[name] = params[name]
        return message

    def _delete(self, method: str, params: dict[str, Any], user: str | None) -> dict[str, Any]:
        """chat.delete and files.delete, with Slack's rules on who may delete what."""
        if method == "chat.delete":
            key = (params["channel"], params["ts"])
            message = self.messages.get(key)
            if message is None:
                raise _SlackError("message_not_found")
            mine = message.get("bot_id") == self.bot_id if user is None else message["user"] == user
            if not mine and user not in self.admins:
                raise _SlackError("cant_delete_message")
            del self.messages[key]
            return {"channel": key[0], "ts": key[1]}
        found = self.files.get(params["file"])
        if found is None:
            raise _SlackError("file_not_found")
        if user is None or (found[0]["user"] != user and user not in self.admins):
            raise _SlackError("cant_delete_file")
        del self.files[params["file"]]
        return {}

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        match method:
            case "auth.test":
                return {
                    "url": "https://careline-test.slack.com/",
                    "team": "Careline",
                    "user": "careline",
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "bot_id": self.bot_id,
                    "is_enterprise_install": False,
                    "app_name": "Careline",
                    "app_id": "A0CARELINE",
                }
            case "chat.postMessage":
                message = self._message(params, self.next_ts())
                self.messages[(params["channel"], message["ts"])] = message
                return {"channel": params["channel"], "ts": message["ts"], "message": message}
            case "chat.update":
                key = (params["channel"], params["ts"])
                if key not in self.messages:
                    raise _SlackError("message_not_found")
                message = {**self.messages[key], **self._message(params, params["ts"])}
                message["edited"] = {"user": self.bot_user_id, "ts": self.next_ts()}
                self.messages[key] = message
                return {
                    "channel": key[0],
                    "ts": key[1],
                    "text": message["text"],
                    "message": message,
                }
            case "chat.postEphemeral":
                return {"message_ts": self.next_ts()}
            case "apps.connections.open":
                if self.socket_url is None:
                    raise _SlackError("socket_mode_not_enabled")
                return {"url": self.socket_url}
            case "reactions.add":
                if (params["channel"], params["timestamp"]) not in self.messages:
                    raise _SlackError("message_not_found")
                return {}
            case "users.info":
                # Events only carry real user ids, so any id asked about is made up on demand.
                user = self.users.get(params["user"]) or self.add_user(params["user"])
                return {"user": user}
            case "users.lookupByEmail":
                for user in self.users.values():
                    if user["profile"]["email"] == params["email"]:
                        return {"user": user}
                raise _SlackError("users_not_found")
            case "conversations.open":
                users = params.get("users") or ""
                user = users.split(",")[0] if isinstance(users, str) else users[0]
                return {
                    "channel": {
                        "id": "D" + user.removeprefix("U")[:10],
                        "created": 1700000000,
                        "is_im": True,
                        "is_org_shared": False,
                        "user": user,
                        "is_archived": False,
                        "is_open": True,
                        "priority": 0,
                    },
                    "no_op": True,
                    "already_open": True,
                }
            case "conversations.replies":
                parent = self.messages.get((params["channel"], params["ts"]))
                if parent is None:
                    raise _SlackError("thread_not_found")
                replies = [
                    m
                    for (ch, _), m in sorted(self.messages.items())
                    if ch == params["channel"]
                    and m.get("thread_ts") == params["ts"]
                    and m is not parent
                ]
                return {
                    "messages": [parent, *replies],
                    "has_more": False,
                    "response_metadata": {"next_cursor": ""},
                }
            case "conversations.history":
                # Top-level messages, newest first (thread replies are not in the history).
                found = [
                    m
                    for (ch, ts), m in sorted(self.messages.items(), reverse=True)
                    if ch == params["channel"] and m.get("thread_ts") in (None, ts)
                ]
                limit = int(params.get("limit") or 100)
                return {
                    "messages": found[:limit],
                    "has_more": len(found) > limit,
                    "pin_count": 0,
                    "channel_actions_ts": None,
                    "channel_actions_count": 0,
                    "response_metadata": {"next_cursor": ""},
                }
            case "views.open":
                view = params["view"]
                return {
                    "view": {
                        "id": "V0" + self.next_ts().replace(".", "")[-8:],
                        "team_id": self.team_id,
                        **view,
                    }
                }
        return {}


class _SlackError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


if __name__ == "__main__":
    serve_main(FakeSlack)
