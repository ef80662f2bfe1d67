"""The processes the suite starts: the real server and the fakes, each on a free 127.0.0.1 port.

Every process is started through a `Processes` registry and ended by its own pid in a
`finally` block; nothing is ever killed by name. The registry also watches what it started:
`trouble()` names a process that exited when nobody ended it, or a fake whose own handler
raised, so a scenario can stop at once instead of waiting for what can no longer happen.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]

TOKEN = "123456:resilience-token"  # noqa: S105 - a fake bot token
SECRET = "resilience-webhook-secret"  # noqa: S105 - local only


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """The pids this run started; `close()` ends each of them (SIGTERM, then SIGKILL)."""

    def __init__(self) -> None:
        self._started: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._watched: dict[int, tuple[str, Path]] = {}  # pid -> (name, log) while it must run
        self._fakes: list[Fake] = []

    def watch(self, process: subprocess.Popen[bytes], name: str, log: Path) -> None:
        """From now on, this process exiting is trouble (until `let_go`)."""
        with self._lock:
            self._watched[process.pid] = (name, log)

    def let_go(self, process: subprocess.Popen[bytes]) -> None:
        """We are about to end this process on purpose (a kill -9 scenario, a stop)."""
        with self._lock:
            self._watched.pop(process.pid, None)

    def watch_fake(self, fake: Fake) -> None:
        with self._lock:
            self._fakes.append(fake)

    def stop_watching(self) -> None:
        """A scenario is over: what it started may stop or break without failing the next."""
        with self._lock:
            self._watched.clear()
            self._fakes.clear()

    def trouble(self) -> str | None:
        """Why the run cannot go on, or None: a watched process exited, or a fake broke."""
        with self._lock:
            started = {p.pid: p for p in self._started}
            watched = dict(self._watched)
            fakes = list(self._fakes)
        for pid, (name, log) in watched.items():
            process = started.get(pid)
            if process is not None and process.poll() is not None:
                tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
                return f"{name} exited unexpectedly (code {process.returncode}): {tail}"
        for fake in fakes:
            if fake.process.poll() is None:
                errors = fake.internal_errors()
                if errors:
                    return f"{fake.name} failed inside: {errors[0]}"
        return None

    def start(
        self, argv: list[str], *, env: Mapping[str, str], log: Path
    ) -> subprocess.Popen[bytes]:
        handle = log.open("ab")
        try:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                argv, cwd=ROOT, env=dict(env), stdout=handle, stderr=subprocess.STDOUT
            )
        finally:
            handle.close()
        with self._lock:
            self._started.append(process)
        return process

    def close(self) -> None:
        with self._lock:
            started, self._started = self._started, []
        self.stop_watching()
        for process in started:
            if process.poll() is None:
                process.terminate()
        for process in started:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def base_env() -> dict[str, str]:
    """Our environment without any Careline/platform settings a developer may have exported."""
    prefixes = ("CARELINE_", "TELEGRAM_", "SLACK_", "SENDGRID_", "WATSON_", "TWILIO_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Fake:
    """A fake platform server run as a subprocess (tests/fakes, control API under /_fake)."""

    url: str
    process: subprocess.Popen[bytes]
    name: str = "fake"

    def internal_errors(self) -> list[str]:
        """What raised inside the fake's handlers (empty when it cannot be asked)."""
        with contextlib.suppress(httpx.HTTPError, ValueError):
            response = httpx.get(f"{self.url}/_fake/errors", timeout=5)
            if response.status_code == 200:
                return [str(e) for e in response.json()]
        return []

    def calls(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/_fake/calls", timeout=60)
        response.raise_for_status()
        return list(response.json())

    def fault(self, method: str, **spec: object) -> None:
        httpx.post(f"{self.url}/_fake/faults", json={"method": method, **spec}, timeout=10)

    def reset(self) -> None:
        httpx.post(f"{self.url}/_fake/reset", timeout=10)


def start_fake(procs: Processes, module: str, workdir: Path, timeout: float = 60.0) -> Fake:
    """Start `python -m <module> --port 0` and read the URL it prints.

    A fake reads its contracts before it listens, so one that cannot work exits at once and
    this raises with its reason; from then on `procs.trouble()` reports it if it breaks.
    """
    name = module.rsplit(".", 1)[-1]
    log = workdir / f"{name}.log"
    process = procs.start([sys.executable, "-m", module, "--port", "0"], env=base_env(), log=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{module} exited: {log.read_text(errors='replace')[-2000:]}")
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("listening on "):
                fake = Fake(line.removeprefix("listening on ").strip(), process, name)
                procs.watch(process, module, log)
                procs.watch_fake(fake)
                return fake
        time.sleep(0.05)
    raise TimeoutError(f"{module} did not start within {timeout} s")


@dataclass
class Server:
    """The real `careline serve` as a subprocess that can be killed -9 and started again."""

    procs: Processes
    env: dict[str, str]
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    role: str = "all"  # `careline serve --role`: all, web or relay

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / ("server.log" if self.role == "all" else f"server-{self.role}.log")

    def start(self) -> None:
        argv = [sys.executable, "-m", "bots.cli", "serve", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), "--role", self.role]
        self.starts += 1
        with self.log.open("a") as out:
            out.write(f"\n===== start {self.starts} =====\n")
        self.process = self.procs.start(argv, env=self.env, log=self.log)
        self.procs.watch(self.process, "the server", self.log)

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Wait for /readyz; returns the seconds it took. Raises if the process died."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"the server exited while starting: {self.log_text()[-1500:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.1)
        raise TimeoutError(f"the server was not ready within {timeout} s; see {self.log}")

    def kill9(self) -> None:
        """SIGKILL: no shutdown hooks, no flush, like a crashed or OOM-killed pod."""
        if self.process is not None and self.process.poll() is None:
            self.procs.let_go(self.process)
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            self.procs.let_go(self.process)
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.kill9()


def server_env(database_url: str, workdir: Path, **settings: str) -> dict[str, str]:
    """Environment of `careline serve` for the suite: the given database, local fakes only."""
    env = base_env()
    env.update(
        {
            "CARELINE_DATABASE_URL": database_url,
            "CARELINE_DATA_DIR": str(workdir / "var"),
            "CARELINE_LOG_LEVEL": "warning",
            "CARELINE_NLU_BACKEND": "local",
            # Never reach out: platforms default to the public APIs, so point them all home.
            "TELEGRAM_API_BASE_URL": "http://127.0.0.1:9/bot",
            "SLACK_API_URL": "http://127.0.0.1:9/api/",
            "SENDGRID_API_HOST": "http://127.0.0.1:9",
            "TWILIO_API_BASE_URL": "http://127.0.0.1:9",
            "CARELINE_SHUTDOWN_GRACE_SECONDS": "5",
        }
    )
    env.update(settings)
    return env


@contextlib.contextmanager
def workspace(keep: bool = False) -> Iterator[Path]:
    """A throwaway folder for databases and logs (kept with `keep`, e.g. to read the logs)."""
    path = Path(tempfile.mkdtemp(prefix="careline-resilience-"))
    try:
        yield path
    finally:
        if not keep:
            import shutil

            shutil.rmtree(path, ignore_errors=True)


def create_admin_key(env: dict[str, str], name: str) -> str:
    """Migrate the database `env` names and create an admin API key there (the CLI's way)."""
    run = [sys.executable, "-m", "bots.cli"]
    subprocess.run([*run, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)  # noqa: S603 - our own interpreter and module
    made = subprocess.run(  # noqa: S603 - our own interpreter and module
        [*run, "admin", "create-key", "--role", "admin", "--name", name],
        env=env, cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return made.stdout.strip().splitlines()[0]
