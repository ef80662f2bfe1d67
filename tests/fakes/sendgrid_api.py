"""A fake SendGrid v3 Mail Send API that checks every request against SendGrid's OpenAPI.

``POST /v3/mail/send`` with ``Authorization: Bearer <key>``: the JSON body is validated
against the request schema of ``tests/contracts/sendgrid_mail_v3.json`` (SendGrid's
published OpenAPI, see tests/contracts/README.md). A valid request is recorded (the whole
body, so a test can read the mail) and answered 202 with an ``X-Message-Id``, as SendGrid
does; an invalid one is a contract violation, answered 400 with SendGrid's error shape; a
missing key 401.

    python -m tests.fakes.sendgrid_api --port 0       # as a subprocess (resilience.procs)
    with SendGridFake() as fake: ...                  # in a thread
"""

from __future__ import annotations

import functools
import itertools
import time
from typing import Any, ClassVar

from aiohttp import web
from jsonschema import Draft202012Validator

from tests.fakes.contracts import Call, FakeServer, load_contract, serve_main

CONTRACT = "sendgrid_mail_v3.json"
SEND = "/v3/mail/send"
REQUEST_SCHEMA = "#/components/requestBodies/PostMailSend/content/application~1json/schema"


@functools.cache
def _validator() -> Draft202012Validator:
    # The whole document is the root, so the request schema's $refs resolve inside it.
    spec = load_contract(CONTRACT)
    return Draft202012Validator({**spec, "$ref": REQUEST_SCHEMA})


class SendGridFake(FakeServer):
    """SendGrid's Mail Send endpoint, checked against its published contract."""

    contract_files: ClassVar[tuple[str, ...]] = (CONTRACT,)

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self._ids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        app.router.add_post(SEND, self.send)

    async def send(self, request: web.Request) -> web.Response:
        started = time.time()
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return _errors(401, "authorization required")
        try:
            body: Any = await request.json()
        except ValueError:
            self.violate("mail.send", "the body is not JSON", {})
            return _errors(400, "invalid JSON")
        problems = [
            f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
            for e in _validator().iter_errors(body)
        ]
        if problems:
            for problem in problems:
                self.violate("mail.send", problem, body if isinstance(body, dict) else {})
            self.record(Call("mail.send", body if isinstance(body, dict) else {}, started, 400))
            return _errors(400, "; ".join(problems[:3]))
        fault = await self.apply_fault("mail.send", None)
        if fault is not None:
            self.record(Call("mail.send", body, started, fault.status or 200))
            return fault
        message_id = f"sg-fake-{next(self._ids)}"
        self.record(Call("mail.send", body, started, 202, message_id))
        return web.Response(status=202, headers={"X-Message-Id": message_id})


def _errors(status: int, message: str) -> web.Response:
    return web.json_response({"errors": [{"message": message, "field": None}]}, status=status)


if __name__ == "__main__":
    serve_main(SendGridFake)
