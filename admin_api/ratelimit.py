"""The admin API's rate limits: requests per valid key, invalid keys per client address.

The key is checked first. A valid key is counted against its own limit only, so nobody
else's failures can refuse it, even from the same address or behind a proxy that hides
every client's address; the failed-key limit refuses only unknown keys. The counters live
behind the `RateLimiter` port (core/db/ratelimit.py): in PostgreSQL, shared by every replica.
Behind a proxy, run uvicorn with `--proxy-headers --forwarded-allow-ips` so the client
address is the real one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from admin_api.problems import Problem
from core.config import Settings
from core.ports import RateLimit


@dataclass(frozen=True, slots=True)
class ApiLimits:
    requests: RateLimit  # per valid key
    failed_keys: RateLimit  # per client address, counting and refusing invalid keys only

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiLimits:
        return cls(
            requests=RateLimit("api.requests", settings.api_requests_per_minute, 60),
            failed_keys=RateLimit("api.failed_keys", settings.api_failed_keys_per_minute, 60),
        )


def client_address(connection: HTTPConnection) -> str:
    """The address a limit counts: IPv6 by /64, the block one subscriber usually holds."""
    host = connection.client.host if connection.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def too_many(wait: int, detail: str, code: str) -> Problem:
    return Problem(429, detail, code=code, headers={"Retry-After": str(wait)})
