"""Debian's Chromium for the browser tests: where it is, how to launch it, where screenshots go."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = next(
    (
        p
        for p in ("/usr/lib/chromium/chromium", shutil.which("chromium") or "")
        if p and Path(p).exists()
    ),
    None,
)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = [
    "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip


def chromium_or_skip() -> str:
    """The Chromium binary; a skip on a developer's machine without it, a failure in CI."""
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing (apt-get install chromium)")
        pytest.skip("Chromium is not installed")
    ARTIFACTS.mkdir(exist_ok=True)
    return CHROMIUM
