"""Telegram webhook throughput and latency: Careline next to a bare echo bot, like with like.

    python -m bench.webhook_bench [--seconds 5] [--chats 16] [--runs 3] [--engine real|echo]
                                  [--backends sqlite,postgres[,postgres-unsafe]]

Every turn is a text message from a new chat, POSTed to the webhook on loopback with the
secret header, as Telegram does; a turn's time runs until the webhook answers. Measured in
the same run, on the same fake Bot API (tests/fakes/telegram_api.py, a subprocess):

- echo: a bare FastAPI + python-telegram-bot endpoint (uvicorn, uvloop, httptools) that
  decodes the update, sends the text back with `bot.send_message` and then answers 200;
- careline, reply through the Bot API (`CARELINE_TELEGRAM_REPLY_IN_WEBHOOK_ANSWER=false`):
  the same work as the echo bot, plus inbox, dialog engine and commits;
- careline, reply in the webhook answer (the default): Telegram sends the reply it finds in
  the answer, so the loader counts such an answer as a delivered reply;
- each on SQLite and on PostgreSQL (a throwaway cluster with the durable defaults: fsync,
  synchronous_commit, full_page_writes on; `postgres-unsafe` adds one with all three off,
  labelled as such).

Each run measures the echo bot and then Careline, closed loop, so each ratio comes from one
run; then Careline open loop at half the echo bot's rate (p50/p99). Prints the median of
`--runs` runs of each figure, and checks that every turn got its reply (answers with a
`sendMessage` plus the fake's successful sendMessage calls). Goals (issue 18): ratio >= 0.6
on both paths, p99 at half the echo's load <= 50 ms.

The 30 messages/s bot-wide send limit is lifted for the run
(`CARELINE_TELEGRAM_OVERALL_PER_SECOND=0`): it would cap the Bot API path at 30 turns/s and
measure the limit instead of the turn. `--engine echo` replaces the dialog engine with a
trivial one, to see what the adapter alone costs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from fastapi import FastAPI, Request, Response

TOKEN = "123456:bench-token"  # noqa: S105 (the fake's)
SECRET = "bench-secret"  # noqa: S105
ROOT = Path(__file__).resolve().parents[1]
#: Careline's two ways to give a turn's reply: `telegram_reply_in_webhook_answer`.
PATHS = {
    "bot_api": (False, "reply through the Bot API, the echo bot's work"),
    "in_answer": (True, "reply in the webhook answer, the default"),
}
BACKENDS = {
    "sqlite": "SQLite",
    "postgres": "PostgreSQL (durable: fsync, synchronous_commit, full_page_writes on)",
    "postgres-unsafe": "PostgreSQL UNSAFE (fsync, synchronous_commit, full_page_writes off)",
}


# -- the servers under test (run as subprocesses) --------------------------------------------


def serve_echo(port: int, fake_url: str) -> None:
    import uvicorn
    from telegram import Update
    from telegram.ext import Application

    application = Application.builder().token(TOKEN).base_url(f"{fake_url}/bot").updater(None)
    ptb = application.connection_pool_size(64).build()

    async def lifespan(_: FastAPI) -> Any:
        async with ptb:
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/telegram/webhook")
    async def webhook(request: Request) -> Response:
        if request.headers.get("x-telegram-bot-api-secret-token") != SECRET:
            return Response(status_code=403)
        update = Update.de_json(await request.json(), ptb.bot)
        if update.effective_message and update.effective_message.text:
            await ptb.bot.send_message(
                update.effective_message.chat_id, update.effective_message.text
            )
        return Response(status_code=200)

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


def serve_careline(
    port: int, fake_url: str, database_url: str, engine_kind: str, reply_in_answer: bool
) -> None:
    import uvicorn

    from bots.server import create_app
    from core.config import Settings
    from dialogs.turn import Reply, UserSaid

    class EchoEngine:
        async def handle_turn(self, said: UserSaid) -> list[Reply]:
            return [Reply(said.text)]

    settings = Settings(
        database_url=database_url,
        telegram_bot_token=TOKEN,  # type: ignore[arg-type]
        telegram_webhook_secret=SECRET,  # type: ignore[arg-type]
        telegram_api_base_url=f"{fake_url}/bot",
        telegram_reply_in_webhook_answer=reply_in_answer,
        telegram_overall_per_second=0,  # see the module docstring
        db_pool_size=20,
        # SQLite runs web and relay in one process; on PostgreSQL measure the web role alone.
        role="all" if database_url.startswith("sqlite") else "web",
        log_level="warning",
    )
    app = create_app(settings, engine=EchoEngine() if engine_kind == "echo" else None)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


# -- load --------------------------------------------------------------------------------------


#: Shared by every load of this process: a repeated update id is a redelivery, which Careline
#: answers without sending anything, and a repeated chat id is no longer a new chat.
UPDATE_IDS = itertools.count(1)
CHAT_IDS = itertools.count(10_000_000)


class Load:
    def __init__(self, url: str) -> None:
        self.url = url
        self.turns = 0
        self.replies_in_answers = 0

    def update(self) -> bytes:
        chat = next(CHAT_IDS)
        user = {"id": chat, "is_bot": False, "first_name": "Bench", "language_code": "en"}
        message = {
            "message_id": 1,
            "from": user,
            "chat": {"id": chat, "type": "private", "first_name": "Bench"},
            "date": int(time.time()),
            "text": "my card was charged twice",
        }
        return json.dumps({"update_id": next(UPDATE_IDS), "message": message}).encode()

    async def one(self, session: aiohttp.ClientSession, latencies: list[float]) -> None:
        body = self.update()
        started = time.perf_counter()
        async with session.post(
            self.url,
            data=body,
            headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET},
        ) as response:
            answer = await response.read()
            if response.status != 200:
                raise RuntimeError(f"webhook answered {response.status}")
        latencies.append(time.perf_counter() - started)
        self.turns += 1
        # Telegram performs a method found in the webhook's answer: a delivered reply.
        if answer.startswith(b"{") and json.loads(answer).get("method") == "sendMessage":
            self.replies_in_answers += 1

    async def closed_loop(self, chats: int, seconds: float) -> tuple[float, list[float]]:
        latencies: list[float] = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=chats)) as session:
            for _ in range(20):  # warm-up
                await self.one(session, [])
            deadline = time.perf_counter() + seconds
            started = time.perf_counter()

            async def chat() -> None:
                while time.perf_counter() < deadline:
                    await self.one(session, latencies)

            await asyncio.gather(*(chat() for _ in range(chats)))
            elapsed = time.perf_counter() - started
        return len(latencies) / elapsed, latencies

    async def open_loop(self, rate: float, seconds: float) -> list[float]:
        latencies: list[float] = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
            tasks = []
            started = time.perf_counter()
            for n in range(int(rate * seconds)):
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self.one(session, latencies)))
            await asyncio.gather(*tasks)
        return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# -- orchestration -------------------------------------------------------------------------------


def free_port() -> int:
    from tests.support.pgcluster import free_port as free

    return free()


@contextmanager
def subprocess_server(args: list[str], port: int) -> Any:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.webhook_bench", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,  # the first start prints a new admin key: keep it out
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                import httpx

                httpx.post(f"http://127.0.0.1:{port}/telegram/webhook", timeout=1)
                break
            except Exception:
                if process.poll() is not None:
                    raise RuntimeError("server died") from None
                time.sleep(0.3)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Figures:
    """One closed-loop measurement."""

    rate: float  # turns/s
    p50: float  # ms
    p99: float  # ms
    turns: int
    delivered: int  # replies in answers + successful sendMessage calls at the fake


def measure(url: str, fake_url: str, chats: int, seconds: float) -> Figures:
    import httpx

    httpx.post(f"{fake_url}/_fake/reset").raise_for_status()
    load = Load(url)
    rate, latencies = asyncio.run(load.closed_loop(chats, seconds))
    calls = httpx.get(f"{fake_url}/_fake/calls", timeout=30).json()
    sent = sum(1 for c in calls if c["method"] == "sendMessage" and c["status"] == 200)
    return Figures(
        rate, pct(latencies, 0.5), pct(latencies, 0.99), load.turns, load.replies_in_answers + sent
    )


@contextmanager
def database(backend: str) -> Any:
    """A database URL for one server: a new SQLite file or a throwaway PostgreSQL cluster."""
    from tests.support.pgcluster import PgCluster, find_bindir

    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="careline-bench-") as tmp:
            yield f"sqlite+aiosqlite:///{tmp}/careline.db"
        return
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL: no server binaries (initdb, pg_ctl)")
    cluster = PgCluster(bindir, durable=backend == "postgres").start()
    try:
        yield cluster.url()
    finally:
        cluster.destroy()


def bench_path(
    args: argparse.Namespace, backend: str, path: str, echo_url: str, fake_url: str
) -> None:
    reply_in_answer, label = PATHS[path]
    port = free_port()
    rows = []
    with (
        database(backend) as db_url,
        subprocess_server(
            ["_careline", str(port), fake_url, db_url, args.engine, str(reply_in_answer)], port
        ),
    ):
        url = f"http://127.0.0.1:{port}/telegram/webhook"
        for _ in range(args.runs):
            echo = measure(echo_url, fake_url, args.chats, args.seconds)
            ours = measure(url, fake_url, args.chats, args.seconds)
            half = asyncio.run(Load(url).open_loop(echo.rate / 2, args.seconds))
            rows.append((echo, ours, ours.rate / echo.rate, pct(half, 0.5), pct(half, 0.99)))
            print(
                f"  {backend} {path} run: echo {echo.rate:.0f}/s, careline {ours.rate:.0f}/s "
                f"(ratio {rows[-1][2]:.2f}), p99 at {echo.rate / 2:.0f}/s {rows[-1][4]:.1f} ms, "
                f"replies delivered {ours.delivered}/{ours.turns}",
                flush=True,
            )
    report(args, backend, label, rows)


def report(args: argparse.Namespace, backend: str, label: str, rows: list[Any]) -> None:
    med = statistics.median
    echo = [r[0] for r in rows]
    ours = [r[1] for r in rows]
    undelivered = sum(o.turns - min(o.turns, o.delivered) for o in ours)
    overloaded = med(o.rate for o in ours) < med(e.rate for e in echo) / 2
    print(
        f"{BACKENDS[backend]}, {label} (engine {args.engine}, {args.chats} chats, "
        f"median of {args.runs} runs):\n"
        f"    echo {med(e.rate for e in echo):.0f} turns/s p50 {med(e.p50 for e in echo):.1f} ms "
        f"p99 {med(e.p99 for e in echo):.1f} ms | careline {med(o.rate for o in ours):.0f} "
        f"turns/s p50 {med(o.p50 for o in ours):.1f} ms p99 {med(o.p99 for o in ours):.1f} ms\n"
        f"    ratio {med(r[2] for r in rows):.2f} (goal >= 0.6; per run "
        f"{' '.join(f'{r[2]:.2f}' for r in rows)}) | at half the echo's load "
        f"({med(e.rate for e in echo) / 2:.0f}/s) p50 {med(r[3] for r in rows):.1f} ms "
        f"p99 {med(r[4] for r in rows):.1f} ms (goal <= 50 ms)"
        + (" - above Careline's throughput, so the queue grows" if overloaded else "")
        + (f"\n    WARNING: {undelivered} turns without a delivered reply" if undelivered else ""),
        flush=True,
    )


def bench(args: argparse.Namespace) -> None:
    from tests.fakes.contracts import spawn

    backends = args.backends.split(",")
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise SystemExit(f"unknown backends {sorted(unknown)}; choose from {list(BACKENDS)}")
    with spawn("tests.fakes.telegram_api") as (_, fake_url):
        echo_port = free_port()
        with subprocess_server(["_echo", str(echo_port), fake_url], echo_port):
            echo_url = f"http://127.0.0.1:{echo_port}/telegram/webhook"
            for backend in backends:
                for path in args.paths.split(","):
                    bench_path(args, backend, path, echo_url, fake_url)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_echo":
        serve_echo(int(sys.argv[2]), sys.argv[3])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_careline":
        serve_careline(
            int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6] == "True"
        )
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--chats", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engine", choices=["real", "echo"], default="real")
    parser.add_argument("--backends", default="sqlite,postgres", help=", ".join(BACKENDS))
    parser.add_argument("--paths", default="bot_api,in_answer", help=", ".join(PATHS))
    bench(parser.parse_args())


if __name__ == "__main__":
    main()
