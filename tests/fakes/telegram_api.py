"""Fake Telegram Bot API that checks every call against ``telegram_bot_api.json``.

What it checks: the method exists (case-insensitive, like Telegram), required parameters
are present, no unknown parameters, each value fits its declared type (objects such as
``InlineKeyboardMarkup`` are checked field by field against the types section), and
Telegram's own limits (text 1-4096, caption <= 1024, parse_mode, well-formed HTML,
MarkdownV2 reserved characters, callback_data 1-64 bytes, answerCallbackQuery text <= 200).
A violation answers 400 ``Bad Request: ...`` (an unknown method 404, as Telegram does) and is
kept in ``fake.violations``.

Usage with the real python-telegram-bot::

    with FakeTelegram() as fake:
        app = Application.builder().token(TOKEN).base_url(f"{fake.url}/bot").updater(None).build()
        async with app:
            await app.bot.send_message(42, "hello")
        assert fake.calls_to("sendMessage")[0].params["text"] == "hello"
        fake.assert_no_violations()

Faults: ``fake.fail_retry_after("sendMessage", 3)``, ``fake.fail_blocked(chat_id=42)``,
``fake.fail_server_error("sendMessage", times=2)``, ``fake.delay("sendMessage", 5.0)``.
Polling: ``fake.push_update(update)`` feeds ``getUpdates``. Webhooks: after the bot calls
``setWebhook``, ``await fake.deliver(update)`` posts to it with the secret header;
:func:`deliver_update` does the same for any URL, optionally retrying until 2xx like
Telegram does.

As a subprocess: ``python -m tests.fakes.telegram_api --port 0`` (prints its URL); push
updates with ``POST /_fake/updates`` (JSON update), a file for ``getFile`` with
``POST /_fake/files`` (JSON file_id, content_base64), see ``contracts.py`` for the rest.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import html
import json
import re
import threading
import time
from html.parser import HTMLParser
from typing import Any

import httpx
from aiohttp import web

from tests.fakes.contracts import Call, FakeServer, load_contract, serve_main

SPEC_FILE = "telegram_bot_api.json"
MAX_DEPTH = 12
PARSE_MODES = {"HTML", "MarkdownV2", "Markdown"}
HTML_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "tg-emoji",
    "code",
    "pre",
    "blockquote",
    "tg-time",
}
HTML_ENTITY = re.compile(r"&(?!(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);)")
MARKDOWN_V2_ALWAYS_ESCAPED = set(".!#+-={}")
MESSAGE_TEXT_METHODS = {"sendmessage", "editmessagetext"}
DEFAULT_TOKEN_PATTERN = re.compile(r"^\d+:[\w-]+$")


def spec() -> dict[str, Any]:
    return load_contract(SPEC_FILE)  # type: ignore[no-any-return,unused-ignore]


def _methods() -> dict[str, dict[str, Any]]:
    return {name.lower(): m for name, m in spec()["methods"].items()}


# -- type checking --------------------------------------------------------------------------


def check_object(value: Any, type_name: str, path: str = "", depth: int = 0) -> list[str]:
    """Problems of a decoded JSON value against a type of the Bot API (empty list = fits)."""
    types = spec()["types"]
    definition = types.get(type_name)
    if definition is None:
        return [f"{path or type_name}: unknown type {type_name}"]
    if "subtypes" in definition:
        results = [check_object(value, sub, path, depth) for sub in definition["subtypes"]]
        if any(not r for r in results):
            return []
        return [f"{path}: does not match any of {', '.join(definition['subtypes'])}"]
    if not isinstance(value, dict):
        return [f"{path}: must be a {type_name} object"]
    if depth > MAX_DEPTH:
        return []
    fields = {f["name"]: f for f in definition.get("fields", [])}
    problems = [
        f"{path}.{name}: field required in {type_name}".lstrip(".")
        for name, field in fields.items()
        if field["required"] and name not in value
    ]
    for name, item in value.items():
        where = f"{path}.{name}".lstrip(".")
        if name not in fields:
            problems.append(f"{where}: unknown field of {type_name}")
            continue
        problems += check_value(item, fields[name]["types"], where, depth + 1)
    return problems


def check_value(value: Any, declared: list[str], path: str, depth: int = 0) -> list[str]:
    """Problems of a JSON value against a union of declared types (empty when one fits)."""
    first: list[str] = []
    for type_name in declared:
        problems = _check_one(value, type_name, path, depth)
        if not problems:
            return []
        first = first or problems
    return first


def _check_one(value: Any, type_name: str, path: str, depth: int) -> list[str]:
    if type_name.startswith("Array of "):
        if not isinstance(value, list):
            return [f"{path}: must be an array"]
        inner = type_name.removeprefix("Array of ")
        for index, item in enumerate(value):
            problems = check_value(item, [inner], f"{path}[{index}]", depth)
            if problems:
                return problems
        return []
    simple = {
        "Integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "Float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "Boolean": lambda v: isinstance(v, bool),
        "True": lambda v: v is True,
        # Telegram coerces numbers where it wants strings.
        "String": lambda v: isinstance(v, str | int | float) and not isinstance(v, bool),
        "InputFile": lambda v: isinstance(v, str),
    }
    if type_name in simple:
        return [] if simple[type_name](value) else [f"{path}: must be {type_name}"]
    if type_name == "KeyboardButton" and isinstance(value, str):
        return []  # the Bot API accepts a bare string for a text-only button
    return check_object(value, type_name, path, depth)


def _decode_form_value(raw: str, declared: list[str]) -> Any:
    """Turn a form field into the JSON value it stands for, guided by the declared types."""
    wants_string = any(t in ("String", "InputFile") for t in declared)
    if wants_string and not any(t.startswith("Array") or t in spec()["types"] for t in declared):
        if "Integer" in declared and re.fullmatch(r"-?\d+", raw):
            return int(raw)
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        return raw


# -- Telegram's own limits -------------------------------------------------------------------


class _HtmlChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in HTML_TAGS:
            self.problems.append(f'Unsupported start tag "{tag}"')
        if tag == "span" and ("class", "tg-spoiler") not in attrs:
            self.problems.append('Tag "span" must have class "tg-spoiler"')
        if tag == "a" and not dict(attrs).get("href"):
            self.problems.append('Tag "a" must have attribute "href"')
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f'Unmatched end tag "{tag}"')
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def html_problems(text: str) -> tuple[list[str], str]:
    """Telegram's HTML parse errors (approximate) and the text left after parsing."""
    problems = []
    if HTML_ENTITY.search(text):
        problems.append("Can't parse entities: unsupported HTML entity or bare '&'")
    if re.search(r"<(?![a-zA-Z/])", text):
        problems.append("Can't parse entities: bare '<' must be written &lt;")
    checker = _HtmlChecker()
    checker.feed(text)
    checker.close()
    problems += [f"Can't parse entities: {p}" for p in checker.problems]
    if checker.stack:
        problems.append(
            f"Can't parse entities: can't find end tag corresponding to {checker.stack[-1]}"
        )
    return problems, html.unescape("".join(checker.text))


def markdown_v2_problems(text: str) -> list[str]:
    """Reserved characters Telegram insists on escaping outside code (the usual mistake)."""
    index, in_code = 0, False
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "`":
            in_code = not in_code
        elif not in_code and char in MARKDOWN_V2_ALWAYS_ESCAPED:
            return [
                f"Can't parse entities: Character '{char}' is reserved and must be "
                "escaped with the preceding '\\'"
            ]
        index += 1
    return []


def limit_problems(method: str, params: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    parse_mode = params.get("parse_mode")
    if parse_mode is not None and parse_mode not in PARSE_MODES:
        problems.append(f"unsupported parse_mode {parse_mode!r}")
    for name, limit in (("text", 4096), ("caption", 1024)):
        if name not in params or (name == "text" and method not in MESSAGE_TEXT_METHODS):
            continue
        text = str(params[name])
        visible = text
        if parse_mode == "HTML":
            found, visible = html_problems(text)
            problems += found
        elif parse_mode == "MarkdownV2":
            problems += markdown_v2_problems(text)
            visible = re.sub(r"\\(.)", r"\1", text)
        if name == "text" and not visible.strip():
            problems.append("message text is empty")
        if len(visible) > limit:
            problems.append(f"{'message' if name == 'text' else 'message caption'} is too long")
    if method == "answercallbackquery" and len(str(params.get("text", ""))) > 200:
        problems.append("answerCallbackQuery text is longer than 200 characters")
    markup = params.get("reply_markup")
    if isinstance(markup, dict):
        for row in markup.get("inline_keyboard", []) or []:
            for button in row if isinstance(row, list) else []:
                data = button.get("callback_data") if isinstance(button, dict) else None
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    problems.append("BUTTON_DATA_INVALID: callback_data must be 1-64 bytes")
    return problems


# -- the server ------------------------------------------------------------------------------


class FakeTelegram(FakeServer):
    """Fake Telegram Bot API server (see the module docstring)."""

    contract_files = (SPEC_FILE,)

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        bot_id: int = 7000000001,
        bot_username: str = "careline_test_bot",
        strict_edits: bool = True,
        limits: tuple[float, float] | None = None,
        chat_burst: int = 3,
        overall_slack: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.token = token
        # (overall, per chat) messages per second, enforced with 429 like Telegram (off by
        # default): overall, at most that many in any one second (plus `overall_slack`, for a
        # test whose senders share one process with the fake); per chat, GCRA with bursts of
        # `chat_burst`.
        self.limits = limits
        self.chat_burst = chat_burst
        self.overall_slack = overall_slack
        self._recent: collections.deque[float] = collections.deque()
        self.limited = 0  # 429s answered for the limits
        self.limited_by = {"bot": 0, "chat": 0}
        self._tat: dict[str, float] = {}
        self.bot = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Careline",
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.strict_edits = strict_edits
        self.webhook: dict[str, Any] = {}
        self.messages: dict[tuple[str, int], dict[str, Any]] = {}
        self.files: dict[str, bytes] = {}
        self._state = threading.Lock()
        self._next_id: dict[str, int] = {}
        self._updates: list[dict[str, Any]] = []
        self._arrived: asyncio.Event | None = None

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", r"/bot{token:[^/]+}/{method}", self.handle_method)
        app.router.add_get(r"/file/bot{token:[^/]+}/{path:.+}", self.handle_file)
        app.router.add_post("/_fake/updates", self._control_push)
        app.router.add_post("/_fake/files", self._control_add_file)

    # -- test-facing helpers ----------------------------------------------------------------
    def push_update(self, update: dict[str, Any]) -> None:
        """Queue an update for getUpdates (long polls waiting now are woken)."""
        with self._state:
            self._updates.append(update)
        self.call_in_loop(self._wake)

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        with self._state:
            return list(self._updates)

    def add_file(self, file_id: str, content: bytes) -> None:
        self.files[file_id] = content

    async def _control_add_file(self, request: web.Request) -> web.Response:
        spec = await request.json()
        self.add_file(spec["file_id"], base64.b64decode(spec["content_base64"]))
        return web.json_response({"ok": True})

    def sent_texts(self, chat_id: int | str | None = None) -> list[str]:
        """Texts of sendMessage calls that succeeded, optionally to one chat."""
        return [
            str(c.params.get("text"))
            for c in self.calls_to("sendMessage")
            if c.status == 200 and (chat_id is None or str(c.params.get("chat_id")) == str(chat_id))
        ]

    def fail_retry_after(
        self, method: str, seconds: int, times: int = 1, chat_id: int | str | None = None
    ) -> None:
        """Next call(s) get 429 Too Many Requests with parameters.retry_after."""
        self.add_fault(
            method,
            status=429,
            times=times,
            key=chat_id,
            body={
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {seconds}",
                "parameters": {"retry_after": seconds},
            },
        )

    def fail_blocked(
        self, method: str = "*", chat_id: int | str | None = None, times: int = 1_000_000
    ) -> None:
        """The user blocked the bot: 403 for calls to that chat (all calls by default)."""
        self.add_fault(
            method,
            status=403,
            times=times,
            key=chat_id,
            body={
                "ok": False,
                "error_code": 403,
                "description": "Forbidden: bot was blocked by the user",
            },
        )

    def fail_server_error(
        self, method: str, times: int = 1, chat_id: int | str | None = None
    ) -> None:
        body = {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        self.add_fault(method, status=500, times=times, key=chat_id, body=body)

    def delay(self, method: str, seconds: float, times: int = 1) -> None:
        """Next call(s) answer normally but only after ``seconds`` (for timeout tests)."""
        self.add_fault(method, delay=seconds, times=times)

    async def deliver(self, update: dict[str, Any], **options: Any) -> httpx.Response:
        """Post an update to the webhook the bot registered, with its secret header."""
        if not self.webhook.get("url"):
            raise RuntimeError("no webhook set: the bot has not called setWebhook")
        return await deliver_update(
            self.webhook["url"], update, self.webhook.get("secret_token"), **options
        )

    # -- internals ------------------------------------------------------------------------
    def _wake(self) -> None:
        if self._arrived is not None:
            self._arrived.set()
            self._arrived = None

    async def on_closing(self) -> None:
        self._wake()

    async def _control_push(self, request: web.Request) -> web.Response:
        self.push_update(await request.json())
        return web.json_response({"ok": True})

    async def handle_file(self, request: web.Request) -> web.Response:
        if self.token and request.match_info["token"] != self.token:
            return self._error(404, "Not Found")
        path = request.match_info["path"]
        file_id = path.rsplit("/", 1)[-1]
        return web.Response(body=self.files.get(file_id, b"fake file " + file_id.encode()))

    def _over_limit(self, chat_id: str) -> int:
        """0 when a send now keeps within both limits (and counts it), else seconds to wait."""
        assert self.limits is not None
        overall, per_chat = self.limits
        now = time.monotonic()
        checks = []
        if chat_id.lstrip("-").isdigit() and int(chat_id) > 0:
            checks.append((chat_id, 1 / per_chat, self.chat_burst - 1))
        with self._state:
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            if len(self._recent) >= overall + self.overall_slack:
                self.limited += 1
                self.limited_by["bot"] += 1
                return 1
            for key, interval, extra in checks:
                tat = max(self._tat.get(key, now), now)
                if tat - extra * interval > now + 0.005:
                    self.limited += 1
                    self.limited_by["chat"] += 1
                    return max(1, int(tat - extra * interval - now + 0.999))
            for key, interval, _ in checks:
                self._tat[key] = max(self._tat.get(key, now), now) + interval
            self._recent.append(now)
        return 0

    @staticmethod
    def _error(status: int, description: str, **extra: Any) -> web.Response:
        body = {"ok": False, "error_code": status, "description": description, **extra}
        return web.json_response(body, status=status)

    async def _read_params(self, request: web.Request) -> tuple[dict[str, Any], bool]:
        """Raw parameters and whether they came as form fields (strings)."""
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            body = await request.json() if request.can_read_body else {}
            params.update(body or {})
            return params, False
        if request.can_read_body:
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    content = value.file.read()
                    params[name] = {
                        "upload": value.filename,
                        "size": len(content),
                        "sha256": hashlib.sha256(content).hexdigest(),
                    }
                else:
                    params[name] = value
        return params, True

    async def handle_method(self, request: web.Request) -> web.Response:
        started = time.time()
        token, method_name = request.match_info["token"], request.match_info["method"]
        raw, from_form = await self._read_params(request)
        method = _methods().get(method_name.lower())
        params = raw
        if method is None:
            self.violate(method_name, "unknown method", raw)
            self.record(Call(method_name, raw, started, 404))
            return self._error(404, "Not Found")
        name = method["name"]
        if (self.token and token != self.token) or not DEFAULT_TOKEN_PATTERN.match(token):
            self.record(Call(name, raw, started, 401))
            return self._error(401, "Unauthorized")
        params, problems = self._validate(method, raw, from_form)
        if problems:
            for problem in problems:
                self.violate(name, problem, params)
            self.record(Call(name, params, started, 400))
            return self._error(400, f"Bad Request: {problems[0]}")
        fault = await self.apply_fault(name, _key(params))
        if fault is not None:
            self.record(Call(name, params, started, fault.status))
            return fault
        if self.limits is not None and name.startswith("send") and "chat_id" in params:
            wait = self._over_limit(str(params["chat_id"]))
            if wait:
                self.record(Call(name, params, started, 429))
                return self._error(
                    429,
                    f"Too Many Requests: retry after {wait}",
                    parameters={"retry_after": wait},
                )
        try:
            result = await self._answer(name, params)
        except _TelegramError as error:
            self.record(Call(name, params, started, error.status))
            return self._error(error.status, error.description)
        self.record(Call(name, params, started, 200, _message_id(result)))
        return web.json_response({"ok": True, "result": result})

    def _validate(
        self, method: dict[str, Any], raw: dict[str, Any], from_form: bool
    ) -> tuple[dict[str, Any], list[str]]:
        fields = {f["name"]: f for f in method.get("fields", [])}
        problems = [
            f"parameter {name} is required"
            for name, f in fields.items()
            if f["required"] and name not in raw
        ]
        params: dict[str, Any] = {}
        for name, value in raw.items():
            if name not in fields:
                problems.append(f"unknown parameter {name}")
                params[name] = value
                continue
            declared = fields[name]["types"]
            if isinstance(value, dict) and "upload" in value and "InputFile" in declared:
                params[name] = value
                continue
            decoded = (
                _decode_form_value(value, declared)
                if from_form and isinstance(value, str)
                else value
            )
            params[name] = decoded
            problems += [f"wrong type: {p}" for p in check_value(decoded, declared, name)]
        if not problems:
            problems = limit_problems(method["name"].lower(), params)
        return params, problems

    # -- results ----------------------------------------------------------------------------
    def _chat(self, chat_id: Any) -> dict[str, Any]:
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            return {
                "id": -1001000000000 - len(chat_id),
                "type": "channel",
                "title": chat_id[1:],
                "username": chat_id[1:],
            }
        number = int(chat_id)
        if number > 0:
            return {"id": number, "type": "private", "first_name": "Customer"}
        if number <= -1000000000000:
            return {"id": number, "type": "supergroup", "title": "Support group"}
        return {"id": number, "type": "group", "title": "Support group"}

    def _new_message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        chat = self._chat(params["chat_id"])
        key = str(chat["id"])
        with self._state:
            message_id = self._next_id.get(key, 0) + 1
            self._next_id[key] = message_id
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": self.bot,
            "chat": chat,
            "date": int(time.time()),
            **content,
        }
        if (
            isinstance(params.get("reply_markup"), dict)
            and "inline_keyboard" in params["reply_markup"]
        ):
            message["reply_markup"] = params["reply_markup"]
        self.messages[(key, message_id)] = message
        return message

    def _edit(self, params: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any] | bool:
        if "inline_message_id" in params:
            return True
        if "chat_id" not in params or "message_id" not in params:
            raise _TelegramError(400, "Bad Request: message identifier is not specified")
        key = (str(self._chat(params["chat_id"])["id"]), int(params["message_id"]))
        old = self.messages.get(key)
        if old is None:
            old = {
                "message_id": key[1],
                "from": self.bot,
                "chat": self._chat(params["chat_id"]),
                "date": int(time.time()),
                "text": "",
            }
        new = {**old, **changes, "edit_date": int(time.time())}
        if "reply_markup" in params:
            new["reply_markup"] = params["reply_markup"]
        else:
            new.pop("reply_markup", None)
        same = all(new.get(k) == old.get(k) for k in ("text", "caption", "reply_markup"))
        if self.strict_edits and key in self.messages and same:
            raise _TelegramError(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message",
            )
        self.messages[key] = new
        return new

    async def _answer(self, name: str, params: dict[str, Any]) -> Any:
        match name:
            case "getMe":
                return self.bot
            case "setWebhook":
                self.webhook = {
                    "url": params["url"],
                    "secret_token": params.get("secret_token"),
                    "allowed_updates": params.get("allowed_updates"),
                }
                return True
            case "deleteWebhook":
                self.webhook = {}
                if params.get("drop_pending_updates"):
                    with self._state:
                        self._updates.clear()
                return True
            case "getWebhookInfo":
                info: dict[str, Any] = {
                    "url": self.webhook.get("url", ""),
                    "has_custom_certificate": False,
                    "pending_update_count": len(self.pending_updates),
                }
                if self.webhook.get("allowed_updates"):
                    info["allowed_updates"] = self.webhook["allowed_updates"]
                return info
            case "getUpdates":
                return await self._get_updates(params)
            case "sendMessage":
                content: dict[str, Any] = {"text": _visible_text(params)}
                if params.get("entities"):
                    content["entities"] = params["entities"]
                return self._new_message(params, **content)
            case "editMessageText":
                return self._edit(params, {"text": _visible_text(params)})
            case "editMessageCaption":
                return self._edit(params, {"caption": params.get("caption", "")})
            case "editMessageReplyMarkup":
                return self._edit(params, {})
            case "getFile":
                file_id = str(params["file_id"])
                return {
                    "file_id": file_id,
                    "file_unique_id": f"u{file_id}"[:32],
                    "file_size": len(self.files.get(file_id, b"fake file " + file_id.encode())),
                    "file_path": f"documents/{file_id}",
                }
            case "getChat":
                return {
                    **self._chat(params["chat_id"]),
                    "accent_color_id": 0,
                    "max_reaction_count": 11,
                    "accepted_gift_types": {
                        "unlimited_gifts": False,
                        "limited_gifts": False,
                        "unique_gifts": False,
                        "premium_subscription": False,
                    },
                }
        returns = _methods()[name.lower()].get("returns", [])
        if returns == ["Message"] and "chat_id" in params:
            caption = {"caption": params["caption"]} if "caption" in params else {}
            return self._new_message(params, **caption)
        if returns == ["Array of Message"] and "chat_id" in params:
            return [self._new_message(params)]
        return True

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook.get("url"):
            raise _TelegramError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset", 0) or 0)
        limit = int(params.get("limit", 100) or 100)
        deadline = time.monotonic() + float(params.get("timeout", 0) or 0)
        allowed = params.get("allowed_updates") or None
        while True:
            with self._state:
                # An offset confirms (drops) every update below it, as Telegram does.
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
                ready = [u for u in self._updates if allowed is None or set(u) & set(allowed)]
            remaining = deadline - time.monotonic()
            if ready or remaining <= 0 or self.closing:
                return ready[:limit]
            if self._arrived is None:
                self._arrived = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)


class _TelegramError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


def _visible_text(params: dict[str, Any]) -> str:
    """The text Telegram stores: markup removed (it returns entities instead)."""
    text = str(params["text"])
    if params.get("parse_mode") == "HTML":
        return html_problems(text)[1]
    if params.get("parse_mode") == "MarkdownV2":
        return re.sub(r"\\(.)", r"\1", re.sub(r"(?<!\\)[*_~`|]", "", text))
    return text


def _message_id(result: Any) -> str | None:
    """The id of the message a call created, which the relay records as the provider id."""
    found = result.get("message_id") if isinstance(result, dict) else None
    return None if found is None else str(found)


def _key(params: dict[str, Any]) -> str | None:
    chat_id = params.get("chat_id")
    return None if chat_id is None else str(chat_id)


async def deliver_update(
    url: str,
    update: dict[str, Any],
    secret_token: str | None = None,
    *,
    retry_until_ok: bool = False,
    attempts: int = 20,
    interval: float = 0.1,
    timeout: float = 10.0,
) -> httpx.Response:
    """POST an update to a webhook like Telegram does (JSON body, secret header).

    With ``retry_until_ok`` it redelivers on non-2xx answers and connection errors (as
    Telegram does), e.g. while a crashed server restarts; the last response is returned.
    """
    headers = {"Content-Type": "application/json"}
    if secret_token:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret_token
    last_error: Exception | None = None
    async with httpx.AsyncClient(timeout=timeout) as client:
        for _ in range(attempts if retry_until_ok else 1):
            try:
                response = await client.post(url, content=json.dumps(update), headers=headers)
            except httpx.TransportError as error:
                last_error = error
            else:
                if response.is_success or not retry_until_ok:
                    return response
                last_error = None
            await asyncio.sleep(interval)
    if last_error is not None:
        raise last_error
    return response


if __name__ == "__main__":
    serve_main(FakeTelegram)
