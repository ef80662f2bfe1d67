"""Which of a Watson skill's intents and client actions lead into Careline's own flows.

A Watson skill names its intents its own way and carries its own answers; the customer gets
those answers as they are. The mapping file (YAML, ``CARELINE_WATSON_MAPPING_FILE``) names
the intents and client actions that should start a Careline flow instead::

    intents:
      Help-Connect_to_Agent: human        # a person
      Billing-Dispute: complain           # open a ticket
      Business_Information-Business_Hours: faq
    actions:                              # client actions a dialog node requests
      open_ticket: complain

``careline nlu import-watson SKILL.json`` writes a first version from a skill export. The
file is checked when Careline starts: an unknown target stops the start with its name.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dialogs.nlu.faq import load_faq
from dialogs.nlu.training import read_watson_skill
from dialogs.policy import FAQ, INTENT_HANDLERS
from dialogs.yamlfiles import load_yaml

#: Watson's own answer: what every intent the file does not name gets anyway.
WATSON_ANSWER = "watson"
#: What each target does, for the error message and the file `import-watson` writes.
TARGETS: Mapping[str, str] = {
    "complain": "open a ticket (Careline asks what happened, the area, the urgency)",
    "ticket_status": "list the customer's tickets, or show the one named",
    "human": "put the customer through to a person (opens a ticket when none is open)",
    FAQ: "Watson's answer as an FAQ answer, then 'Did that help?'",
    "faq_<key>": "the answer under that key in Careline's FAQ file",
    "my_data": "show or erase the customer's data",
    "rate": "rate a resolved ticket",
    "greet": "Careline's greeting and menu",
    "help": "what Careline can do, and its commands",
    "goodbye": "Careline's goodbye",
    "thanks": "Careline's 'You're welcome'",
    "cancel": "cancel what is under way",
    WATSON_ANSWER: "Watson's own answer (what every intent not named here gets)",
}
SECTIONS = ("intents", "actions")


class WatsonMappingError(ValueError):
    """The mapping file names something Careline cannot do, or is not a mapping."""


@dataclass(frozen=True, slots=True)
class WatsonMapping:
    """Watson intent name -> Careline target, and client action name -> Careline target."""

    intents: Mapping[str, str] = field(default_factory=dict)
    actions: Mapping[str, str] = field(default_factory=dict)

    def to_yaml(self) -> str:
        header = "".join(f"#   {name}: {what}\n" for name, what in TARGETS.items())
        body = yaml.safe_dump(
            {"intents": dict(self.intents), "actions": dict(self.actions)},
            sort_keys=False,
            allow_unicode=True,
        )
        return f"# Watson skill -> Careline. Targets:\n{header}\n{body}"


def load_watson_mapping(
    path: str | Path, *, faq_keys: Collection[str] | None = None
) -> WatsonMapping:
    """Read and check a mapping file; ``faq_keys`` (the FAQ file's keys) checks ``faq_*``."""
    try:
        document = load_yaml(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise WatsonMappingError(f"Watson mapping {path}: cannot read it ({error})") from error
    return checked_mapping(document, origin=str(path), faq_keys=faq_keys)


def checked_mapping(
    document: Any, *, origin: str = "Watson mapping", faq_keys: Collection[str] | None = None
) -> WatsonMapping:
    """A mapping from its parsed form (a file or an API body), or a clear error."""
    if not isinstance(document, Mapping) or set(document) - set(SECTIONS):
        raise WatsonMappingError(f"{origin}: expected only 'intents:' and 'actions:' sections")
    sections: dict[str, dict[str, str]] = {}
    for section in SECTIONS:
        entries = document.get(section) or {}
        if not isinstance(entries, Mapping):
            raise WatsonMappingError(f"{origin}: '{section}' must map names to targets")
        sections[section] = {str(name): str(target) for name, target in entries.items()}
        for name, target in sections[section].items():
            problem = _target_problem(target, faq_keys)
            if problem:
                kind = section.removesuffix("s")
                raise WatsonMappingError(f"{origin}: {kind} '{name}' -> '{target}': {problem}")
    return WatsonMapping(sections["intents"], sections["actions"])


def watson_mapping_from_settings(settings: Any) -> WatsonMapping:
    """The mapping ``core.config.Settings`` names (none: every intent gets Watson's answer)."""
    path = getattr(settings, "watson_mapping_file", None)
    if not path:
        return WatsonMapping()
    faq = load_faq(getattr(settings, "nlu_faq_file", None))
    return load_watson_mapping(path, faq_keys=set(faq.answers))


def _target_problem(target: str, faq_keys: Collection[str] | None) -> str | None:
    if target.startswith("faq_"):
        if faq_keys is not None and target not in faq_keys:
            return "the FAQ file has no answer under that key"
        return None
    if target in INTENT_HANDLERS or target in (FAQ, WATSON_ANSWER):
        return None
    return f"not a Careline target; use one of {', '.join(TARGETS)}"


# --- a first mapping from a skill export ------------------------------------------------

#: Words in a skill's intent or action name that suggest a Careline flow. Only a first
#: guess: the operator reads the file before using it.
_GUESSES: tuple[tuple[frozenset[str], frozenset[str], str], ...] = (
    # (any of these words, and also one of these (empty: none needed), target)
    (frozenset({"human", "person", "representative", "operator"}), frozenset(), "human"),
    (frozenset({"agent", "advisor"}), frozenset({"connect", "talk", "speak", "transfer"}), "human"),
    (frozenset({"complain", "complaint", "complaints", "dispute"}), frozenset(), "complain"),
    (frozenset({"ticket", "tickets", "case"}), frozenset({"status", "track"}), "ticket_status"),
    (frozenset({"greeting", "greetings", "hello"}), frozenset(), "greet"),
    (frozenset({"farewell", "farewells", "goodbye", "bye"}), frozenset(), "goodbye"),
    (frozenset({"thanks", "thank"}), frozenset(), "thanks"),
)


def propose_mapping(skill: str | Path | Mapping[str, Any]) -> WatsonMapping:
    """Every intent and client action of a skill export with a guessed target.

    A dialog node answering an intent with ``connect_to_agent`` maps it to a person; names
    like ``Help-Connect_to_Agent`` or ``Billing-Dispute`` suggest a flow; the rest keep
    Watson's own answer.
    """
    workspace = read_watson_skill(skill)
    to_agent = set(_intents_handed_to_agents(workspace))
    intents = {}
    for intent in workspace["intents"]:
        name = str(intent.get("intent") or "")
        if name:
            intents[name] = "human" if name in to_agent else _guess(name)
    actions = {name: _guess(name) for name in sorted(set(_client_actions(workspace)))}
    return WatsonMapping(intents, actions)


def _guess(name: str) -> str:
    words = set(re.sub(r"([a-z])([A-Z])", r"\1 \2", name).lower().replace("-", " ").split("_"))
    words = {word for part in words for word in part.split()}
    for wanted, also, target in _GUESSES:
        if words & wanted and (not also or words & also):
            return target
    return WATSON_ANSWER


def _nodes(workspace: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from (n for n in workspace.get("dialog_nodes") or [] if isinstance(n, Mapping))


def _intents_handed_to_agents(workspace: Mapping[str, Any]) -> Iterator[str]:
    for node in _nodes(workspace):
        generic = (node.get("output") or {}).get("generic") or []
        if any(item.get("response_type") == "connect_to_agent" for item in generic):
            yield from re.findall(r"#([\w-]+)", str(node.get("conditions") or ""))


def _client_actions(workspace: Mapping[str, Any]) -> Iterator[str]:
    for node in _nodes(workspace):
        for action in node.get("actions") or (node.get("output") or {}).get("actions") or []:
            if action.get("name"):
                yield str(action["name"])
