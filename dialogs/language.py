"""Which language to answer in: the customer's choice, else what their messages are written
in, else what their platform says.

Detection is offline (lingua, in its low-accuracy mode: trigram models of only the languages
the catalogue ships, about 15 MB, loaded at the first message that needs it) and decides only
when it is sure: a message of a few words in one of those languages. A customer who picked a
language with /language keeps it whatever they write.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, overload

from core.model import base_language

#: Below this, a detection does not change the language (short or mixed messages).
SURE = 0.9
#: Fewer words than this say too little about their language ("ok", "gracias").
MIN_WORDS = 3
_WORD = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True, slots=True)
class Detected:
    language: str  # ISO 639-1
    confidence: float


def detect(text: str, languages: tuple[str, ...]) -> Detected | None:
    """The language of `text` among `languages` (ISO 639-1), when the text says enough."""
    if len(_WORD.findall(text)) < MIN_WORDS:
        return None
    detector = _detector(tuple(sorted(languages)))
    if detector is None:
        return None
    values = detector.compute_language_confidence_values(text)
    if not values:
        return None
    best = values[0]
    return Detected(best.language.iso_code_639_1.name.lower(), float(best.value))


def language_for_turn(
    remembered: str, chosen: bool, text: str, languages: tuple[str, ...]
) -> str | None:
    """The language to switch to for this message, or None to keep `remembered`."""
    if chosen:
        return None
    found = detect(text, languages)
    if found is None or found.confidence < SURE:
        return None
    return found.language if found.language != base_language(remembered) else None


def native_name(code: str) -> str:
    """`es` -> `Español`: a language named in itself, as a menu of languages shows it."""
    from babel import Locale, UnknownLocaleError

    try:
        name = Locale.parse(code).get_display_name(code)
    except (ValueError, UnknownLocaleError):
        return code
    return name[:1].upper() + name[1:] if name else code


class NativeNames(Sequence[tuple[str, str]]):
    """The catalogue's languages as (code, name in itself) pairs, for the /language menu.

    The names come from Babel's locale data, about 12 ms a language to load, so they are
    looked up when a menu first needs them rather than at start-up."""

    def __init__(self, codes: Iterable[str]) -> None:
        self.codes = tuple(codes)

    @functools.cached_property
    def _pairs(self) -> tuple[tuple[str, str], ...]:
        return tuple((code, native_name(code)) for code in self.codes)

    def __len__(self) -> int:
        return len(self.codes)

    @overload
    def __getitem__(self, index: int) -> tuple[str, str]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[str, str]]: ...
    def __getitem__(self, index: int | slice) -> tuple[str, str] | Sequence[tuple[str, str]]:
        return self._pairs[index]


@functools.cache
def _detector(languages: tuple[str, ...]) -> Any:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    known = []
    for code in languages:
        iso = getattr(IsoCode639_1, code.upper(), None)
        if iso is not None:
            known.append(Language.from_iso_code_639_1(iso))
    if len(known) < 2:
        return None  # one language: nothing to tell apart
    return LanguageDetectorBuilder.from_languages(*known).with_low_accuracy_mode().build()
