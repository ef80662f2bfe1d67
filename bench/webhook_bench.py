"""Telegram webhook throughput and latency: Careline next to a bare echo endpoint.

    python -m bench.webhook_bench [--seconds 5] [--chats 16] [--runs 3] [--engine real|echo]
                                  [--backends sqlite,postgres]

Every turn is a text message from a new chat, POSTed to the webhook on loopback with the
secret header, as Telegram does. Measured in the same run, on the same fake Bot API
(tests/fakes/telegram_api.py, a subprocess):

- echo: a bare FastAPI + python-telegram-bot endpoint (uvicorn, uvloop, httptools) that
  decodes the update and answers with `bot.send_message`;
- careline: `careline serve`'s app (inbox, dialog engine, reply in the webhook answer), on
  SQLite and on PostgreSQL (a throwaway cluster, tests/support/pgcluster.py);
- careline at half of its measured throughput (open loop): p50/p99.

Prints medians of `--runs` runs and the ratio careline/echo. Targets: ratio >= 0.6, p99 at
half load <= 50 ms. `--engine echo` replaces the dialog engine with a trivial one, to see
what the adapter alone costs.
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
from pathlib import Path
from typing import Any

import aiohttp
from fastapi import FastAPI, Request, Response

TOKEN = "123456:bench-token"  # noqa: S105 (the fake's)
SECRET = "bench-secret"  # noqa: S105
ROOT = Path(__file__).resolve().parents[1]


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


def serve_careline(port: int, fake_url: str, database_url: str, engine_kind: str) -> None:
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


class Load:
    def __init__(self, url: str) -> None:
        self.url = url
        self.update_ids = itertools.count(1)
        self.chat_ids = itertools.count(10_000_000 + int(time.time()) % 1_000_000 * 100)

    def update(self) -> bytes:
        chat = next(self.chat_ids)
        user = {"id": chat, "is_bot": False, "first_name": "Bench", "language_code": "en"}
        message = {
            "message_id": 1,
            "from": user,
            "chat": {"id": chat, "type": "private", "first_name": "Bench"},
            "date": int(time.time()),
            "text": "my card was charged twice",
        }
        return json.dumps({"update_id": next(self.update_ids), "message": message}).encode()

    async def one(self, session: aiohttp.ClientSession, latencies: list[float]) -> None:
        body = self.update()
        started = time.perf_counter()
        async with session.post(
            self.url,
            data=body,
            headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET},
        ) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"webhook answered {response.status}")
        latencies.append(time.perf_counter() - started)

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
        [sys.executable, "-m", "bench.webhook_bench", *args], cwd=ROOT, env=env
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
        yield
    finally:
        process.terminate()
        try:
            process.wait(40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def measure(url: str, chats: int, seconds: float) -> tuple[float, float, float]:
    rate, latencies = asyncio.run(Load(url).closed_loop(chats, seconds))
    return rate, pct(latencies, 0.5), pct(latencies, 0.99)


def bench(args: argparse.Namespace) -> None:
    from tests.fakes.contracts import spawn
    from tests.support.pgcluster import PgCluster, find_bindir

    backends = args.backends.split(",")
    with spawn("tests.fakes.telegram_api") as (_, fake_url):
        echo_port = free_port()
        with subprocess_server(["_echo", str(echo_port), fake_url], echo_port):
            echo_url = f"http://127.0.0.1:{echo_port}/telegram/webhook"
            for backend in backends:
                cluster = None
                tmp = tempfile.mkdtemp(prefix="careline-bench-")
                if backend == "postgres":
                    bindir = find_bindir()
                    if bindir is None:
                        print("postgres: no server binaries, skipped")
                        continue
                    cluster = PgCluster(bindir).start()
                    db_url = cluster.url()
                else:
                    db_url = f"sqlite+aiosqlite:///{tmp}/careline.db"
                port = free_port()
                try:
                    with subprocess_server(
                        ["_careline", str(port), fake_url, db_url, args.engine], port
                    ):
                        url = f"http://127.0.0.1:{port}/telegram/webhook"
                        rows = []
                        for _ in range(args.runs):
                            echo = measure(echo_url, args.chats, args.seconds)
                            ours = measure(url, args.chats, args.seconds)
                            half = asyncio.run(Load(url).open_loop(ours[0] / 2, args.seconds))
                            rows.append((echo, ours, (pct(half, 0.5), pct(half, 0.99))))
                            print(
                                f"  {backend} run: echo {echo[0]:.0f}/s, careline {ours[0]:.0f}/s "
                                f"p50 {ours[1]:.1f} ms p99 {ours[2]:.1f} ms, "
                                f"half load p99 {rows[-1][2][1]:.1f} ms",
                                flush=True,
                            )
                finally:
                    if cluster is not None:
                        cluster.destroy()
                med = statistics.median
                p = [[med(r[i][j] for r in rows) for j in range(len(rows[0][i]))] for i in range(3)]
                echo_rate = med(r[0][0] for r in rows)
                our_rate = med(r[1][0] for r in rows)
                print(
                    f"{backend} (engine {args.engine}, {args.chats} chats, median of {args.runs}): "
                    f"echo {echo_rate:.0f} turns/s p50 {p[0][1]:.1f} ms p99 {p[0][2]:.1f} ms "
                    f"| careline {our_rate:.0f} turns/s p50 {p[1][1]:.1f} ms p99 {p[1][2]:.1f} ms "
                    f"| ratio {our_rate / echo_rate:.2f} | half load ({our_rate / 2:.0f}/s) "
                    f"p50 {p[2][0]:.1f} ms p99 {p[2][1]:.1f} ms",
                    flush=True,
                )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_echo":
        serve_echo(int(sys.argv[2]), sys.argv[3])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_careline":
        serve_careline(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--chats", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engine", choices=["real", "echo"], default="real")
    parser.add_argument("--backends", default="sqlite,postgres")
    bench(parser.parse_args())


if __name__ == "__main__":
    main()
