"""Knowledge gaps: the questions the bot could not answer, grouped so that admins see what to
write next (GET /api/v1/articles/gaps).

Questions are grouped by the words the knowledge index compares (dialogs/knowledge.words:
case-folded, English stopwords dropped, endings cut), greedily, newest first: a question
joins the first group of its language whose words overlap its own by at least `SIMILAR`
(cosine of the word sets), else it starts a group. Small and predictable: a few thousand
questions group in milliseconds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from core.knowledge import Gap, GapReason
from dialogs.knowledge import words

#: How alike two questions' words must be to count as one gap (cosine of the word sets).
SIMILAR = 0.5
EXAMPLES = 5


@dataclass
class GapGroup:
    """Questions that ask the same thing in one language (articles are per language),
    newest first."""

    language: str
    words: frozenset[str]
    gaps: list[Gap] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.gaps)

    @property
    def last_seen(self) -> datetime:
        return max(g.created_at for g in self.gaps)

    @property
    def examples(self) -> list[str]:
        """Distinct questions as asked (case and spaces aside), newest first."""
        seen: dict[str, str] = {}
        for gap in self.gaps:
            seen.setdefault(" ".join(gap.question.casefold().split()), gap.question.strip())
        return list(seen.values())[:EXAMPLES]

    @property
    def reasons(self) -> dict[GapReason, int]:
        return dict(Counter(g.reason for g in self.gaps))

    @property
    def article_ids(self) -> list[int]:
        """Articles that matched too weakly or did not help."""
        return sorted({g.article_id for g in self.gaps if g.article_id is not None})


def group_gaps(gaps: Iterable[Gap]) -> list[GapGroup]:
    """The gaps grouped by what they ask; the most asked first (then the most recent)."""
    groups: list[GapGroup] = []
    for gap in sorted(gaps, key=lambda g: (g.created_at, g.id), reverse=True):
        found = frozenset(words(gap.question, gap.language))
        if not found:  # only stopwords ("what?"): alike only when asked alike
            found = frozenset({" ".join(words(gap.question, language="any"))})
        for group in groups:
            if group.language == gap.language and _alike(found, group.words):
                group.gaps.append(gap)
                break
        else:
            groups.append(GapGroup(gap.language, found, [gap]))
    return sorted(groups, key=lambda g: (g.count, g.last_seen), reverse=True)


def _alike(a: frozenset[str], b: frozenset[str]) -> bool:
    return len(a & b) / math.sqrt(len(a) * len(b)) >= SIMILAR
