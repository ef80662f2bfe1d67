"""Shared plumbing for the fake platform servers: contract files, a threaded aiohttp server,
call/violation records and fault injection.

The contracts are committed in ``tests/contracts/`` (sources and licences in its README).

Usage (what the concrete fakes build on)::

    class MyFake(FakeServer):
        def routes(self, app: web.Application) -> None:
            app.router.add_post("/x", self.handle_x)

    with MyFake() as fake:          # started in a background thread, port chosen by the OS
        httpx.post(f"{fake.url}/x")
        fake.assert_no_violations()

Every fake also serves control endpoints so a test can drive a fake that runs as a
subprocess (``python -m tests.fakes.telegram_api --port 0``; see :func:`spawn`):
``GET /_fake/calls``, ``GET /_fake/violations``, ``POST /_fake/reset``,
``POST /_fake/faults`` (JSON: method, status, body, headers, delay, times, key),
``GET /_fake/errors`` (exceptions raised inside the fake's own handlers).

A fake fails loudly rather than slowly: it reads its contract files (``contract_files``)
before it listens, so a missing or broken contract stops it at start; an exception in one of
its handlers is answered 500 and kept in ``fake.internal_errors`` for the suite to see.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import gc
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Self

from aiohttp import web


def contracts_dir() -> Path:
    """The directory holding the platforms' published contracts (inside the repository)."""
    return Path(__file__).resolve().parents[1] / "contracts"


@functools.cache
def load_contract(relative: str) -> Any:
    """Parse one JSON contract file (cached: they are read-only and some are large)."""
    return json.loads((contracts_dir() / relative).read_text(encoding="utf-8"))


@dataclasses.dataclass(frozen=True)
class Call:
    """One request the fake received, decoded."""

    method: str
    params: dict[str, Any]
    at: float
    status: int = 200
    result_id: str | None = None  # what the fake created (a Telegram message_id), if anything


@dataclasses.dataclass(frozen=True)
class Violation:
    """A request that breaks the platform's contract."""

    method: str
    problem: str
    params: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.method}: {self.problem}"


@dataclasses.dataclass
class Fault:
    """A canned answer served instead of the normal one.

    ``key`` narrows it to calls whose chat/channel equals it; ``delay`` (seconds) is slept
    before answering, so a fault with only a delay makes a slow but otherwise normal call.
    """

    status: int | None = None
    body: Any = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay: float = 0.0
    times: int = 1
    key: str | None = None


class FaultQueue:
    """Per-method queues of faults; thread-safe because tests add them from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, list[Fault]] = {}

    def add(self, method: str, fault: Fault) -> None:
        with self._lock:
            self._faults.setdefault(method.lower(), []).append(fault)

    def take(self, method: str, key: str | None) -> Fault | None:
        with self._lock:
            for name in (method.lower(), "*"):
                queue = self._faults.get(name, [])
                for fault in queue:
                    if fault.key is not None and fault.key != key:
                        continue
                    fault.times -= 1
                    if fault.times <= 0:
                        queue.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


class FakeServer:
    """An aiohttp server on 127.0.0.1 that runs in its own thread and event loop.

    Subclasses add routes in :meth:`routes` and call :meth:`record` / :meth:`violate`, and
    name the contract files they check against in ``contract_files``.
    """

    contract_files: ClassVar[tuple[str, ...]] = ()

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.faults = FaultQueue()
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._violations: list[Violation] = []
        self._errors: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.closing = False

    # -- records -----------------------------------------------------------------------
    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    @property
    def violations(self) -> list[Violation]:
        with self._lock:
            return list(self._violations)

    @property
    def internal_errors(self) -> list[str]:
        """Exceptions raised inside this fake's handlers: a bug of the fake, not of Careline."""
        with self._lock:
            return list(self._errors)

    def calls_to(self, method: str) -> list[Call]:
        """Calls of one method (case-insensitive)."""
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def violate(self, method: str, problem: str, params: dict[str, Any]) -> None:
        with self._lock:
            self._violations.append(Violation(method, problem, params))

    def assert_no_violations(self) -> None:
        found = self.violations
        assert not found, "contract violations:\n" + "\n".join(map(str, found))

    def reset(self) -> None:
        """Forget calls, violations and faults (state such as messages is kept)."""
        with self._lock:
            self._calls.clear()
            self._violations.clear()
        self.faults.clear()

    def add_fault(
        self,
        method: str,
        *,
        status: int | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        times: int = 1,
        key: str | int | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (``"*"`` = any) with a canned reply."""
        self.faults.add(
            method,
            Fault(status, body, headers or {}, delay, times, None if key is None else str(key)),
        )

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def build_app(self) -> web.Application:
        app = web.Application(
            client_max_size=64 * 1024 * 1024, middlewares=[self._keep_internal_errors]
        )
        app.router.add_get("/_fake/calls", self._control_calls)
        app.router.add_get("/_fake/errors", self._control_errors)
        app.router.add_get("/_fake/violations", self._control_violations)
        app.router.add_post("/_fake/reset", self._control_reset)
        app.router.add_post("/_fake/faults", self._control_faults)
        self.routes(app)
        return app

    def load_contracts(self) -> None:
        """Read every contract file now: a missing or broken one fails the start, not a call."""
        for relative in self.contract_files:
            try:
                load_contract(relative)
            except (OSError, ValueError) as error:
                raise RuntimeError(
                    f"{type(self).__name__}: contract {relative} unreadable: {error}"
                ) from error

    async def start_async(self) -> None:
        """Serve on the running loop (used by the thread and by the subprocess entry)."""
        self.load_contracts()
        self._runner = web.AppRunner(self.build_app(), access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop_async(self) -> None:
        self.closing = True
        await self.on_closing()
        if self._runner is not None:
            await self._runner.cleanup()

    async def on_closing(self) -> None:
        """Hook: wake long-polling requests so shutdown is quick."""

    def start(self) -> Self:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as error:
                failure.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self.stop_async(), loop)
        with contextlib.suppress(Exception):
            future.result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        self._loop = self._thread = None

    def call_in_loop(self, function: Any, *args: Any) -> None:
        """Run a callable on the server's loop (for state shared with waiting handlers)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(function, *args)
        else:
            function(*args)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- helpers for handlers ------------------------------------------------------------
    async def apply_fault(self, method: str, key: str | None) -> web.Response | None:
        """Sleep and/or answer per a queued fault; None means answer normally."""
        fault = self.faults.take(method, key)
        if fault is None:
            return None
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is None:
            return None
        return web.json_response(fault.body, status=fault.status, headers=fault.headers)

    @web.middleware
    async def _keep_internal_errors(self, request: web.Request, handler: Any) -> Any:
        try:
            return await handler(request)
        except (web.HTTPException, ConnectionResetError):
            raise  # an HTTP answer, or the client went away mid-request (a kill -9): not ours
        except Exception as error:
            # The method, not the path: a Bot API path carries the bot token.
            where = request.match_info.get("method") or request.path
            reason = f"{request.method} {where}: {type(error).__name__}: {error}"
            with self._lock:
                self._errors.append(reason)
            body = {"ok": False, "error": "fake_internal_error", "description": reason}
            return web.json_response(body, status=500)

    # -- control endpoints (for subprocess mode) ----------------------------------------
    async def _control_calls(self, _: web.Request) -> web.Response:
        return web.json_response([dataclasses.asdict(c) for c in self.calls])

    async def _control_violations(self, _: web.Request) -> web.Response:
        return web.json_response([dataclasses.asdict(v) for v in self.violations])

    async def _control_errors(self, _: web.Request) -> web.Response:
        return web.json_response(self.internal_errors)

    async def _control_reset(self, _: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _control_faults(self, request: web.Request) -> web.Response:
        spec = await request.json()
        method = spec.pop("method")
        self.add_fault(method, **spec)
        return web.json_response({"ok": True})


def settle_heap() -> None:
    """For a fake in a process of its own, once it is up: keep its start-up objects (imports,
    contracts, schemas) out of the garbage collector's full collections, as `careline serve`
    does with its own (bots.server.settle_heap). A full collection scans all of them and
    paused the fake for 90 ms in bench/relay_bench.py; the requests that arrived meanwhile
    were handled, and stamped, together, so its enforced rate limit saw a burst that was
    never sent, and answered 429."""
    gc.collect()
    gc.freeze()


def serve_main(factory: type[FakeServer], argv: list[str] | None = None) -> None:
    """Entry point of ``python -m tests.fakes.<fake> --port N``.

    Prints ``listening on http://127.0.0.1:PORT`` once ready (with ``--port 0`` the OS picks).
    """
    parser = argparse.ArgumentParser(description=factory.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    async def main() -> None:
        fake = factory(host=args.host, port=args.port)
        try:
            await fake.start_async()
        except Exception as error:  # said on one line, for whoever waits for "listening on"
            print(f"{factory.__name__} failed to start: {error}", flush=True)
            raise SystemExit(2) from error
        settle_heap()
        print(f"listening on {fake.url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await fake.stop_async()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


@contextlib.contextmanager
def spawn(module: str, timeout: float = 10.0) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run a fake as a subprocess on a free port; yields (process, base url).

    Example: ``with spawn("tests.fakes.telegram_api") as (proc, url): ...``
    """
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("listening on ") or time.monotonic() > deadline:
            raise RuntimeError(f"{module} did not start: {line!r}")
        yield process, line.removeprefix("listening on ").strip()
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
