"""The fake Twilio refuses what Twilio would: it can fail Careline's tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, SUPPORT_NUMBER, FakeTwilio

MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
CALLS = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
GOOD = {"To": "+14155550123", "From": SUPPORT_NUMBER, "Body": "hello"}


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


def post(
    fake: FakeTwilio, path: str, form: dict[str, str], auth: tuple[str, str] | None = None
) -> httpx.Response:
    return httpx.post(
        fake.url + path, data=form, auth=auth or (ACCOUNT_SID, AUTH_TOKEN), timeout=10
    )


def test_a_valid_text_is_created(fake: FakeTwilio) -> None:
    answer = post(fake, MESSAGES, GOOD)
    assert answer.status_code == 201
    body = answer.json()
    assert body["sid"].startswith("SM") and len(body["sid"]) == 34
    assert (body["to"], body["body"], body["status"]) == ("+14155550123", "hello", "queued")
    assert fake.violations == []


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({**GOOD, "To": "4155550123"}, "E.164"),
        ({**GOOD, "Colour": "blue"}, "unknown field Colour"),
        ({"From": SUPPORT_NUMBER, "Body": "x"}, "missing required field To"),
        ({"To": "+14155550123", "Body": "x"}, "From or MessagingServiceSid"),
        ({"To": "+14155550123", "From": SUPPORT_NUMBER}, "Body, MediaUrl or ContentSid"),
        ({**GOOD, "Body": "x" * 1601}, "longer than 1600"),
        ({**GOOD, "StatusCallback": "/relative"}, "absolute URI"),
        ({**GOOD, "ValidityPeriod": "soon"}, "not an integer"),
        ({**GOOD, "MessagingServiceSid": "MG123"}, "MessagingServiceSid"),
    ],
)
def test_a_text_twilio_would_refuse_is_a_violation(
    fake: FakeTwilio, form: dict[str, str], problem: str
) -> None:
    answer = post(fake, MESSAGES, form)
    assert answer.status_code == 400
    assert answer.json()["code"] == 21000
    assert any(problem in v.problem for v in fake.violations), fake.violations


def test_wrong_credentials_are_refused(fake: FakeTwilio) -> None:
    assert post(fake, MESSAGES, GOOD, auth=(ACCOUNT_SID, "wrong")).json()["code"] == 20003
    other = "AC" + "f" * 32
    assert post(fake, MESSAGES.replace(ACCOUNT_SID, other), GOOD).status_code == 401
    assert post(fake, MESSAGES.replace(ACCOUNT_SID, "AC123"), GOOD).status_code == 401


def test_a_call_needs_twiml_or_a_url(fake: FakeTwilio) -> None:
    bare = {"To": "+14155550123", "From": SUPPORT_NUMBER}
    assert post(fake, CALLS, bare).status_code == 400
    twiml = "<Response><Say>Hello</Say></Response>"
    assert post(fake, CALLS, {**bare, "Twiml": twiml}).status_code == 201


def test_landlines_and_opted_out_numbers_are_refused_with_twilios_codes(
    fake: FakeTwilio,
) -> None:
    fake.landlines.add("+14155550100")
    fake.opted_out.add("+14155550101")
    assert post(fake, MESSAGES, {**GOOD, "To": "+14155550100"}).json()["code"] == 21614
    assert post(fake, MESSAGES, {**GOOD, "To": "+14155550101"}).json()["code"] == 21610
