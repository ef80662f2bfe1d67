"""A publish needs no redeploy: two real servers on one PostgreSQL database; an admin publishes
an article over the first one's API, and a customer of the second is answered from it within
seconds; once it is unpublished, it is never quoted again."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from core.config import Settings
from core.db.database import Database
from tests.server.support import running

PASSAGE = "Parcels to Canada take 7-10 working days; customs duties are paid on delivery."
ARTICLE = {
    "title": "Shipping to Canada",
    "body": f"We ship worldwide.\n\n{PASSAGE}",
    "questions": ["do you deliver to Canada?"],
}


def settings(db: Database, home: Path, role: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=db.url.render_as_string(hide_password=False),
        data_dir=str(home),
        role=role,
        knowledge_refresh_seconds=2.0,  # the default: "within seconds"
        webchat_messages_per_minute=0,  # the test asks as often as it likes
        webchat_address_messages_per_minute=0,
    )


def answer(chat: httpx.Client, text: str) -> str:
    sent = chat.post("/chat/api/messages", json={"text": text, "client_id": str(time.time_ns())})
    assert sent.status_code == 200, sent.text
    lines = chat.get("/chat/api/messages", params={"after": 0}).json()["lines"]
    return str([line for line in lines if line["direction"] == "out"][-1]["text"])


def first_answer_with(chat: httpx.Client, text: str, wanted: str, seconds: float) -> float:
    """Ask until the answer has `wanted`; how long it took."""
    started = time.monotonic()
    while wanted not in answer(chat, text):
        assert time.monotonic() - started < seconds, f"no {wanted!r} after {seconds} s"
        time.sleep(0.25)
    return time.monotonic() - started


@contextlib.contextmanager
def two_servers(db: Database, home: Path) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """Two replicas on one database: the first's admin API (with its admin key) and the
    second's web chat, with a visitor session."""
    with (
        running(settings(db, home / "a", "all")) as first,
        running(settings(db, home / "b", "web")) as second,
        httpx.Client(base_url=f"{first.url}/api/v1") as api,
        httpx.Client(base_url=second.url) as chat,
    ):
        api.headers["Authorization"] = f"Bearer {first.app.state.runtime.admin_key}"
        assert chat.post("/chat/api/session").status_code == 200
        yield api, chat


def test_an_article_published_on_one_server_is_answered_on_another_within_seconds(
    pg_db: Database, tmp_path: Path
) -> None:
    with two_servers(pg_db, tmp_path) as (api, chat):
        assert "From: Opening hours" in answer(chat, "when are you open?")  # the seed
        assert "Canada" not in answer(chat, "How long does a parcel to Canada take?")

        article = api.post("/articles", json=ARTICLE).json()
        assert "Canada" not in answer(chat, "How long does a parcel to Canada take?")  # a draft
        assert api.post(f"/articles/{article['id']}/publish").status_code == 200
        took = first_answer_with(chat, "How long does a parcel to Canada take?", PASSAGE, 10)
        assert took < 5
        assert f"{PASSAGE}\n\n(From: Shipping to Canada)" in answer(chat, "parcel to Canada?")

        assert api.post(f"/articles/{article['id']}/unpublish").status_code == 200
        time.sleep(3)  # past one refresh of every replica
        for _ in range(3):
            assert "Canada" not in answer(chat, "How long does a parcel to Canada take?")
