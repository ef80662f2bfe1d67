"""Articles as files: the FAQ YAML of `dialogs/data/faq.yaml`, and Markdown with a small
front matter (the Jekyll/Hugo convention), one file per article:

    ---
    title: Opening hours
    language: en
    key: faq_opening_hours
    tags: [faq]
    questions:
      - when are you open?
    ---

    We're open Monday to Friday 9:00-18:00...
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from core.errors import InvalidInput
from core.knowledge import Article, ArticleText, checked_text
from dialogs.knowledge import title_of
from dialogs.yamlfiles import load_yaml

FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)(.*)\Z", re.S)
HEADING = re.compile(r"^#[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


class InvalidFile(InvalidInput):
    code = "invalid_file"


def faq_yaml(articles: Sequence[Article], revision: int) -> str:
    """The articles with a key as the FAQ file: `version:` and `answers: {key: text}`."""
    answers = {a.text.key: a.text.body for a in articles if a.text.key}
    return yaml.safe_dump(
        {"version": revision, "answers": answers},
        allow_unicode=True,
        sort_keys=False,
        width=100,
    )


def read_faq_yaml(name: str, content: str, language: str) -> list[ArticleText]:
    document = _yaml(name, content)
    answers = document.get("answers") if isinstance(document, Mapping) else None
    if not isinstance(answers, Mapping) or "version" not in document:
        raise InvalidFile(f"{name}: expected 'version:' and 'answers: {{key: text}}'")
    texts = []
    for key, answer in answers.items():
        if not isinstance(answer, str) or not str(key).strip():
            raise InvalidFile(f"{name}: the answer of {str(key)[:100]!r} is not a text")
        texts.append(ArticleText(title_of(str(key)), answer.strip(), language, str(key).strip()))
    return texts


def markdown(article: Article) -> str:
    text = article.text
    front: dict[str, Any] = {"title": text.title, "language": text.language}
    if text.key:
        front["key"] = text.key
    if text.tags:
        front["tags"] = list(text.tags)
    if text.questions:
        front["questions"] = list(text.questions)
    matter = yaml.safe_dump(front, allow_unicode=True, sort_keys=False, width=100)
    return f"---\n{matter}---\n\n{text.body}\n"


def markdown_name(article: Article) -> str:
    slug = article.text.key or f"article-{article.id}"
    return f"{slug}.{article.text.language}.md"


def read_markdown(name: str, content: str, language: str) -> ArticleText:
    """One article from a Markdown file; without a `title:` its first heading is the title."""
    found = FRONT_MATTER.match(content)
    front: Any = _yaml(name, found.group(1)) if found else {}
    body = (found.group(2) if found else content).strip()
    if not isinstance(front, Mapping):
        raise InvalidFile(f"{name}: the front matter is not a mapping")
    heading = HEADING.search(body)
    title = front.get("title") or (heading.group(1) if heading else None)
    if not isinstance(title, str) or not title.strip():
        raise InvalidFile(f"{name}: give a `title:` in the front matter or a `# heading`")
    return ArticleText(
        title=title,
        body=body,
        language=str(front.get("language") or language),
        key=str(front["key"]) if front.get("key") else None,
        tags=_texts(name, front, "tags"),
        questions=_texts(name, front, "questions"),
    )


def check(texts: Sequence[ArticleText]) -> None:
    """Every article a file gave is one the knowledge base takes (lengths, blank fields)."""
    for text in texts:
        try:
            checked_text(text)
        except InvalidInput as exc:
            raise InvalidFile(f"{text.title[:100]!r}: {exc}") from exc


def _texts(name: str, front: Mapping[str, Any], field: str) -> tuple[str, ...]:
    value = front.get(field) or []
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise InvalidFile(f"{name}: `{field}:` must be a list of texts")
    return tuple(str(v) for v in value)


def _yaml(name: str, content: str) -> Any:
    try:
        return load_yaml(content)
    except yaml.YAMLError as exc:
        raise InvalidFile(f"{name}: not valid YAML ({type(exc).__name__})") from exc
