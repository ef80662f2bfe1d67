"""The real server with the real twilio SDK against the fake Twilio API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from core.config import Settings
from core.db.database import Database
from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, SUPPORT_NUMBER, FakeTwilio
from tests.server.support import ServerThread, free_port, running
from tests.telegram.conftest import ScriptedEngine

CUSTOMER = "+14155550123"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake
        assert not fake.internal_errors, fake.internal_errors


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


def sms_settings(db: Database, fake: FakeTwilio, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db.url.render_as_string(hide_password=False),
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_from_number": SUPPORT_NUMBER,
        "twilio_api_base_url": fake.url,
        "sms_per_second": 100,
        **overrides,
    }
    return Settings(**values)


StartServer = Callable[..., AbstractContextManager[ServerThread]]


@pytest.fixture
def serve(db: Database, twilio: FakeTwilio, engine: ScriptedEngine) -> StartServer:
    """`with serve(**settings) as server:` runs Careline, its public URL its own address."""

    def start(**overrides: Any) -> AbstractContextManager[ServerThread]:
        port = free_port()
        overrides.setdefault("public_url", f"http://127.0.0.1:{port}")
        return running(sms_settings(db, twilio, **overrides), engine, port=port)

    return start
