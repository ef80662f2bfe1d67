"""Waiting for something another process or thread does, without sleeping longer than it
takes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(check: Callable[[], Any], within: float = 10.0, every: float = 0.05) -> Any:
    """`check()`'s first truthy answer within `within` seconds, else its last answer."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    return check()
