"""The intent examples over the admin API: read by everyone, edited by admins, with clear
refusals; the training status says when the model of the new examples is ready."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.db.database import Database
from dialogs.nlu import LocalNLU
from dialogs.nlu.live import LiveIntents
from tests.admin_api.conftest import Api, assert_problem


async def test_an_admin_teaches_a_new_intent_and_every_caller_reads_it(api: Api) -> None:
    added = await api.post("/intents/faq_parking/examples", json={"text": " is there  parking "})
    assert added.status_code == 201, added.text
    example = added.json()
    assert example["text"] == "is there parking"
    assert example["source"] == "added" and example["changed_by"]

    _, agent = await api.agent_key("Grace")
    listed = (await api.get("/intents", headers=agent)).json()
    parking = next(i for i in listed if i["intent"] == "faq_parking")
    assert parking == {"intent": "faq_parking", "examples": 1, "added": 1, "removed": 0}
    examples = (await api.get("/intents/faq_parking/examples", headers=agent)).json()
    assert [e["id"] for e in examples] == [example["id"]]


async def test_the_same_words_twice_or_a_bad_name_are_refused(api: Api) -> None:
    taken = await api.post("/intents/faq_parking/examples", json={"text": "HI"})
    body = assert_problem(taken, 409, "example_taken")
    assert "greet" in body["detail"]
    assert_problem(await api.post("/intents/Parking/examples", json={"text": "x y"}), 422)
    assert_problem(await api.post("/intents/faq_parking/examples", json={"text": "  "}), 422)
    assert_problem(await api.post("/intents/faq_parking/examples", json={"text": "x" * 501}), 422)
    assert_problem(await api.get("/intents/no_such_intent/examples"), 404)


async def test_a_files_example_goes_and_comes_back_and_the_last_one_stays(api: Api) -> None:
    examples = (await api.get("/intents/greet/examples")).json()
    assert {e["source"] for e in examples} == {"file"}
    hi = next(e for e in examples if e["text"] == "hi")
    assert (await api.client.delete(f"/intents/greet/examples/{hi['id']}",
                                    headers=api.admin)).status_code == 204  # fmt: skip
    greet = next(i for i in (await api.get("/intents")).json() if i["intent"] == "greet")
    assert (greet["examples"], greet["removed"]) == (len(examples) - 1, 1)
    back = await api.post("/intents/greet/examples", json={"text": "hi"})
    assert back.json() == {**hi, "source": "file", "changed_by": None, "changed_at": None}
    assert (await api.get("/intents/training")).json()["edits"] == 0

    for example in examples[:-1]:
        gone = await api.client.delete(f"/intents/greet/examples/{example['id']}",
                                       headers=api.admin)  # fmt: skip
        assert gone.status_code == 204
    last = await api.client.delete(f"/intents/greet/examples/{examples[-1]['id']}",
                                   headers=api.admin)  # fmt: skip
    assert_problem(last, 409, "last_example")


async def test_training_is_ready_once_a_replica_stored_the_new_model(
    api: Api, db: Database
) -> None:
    assert (await api.get("/intents/training")).json()["ready"] is True  # the file's model
    await api.post("/intents/faq_parking/examples", json={"text": "is there parking"})
    status = (await api.get("/intents/training")).json()
    assert status["ready"] is False and status["edits"] == 1

    from dialogs.data import INTENTS_FILE

    live = LiveIntents(db, LocalNLU.load(Path(INTENTS_FILE).with_name("intents-local.npz")))
    await live.refresh()
    assert live._training is not None
    await asyncio.wait_for(live._training, 60)
    status = (await api.get("/intents/training")).json()
    assert status["ready"] is True
    assert (status["stage"], status["progress"], status["error"]) == ("done", 1.0, None)
    assert status["started_at"] <= status["finished_at"]
