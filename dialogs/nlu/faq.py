"""FAQ answers keyed by intent, read from a versioned YAML file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dialogs.yamlfiles import load_yaml


@dataclass(frozen=True, slots=True)
class FaqBook:
    """The answer text for each ``faq_*`` intent, and the version of the file it came from."""

    version: str
    answers: Mapping[str, str] = field(default_factory=dict)

    def answer(self, intent: str) -> str | None:
        return self.answers.get(intent)


def load_faq(path: str | Path | None = None) -> FaqBook:
    """The shipped ``dialogs/data/faq.yaml`` unless another file is given."""
    if path is None:
        from dialogs.data import FAQ_FILE

        path = FAQ_FILE
    document = load_yaml(Path(path).read_text(encoding="utf-8")) or {}
    answers = document.get("answers")
    if "version" not in document or not isinstance(answers, Mapping):
        raise ValueError(f"{path}: expected 'version:' and 'answers: {{intent: text}}'")
    return FaqBook(
        version=str(document["version"]),
        answers={str(intent): " ".join(str(text).split()) for intent, text in answers.items()},
    )
