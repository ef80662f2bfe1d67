"""Natural-language understanding: one ``NLU`` protocol, several backends.

- ``LocalNLU`` (``dialogs.nlu.local``): the embedded default, trained with scikit-learn from
  an intents file and served from plain arrays (``dialogs.nlu.tfidf``); ``default_nlu()``
  loads the trained model that ships for the support intents.
- the ``embeddings`` backend of ``LocalNLU``: adds sentence embeddings (extra
  ``careline[embeddings]``).
- ``WatsonNLU`` (``dialogs.nlu.watson``, the only module that imports ibm_watson).
- ``FallbackNLU``: Watson down, slow or unsure -> local.

Importing this package loads neither scikit-learn nor ibm_watson.
"""

from dialogs.nlu.base import NLU, OUT_OF_SCOPE, Entity, Parse
from dialogs.nlu.entities import extract_entities
from dialogs.nlu.fallback import FallbackNLU
from dialogs.nlu.faq import FaqBook, load_faq
from dialogs.nlu.local import DEFAULT_THRESHOLD, LocalNLU, ModelVersionError, default_nlu
from dialogs.nlu.training import Example, TrainingDataError, import_watson_skill, load_examples

__all__ = [
    "DEFAULT_THRESHOLD",
    "NLU",
    "OUT_OF_SCOPE",
    "Entity",
    "Example",
    "FallbackNLU",
    "FaqBook",
    "LocalNLU",
    "ModelVersionError",
    "Parse",
    "TrainingDataError",
    "default_nlu",
    "extract_entities",
    "import_watson_skill",
    "load_examples",
    "load_faq",
]
