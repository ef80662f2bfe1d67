"""A small Dockerfile reader: instructions per stage, with continuation lines joined."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def last(self, keyword: str) -> str | None:
        values = [value for key, value in self.instructions if key == keyword]
        return values[-1] if values else None


@dataclass
class Dockerfile:
    global_args: dict[str, str | None]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


def parse(path: Path) -> Dockerfile:
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for line in logical_lines(path.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = rest.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif keyword == "ARG" and not stages:
            arg_name, eq, default = rest.partition("=")
            global_args[arg_name] = default if eq else None
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, rest))
    return Dockerfile(global_args=global_args, stages=stages)


def exec_form(value: str | None) -> list[str] | None:
    """ENTRYPOINT/CMD as a list: JSON exec form, or the shell form run by /bin/sh -c."""
    if value is None:
        return None
    if value.startswith("["):
        words = json.loads(value)
        assert isinstance(words, list)
        return [str(w) for w in words]
    return ["/bin/sh", "-c", value]


def healthcheck_command(value: str) -> list[str]:
    """The command of `HEALTHCHECK [--options] CMD ...`."""
    match = re.search(r"\bCMD\s+(.*)$", value)
    assert match, f"no CMD in HEALTHCHECK {value!r}"
    command = match.group(1)
    return exec_form(command) if command.startswith("[") else shlex.split(command)  # type: ignore[return-value]
