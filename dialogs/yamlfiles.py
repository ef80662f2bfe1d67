"""YAML as Careline reads it: PyYAML's safe loader, in C (libyaml) when PyYAML was built with it
(several times faster on the message catalogues read at every start)."""

from __future__ import annotations

from typing import Any

import yaml

_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """`yaml.safe_load(text)`, with the C loader when there is one."""
    return yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 (a safe loader)
