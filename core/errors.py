"""Domain errors: every illegal move says clearly what was refused and why."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "domain_error"


class NotFound(DomainError):
    code = "not_found"


class IllegalTransition(DomainError):
    code = "illegal_transition"


class InvalidInput(DomainError):
    code = "invalid_input"


class Refused(InvalidInput):
    """Well formed, but refused in the current state (a closed ticket, an email already
    taken): the same request may succeed another time. Callers catching InvalidInput still
    catch it; the admin API answers 409, not 422."""

    code = "refused"


class CapacityExceeded(DomainError):
    code = "capacity_exceeded"


class AgentUnavailable(DomainError):
    code = "agent_unavailable"


class Forbidden(DomainError):
    """The caller's role may not do this (an agent on an admin's page, another agent's
    ticket): the admin API answers 403, the console the same."""

    code = "forbidden"


class Conflict(DomainError):
    """A concurrent change won; the caller may reload and retry."""

    code = "conflict"
