"""Visitor identity: signed tokens that carry their issue time, and the origins allowed to
frame or call the chat."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer

from core.model import utcnow

COOKIE = "careline_visitor"


HEADER = "x-careline-visitor"


# A browser cannot set headers on a WebSocket, and an embedded page may get no cookie, so the
# page offers two subprotocols: ours, which the server picks, and one carrying the token.
PROTOCOL = "careline"


VISITOR_PROTOCOL = "careline-visitor."  # + the token


@dataclass(frozen=True)
class Visitors:
    """Signed visitor tokens that carry their issue time: each works for `max_age` seconds,
    and the page's session call swaps one older than a day for a fresh one, so only a
    visitor idle for the whole `max_age` starts over (and a token copied once goes stale)."""

    serializer: URLSafeTimedSerializer
    max_age: float = 30 * 24 * 3600

    @property
    def renew_after(self) -> float:
        return min(24 * 3600, self.max_age / 2)

    def new_token(self) -> tuple[str, str]:
        visitor_id = uuid.uuid4().hex
        return visitor_id, self.token_for(visitor_id)

    def token_for(self, visitor_id: str) -> str:
        return str(self.serializer.dumps(visitor_id))

    def visitor_of(self, token: str | None) -> str | None:
        found = self._read(token)
        return found[0] if found else None

    def session(self, token: str | None) -> tuple[str, str] | None:
        """The visitor and the token to use from now on (renewed once it is a day old)."""
        found = self._read(token)
        if found is None or token is None:
            return None
        visitor, age = found
        return visitor, self.token_for(visitor) if age > self.renew_after else token

    def _read(self, token: str | None) -> tuple[str, float] | None:
        if not token:
            return None
        try:  # an expired token raises SignatureExpired, a BadSignature
            value, issued = self.serializer.loads(
                token, max_age=int(self.max_age), return_timestamp=True
            )
        except BadSignature:
            return None
        if not (isinstance(value, str) and len(value) == 32):
            return None
        return value, (utcnow() - issued).total_seconds()


def allowed_origins(configured: list[str], public_url: str | None) -> tuple[str, ...]:
    """The sites that may embed the chat and open its socket, as browsers write an Origin."""
    found = [*configured, *([public_url] if public_url else [])]
    return tuple(dict.fromkeys(_origin(url) for url in found))


def _origin(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower()
