"""One guard for every inbound body: read with a size cap, parsed as JSON with a depth limit.

Python's json parser recurses once per nesting level, and so do whatever walk the result
later (a platform SDK, the JSON column's serializer): a few kilobytes of ``[[[[...`` end in a
RecursionError, an unhandled 500. Bodies are therefore read with a cap (`read_capped`) and
parsed by `loads`, which measures the nesting before parsing and accepts only what the
database can store. Standard library only, so every layer (webhooks, web chat, admin API)
can use it. A refusal's text can go back to the sender: it never quotes the body.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterable
from itertools import accumulate
from typing import Any

#: Far above any platform payload (Slack's rich text, the deepest we receive, nests about
#: a dozen levels) and far below the interpreter's recursion limit (1000).
MAX_DEPTH = 64

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# PostgreSQL stores neither NUL nor half a surrogate pair in text or jsonb; nothing a
# platform sends contains them, so they are refused here instead of failing at the insert.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class RefusedBody(ValueError):
    """An inbound body we do not accept; `str(error)` is a problem text for the sender."""

    status = 400


class BodyTooLarge(RefusedBody):
    status = 413


async def read_capped(chunks: AsyncIterable[bytes], *, declared: str | None, limit: int) -> bytes:
    """The whole body, or BodyTooLarge before more than `limit` bytes are held in memory.

    `declared` is the Content-Length header: too big, and nothing is read at all. Without
    one (a chunked upload) the cap applies while reading.
    """
    too_large = BodyTooLarge(f"the body is larger than {limit} bytes")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def loads(body: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a JSON body (strict: no NaN, no Infinity, no 1e999), or raise RefusedBody."""
    text = _text(body)
    depth = nesting_depth(text)
    if depth > max_depth:
        raise RefusedBody(
            f"the JSON is nested {depth} levels deep; at most {max_depth} are allowed"
        )
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except ValueError:  # JSONDecodeError, and the interpreter's limit on an integer's digits
        raise RefusedBody("the body is not valid JSON") from None
    if not _storable(value):
        raise RefusedBody("the JSON contains \\u0000 or an unpaired surrogate")
    return value


def nesting_depth(text: str) -> int:
    """How deep the arrays and objects of `text` nest (brackets inside strings don't count)."""
    brackets = _NOT_A_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(_STEP[c] for c in brackets), default=0)


def _storable(value: Any) -> bool:
    # Recursion is safe here: the nesting was measured first.
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is None
    if isinstance(value, list):
        return all(_storable(item) for item in value)
    if isinstance(value, dict):
        return all(_storable(key) and _storable(item) for key, item in value.items())
    return True


def _text(body: bytes | str) -> str:
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise RefusedBody("the body is not UTF-8") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):  # 1e999: valid JSON, but nothing can store it back
        raise ValueError("the number is out of range")
    return number
