"""Marking a customer's chat unreachable (and back): one statement, one channel's identity."""

from __future__ import annotations

import pytest

from core import services
from core.db.database import Database
from core.db.reachability import mark_reachable
from core.model import Channel


async def test_only_the_named_identity_of_that_channel_changes(db: Database) -> None:
    async with db.uow() as uow:
        _, telegram = await services.find_or_register_customer(
            uow, channel=Channel.TELEGRAM, external_id="77", chat_id="77"
        )
        _, slack = await services.find_or_register_customer(
            uow, channel=Channel.SLACK, external_id="77", chat_id="77"
        )
        await uow.commit()
    assert await mark_reachable(db, Channel.TELEGRAM, False, chat_id="77") == 1

    async def reachable(identity_id: int | None) -> bool:
        async with db.uow() as uow:
            found = await uow.customers.identity_by_id(identity_id or 0)
            assert found is not None
            return found.reachable

    assert (await reachable(telegram.id), await reachable(slack.id)) == (False, True)
    assert await mark_reachable(db, Channel.TELEGRAM, True, external_id="77") == 1
    assert await reachable(telegram.id)
    with pytest.raises(ValueError, match="exactly one"):
        await mark_reachable(db, Channel.TELEGRAM, True, chat_id="77", external_id="77")
