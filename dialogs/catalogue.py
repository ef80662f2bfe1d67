"""Bot texts by key and language, read from `dialogs/messages/<language>.yaml`.

English is complete; another language may translate any subset of the keys and falls back to
English for the rest. Keys are dotted paths into the YAML tree (`intake.ask_category`).

A text that depends on a number is a mapping of CLDR plural categories (`one`, `other`, and
`zero`/`two`/`few`/`many` where the language has them) chosen by the parameter `n` with the
language's own plural rule (Babel's CLDR data); `n` is written in the language's number
format (`1,000` in English, `1.000` in German).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.numbers import format_decimal

from dialogs.yamlfiles import load_yaml

MESSAGES_DIR = Path(__file__).resolve().parent / "messages"
DEFAULT_LANGUAGE = "en"


PLURAL_CATEGORIES = frozenset({"zero", "one", "two", "few", "many", "other"})
#: A plural text: its forms by CLDR category (`other` always present).
Plural = Mapping[str, str]


class MissingText(KeyError):
    """A key the default language does not have (a bug: tests load the catalogue strictly)."""


class _Params(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Catalogue:
    """Message texts per language with English fallback."""

    def __init__(
        self,
        languages: Mapping[str, Mapping[str, str | Plural]],
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
        if not isinstance(template, str):
            template, params = self._plural(template, language, params)
        return template.format_map(_Params(params)) if params else template

    def _plural(
        self, forms: Plural, language: str | None, params: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """The form for `n` by the language's plural rule, with `n` in its number format."""
        n = params.get("n")
        if not isinstance(n, int | float):
            return forms["other"], params
        locale = _locale(self.language_for(language))
        category = locale.plural_form(n)
        formatted = format_decimal(n, locale=locale)
        return forms.get(category, forms["other"]), {**params, "n": formatted}


@functools.cache
def shipped_catalogue() -> Catalogue:
    """The shipped messages, read once per process (the engine, the notices, the web chat
    and the calls share them; a catalogue is never changed once loaded)."""
    return load_catalogue()


def load_catalogue(folder: str | Path | None = None, *, strict: bool = False) -> Catalogue:
    """Every `<language>.yaml` of the folder (the shipped messages unless another is given)."""
    folder = Path(folder) if folder is not None else MESSAGES_DIR
    languages: dict[str, dict[str, str | Plural]] = {}
    for path in sorted(folder.glob("*.yaml")):
        document = load_yaml(path.read_text(encoding="utf-8")) or {}
        messages = document.get("messages")
        if not isinstance(messages, Mapping):
            raise ValueError(f"{path}: expected a 'messages:' mapping")
        languages[path.stem.lower()] = dict(_flatten(messages))
    return Catalogue(languages, strict=strict)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str | Plural]]:
    flat: list[tuple[str, str | Plural]] = []
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and _is_plural(value):
            flat.append((key, {form: str(text).rstrip("\n") for form, text in value.items()}))
        elif isinstance(value, Mapping):
            flat.extend(_flatten(value, key + "."))
        else:
            flat.append((key, str(value).rstrip("\n")))
    return flat


def _is_plural(value: Mapping[str, Any]) -> bool:
    return "other" in value and set(value) <= PLURAL_CATEGORIES


@functools.cache
def _locale(language: str) -> Locale:
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale("en")
