"""Per-process limiter for failed API keys, by client IP.

Deliberately in memory: it needs no shared state for correctness (any replica can serve any
request), and a failed guess costs no database write. The price is that N replicas allow N
times the attempts; with 256-bit keys that changes nothing. Behind a proxy, run uvicorn with
`--proxy-headers --forwarded-allow-ips` so the client IP is the real one.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class FailedKeyLimiter:
    """At most `attempts` failed keys per IP within `window` seconds; then 429 until the
    oldest failure leaves the window."""

    def __init__(
        self,
        *,
        attempts: int = 10,
        window: float = 60.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts = attempts
        self.window = window
        self.max_clients = max_clients
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> int:
        """Seconds the client must wait before presenting a key again (0: go ahead)."""
        failures = self._failures.get(client)
        if failures is None:
            return 0
        now = self._clock()
        while failures and now - failures[0] >= self.window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return 0
        if len(failures) < self.attempts:
            return 0
        return max(1, math.ceil(self.window - (now - failures[0])))

    def failed(self, client: str) -> None:
        failures = self._failures.get(client)
        if failures is None:
            failures = self._failures[client] = deque(maxlen=self.attempts)
            if len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)  # forget the longest-known client
        failures.append(self._clock())
