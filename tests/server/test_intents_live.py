"""Teaching the bot needs no redeploy: two real servers on one PostgreSQL database; an admin
adds examples of a new intent over the first one's API, one server trains the model in the
background, and a customer of the second is understood by it within seconds."""

from __future__ import annotations

import time
from pathlib import Path

from core.db.database import Database
from tests.server.test_knowledge_live import answer, first_answer_with, two_servers

QUESTION = "Where do I put my automobile?"
PASSAGE = "Free parking is behind the store, on level -1."
EXAMPLES = ["where do I put my automobile", "is there parking", "where can I park my car"]


def test_examples_added_on_one_server_are_understood_on_another_within_seconds(
    pg_db: Database, tmp_path: Path
) -> None:
    with two_servers(pg_db, tmp_path) as (api, chat):
        article = api.post(
            "/articles", json={"title": "Parking", "body": PASSAGE, "key": "faq_parking"}
        ).json()
        assert api.post(f"/articles/{article['id']}/publish").status_code == 200
        time.sleep(2.5)  # the article is live everywhere; the bot does not know the words yet
        assert PASSAGE not in answer(chat, QUESTION)

        started = time.monotonic()
        for text in EXAMPLES:
            made = api.post("/intents/faq_parking/examples", json={"text": text})
            assert made.status_code == 201, made.text
        assert api.get("/intents/training").json()["ready"] is False
        took = first_answer_with(chat, QUESTION, PASSAGE, 30)
        status = api.get("/intents/training").json()
        assert status["ready"] is True and status["stage"] == "done", status
        print(f"understood on the second server {time.monotonic() - started:.1f} s after the "
              f"first edit (answer {took:.1f} s after the last)")  # fmt: skip
        assert f"{PASSAGE}\n\n(From: Parking)" in answer(chat, "where can I leave my car?")
        assert "Opening hours" in answer(chat, "when are you open?")  # the rest still known
