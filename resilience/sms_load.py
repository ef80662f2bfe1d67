"""SMS: every text delivered 1 to 3 times, with the server killed (kill -9) mid-load, has
exactly one effect and one answer.

Twilio repeats a webhook when it did not get an answer (connection overrides `#rc`), and
copies may overlap the first one's processing. Customers text the support number: each
first asks for a person (a ticket opens), then texts notes, each note posted 1-3 times under
its message SID, a transport error retried like Twilio would. Afterwards every note must be
on the ticket exactly once and answered exactly once; an answer repeated because the server
was killed while sending it is the at-least-once bound, counted as in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field

import httpx
from twilio.request_validator import RequestValidator

from core.db.database import Database
from resilience.harness import (
    Context,
    check_relay,
    message_counts,
    sms_env,
    tickets_of,
    wait_until,
)
from resilience.procs import Server, start_fake
from resilience.report import Result

REPLAY_SECONDS = 100.0  # a claim's 60 s lease, the replay's 30 s age and 10 s period


@dataclass
class Text:
    number: str
    body: str
    sid: str
    copies: int
    statuses: list[str] = field(default_factory=list)


def _form(text: Text) -> dict[str, str]:
    from tests.fakes.twilio_api import ACCOUNT_SID, SUPPORT_NUMBER

    return {
        "MessageSid": text.sid,
        "SmsSid": text.sid,
        "AccountSid": ACCOUNT_SID,
        "From": text.number,
        "To": SUPPORT_NUMBER,
        "Body": text.body,
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }


async def _post(client: httpx.AsyncClient, url: str, public: str, text: Text) -> str:
    from tests.fakes.twilio_api import AUTH_TOKEN

    form = _form(text)
    signature = RequestValidator(AUTH_TOKEN).compute_signature(public, form)
    for _ in range(60):  # Twilio's retries: a dead server is tried again for a while
        try:
            answer = await client.post(url, data=form, headers={"X-Twilio-Signature": signature})
        except httpx.TransportError:
            await asyncio.sleep(0.5)
            continue
        if answer.status_code < 500:
            return str(answer.status_code)
        await asyncio.sleep(0.5)
    return "unreachable"


async def sms_redeliveries(ctx: Context) -> list[Result]:
    size = ctx.size
    customers = max(2, size.slack_events // 6)
    per_customer = max(2, size.slack_events // customers)
    result = Result(
        "SMS texts delivered 1-3 times, kill -9 mid-load",
        load=f"{customers * per_customer} texts / {customers} numbers",
        faults=f"Twilio retries, overlapping; {size.kills} x kill -9",
    )
    workdir = ctx.folder("sms")
    twilio = start_fake(ctx.procs, "tests.fakes.twilio_api", workdir)
    url = ctx.sqlite_url("sms")
    server = Server(
        ctx.procs, sms_env(url, twilio, workdir, CARELINE_SMS_PER_SECOND="200"), workdir
    )
    server.env["CARELINE_PUBLIC_URL"] = server.url
    server.start()
    await asyncio.to_thread(server.wait_ready)
    endpoint = f"{server.url}/twilio/sms"
    rng = random.Random(ctx.seed)
    db = Database(url)
    notes: list[Text] = []
    sids = iter(range(1, 1_000_000))
    started = time.monotonic()
    posted = 0

    async def killer(total: int) -> None:
        low, high = int(total * 0.2), int(total * 0.8)
        for threshold in sorted(rng.sample(range(low, max(high, low + 1)), size.kills)):
            if not await wait_until(lambda th=threshold: posted >= th, 300):
                return
            await asyncio.sleep(rng.uniform(0, 0.3))
            server.kill9()
            server.start()
            await asyncio.to_thread(server.wait_ready)

    try:
        async with httpx.AsyncClient(timeout=60) as client:

            async def customer(n: int) -> None:
                nonlocal posted
                number = f"+1415555{n:04d}"
                opening = Text(number, "I need a person", f"SM{next(sids):032x}", 1)
                await _post(client, endpoint, endpoint, opening)

                async def has_ticket() -> bool:
                    return await tickets_of(db, "sms", number) > 0

                if not await wait_until(has_ticket, 120, every=0.3):
                    result.fail(f"customer {n}: no ticket opened")
                    return
                for j in range(per_customer):
                    note = Text(
                        number, f"note sms {n}-{j}", f"SM{next(sids):032x}", rng.randint(1, 3)
                    )
                    notes.append(note)
                    copies = [_post(client, endpoint, endpoint, note) for _ in range(note.copies)]
                    note.statuses = list(await asyncio.gather(*copies))  # overlapping
                    posted += 1

            killing = asyncio.create_task(killer(customers * per_customer))
            await asyncio.gather(*(customer(n) for n in range(customers)))
            with contextlib.suppress(asyncio.CancelledError):
                killing.cancel()
                await killing
            if not server.alive():
                server.start()
                await asyncio.to_thread(server.wait_ready)

            async def counts() -> dict[str, int]:
                return await message_counts(db, "note sms ")

            async def all_arrived() -> bool:
                return len(await counts()) >= len(notes)

            await wait_until(all_arrived, REPLAY_SECONDS, every=0.5)
            found = await counts()
    finally:
        await db.dispose()
    elapsed = time.monotonic() - started
    for note in notes:
        count = found.get(note.body, 0)
        if count == 0:
            result.lost += 1
            result.notes.append(f"lost: {note.body!r} ({note.copies} copies, {note.statuses})")
        elif count > 1:
            result.duplicated += 1
            result.notes.append(f"duplicated x{count}: {note.body!r} ({note.copies} copies)")
    not_acked = sum(1 for n in notes for s in n.statuses if not s.startswith("2"))
    if not_acked:
        result.fail(f"{not_acked} deliveries never acknowledged with 2xx")

    def answers() -> dict[str, int]:
        sent: dict[str, int] = {}
        for call in twilio.calls():
            params = call.get("params") or {}
            if call.get("method") == "messages.create" and "Added to" in str(params.get("Body")):
                sent[str(params.get("To"))] = sent.get(str(params.get("To")), 0) + 1
        return sent

    await wait_until(lambda: sum(answers().values()) >= len(notes), REPLAY_SECONDS, every=1.0)
    per_number = await asyncio.to_thread(answers)
    owed = {n.number: 0 for n in notes}
    for note in notes:
        owed[note.number] += 1
    missing = sum(max(0, owed[k] - per_number.get(k, 0)) for k in owed)
    repeated = sum(max(0, per_number.get(k, 0) - owed[k]) for k in owed)
    if missing:
        result.lost += missing
        result.fail(f"{missing} notes never answered by text")
    # A kill between Twilio's answer and the record of it repeats that one text: the bound.
    result.in_flight += repeated
    if repeated > size.kills * customers:
        result.duplicated += repeated
        result.fail(f"{repeated} answers repeated, more than the kills could have interrupted")
    result.notes.append(
        f"{len(notes)} notes as {sum(n.copies for n in notes)} deliveries in {elapsed:.0f} s; "
        f"{sum(per_number.values())} answers ({repeated} repeated at a kill); "
        f"{server.starts - 1} restarts"
    )
    async with httpx.AsyncClient(timeout=10) as client:
        violations = (await client.get(f"{twilio.url}/_fake/violations")).json()
    if violations:
        result.fail(f"{len(violations)} calls broke Twilio's contract: {violations[:2]}")
    await check_relay(result, server, url, within=60 + len(notes))
    server.stop()
    return [result]
