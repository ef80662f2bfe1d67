"""A fake Twilio REST API (2010-04-01) that checks every call against Twilio's OpenAPI.

Any POST to a path of ``tests/contracts/twilio_api_v2010.json`` (Twilio's published
OpenAPI, see tests/contracts/README.md) is checked as Twilio would: Basic auth with the
Account SID of the path and its auth token (else 401, code 20003), the path's parameters
against their patterns, and the form: no field the operation does not define, every
required one, each value of its type, enum, pattern, length and format (E.164 phone numbers,
absolute URIs). What the spec says only in words is checked too: a message needs ``From``
or ``MessagingServiceSid`` and one of ``Body``, ``MediaUrl``, ``ContentSid``, at most 1,600
characters of body; a call one of ``Url``, ``Twiml``, ``ApplicationSid``. A violation is
recorded and answered 400 with Twilio's error shape.

A valid text or call is answered 201 with the spec's own example resource, its fields set
from the request, and kept (``fake.texts``, ``fake.calls_made``). Like Twilio, the fake
then reports delivery to the ``StatusCallback`` URL, signed with the auth token as Twilio
signs (``sent``, then ``delivered``, or ``undelivered`` with an error code for a number in
``undeliverable``). Numbers in ``landlines`` are refused with 21614 and numbers that texted
STOP (``opted_out``) with 21610. ``add_media`` hosts a file a customer sent by MMS at a
media URL that answers only the account's Basic auth.

:func:`text_in` plays a customer's phone: it posts an inbound text to Careline's webhook,
signed as Twilio signs it.

    python -m tests.fakes.twilio_api --port 0       # as a subprocess
    with FakeTwilio() as fake: ...                  # in a thread
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import re
import time
from email.utils import formatdate
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import httpx
from aiohttp import BasicAuth, ClientSession, web
from twilio.request_validator import RequestValidator

from tests.fakes.contracts import Call, FakeServer, load_contract, serve_main

CONTRACT = "twilio_api_v2010.json"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-twilio-auth-token-0123456789"
SUPPORT_NUMBER = "+15005550006"
MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
CALLS = "/2010-04-01/Accounts/{AccountSid}/Calls.json"
MEDIA = "/2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{Sid}"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
MAX_BODY = 1600


@functools.cache
def _operations() -> list[tuple[re.Pattern[str], str, dict[str, Any]]]:
    """(path regex, path template, POST operation) of every path that has a POST."""
    spec = load_contract(CONTRACT)
    found = []
    for template, item in spec["paths"].items():
        if "post" not in item:
            continue
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        found.append((re.compile(f"^{regex}$"), template, item))
    return found


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    spec = load_contract(CONTRACT)
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _value_problems(name: str, value: str, schema: dict[str, Any]) -> list[str]:
    schema = _resolve(schema)
    kind = schema.get("type", "string")
    problems: list[str] = []
    if kind == "integer" and not re.fullmatch(r"-?\d+", value):
        problems.append(f"{name}={value!r} is not an integer")
    elif kind == "number" and not re.fullmatch(r"-?\d+(\.\d+)?", value):
        problems.append(f"{name}={value!r} is not a number")
    elif kind == "boolean" and value.lower() not in ("true", "false"):
        problems.append(f"{name}={value!r} is not true or false")
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{name}={value!r} is not one of {schema['enum']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{name} does not match {schema['pattern']}")
    if "minLength" in schema and len(value) < schema["minLength"]:
        problems.append(f"{name} is shorter than {schema['minLength']}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        problems.append(f"{name} is longer than {schema['maxLength']}")
    fmt = schema.get("format")
    ignore = (schema.get("x-twilio") or {}).get("ignoreFormat")
    if fmt == "phone-number" and not ignore and not E164.match(value):
        problems.append(f"{name} is not an E.164 phone number")
    if fmt == "uri" and not ignore and not re.match(r"^https?://[^/\s]+", value):
        problems.append(f"{name} is not an absolute URI")
    return problems


def form_problems(operation: dict[str, Any], form: list[tuple[str, str]]) -> list[str]:
    """What is wrong with a form for an operation, by its published schema."""
    content = operation.get("requestBody", {}).get("content", {})
    schema = _resolve(content.get("application/x-www-form-urlencoded", {}).get("schema", {}))
    properties: dict[str, Any] = schema.get("properties", {})
    problems = [f"missing required field {name}" for name in schema.get("required", [])]
    problems = [p for p in problems if p.split()[-1] not in {k for k, _ in form}]
    seen: set[str] = set()
    for name, value in form:
        field = properties.get(name)
        if field is None:
            problems.append(f"unknown field {name}")
            continue
        field = _resolve(field)
        if field.get("type") == "array":
            problems += _value_problems(name, value, field.get("items", {}))
        else:
            if name in seen:
                problems.append(f"{name} given more than once")
            problems += _value_problems(name, value, field)
        seen.add(name)
    return problems


class FakeTwilio(FakeServer):
    """Twilio's Messages and Calls APIs, checked against the published contract."""

    contract_files: ClassVar[tuple[str, ...]] = (CONTRACT,)

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
    ) -> None:
        super().__init__(host, port)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.validator = RequestValidator(auth_token)
        self._ids = itertools.count(1)
        self.texts: list[dict[str, str]] = []  # To, From/MessagingServiceSid, Body, Sid, at
        self.calls_made: list[dict[str, str]] = []
        self.landlines: set[str] = set()
        self.opted_out: set[str] = set()
        self.undeliverable: dict[str, int] = {}  # number -> error code of its reports
        self.reports: list[dict[str, Any]] = []  # status callbacks sent, with Careline's answer
        self._pending: set[asyncio.Task[None]] = set()
        self._media: dict[str, tuple[bytes, str]] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/2010-04-01/{tail:.*}", self.handle)
        app.router.add_get(MEDIA, self.media)

    def add_media(self, content: bytes, content_type: str) -> str:
        """Host a file a customer sent by MMS; its URL, as Twilio puts it in the webhook."""
        message, media = f"MM{next(self._ids):032x}", f"ME{next(self._ids):032x}"
        path = MEDIA.format(AccountSid=self.account_sid, MessageSid=message, Sid=media)
        self._media[path] = (content, content_type)
        return self.url + path

    async def media(self, request: web.Request) -> web.Response:
        """A media file's bytes, to the account's Basic auth only (Twilio's HTTP auth on
        media URLs)."""
        if _basic(request) != (self.account_sid, self.auth_token):
            self.record(Call("media.get", {}, time.time(), 401))
            return _error(401, 20003, "Authenticate")
        found = self._media.get(request.path)
        fault = await self.apply_fault("media.get", None)
        if fault is not None:
            self.record(Call("media.get", {}, time.time(), fault.status))
            return fault
        self.record(Call("media.get", {}, time.time(), 200 if found else 404))
        if found is None:
            return _error(404, 20404, "The requested resource was not found")
        return web.Response(body=found[0], content_type=found[1])

    def texts_to(self, number: str) -> list[str]:
        return [t["Body"] for t in self.texts if t["To"] == number]

    # -- the API -------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.Response:
        started = time.time()
        path = request.path
        match = next(((m, t, op) for r, t, op in _operations() if (m := r.match(path))), None)
        if match is None:
            self.violate(path, "no such path in the contract", {})
            return _error(404, 20404, "The requested resource was not found")
        found, template, item = match
        name = _name(template)
        form = parse_qsl(await request.text(), keep_blank_values=True)
        params = dict(form)
        account = found.group("AccountSid")
        auth = _basic(request)
        if auth != (account, self.auth_token) or account != self.account_sid:
            self.record(Call(name, params, started, 401))
            return _error(401, 20003, "Authenticate")
        problems = [
            f"path {p['name']}={found.group(p['name'])!r} does not match {p['schema']['pattern']}"
            for p in item.get("parameters", [])
            if p.get("in") == "path"
            and "pattern" in p.get("schema", {})
            and not re.search(p["schema"]["pattern"], found.group(p["name"]))
        ]
        problems += form_problems(item["post"], form) + _rules(template, params)
        if problems:
            for problem in problems:
                self.violate(name, problem, params)
            self.record(Call(name, params, started, 400))
            return _error(400, 21000, "; ".join(problems[:3]))
        fault = await self.apply_fault(name, params.get("To"))
        if fault is not None:
            self.record(Call(name, params, started, fault.status or 200))
            return fault
        to = params.get("To", "")
        if template == MESSAGES and to in self.opted_out:
            self.record(Call(name, params, started, 400))
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")
        if to in self.landlines:
            self.record(Call(name, params, started, 400))
            return _error(400, 21614, "'To' number is not a valid mobile number")
        if template == MESSAGES:
            return self._message(params, started, name)
        if template == CALLS:
            return self._call(params, started, name)
        self.violate(name, "Careline has no business calling this", params)
        return _error(400, 21000, "not faked")

    def _message(self, params: dict[str, str], started: float, name: str) -> web.Response:
        sid = f"SM{next(self._ids):032x}"
        body = params.get("Body", "")
        resource = _example(MESSAGES) | {
            "account_sid": self.account_sid,
            "sid": sid,
            "to": params["To"],
            "from": params.get("From"),
            "messaging_service_sid": params.get("MessagingServiceSid"),
            "body": body,
            "num_segments": str(_segments(body)),
            "status": "queued",
            "date_created": formatdate(usegmt=True),
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        self.texts.append({**params, "Sid": sid, "at": str(started)})
        self.record(Call(name, params, started, 201, sid))
        if params.get("StatusCallback"):
            final = self.undeliverable.get(params["To"])
            self._report(params["StatusCallback"], sid, params, final)
        return web.json_response(resource, status=201)

    def _call(self, params: dict[str, str], started: float, name: str) -> web.Response:
        sid = f"CA{next(self._ids):032x}"
        resource = _example(CALLS) | {
            "account_sid": self.account_sid,
            "sid": sid,
            "to": params["To"],
            "from": params["From"],
            "status": "queued",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}.json",
        }
        self.calls_made.append({**params, "Sid": sid})
        self.record(Call(name, params, started, 201, sid))
        return web.json_response(resource, status=201)

    # -- delivery reports ------------------------------------------------------------------
    def _report(self, url: str, sid: str, params: dict[str, str], code: int | None) -> None:
        steps = [("sent", None), ("undelivered", code) if code else ("delivered", None)]
        task = asyncio.get_running_loop().create_task(self._send_reports(url, sid, params, steps))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send_reports(
        self, url: str, sid: str, params: dict[str, str], steps: list[tuple[str, int | None]]
    ) -> None:
        async with ClientSession() as session:
            for status, code in steps:
                await asyncio.sleep(0.05)
                form = {
                    "MessageSid": sid,
                    "SmsSid": sid,
                    "AccountSid": self.account_sid,
                    "MessageStatus": status,
                    "SmsStatus": status,
                    "To": params["To"],
                    "From": params.get("From", SUPPORT_NUMBER),
                    "ApiVersion": "2010-04-01",
                }
                if code:
                    form["ErrorCode"] = str(code)
                signature = self.validator.compute_signature(url, form)
                try:
                    async with session.post(
                        url, data=form, headers={"X-Twilio-Signature": signature}
                    ) as answer:
                        self.reports.append({**form, "answer": answer.status})
                except OSError as error:
                    self.reports.append({**form, "answer": type(error).__name__})

    async def on_closing(self) -> None:
        for task in list(self._pending):
            task.cancel()


def text_in(
    server_url: str,
    from_number: str,
    body: str,
    *,
    sid: str | None = None,
    to: str = SUPPORT_NUMBER,
    auth_token: str = AUTH_TOKEN,
    signature: str | None = None,
    signed_url: str | None = None,
    media: tuple[tuple[str, str], ...] = (),
) -> httpx.Response:
    """A customer's text reaching Careline as Twilio posts it (form and signature)."""
    url = f"{server_url.rstrip('/')}/twilio/sms"
    form = {
        "ToCountry": "US",
        "SmsMessageSid": sid or _inbound_sid(),
        "NumMedia": "0",
        "SmsSid": "",
        "SmsStatus": "received",
        "Body": body,
        "To": to,
        "NumSegments": "1",
        "MessageSid": "",
        "AccountSid": ACCOUNT_SID,
        "From": from_number,
        "ApiVersion": "2010-04-01",
    }
    form["SmsSid"] = form["MessageSid"] = form["SmsMessageSid"]
    form["NumMedia"] = str(len(media))
    for index, (media_url, content_type) in enumerate(media):
        form[f"MediaUrl{index}"] = media_url
        form[f"MediaContentType{index}"] = content_type
    if signature is None:
        signature = RequestValidator(auth_token).compute_signature(signed_url or url, form)
    headers = {"X-Twilio-Signature": signature} if signature else {}
    return httpx.post(url, data=form, headers=headers, timeout=30)


_inbound_ids = itertools.count(1)


def _inbound_sid() -> str:
    return f"SM{0xABC000000 + next(_inbound_ids):032x}"


def _rules(template: str, params: dict[str, str]) -> list[str]:
    """What the spec says in words, not in the schema."""
    problems = []
    if template == MESSAGES:
        if not (params.get("From") or params.get("MessagingServiceSid")):
            problems.append("a message needs From or MessagingServiceSid")
        if not (params.get("Body") or params.get("MediaUrl") or params.get("ContentSid")):
            problems.append("a message needs Body, MediaUrl or ContentSid")
        if len(params.get("Body", "")) > MAX_BODY:
            problems.append(f"Body is longer than {MAX_BODY} characters")
    if template == CALLS and not (
        params.get("Url") or params.get("Twiml") or params.get("ApplicationSid")
    ):
        problems.append("a call needs Url, Twiml or ApplicationSid")
    if template == CALLS and params.get("Twiml") and "<Response>" not in params["Twiml"]:
        problems.append("Twiml is not a TwiML <Response> document")
    return problems


def _name(template: str) -> str:
    return {MESSAGES: "messages.create", CALLS: "calls.create"}.get(template, template)


def _example(template: str) -> dict[str, Any]:
    post = load_contract(CONTRACT)["paths"][template]["post"]
    examples = post["responses"]["201"]["content"]["application/json"]["examples"]
    return dict(next(iter(examples.values()))["value"])


def _basic(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    try:
        auth = BasicAuth.decode(header)
    except ValueError:
        return None
    return auth.login, auth.password


def _segments(body: str) -> int:
    """Roughly what Twilio bills (GSM-7 sizes): the fake does not judge encodings."""
    return 1 if len(body) <= 160 else -(-len(body) // 153)


def _error(status: int, code: int, message: str) -> web.Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


if __name__ == "__main__":
    serve_main(FakeTwilio)
