"""The resilience suite, short: each scenario at CI size against the real server process.

`python -m resilience --quick` / `--full` run the same scenarios bigger (docs/resilience.md).
A scenario whose feature the server does not offer is skipped here, never passed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from resilience.harness import Context, Size
from resilience.procs import Processes, workspace
from resilience.report import NOT_AVAILABLE, Result, table
from resilience.scenarios import run_scenario

pytestmark = pytest.mark.slow

# crash-postgres is the crash scenario again on PostgreSQL: --quick and --full run it.
CI_SCENARIOS = ["crash", "postgres-restart", "slack", "sms", "faults", "fuzz"]


@pytest.fixture
def context() -> Iterator[Context]:
    procs = Processes()
    with workspace() as workdir:
        try:
            yield Context(procs, Path(workdir), Size.named("ci"), seed=20261122)
        finally:
            procs.close()


@pytest.mark.parametrize("name", CI_SCENARIOS)
def test_scenario_loses_and_duplicates_nothing(name: str, context: Context) -> None:
    async def run() -> list[Result]:
        return await run_scenario(name, context)

    results = asyncio.run(run())
    print(table(results))
    if all(r.status == NOT_AVAILABLE for r in results):
        pytest.skip("; ".join(n for r in results for n in r.notes))
    failed = [r for r in results if r.failed]
    assert not failed, table(failed)
