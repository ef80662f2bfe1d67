"""Bot texts by key and language, read from `dialogs/messages/<language>.yaml`.

English is complete; another language may translate any subset of the keys and falls back to
English for the rest. Keys are dotted paths into the YAML tree (`intake.ask_category`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

MESSAGES_DIR = Path(__file__).resolve().parent / "messages"
DEFAULT_LANGUAGE = "en"


class MissingText(KeyError):
    """A key the default language does not have (a bug: tests load the catalogue strictly)."""


class _Params(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Catalogue:
    """Message texts per language with English fallback."""

    def __init__(
        self,
        languages: Mapping[str, Mapping[str, str]],
        *,
        default: str = DEFAULT_LANGUAGE,
        strict: bool = False,
    ) -> None:
        if default not in languages:
            raise ValueError(f"the catalogue has no {default!r} texts")
        self._languages = {code.lower(): dict(texts) for code, texts in languages.items()}
        self.default = default
        self.strict = strict

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted(self._languages))

    def keys(self, language: str | None = None) -> frozenset[str]:
        return frozenset(self._languages[language or self.default])

    def has(self, key: str) -> bool:
        return key in self._languages[self.default]

    def language_for(self, code: str | None) -> str:
        """The best language we have for a platform code (`de-AT` -> `de`), else the default."""
        if code:
            code = code.lower().replace("_", "-")
            for candidate in (code, code.split("-")[0]):
                if candidate in self._languages:
                    return candidate
        return self.default

    def text(self, key: str, language: str | None = None, /, **params: Any) -> str:
        texts = self._languages.get(self.language_for(language), {})
        template = texts.get(key)
        if template is None:
            template = self._languages[self.default].get(key)
        if template is None:
            if self.strict:
                raise MissingText(key)
            return key
        return template.format_map(_Params(params)) if params else template


def load_catalogue(folder: str | Path | None = None, *, strict: bool = False) -> Catalogue:
    """Every `<language>.yaml` of the folder (the shipped messages unless another is given)."""
    folder = Path(folder) if folder is not None else MESSAGES_DIR
    languages: dict[str, dict[str, str]] = {}
    for path in sorted(folder.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        messages = document.get("messages")
        if not isinstance(messages, Mapping):
            raise ValueError(f"{path}: expected a 'messages:' mapping")
        languages[path.stem.lower()] = dict(_flatten(messages))
    return Catalogue(languages, strict=strict)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    flat: list[tuple[str, str]] = []
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.extend(_flatten(value, key + "."))
        else:
            flat.append((key, str(value).rstrip("\n")))
    return flat
