"""Training data: labelled examples read from CSV, YAML or a Watson Assistant skill export."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from dialogs.yamlfiles import load_yaml


class Example(NamedTuple):
    text: str
    intent: str


class TrainingDataError(ValueError):
    """The file is not a training set we can read."""


def load_examples(path: str | Path) -> list[Example]:
    """Read labelled examples; the format follows the file's extension.

    - ``.csv``: columns ``text`` and ``category`` (or ``intent``), like Banking77;
    - ``.yaml``/``.yml``: ``intents: {name: [example, ...]}``;
    - ``.json``: a Watson Assistant skill (workspace) export.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _load_csv(path)
    if suffix in {".yaml", ".yml"}:
        return _load_yaml(path)
    if suffix == ".json":
        return import_watson_skill(path)
    raise TrainingDataError(f"{path}: expected a .csv, .yaml/.yml or Watson skill .json file")


def import_watson_skill(skill: str | Path | Mapping[str, Any]) -> list[Example]:
    """Examples from a Watson Assistant dialog skill export (``intents[].examples[].text``).

    Accepts the workspace JSON itself or the skill wrapper that newer exports put around it
    (``{"workspace": {...}}``), so a team with a Watson skill can train the local classifier.
    """
    examples: list[Example] = []
    for intent in read_watson_skill(skill)["intents"]:
        name = intent.get("intent")
        for example in intent.get("examples", []):
            text = example.get("text", "").strip()
            if name and text:
                examples.append(Example(text, name))
    return _checked(examples, "Watson skill")


def read_watson_skill(skill: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    """The workspace of a Watson Assistant dialog skill export: the JSON itself or the
    ``{"workspace": {...}}`` wrapper of newer exports. It has at least an ``intents`` list."""
    if isinstance(skill, Mapping):
        document: Any = skill
    else:
        try:
            document = json.loads(Path(skill).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise TrainingDataError(f"{skill}: not JSON ({error})") from error
    workspace = document.get("workspace", document) if isinstance(document, Mapping) else None
    if not isinstance(workspace, Mapping) or not isinstance(workspace.get("intents"), list):
        raise TrainingDataError("not a Watson skill export: no 'intents' list")
    return workspace


def _load_csv(path: Path) -> list[Example]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        label = "category" if "category" in fields else "intent"
        if "text" not in fields or label not in fields:
            raise TrainingDataError(f"{path}: needs columns text and category (or intent)")
        examples = [
            Example(row["text"].strip(), row[label].strip())
            for row in reader
            if row["text"].strip() and row[label].strip()
        ]
    return _checked(examples, str(path))


def _load_yaml(path: Path) -> list[Example]:
    document = load_yaml(path.read_text(encoding="utf-8")) or {}
    intents = document.get("intents") if isinstance(document, Mapping) else None
    if not isinstance(intents, Mapping):
        raise TrainingDataError(f"{path}: expected 'intents: {{name: [examples]}}'")
    return _checked(_from_mapping(intents), str(path))


def _from_mapping(intents: Mapping[str, Iterable[str]]) -> list[Example]:
    return [
        Example(str(text).strip(), str(name))
        for name, texts in intents.items()
        for text in texts or ()
        if str(text).strip()
    ]


def _checked(examples: list[Example], origin: str) -> list[Example]:
    if len({example.intent for example in examples}) < 2:
        raise TrainingDataError(f"{origin}: a classifier needs at least two intents with examples")
    return examples
