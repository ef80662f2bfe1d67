"""The one JSON guard of inbound bodies: depth measured before parsing, only storable JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.jsonguard import MAX_DEPTH, BodyTooLarge, RefusedBody, loads, read_capped


def test_nesting_is_refused_before_the_parser_recurses() -> None:
    with pytest.raises(RefusedBody, match="nested 100000 levels"):
        loads("[" * 100_000 + "]" * 100_000)
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


def test_brackets_inside_strings_do_not_count() -> None:
    text = '{"a": "' + "[{" * 1000 + '\\"]"}'
    assert loads(text) == {"a": "[{" * 1000 + '"]'}


@pytest.mark.parametrize(
    "body",
    [b"\xff[]", b"[NaN]", b"[Infinity]", b"[1e999]", b"[" + b"1" * 5000 + b"]", b"{'a': 1}"],
    ids=["not-utf8", "nan", "infinity", "overflow", "huge-int", "not-json"],
)
def test_what_cannot_be_stored_back_is_refused(body: bytes) -> None:
    with pytest.raises(RefusedBody) as refused:
        loads(body)
    assert refused.value.status == 400


@pytest.mark.parametrize("text", ['["\\u0000"]', '["\\ud83d"]', '{"\\ude00": 1}'])
def test_nul_and_unpaired_surrogates_are_refused(text: str) -> None:
    # PostgreSQL's text and jsonb refuse both: better a 400 here than a 500 at the insert.
    with pytest.raises(RefusedBody, match="unpaired surrogate"):
        loads(text)


def test_paired_surrogates_and_escaped_backslashes_are_fine() -> None:
    assert loads('["\\ud83d\\ude00", "\\\\u0000"]') == ["\U0001f600", "\\u0000"]


async def _chunks(n: int, pulled: list[int]) -> AsyncIterator[bytes]:
    for _ in range(n):
        pulled.append(1)
        yield b"x" * 1000


async def test_a_body_is_read_up_to_its_cap_and_no_further() -> None:
    pulled: list[int] = []
    assert len(await read_capped(_chunks(3, pulled), declared=None, limit=3000)) == 3000
    with pytest.raises(BodyTooLarge):
        await read_capped(_chunks(100, pulled := []), declared=None, limit=3000)
    assert len(pulled) == 4
    with pytest.raises(BodyTooLarge) as refused:
        await read_capped(_chunks(100, pulled := []), declared="100000", limit=3000)
    assert pulled == [] and refused.value.status == 413
