"""Builds the dialog engine from settings: called once by the composition root."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from core.db.database import Database
from dialogs.catalogue import load_catalogue
from dialogs.config import DialogConfig
from dialogs.engine import DialogEngine
from dialogs.knowledge import LiveKnowledge, shipped_articles
from dialogs.nlu.base import NLU

#: How the start-up log names each local backend.
_BACKEND_NAMES = {"local": "TF-IDF", "embeddings": "sentence embeddings"}

log = logging.getLogger("careline.dialogs")


def build_nlu(settings: Any) -> NLU:
    """The NLU the settings ask for (core.config.Settings).

    `auto` takes Watson when it is configured (an assistant id and `ASSISTANT_URL`), else
    the local classifier. Watson always stands behind a fallback to the local classifier,
    used on errors, timeouts and low confidence.
    """
    from dialogs.nlu import FallbackNLU, default_nlu

    backend = settings.nlu_backend
    watson_ready = bool(settings.watson_assistant_id and os.environ.get("ASSISTANT_URL"))
    local_backend = "embeddings" if backend == "embeddings" else "local"
    local = default_nlu(
        settings.nlu_intents_file,
        cache_dir=Path(settings.data_dir) / "nlu",
        threshold=settings.nlu_threshold,
        backend=local_backend,
        finetune=bool(getattr(settings, "nlu_finetune", False)),
    )
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


def build_engine(settings: Any, db: Database, nlu: NLU | None = None) -> DialogEngine:
    """The engine on `settings`; the NLU from `build_nlu` when none is given.

    Loads the message catalogue and the FAQ file (the knowledge base's seed) and trains or
    loads the cached classifier: call it at start-up, never per request. Answers come from
    the published articles only; `engine.knowledge.start()` seeds and loads them.
    """
    if nlu is None:
        nlu = build_nlu(settings)
    return DialogEngine(
        db,
        nlu,
        DialogConfig.from_settings(settings),
        load_catalogue(),
        knowledge=build_knowledge(settings, db),
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
