"""CPU per Telegram turn under open-loop load at fixed rates: where the webhook saturates.

    python -m bench.turn_cpu [--backend postgres|sqlite] [--rates 70,110,136,160]
                             [--seconds 8] [--path bot_api|in_answer] [--profile DIR]

The same server, fake Bot API and database as `bench.webhook_bench` (durable PostgreSQL by
default). After a warm-up (a closed loop of 16 chats), new-chat text turns arrive at each
fixed rate (an open loop, as Telegram's updates do). Per rate it prints the webhook's
answer time (p50/p90/p99), the server process's CPU (user and system time from /proc, so
Linux only) as a share of one core and per turn, and the CPU of the database's processes.
A process near one core queues its turns, and the p99 grows in bursts.

`--profile DIR` records each rate with py-spy (not a dependency: `pip install py-spy`) into
`DIR/<backend>-<rate>.txt`, collapsed stacks. The sampler pauses the server for each of its
100 samples a second and takes CPU of its own on the same cores: read the latencies of a
profiled run as the profiler's, and its shares as the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from bench import webhook_bench as wb
from tests.fakes.contracts import spawn

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: Where a profile's samples go, by the innermost frame's file: a library, or Careline's own
#: package (bots, core, dialogs, admin_api); the first match from the innermost frame out.
LIBRARIES = {
    "sqlalchemy": "sqlalchemy/",
    "asyncpg": "asyncpg/",
    "python-telegram-bot": "telegram/",
    "aiohttp": "aiohttp/",
    "starlette, fastapi, uvicorn": ("starlette/", "fastapi/", "uvicorn/"),
    "event loop (asyncio, uvloop)": ("asyncio/", "runners.py"),
    "prometheus_client": "prometheus_client/",
    "json": "json/",
}
OURS = ("bots/", "core/", "dialogs/", "admin_api/")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User plus system time of one process, in seconds (/proc/PID/stat)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS


def postmaster(port: int) -> int | None:
    """The PostgreSQL server listening on `port` (its postmaster's pid), if any."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"postgres") and str(port).encode() in argv:
            return int(entry.name)
    return None


def cluster_cpu(master: int) -> float:
    """CPU seconds of a PostgreSQL server: its postmaster, the children it has reaped (the
    backends that ended) and those still running."""
    fields = _stat(master)
    total = sum(int(field) for field in fields[11:15]) / TICKS
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    for child in children:
        try:
            total += cpu_seconds(int(child))
        except OSError:  # it ended meanwhile: counted once its parent reaps it
            continue
    return total


def shares(profile: Path) -> list[tuple[str, float]]:
    """A py-spy raw profile's samples by where they ran (`LIBRARIES`), largest first."""
    counts: dict[str, int] = {}
    total = 0
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        where = "elsewhere"
        for frame in reversed(stack.split(";")):
            path = frame.partition(" (")[2]
            if path.startswith(OURS):
                where = "careline " + path.split("/", 1)[0]
                break
            found = [
                name
                for name, marks in LIBRARIES.items()
                if any(mark in path for mark in ((marks,) if isinstance(marks, str) else marks))
            ]
            if found:
                where = found[0]
                break
        counts[where] = counts.get(where, 0) + int(count)
    return sorted(((k, v / total) for k, v in counts.items()), key=lambda kv: -kv[1])


def run(args: argparse.Namespace) -> None:
    reply_in_answer, label = wb.PATHS[args.path]
    profile = Path(args.profile) if args.profile else None
    if profile is not None:
        if shutil.which("py-spy") is None:
            raise SystemExit("--profile needs py-spy on PATH (pip install py-spy)")
        profile.mkdir(parents=True, exist_ok=True)
    print(f"{wb.BACKENDS[args.backend]}, {label}; {args.seconds:g} s per rate")
    with spawn("tests.fakes.telegram_api") as (_, fake_url), wb.database(args.backend) as db_url:
        port = wb.free_port()
        server_args = ["_careline", str(port), fake_url, db_url, "real", str(reply_in_answer)]
        with wb.subprocess_server(server_args, port) as server:
            url = f"http://127.0.0.1:{port}/telegram/webhook"
            wb.measure(url, fake_url, 16, 3)  # warm: connections, caches, statements
            db_port = make_url(db_url).port
            database = postmaster(db_port) if db_port else None
            for rate in args.rates:
                spy = None
                if profile is not None:
                    out = profile / f"{args.backend}-{rate:g}.txt"
                    record = ["py-spy", "record", "-f", "raw", "-o", str(out)]
                    spy = subprocess.Popen(
                        [*record, "-p", str(server.pid), "-d", str(int(args.seconds))],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                ours, started = cpu_seconds(server.pid), time.time()
                theirs = cluster_cpu(database) if database else 0.0
                latencies = asyncio.run(wb.Load(url).open_loop(rate, args.seconds))
                elapsed = time.time() - started
                used = cpu_seconds(server.pid) - ours
                db_used = cluster_cpu(database) - theirs if database else 0.0
                if spy is not None:
                    spy.wait()
                p50, p90, p99 = (wb.pct(latencies, q) for q in (0.5, 0.9, 0.99))
                print(
                    f"  {rate:g} turns/s: p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms; "
                    f"server {used / elapsed:.0%} of a core, "
                    f"{used / len(latencies) * 1000:.1f} ms of CPU per turn"
                    + (f"; PostgreSQL {db_used / elapsed:.0%}" if database else ""),
                    flush=True,
                )
                if profile is not None:
                    top = shares(profile / f"{args.backend}-{rate:g}.txt")[:10]
                    print("    profile: " + ", ".join(f"{k} {v:.0%}" for k, v in top))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument(
        "--rates",
        type=lambda text: [float(r) for r in text.split(",")],
        default=[70.0, 110.0, 136.0, 160.0],
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--path", choices=list(wb.PATHS), default="bot_api")
    parser.add_argument("--profile", metavar="DIR")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
