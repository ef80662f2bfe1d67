"""The turn-CPU benchmark reads what it says: a process's own CPU time, and the CPU of the
one PostgreSQL cluster it measures (its postmaster and that one's children)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bench import turn_cpu


def test_cpu_seconds_counts_this_process_working() -> None:
    before = turn_cpu.cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert turn_cpu.cpu_seconds(os.getpid()) - before >= 0.1


@pytest.mark.postgres
def test_cluster_cpu_is_the_clusters_own(pg_url: str) -> None:
    port = make_url(pg_url).port
    assert port is not None
    master = turn_cpu.postmaster(port)
    assert master is not None
    argv = Path(f"/proc/{master}/cmdline").read_bytes().split(b"\0")
    assert str(port).encode() in argv and argv[0].endswith(b"postgres")
    assert turn_cpu.postmaster(1) is None  # nobody's server
    assert turn_cpu.cluster_cpu(master) > 0.0  # it migrated the test database


def test_profile_shares_go_to_the_innermost_known_place(tmp_path: Path) -> None:
    raw = tmp_path / "profile.txt"
    raw.write_text(
        "main (bots/server.py:1);execute (sqlalchemy/engine/base.py:9) 6\n"
        "main (bots/server.py:1);parse (dialogs/nlu/tfidf.py:3) 3\n"
        "main (bots/server.py:1);handle (bots/telegram/bot.py:5);run (asyncio/runners.py:1) 1\n"
    )
    assert turn_cpu.shares(raw) == [
        ("sqlalchemy", 0.6),
        ("careline dialogs", 0.3),
        ("event loop (asyncio, uvloop)", 0.1),
    ]
