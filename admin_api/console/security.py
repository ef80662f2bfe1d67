"""The console's safety: passwords (argon2id), session cookies, CSRF tokens, invitation links
and the throttle on failed sign-ins.

- **Passwords** are argon2id hashes (RFC 9106's low-memory profile: 64 MiB, 3 passes),
  checked in a worker thread. An unknown email costs the same check against a dummy hash, so
  timing does not say which emails have accounts.
- **Sessions**: the cookie holds 256 random bits; the database keeps their SHA-256. A new
  session is made at every sign-in (no session fixation). The cookie is HttpOnly,
  SameSite=Lax, limited to /console, and Secure behind HTTPS.
- **CSRF**: every form carries the session's token, checked in constant time, and a POST
  whose Origin names another site is refused. Forms before sign-in (sign-in, accepting an
  invitation) use a double-submit token: a SameSite=Strict cookie and the same value in the
  form.
- **Invitation links** are `{id}.{HMAC-SHA256(server secret, id:nonce)}`: the database keeps
  only the nonce, so nobody who reads it can use a link, and the relay can mail the link
  again from the invitation's id alone.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.requests import Request
from starlette.responses import Response

from core.errors import Forbidden, InvalidInput

SESSION_COOKIE = "careline_console"
FORM_COOKIE = "careline_console_form"
COOKIE_PATH = "/console"
MIN_PASSWORD = 12
MAX_PASSWORD = 256

_hasher = PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)


@functools.cache
def _dummy() -> str:
    """A hash to check unknown emails against. Made at the first need, not at import: one
    hash costs 64 MiB and about 150 ms, which every start (and every role) would pay."""
    return _hasher.hash("a password nobody has, to spend the same time")


class WeakPassword(InvalidInput):
    code = "weak_password"


def check_new_password(password: str, confirm: str, email: str) -> None:
    if password != confirm:
        raise WeakPassword("the two passwords differ")
    if len(password) < MIN_PASSWORD:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise WeakPassword(f"a password has at most {MAX_PASSWORD} characters")
    if password.strip().lower() == email.strip().lower():
        raise WeakPassword("a password must not be the email address")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def password_matches(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not there is a hash to check."""

    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _dummy(), password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    if len(password) > MAX_PASSWORD:
        return False
    return await asyncio.to_thread(check)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_https(request: Request, public_url: str | None) -> bool:
    return request.url.scheme == "https" or bool(public_url and public_url.startswith("https:"))


def set_session_cookie(response: Response, token: str, *, max_age: int, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, path=COOKIE_PATH, httponly=True,
        samesite="lax", secure=secure,
    )  # fmt: skip


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax", secure=secure
    )


def form_token(request: Request) -> str:
    """The double-submit token of a form shown before sign-in: the cookie's, or a new one."""
    return request.cookies.get(FORM_COOKIE) or new_token()


def keep_form_token(response: Response, token: str, *, secure: bool) -> None:
    response.set_cookie(
        FORM_COOKIE, token, max_age=3600, path=COOKIE_PATH, httponly=True, samesite="strict",
        secure=secure,
    )  # fmt: skip


def check_origin(request: Request) -> None:
    """A POST from a page of another site is refused, whatever it carries."""
    origin = request.headers.get("origin")
    if origin is None:  # not sent by older browsers; the CSRF token still guards the form
        return
    host = request.headers.get("host", "")
    if origin == "null" or origin.split("://", 1)[-1] != host:
        raise Forbidden("this form was sent from another site")


def check_token(expected: str | None, given: object) -> None:
    if not expected or not isinstance(given, str) or not hmac.compare_digest(expected, given):
        raise Forbidden("this form has expired or did not come from the console; reload it")


@dataclass(frozen=True, slots=True)
class InvitationLinks:
    """Signs and reads invitation links with the server's secret."""

    secret: str

    def token(self, invitation_id: int, nonce: str) -> str:
        return f"{invitation_id}.{self._mac(invitation_id, nonce)}"

    def parse(self, token: str) -> tuple[int, str] | None:
        """(invitation id, mac) of a well-formed token; check the mac with `matches`."""
        head, _, mac = token.partition(".")
        if not head.isdigit() or len(head) > 18 or not mac or len(mac) > 100:
            return None
        return int(head), mac

    def matches(self, invitation_id: int, nonce: str, mac: str) -> bool:
        return hmac.compare_digest(self._mac(invitation_id, nonce), mac)

    def _mac(self, invitation_id: int, nonce: str) -> str:
        digest = hmac.new(
            self.secret.encode(), f"invitation:{invitation_id}:{nonce}".encode(), hashlib.sha256
        ).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def new_nonce() -> str:
    return secrets.token_hex(16)
