"""Telegram's rate limits: about 1 message/s per private chat (bursts of 3), 30/s overall
and 20/min per group, shared by every process through the database on PostgreSQL; 429
`retry_after` honoured."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.error import (
    RetryAfter,
)
from telegram.ext import AIORateLimiter

from bots.metrics import Metrics
from core.config import Settings
from core.ports import Pacer

log = logging.getLogger("careline.telegram")

SOURCE = "telegram"
LATE_RETRIES = 3  # new send slots a late-waking sender takes before it sends anyway


class CarelineRateLimiter(AIORateLimiter):
    """PTB's limiter (overall and per group) plus about 1 message/s per private chat.

    With a `pacer` (core.db.pacing, on PostgreSQL) the overall and per-chat limits hold for
    the whole cluster: every process of one bot reserves its slots in the same rows, so four
    relays together still send about 30/s. Without one, this process paces alone (SQLite:
    one process serves)."""

    def __init__(
        self,
        *,
        metrics: Metrics,
        overall_per_second: float = 30,
        chat_per_second: float = 1,
        chat_burst: int = 3,
        group_per_minute: float = 20,
        max_retries: int = 3,
        pacer: Pacer | None = None,
        bot_key: str = "bot",
    ) -> None:
        self._pacer = pacer
        self._bot_key = bot_key
        self._overall_rate = overall_per_second
        super().__init__(
            overall_max_rate=0 if pacer is not None else overall_per_second,
            overall_time_period=1,
            group_max_rate=group_per_minute,
            group_time_period=60,
            max_retries=max_retries,
        )
        self._metrics = metrics
        self._chat_rate = chat_per_second
        self._chat_burst = chat_burst
        self._chat_limiters: dict[int, AsyncLimiter] = {}

    def _chat_limiter(self, chat_id: int) -> AsyncLimiter | None:
        if not self._chat_rate:
            return None
        limiter = self._chat_limiters.get(chat_id)
        if limiter is None:
            if len(self._chat_limiters) > 4096:  # forget idle chats (a full bucket)
                for key, old in list(self._chat_limiters.items()):
                    if old.has_capacity(old.max_rate):
                        del self._chat_limiters[key]
            limiter = AsyncLimiter(self._chat_burst, self._chat_burst / self._chat_rate)
            self._chat_limiters[chat_id] = limiter
        return limiter

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        metrics = self._metrics

        async def counted(*a: Any, **kw: Any) -> Any:
            try:
                return await callback(*a, **kw)
            except RetryAfter:
                metrics.rate_limited.labels(SOURCE).inc()
                raise

        chat_id = data.get("chat_id")
        private = False
        with contextlib.suppress(TypeError, ValueError):
            private = chat_id is not None and int(chat_id) > 0
        if self._pacer is not None:
            await self._paced(f"{self._bot_key}:{chat_id}" if private else None)
            return await super().process_request(
                counted, args, kwargs, endpoint, data, rate_limit_args
            )
        limiter = self._chat_limiter(int(chat_id)) if private and chat_id is not None else None
        if limiter is None:
            return await super().process_request(
                counted, args, kwargs, endpoint, data, rate_limit_args
            )
        async with limiter:
            return await super().process_request(
                counted, args, kwargs, endpoint, data, rate_limit_args
            )

    async def _paced(self, chat_key: str | None) -> None:
        """Wait for this chat's shared slot, then for the bot's (in that order, so a chat's
        wait never holds a slot of the bot's)."""
        assert self._pacer is not None
        if chat_key is not None and self._chat_rate:
            wait = await self._pacer.reserve(
                "telegram.chat", chat_key, self._chat_rate, self._chat_burst
            )
            if wait:
                await asyncio.sleep(wait)
        # A process that wakes up late (a busy event loop) would send in the next slot's
        # time, bunching with it: past half an interval late it takes a new slot instead.
        late = 0.5 / self._overall_rate if self._overall_rate else 0.0
        for _ in range(LATE_RETRIES):
            wait = await self._pacer.reserve("telegram.bot", self._bot_key, self._overall_rate)
            due = time.monotonic() + wait
            if wait:
                await asyncio.sleep(wait)
            if time.monotonic() - due <= late:
                return


def retry_seconds(exc: RetryAfter) -> float:
    # PTB 22 returns an int here (a timedelta in a later major version) and warns about it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value: Any = exc.retry_after
    return float(value.total_seconds() if hasattr(value, "total_seconds") else value)


def bot_key(settings: Settings) -> str:
    """The bot's id (the token's part before the colon): its limits' key, never a secret."""
    token = settings.telegram_bot_token
    return token.get_secret_value().split(":", 1)[0] if token is not None else "bot"
