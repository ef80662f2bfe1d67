"""Text messages: choices as numbered lines, and replies cut at SMS segment boundaries.

A text travels as GSM-7 (160 characters, or 153 per segment once split) when every
character is in the GSM 03.38 alphabet, else as UCS-2 (70 UTF-16 units, 67 per segment).
Typographic quotes and dashes are written as their GSM look-alikes first, so an apostrophe
does not triple the price of a message. A long reply goes as several texts of at most
`SEGMENTS_PER_TEXT` segments each (phones join those reliably), cut between words, and a
reply never takes more than `max_segments` in all: the rest is cut with an ellipsis.
"""

from __future__ import annotations

from dataclasses import dataclass

from dialogs.turn import Reply

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")  # each takes two septets (an escape first)
SEGMENTS_PER_TEXT = 4
ELLIPSIS = "…"
_LOOK_ALIKES = str.maketrans(
    {
        "‘": "'",
        "’": "'",
        "‚": "'",
        "“": '"',
        "”": '"',
        "„": '"',
        "–": "-",
        "—": "-",
        "\u00a0": " ",
        "\u202f": " ",
        "•": "-",
    }
)


def gsm_friendly(text: str) -> str:
    """Typographic punctuation as its GSM-7 look-alike; "…" as three dots."""
    return text.translate(_LOOK_ALIKES).replace(ELLIPSIS, "...")


def is_gsm(text: str) -> bool:
    return all(ch in GSM_BASIC or ch in GSM_EXTENDED for ch in text)


def units(text: str, gsm: bool) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) the text takes."""
    if gsm:
        return sum(2 if ch in GSM_EXTENDED else 1 for ch in text)
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


@dataclass(frozen=True, slots=True)
class Encoding:
    gsm: bool

    @property
    def single(self) -> int:
        return 160 if self.gsm else 70

    @property
    def per_segment(self) -> int:
        return 153 if self.gsm else 67

    def segments(self, text: str) -> int:
        n = units(text, self.gsm)
        if n <= self.single:
            return 1
        return -(-n // self.per_segment)


def encoding_of(text: str) -> Encoding:
    return Encoding(is_gsm(text))


def segments(text: str) -> int:
    """How many SMS segments the text is billed and sent as."""
    return encoding_of(text).segments(text)


def render(reply: Reply) -> str:
    """One reply as a text: its choices as numbered lines (answer with the number)."""
    return gsm_friendly(reply.as_plain_text()).strip()


def split_text(text: str, max_segments: int = 10) -> list[str]:
    """The texts one reply goes as (see the module docstring)."""
    text = gsm_friendly(text).strip()
    encoding = encoding_of(text)
    per_text = max(1, min(SEGMENTS_PER_TEXT, max_segments))
    if encoding.segments(text) <= per_text:
        return [text]
    texts: list[str] = []
    rest, left = text, max(1, max_segments)
    while rest and left > 0:
        n = min(per_text, left)
        room = encoding.per_segment * n
        if units(rest, encoding.gsm) <= room:
            texts.append(rest)
            break
        left -= n
        mark = _ellipsis(encoding) if left <= 0 else ""  # the cap: say that more was cut
        cut = _cut(rest, room - units(mark, encoding.gsm))
        texts.append(rest[:cut].rstrip() + mark)
        rest = rest[cut:].lstrip()
    return texts


def _ellipsis(encoding: Encoding) -> str:
    return "..." if encoding.gsm else ELLIPSIS


def _cut(text: str, room: int) -> int:
    """Where to end a text of at most `room` units: after a paragraph, a line, a sentence or
    a word, whichever is latest in its second half; mid-word only when a word is longer."""
    gsm = is_gsm(text)
    end = 0
    used = 0
    for index, ch in enumerate(text):
        used += units(ch, gsm)
        if used > room:
            break
        end = index + 1
    window = text[:end]
    for mark in ("\n\n", "\n", ". ", "? ", "! ", " "):
        at = window.rfind(mark)
        if at >= end // 2:
            return at + len(mark)
    return end
