"""Watson first, the local classifier when Watson fails, is slow or is unsure."""

from __future__ import annotations

import asyncio
import logging

from dialogs.nlu.base import NLU, OUT_OF_SCOPE, Parse

log = logging.getLogger(__name__)


class FallbackNLU:
    """Asks ``primary``; answers with ``fallback`` on an error, after ``timeout`` seconds, or
    when the primary's intent is out of scope or below ``min_confidence``."""

    def __init__(
        self, primary: NLU, fallback: NLU, *, timeout: float = 2.0, min_confidence: float = 0.5
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.timeout = timeout
        self.min_confidence = min_confidence

    async def parse(self, text: str) -> Parse:
        try:
            parse = await asyncio.wait_for(self.primary.parse(text), self.timeout)
        except TimeoutError:
            log.warning("primary NLU took over %.1f s; using the fallback", self.timeout)
            return await self.fallback.parse(text)
        except Exception:
            log.warning("primary NLU failed; using the fallback", exc_info=True)
            return await self.fallback.parse(text)
        if parse.intent == OUT_OF_SCOPE or parse.confidence < self.min_confidence:
            backup = await self.fallback.parse(text)
            # Keep the primary's answer when the fallback knows no better.
            if backup.intent != OUT_OF_SCOPE:
                return backup
        return parse
