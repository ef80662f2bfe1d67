"""Marking a customer's chat unreachable (and back): one statement, one channel's identity."""

from __future__ import annotations

import pytest

from core.db.database import Database
from core.db.reachability import SqlReachability
from core.model import Channel
from tests.support.customers import register_customer


async def test_only_the_named_identity_of_that_channel_changes(db: Database) -> None:
    async with db.uow() as uow:
        _, telegram = await register_customer(
            uow, channel=Channel.TELEGRAM, external_id="77", chat_id="77"
        )
        _, slack = await register_customer(
            uow, channel=Channel.SLACK, external_id="77", chat_id="77"
        )
        await uow.commit()
    assert await SqlReachability(db).mark(Channel.TELEGRAM, False, chat_id="77") == 1

    async def reachable(identity_id: int | None) -> bool:
        async with db.uow() as uow:
            found = await uow.customers.identity_by_id(identity_id or 0)
            assert found is not None
            return found.reachable

    assert (await reachable(telegram.id), await reachable(slack.id)) == (False, True)
    assert await SqlReachability(db).mark(Channel.TELEGRAM, True, external_id="77") == 1
    assert await reachable(telegram.id)
    with pytest.raises(ValueError, match="exactly one"):
        await SqlReachability(db).mark(Channel.TELEGRAM, True, chat_id="77", external_id="77")
