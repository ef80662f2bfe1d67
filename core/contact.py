"""Contact details of a customer: verified email address and how they want to be notified.

An address is used only after the customer typed back the code mailed to it: the dialog
requests a code (the relay mails it on `EmailVerificationRequested`) and confirms it here.
Like core.services, these functions work in an open unit of work; the caller commits.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from core import events
from core.errors import InvalidInput, NotFound
from core.model import Customer, Notify, utcnow
from core.ports import ContactUnitOfWork, EmailVerification

CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=15)
MAX_ATTEMPTS = 5
#: Codes one customer may request per hour: the relay sends real email for each.
MAX_REQUESTS_PER_HOUR = 5

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")


def normalise_email(text: str) -> str | None:
    """A plausible address in lower case, or None."""
    email = text.strip().strip("<>").lower()
    if len(email) > 320 or not _EMAIL.match(email):
        return None
    return email


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


async def request_email_verification(
    uow: ContactUnitOfWork,
    customer_id: int,
    email: str,
    *,
    code: str | None = None,
    ttl: timedelta = CODE_TTL,
    now: datetime | None = None,
) -> int:
    """Store a fresh code for `email` and record the event that makes the relay mail it."""
    address = normalise_email(email)
    if address is None:
        raise InvalidInput(f"{email!r} is not an email address")
    return await _request_code(uow, customer_id, address, "email", code, ttl, now)


async def request_phone_verification(
    uow: ContactUnitOfWork,
    customer_id: int,
    phone: str,
    *,
    code: str | None = None,
    ttl: timedelta = CODE_TTL,
    now: datetime | None = None,
) -> int:
    """Store a fresh code for `phone` (E.164) and record the event that makes the relay text
    it."""
    if not _E164.match(phone):
        raise InvalidInput("not a phone number in E.164 form (+ and the country code)")
    return await _request_code(uow, customer_id, phone, "phone", code, ttl, now)


async def _request_code(
    uow: ContactUnitOfWork,
    customer_id: int,
    address: str,
    kind: str,
    code: str | None,
    ttl: timedelta,
    now: datetime | None,
) -> int:
    now = now or utcnow()
    customer = await _customer(uow, customer_id)
    if await uow.email_verifications.count_since(customer_id, now - timedelta(hours=1)) >= (
        MAX_REQUESTS_PER_HOUR
    ):
        raise InvalidInput("too many verification codes requested; try again later")
    verification_id = await uow.email_verifications.add(
        customer_id=customer_id,
        email=address,
        code=code or new_code(),
        created_at=now,
        expires_at=now + ttl,
        kind=kind,
    )
    event_type = (
        events.PhoneVerificationRequested if kind == "phone" else events.EmailVerificationRequested
    )
    customer.record(event_type(customer_id=customer_id, verification_id=verification_id))
    return verification_id


class CodeCheck(StrEnum):
    VERIFIED = "verified"
    WRONG = "wrong"
    EXPIRED = "expired"  # too old or too many wrong tries: ask for a new code
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class CodeResult:
    check: CodeCheck
    email: str | None = None
    attempts_left: int = 0


def check_code(
    verification: EmailVerification | None,
    typed: str,
    now: datetime,
    max_attempts: int = MAX_ATTEMPTS,
) -> CodeResult:
    """Compare a typed code with a stored one (pure: no I/O)."""
    if verification is None or verification.verified_at is not None:
        return CodeResult(CodeCheck.MISSING)
    if verification.expires_at <= now or verification.attempts >= max_attempts:
        return CodeResult(CodeCheck.EXPIRED, verification.email)
    digits = "".join(ch for ch in typed if ch.isdigit())
    if hmac.compare_digest(digits.encode(), verification.code.encode()):
        return CodeResult(CodeCheck.VERIFIED, verification.email)
    return CodeResult(CodeCheck.WRONG, verification.email, max_attempts - verification.attempts - 1)


async def confirm_email_verification(
    uow: ContactUnitOfWork,
    customer_id: int,
    typed: str,
    *,
    max_attempts: int = MAX_ATTEMPTS,
    now: datetime | None = None,
) -> CodeResult:
    """Check the code the customer typed; on a match the address becomes their verified email."""
    return await _confirm_code(uow, customer_id, typed, "email", max_attempts, now)


async def confirm_phone_verification(
    uow: ContactUnitOfWork,
    customer_id: int,
    typed: str,
    *,
    max_attempts: int = MAX_ATTEMPTS,
    now: datetime | None = None,
) -> CodeResult:
    """Check the code the customer typed; on a match the number becomes their verified phone
    and their notices also go there by text."""
    return await _confirm_code(uow, customer_id, typed, "phone", max_attempts, now)


async def _confirm_code(
    uow: ContactUnitOfWork,
    customer_id: int,
    typed: str,
    kind: str,
    max_attempts: int,
    now: datetime | None,
) -> CodeResult:
    now = now or utcnow()
    verification = await uow.email_verifications.latest_pending(customer_id, kind)
    result = check_code(verification, typed, now, max_attempts)
    if verification is None:
        return result
    if result.check == CodeCheck.WRONG:
        await uow.email_verifications.record_attempt(verification.id)
    elif result.check == CodeCheck.VERIFIED:
        customer = await _customer(uow, customer_id)
        await uow.email_verifications.mark_verified(verification.id, now)
        if kind == "phone":
            customer.phone, customer.phone_verified, customer.texts = verification.email, True, True
        else:
            customer.email = verification.email
            customer.email_verified = True
    return result


async def set_texts(uow: ContactUnitOfWork, customer_id: int, texts: bool) -> Customer:
    """Whether notices also go by text to the customer's verified phone."""
    customer = await _customer(uow, customer_id)
    customer.texts = texts and customer.phone_verified
    return customer


async def set_notify_preference(
    uow: ContactUnitOfWork, customer_id: int, notify: Notify | str
) -> Customer:
    """Chat, email or both. Email counts only once the address is verified."""
    customer = await _customer(uow, customer_id)
    customer.notify = Notify(notify)
    return customer


async def set_calls(uow: ContactUnitOfWork, customer_id: int, calls: bool) -> Customer:
    """Whether the customer is called about urgent news (at the number they text from)."""
    customer = await _customer(uow, customer_id)
    customer.calls = calls
    return customer


async def set_language(
    uow: ContactUnitOfWork, customer_id: int, language: str, *, chosen: bool
) -> Customer:
    """The language the customer is answered in, and their notices and emails written in.
    `chosen`: the customer picked it, so detection no longer changes it."""
    customer = await _customer(uow, customer_id)
    customer.language = language
    customer.language_chosen = customer.language_chosen or chosen
    return customer


async def forget_email_verifications(uow: ContactUnitOfWork, customer_id: int) -> None:
    """Erasure: codes hold an address too."""
    await uow.email_verifications.forget(customer_id)


async def _customer(uow: ContactUnitOfWork, customer_id: int) -> Customer:
    customer = await uow.customers.get(customer_id)
    if customer is None:
        raise NotFound(f"there is no customer {customer_id}")
    return customer
