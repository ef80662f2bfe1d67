"""Mean and p99 time of one dialog turn on SQLite (engine + database, NLU excluded or not).

    python -m bench.dialog_turn [--turns 2000] [--local-nlu]

Each simulated customer greets, asks an FAQ, files a complaint, then keeps writing on the
ticket, so the mix covers reads, state changes, a ticket opening and ticket messages.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from core.db.database import Database
from core.db.migrate import migrate
from core.model import Channel
from dialogs.catalogue import load_catalogue
from dialogs.config import DialogConfig
from dialogs.engine import DialogEngine
from dialogs.nlu import OUT_OF_SCOPE, Parse, load_faq
from dialogs.turn import UserSaid

SCRIPT = [
    ("hi", "greet"),
    ("when are you open?", "faq_opening_hours"),
    ("yes", "affirm"),
    ("/new", None),
    ("My card was charged twice for one order", None),
    ("1", None),
    ("2", None),
    ("skip", None),
    ("1", None),
]


class FixedNLU:
    """Answers from the script: measures the engine, not the classifier."""

    def __init__(self) -> None:
        self.intents = {text: intent for text, intent in SCRIPT if intent}

    async def parse(self, text: str) -> Parse:
        return Parse(self.intents.get(text, OUT_OF_SCOPE), 0.9)


async def run(turns: int, local_nlu: bool) -> None:
    folder = Path(tempfile.mkdtemp())
    db = Database(f"sqlite+aiosqlite:///{folder}/bench.db")
    await migrate(db)
    if local_nlu:
        from dialogs.nlu import default_nlu

        nlu = default_nlu(cache_dir=folder)
    else:
        nlu = FixedNLU()  # type: ignore[assignment]
    engine = DialogEngine(db, nlu, DialogConfig(), load_catalogue(), faq=load_faq())
    times: list[float] = []
    user = 0
    cpu_start = time.process_time()
    while len(times) < turns:
        user += 1
        lines = [text for text, _ in SCRIPT] + [f"more detail {n}" for n in range(6)]
        for n, text in enumerate(lines):
            said = UserSaid(Channel.TELEGRAM, f"u{user}", f"c{user}", text=text, message_id=str(n))
            start = time.perf_counter()
            await engine.handle_turn(said)
            times.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu_start
    await db.dispose()
    times.sort()
    print(
        f"{len(times)} turns, {user} customers, NLU={'local' if local_nlu else 'fixed'}: "
        f"mean {statistics.mean(times) * 1000:.2f} ms, p50 {times[len(times) // 2] * 1000:.2f} ms, "
        f"p99 {times[int(len(times) * 0.99)] * 1000:.2f} ms; "
        f"CPU {cpu / len(times) * 1000:.2f} ms per turn (all threads; robust to a busy machine)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--local-nlu", action="store_true")
    args = parser.parse_args()
    asyncio.run(run(args.turns, args.local_nlu))


if __name__ == "__main__":
    main()
