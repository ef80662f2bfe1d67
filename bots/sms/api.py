"""Twilio's REST API through the official SDK: texts and calls, paced, with errors mapped.

Every text waits for its slots at the support number's rate (Twilio sends about one segment
a second from a long code): reserved in the database on PostgreSQL, so every replica shares
one pace, or in this process on SQLite (one process serves). A 429 or a 5xx becomes
`RetryLater` (the relay or the inbox tries again with backoff), a number Twilio says cannot
take texts `Unreachable` (the identity is marked, notices go by email), any other refusal
`PermanentFailure`. Phone numbers and bodies are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import ClientError, encode_basic_auth
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from bots.channels import PermanentFailure, RetryLater, Unreachable
from bots.sms.text import segments
from core.config import Settings
from core.ports import Pacer

log = logging.getLogger("careline.sms")

#: Refusals that mean "this number cannot take our texts": invalid or unroutable number,
#: a landline, a recipient who texted STOP (https://www.twilio.com/docs/api/errors).
UNREACHABLE_CODES = frozenset({21211, 21214, 21217, 21610, 21612, 21614})
#: Delivery failures (status callbacks) that say the same about the handset.
UNREACHABLE_DELIVERY_CODES = frozenset({30004, 30005, 30006})
TIMEOUT = 15.0
#: Twilio's <Say> voices by the customer's language.
VOICE_LANGUAGES = {"en": "en-US", "es": "es-ES", "fr": "fr-FR", "de": "de-DE", "pt": "pt-BR"}


class _BaseUrlClient(AsyncTwilioHttpClient):
    """The SDK's asynchronous HTTP client, sending to `base_url` instead of api.twilio.com
    (a local fake in tests, a proxy in some deployments)."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._base = urlsplit(base_url.rstrip("/"))

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        parts = urlsplit(url)
        target = urlunsplit(
            (self._base.scheme, self._base.netloc, self._base.path + parts.path, parts.query, "")
        )
        auth = kwargs.pop("auth", None)
        if auth is not None:  # as a header: aiohttp deprecates its `auth` argument
            kwargs["headers"] = {**(kwargs.get("headers") or {}), "Authorization": _basic(*auth)}
        return await super().request(method, target, *args, **kwargs)


def _basic(login: str, password: str) -> str:
    return str(encode_basic_auth(login, password))


class _LocalPace:
    """One process's pace (SQLite): the next free time, moved on by each reservation."""

    def __init__(self) -> None:
        self._next = 0.0

    def reserve(self, interval: float) -> float:
        now = time.monotonic()
        start = max(self._next, now)
        self._next = start + interval
        return start - now


class TwilioApi:
    """Texts and calls from the support number (or the Messaging Service)."""

    def __init__(self, settings: Settings, *, pacer: Pacer | None = None) -> None:
        assert settings.twilio_account_sid is not None and settings.twilio_auth_token is not None
        self.settings = settings
        self._client: Client | None = None  # built on the running loop (aiohttp wants one)
        self.from_number = settings.twilio_from_number
        self.service = settings.twilio_messaging_service_sid
        self.per_second = settings.sms_per_second
        self.pacer = pacer
        self._local = _LocalPace()
        self.status_url: str | None = None  # set once the public URL is known

    @property
    def client(self) -> Client:
        if self._client is None:
            s = self.settings
            assert s.twilio_account_sid is not None and s.twilio_auth_token is not None
            http = _BaseUrlClient(s.twilio_api_base_url, TIMEOUT)
            token = s.twilio_auth_token.get_secret_value()
            self._client = Client(s.twilio_account_sid, token, http_client=http)
        return self._client

    @property
    def sender(self) -> str:
        """The pace's key: the number (or service) the texts come from; never a customer's."""
        return self.service or self.from_number or "twilio"

    async def text(self, to: str, body: str) -> str:
        """Send one text; its message SID. Raises a DeliveryError."""
        await self._pace(segments(body))
        sender: dict[str, Any] = (
            {"messaging_service_sid": self.service} if self.service else {"from_": self.from_number}
        )
        message = await self._call(
            "text",
            self.client.messages.create_async(
                to=to, body=body, status_callback=self._callback("sms"), **sender
            ),
        )
        return str(message.sid)

    async def call(self, to: str, words: str, language: str) -> str:
        """Ring `to` and say `words` (TwiML <Say>) in the customer's language; the call SID."""
        if self.from_number is None:
            raise PermanentFailure(
                "calls need TWILIO_FROM_NUMBER (a Messaging Service cannot call)"
            )
        twiml = VoiceResponse()
        voice = VOICE_LANGUAGES.get(language.split("-")[0], "en-US")
        twiml.say(words, language=voice)
        twiml.pause(length=1)
        twiml.say(words, language=voice)  # once more: a call is easily half-heard
        call = await self._call(
            "call",
            self.client.calls.create_async(
                to=to,
                from_=self.from_number,
                twiml=str(twiml),
                status_callback=self._callback("call"),
            ),
        )
        return str(call.sid)

    async def close(self) -> None:
        if self._client is not None:
            http = self._client.http_client
            assert isinstance(http, _BaseUrlClient)
            await http.close()

    def _callback(self, kind: str) -> str | None:
        return f"{self.status_url}?kind={kind}" if self.status_url else None

    async def _pace(self, units: int) -> None:
        if self.per_second <= 0:
            return
        if self.pacer is not None:  # one pace for the whole cluster
            wait = await self.pacer.reserve("twilio.sender", self.sender, self.per_second / units)
        else:
            wait = self._local.reserve(units / self.per_second)
        if wait > 0:
            await asyncio.sleep(wait)

    async def _call(self, what: str, request: Any) -> Any:
        try:
            return await asyncio.wait_for(request, TIMEOUT + 5)
        except TwilioRestException as error:
            code, status = error.code, error.status
            log.warning("twilio %s refused: HTTP %s, code %s", what, status, code)
            if status == 429 or code == 20429:
                raise RetryLater(f"Twilio: too many requests ({code})", 2.0) from error
            if status >= 500:
                raise RetryLater(f"Twilio: HTTP {status}", 2.0) from error
            if code in UNREACHABLE_CODES:
                raise Unreachable(f"Twilio: the number cannot take texts ({code})") from error
            raise PermanentFailure(f"Twilio: HTTP {status}, code {code}") from error
        except (ClientError, TimeoutError) as error:
            log.warning("twilio %s failed: %s", what, type(error).__name__)
            raise RetryLater(f"Twilio unreachable: {type(error).__name__}", 2.0) from error
