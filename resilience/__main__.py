"""`python -m resilience [--quick | --full] [--only NAME ...] [--keep]`: run the suite.

Prints the table and exits 1 when any scenario lost or duplicated anything (or failed),
0 otherwise; scenarios whose feature the server does not offer yet are reported as
"not available", never as passed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import traceback

from resilience.harness import Context, Size
from resilience.procs import Processes, workspace
from resilience.report import Result, table
from resilience.scenarios import SCENARIOS, run_scenario


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m resilience", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_const", dest="size", const="quick")
    size.add_argument("--full", action="store_const", dest="size", const="full")
    size.add_argument("--ci", action="store_const", dest="size", const="ci")
    parser.set_defaults(size="quick")
    parser.add_argument(
        "--only", action="append", choices=sorted(SCENARIOS), help="run only these scenarios"
    )
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, dbs)")
    return parser.parse_args(argv)


async def run(names: list[str], ctx: Context) -> list[Result]:
    results: list[Result] = []
    for name in names:
        print(f"[resilience] {name} ...", flush=True)
        started = time.monotonic()
        try:
            outcome = await run_scenario(name, ctx)
        except Exception as exc:  # a scenario that breaks is a failure, not a crash of the suite
            traceback.print_exc()
            outcome = [Result(name)]
            outcome[0].fail(f"scenario error: {type(exc).__name__}: {exc}")
        for result in outcome:
            status = "FAILED" if result.failed else result.status
            print(f"[resilience]   {result.scenario}: {status} "
                  f"({time.monotonic() - started:.0f} s)", flush=True)  # fmt: skip
        results += outcome
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    names = args.only or list(SCENARIOS)
    procs = Processes()
    with workspace(keep=args.keep) as workdir:
        print(f"[resilience] size {args.size}, seed {args.seed}, work folder {workdir}")
        ctx = Context(procs, workdir, Size.named(args.size), seed=args.seed)
        try:
            results = asyncio.run(run(names, ctx))
        finally:
            procs.close()
    print()
    print(table(results))
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
