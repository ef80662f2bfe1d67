"""`careline serve` start-up: time to `/readyz` 200 and idle memory, on SQLite.

    python -m bench.startup_bench [--runs 5] [--cold-bytecode] [--idle 2]

Each run starts `careline serve` (the console script of this virtual environment) in a new
temporary directory with a new data directory and SQLite file and the default settings
(local NLU), so every run takes the first-start path: migrate the new database, build or
load the NLU model, create the bootstrap admin key. It reports the time from process start
to the first 200 from `/readyz`, then the resident memory (VmRSS in /proc/PID/status) after
`--idle` seconds of idling, and prints the median of `--runs` runs.

`--cold-bytecode` points PYTHONPYCACHEPREFIX at a new empty directory for each run, so
every module is compiled from source as in a virtual environment installed without
compiled bytecode. Goals: ready in <= 2 s, <= 150 MB idle RSS.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

#: The goals of issue 18.
READY_GOAL_SECONDS = 2.0
RSS_GOAL_MB = 150.0


def careline_command() -> list[str]:
    script = Path(sys.executable).with_name("careline")
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "bots.cli", "serve"]


def free_port() -> int:
    from tests.support.pgcluster import free_port as free

    return free()


def serve_environment(home: Path, port: int, cold_bytecode: bool) -> dict[str, str]:
    # Defaults only: nothing the caller's shell sets for Careline leaks into the run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARELINE_")}
    env.update(
        CARELINE_DATABASE_URL=f"sqlite+aiosqlite:///{home}/careline.db",
        CARELINE_DATA_DIR=str(home / "var"),
        CARELINE_PORT=str(port),
        CARELINE_LOG_LEVEL="warning",
        XDG_CACHE_HOME=str(home / "cache"),
    )
    if cold_bytecode:
        env["PYTHONPYCACHEPREFIX"] = str(home / "pycache")
    return env


def wait_ready(process: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"careline serve exited with {process.returncode}")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.01)
    raise RuntimeError(f"not ready after {timeout:.0f} s")


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS line")


def one_start(cold_bytecode: bool, idle: float) -> tuple[float, float]:
    """(seconds to ready, idle MB) of one fresh start."""
    with tempfile.TemporaryDirectory(prefix="careline-start-") as directory:
        home = Path(directory)
        port = free_port()
        env = serve_environment(home, port, cold_bytecode)
        started = time.perf_counter()
        process = subprocess.Popen(
            careline_command(),
            cwd=home,
            env=env,
            stdout=subprocess.DEVNULL,  # the first start prints the new admin key
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(process, f"http://127.0.0.1:{port}/readyz", timeout=120)
            ready = time.perf_counter() - started
            time.sleep(idle)
            return ready, resident_mb(process.pid)
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=2.0, help="seconds idle before RSS")
    parser.add_argument("--cold-bytecode", action="store_true")
    args = parser.parse_args()
    readies, rss = [], []
    for n in range(args.runs):
        ready, mb = one_start(args.cold_bytecode, args.idle)
        readies.append(ready)
        rss.append(mb)
        print(f"  run {n + 1}: ready in {ready:.2f} s, idle RSS {mb:.0f} MB", flush=True)
    bytecode = "compiled from source each run" if args.cold_bytecode else "as installed"
    print(
        f"careline serve, SQLite, fresh data dir, bytecode {bytecode} (median of {args.runs}): "
        f"ready in {statistics.median(readies):.2f} s (goal <= {READY_GOAL_SECONDS:.0f} s), "
        f"idle RSS {statistics.median(rss):.0f} MB (goal <= {RSS_GOAL_MB:.0f} MB)",
        flush=True,
    )


if __name__ == "__main__":
    main()
