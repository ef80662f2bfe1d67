"""The log's redaction filter: secrets, e-mail addresses and phone numbers leave neither a
message nor the traceback of a logged exception, in plain and in JSON lines."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bots.logging import JsonFormatter, RedactSecrets

TOKEN = "123456:token-of-the-bot"  # a made-up one


class Refused(Exception):
    pass


@pytest.mark.parametrize("json_lines", [False, True])
def test_a_logged_exception_shows_no_secret_address_or_number(json_lines: bool) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactSecrets([TOKEN]))
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(message)s"))
    log = logging.getLogger("careline.test.redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            raise Refused(f"bot{TOKEN}/sendMessage refused ada@example.com, +447700900123")
        except Refused:
            log.exception("sending to %s failed", "grace@example.com")
    finally:
        log.removeHandler(handler)
    written = out.getvalue()
    if json_lines:
        line = json.loads(written)
        assert "Refused" in line["error"] and "***@***" in line["error"]
    assert "Traceback" in written and "sendMessage refused" in written
    for private in (TOKEN, "ada@example.com", "grace@example.com", "+447700900123"):
        assert private not in written, written
