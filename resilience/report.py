"""One row per scenario, and the table the suite prints."""

from __future__ import annotations

from dataclasses import dataclass, field

PASSED = "passed"
FAILED = "FAILED"
NOT_AVAILABLE = "not available"


@dataclass
class Result:
    scenario: str
    load: str = ""
    faults: str = ""
    lost: int = 0
    duplicated: int = 0  # every repeat a customer got, in flight at a crash or not
    in_flight: int = 0  # ... of which the design's bound allows (docs/resilience.md)
    recover_seconds: float | None = None
    status: str = PASSED
    notes: list[str] = field(default_factory=list)

    def fail(self, why: str) -> None:
        self.status = FAILED
        self.notes.append(why)

    def unavailable(self, why: str) -> Result:
        self.status = NOT_AVAILABLE
        self.notes.append(why)
        return self

    @property
    def failed(self) -> bool:
        return self.status == FAILED or self.lost > 0 or self.duplicated > self.in_flight

    @property
    def duplicated_column(self) -> str:
        if self.status == NOT_AVAILABLE:
            return "-"
        if self.in_flight:
            return f"{self.duplicated} ({self.in_flight} in flight)"
        return str(self.duplicated)


def table(results: list[Result]) -> str:
    headers = ("scenario", "load", "faults", "lost", "duplicated", "recover (s)", "result")
    rows = [
        (
            r.scenario,
            r.load,
            r.faults,
            "-" if r.status == NOT_AVAILABLE else str(r.lost),
            r.duplicated_column,
            "-" if r.recover_seconds is None else f"{r.recover_seconds:.1f}",
            FAILED if r.failed else r.status,
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    notes = [f"  {r.scenario}: {n}" for r in results for n in r.notes]
    if notes:
        out += ["", "notes:", *notes]
    return "\n".join(out)
