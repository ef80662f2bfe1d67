"""Builds the dialog engine from settings: called once by the composition root."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.db.database import Database
from dialogs.catalogue import shipped_catalogue
from dialogs.config import DialogConfig
from dialogs.engine import DialogEngine
from dialogs.knowledge import LiveKnowledge, shipped_articles
from dialogs.nlu.base import NLU
from dialogs.nlu.local import LocalNLU

if TYPE_CHECKING:
    from dialogs.nlu.live import LiveIntents

#: How the start-up log names each local backend.
_BACKEND_NAMES = {"local": "TF-IDF", "embeddings": "sentence embeddings"}

log = logging.getLogger("careline.dialogs")


def build_nlu(settings: Any, local: NLU | None = None) -> NLU:
    """The NLU the settings ask for (core.config.Settings), around `local` when given (the
    live classifier of `build_live_intents`).

    `auto` takes Watson when it is configured (an assistant id and `ASSISTANT_URL`), else
    the local classifier. Watson always stands behind a fallback to the local classifier,
    used on errors, timeouts and low confidence.
    """
    from dialogs.nlu import FallbackNLU

    backend = settings.nlu_backend
    watson_ready = bool(settings.watson_assistant_id and os.environ.get("ASSISTANT_URL"))
    local_backend = _local_backend(settings)
    if local is None:
        local = _file_nlu(settings)
    if backend == "watson" or (backend == "auto" and watson_ready):
        if not settings.watson_assistant_id or not settings.watson_environment_id:
            raise ValueError(
                "Watson needs CARELINE_WATSON_ASSISTANT_ID and CARELINE_WATSON_ENVIRONMENT_ID"
            )
        from dialogs.nlu.watson import WatsonNLU
        from dialogs.watson_mapping import watson_mapping_from_settings

        mapping = watson_mapping_from_settings(settings)  # checked now: a bad file stops start
        watson = WatsonNLU.from_environment(
            assistant_id=settings.watson_assistant_id,
            environment_id=settings.watson_environment_id,
            version=settings.watson_version,
            timeout=settings.watson_timeout,
            intent_names=mapping.intents,
            action_names=mapping.actions,
        )
        log.info("NLU: Watson Assistant, falling back to the local classifier")
        return FallbackNLU(
            watson,
            local,
            timeout=settings.watson_timeout,
            min_confidence=settings.watson_min_confidence,
        )
    log.info("NLU: the local classifier (%s)", _BACKEND_NAMES.get(local_backend, local_backend))
    return local


def build_live_intents(settings: Any, db: Database) -> LiveIntents | None:
    """The default classifier kept at the examples admins edit (None for the embeddings
    backend, which trains minutes per model and stays on its intents file)."""
    if _local_backend(settings) != "local" or getattr(settings, "nlu_finetune", False):
        return None
    from dialogs.nlu.live import LiveIntents

    base = _file_nlu(settings)
    return LiveIntents(
        db,
        base,
        intents_file=settings.nlu_intents_file,
        refresh_seconds=settings.knowledge_refresh_seconds,
    )


def _local_backend(settings: Any) -> str:
    return "embeddings" if settings.nlu_backend == "embeddings" else "local"


def _file_nlu(settings: Any) -> LocalNLU:
    """The local classifier of the intents file (shipped trained, else trained once and
    cached)."""
    from dialogs.nlu import default_nlu

    return default_nlu(
        settings.nlu_intents_file,
        cache_dir=Path(settings.data_dir) / "nlu",
        threshold=settings.nlu_threshold,
        backend=_local_backend(settings),
        finetune=bool(getattr(settings, "nlu_finetune", False)),
    )


def build_engine(settings: Any, db: Database, nlu: NLU | None = None) -> DialogEngine:
    """The engine on `settings`; the NLU from `build_nlu` when none is given.

    Loads the message catalogue and the FAQ file (the knowledge base's seed) and trains or
    loads the cached classifier: call it at start-up, never per request. Answers come from
    the published articles only; `engine.knowledge.start()` seeds and loads them, and
    `engine.intents.start()` loads the model of the examples admins edited.
    """
    live = None
    if nlu is None:
        live = build_live_intents(settings, db)
        nlu = build_nlu(settings, live)
    return DialogEngine(
        db,
        nlu,
        DialogConfig.from_settings(settings),
        shipped_catalogue(),
        knowledge=build_knowledge(settings, db),
        intents=live,
    )


def build_knowledge(settings: Any, db: Database) -> LiveKnowledge:
    """The knowledge base's answers, seeded from the FAQ file on a new install."""
    faq_file = getattr(settings, "nlu_faq_file", None)
    intents_file = getattr(settings, "nlu_intents_file", None)
    encoder = None
    if getattr(settings, "nlu_backend", "local") == "embeddings":
        # The NLU loads MiniLM anyway: retrieval fuses BM25 with its sentence vectors.
        from dialogs.nlu.embeddings import shared_encoder

        encoder = shared_encoder().encode
    return LiveKnowledge(
        db,
        min_confidence=settings.knowledge_min_confidence,
        refresh_seconds=settings.knowledge_refresh_seconds,
        seeds=shipped_articles(faq_file, intents_file),
        encoder=encoder,
    )
