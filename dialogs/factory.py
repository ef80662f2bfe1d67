"""Builds the dialog engine from settings: called once by the composition root."""

from __future__ import annotations

from typing import Any

from core.db.database import Database
from dialogs.catalogue import load_catalogue
from dialogs.config import DialogConfig
from dialogs.engine import DialogEngine
from dialogs.nlu.base import NLU


def build_engine(settings: Any, db: Database, nlu: NLU | None = None) -> DialogEngine:
    """The engine on `settings` (core.config.Settings); the local NLU when none is given.

    Loads the message catalogue and FAQ file and, without `nlu`, trains or loads the cached
    local classifier: call it at start-up, never per request.
    """
    from dialogs.nlu import load_faq

    faq = load_faq(getattr(settings, "nlu_faq_file", None))
    if nlu is None:
        from dialogs.nlu import default_nlu

        nlu = default_nlu(
            getattr(settings, "nlu_intents_file", None),
            threshold=float(getattr(settings, "nlu_threshold", 0.45)),
        )
    return DialogEngine(db, nlu, DialogConfig.from_settings(settings), load_catalogue(), faq=faq)
