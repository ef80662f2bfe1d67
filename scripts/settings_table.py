"""Print the README's configuration table from core.config.Settings (one source of truth)."""

from __future__ import annotations

from pydantic import AliasChoices

from core.config import Settings


def env_name(name: str, field: object) -> str:
    alias = getattr(field, "validation_alias", None)
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"CARELINE_{name.upper()}"


def default_of(field: object) -> str:
    if getattr(field, "default_factory", None) is not None:
        value = field.default_factory()  # type: ignore[attr-defined]
        return f"`{value}`" if value else "empty"
    value = getattr(field, "default", None)
    return "unset" if value is None else f"`{value}`"


def rows() -> list[str]:
    lines = ["| variable | default | what it does |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        lines.append(f"| `{env_name(name, field)}` | {default_of(field)} | {field.description} |")
    return lines


if __name__ == "__main__":
    print("\n".join(rows()))
