"""The bolt app: agents' thread replies, buttons and ``/careline``; customers' DMs, each
recorded in the inbox before the ack and claimed there (see the package's notes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError

from bots.channels import PermanentFailure, RetryLater, TurnEngine, Unreachable
from bots.slack import blocks as kit
from bots.slack.api import SlackApi
from bots.slack.desk import ticket_card
from bots.slack.dm import SlackChannel
from bots.slack.files import SlackFiles
from core import services
from core.db.database import Database, domain
from core.errors import DomainError
from core.model import Agent, Channel, Priority, Ticket, ticket_id_from_reference
from dialogs.turn import Attachment, UserSaid

log = logging.getLogger("careline.slack")

INBOX_SOURCE = "slack"
CLAIM_LEASE = timedelta(seconds=45)
MAX_ATTEMPTS = 8
INBOX_EVENTS = frozenset({"message", "app_mention"})
REPLAY_EVERY = 30.0  # seconds between looks for deliveries left pending
REPLAY_BATCH = 100
REFUSAL = "Only Careline agents can work tickets here. Ask an admin to link your Slack account."


class SlackInbound:
    """The bolt app: agents' thread replies, buttons and ``/careline``; customers' DMs."""

    def __init__(
        self,
        db: Database,
        api: SlackApi,
        *,
        signing_secret: str,
        token: str,
        engine: TurnEngine | None = None,
        customers: SlackChannel | None = None,
        files: SlackFiles | None = None,
    ) -> None:
        self.db = db
        self.api = api
        self.files = files
        self.engine = engine
        self.customers = customers or SlackChannel(api)
        self._names: dict[str, str] = {}
        # process_before_response=False: bolt acks at once and runs the listener after the
        # ack (https://tools.slack.dev/bolt-python/concepts/acknowledge).
        self.app = AsyncApp(
            client=api.client,  # carries the bot token
            signing_secret=signing_secret,
            process_before_response=False,
            ignoring_self_events_enabled=True,
        )
        self.app.use(self._inbox_gate)
        self.app.event("message")(self._on_message)
        self.app.event("app_mention")(self._on_ignored)
        self.app.action(re.compile(r"^ticket_"))(self._on_ticket_action)
        self.app.action(re.compile(r"^choice:"))(self._on_customer_choice)
        self.app.command("/careline")(self._on_command)

    # -- redeliveries --------------------------------------------------------------------------
    async def _inbox_gate(
        self, body: dict[str, Any], context: dict[str, Any], next: Callable[[], Awaitable[Any]]
    ) -> Any:
        if body.get("type") != "event_callback":
            return await next()
        if (body.get("event") or {}).get("type") not in INBOX_EVENTS:
            return await next()  # no listener: bolt answers it, nothing to record
        key = _inbox_key(body)
        async with self.db.uow() as uow:
            await uow.inbox.record(INBOX_SOURCE, key, payload=body)
            attempt = await uow.inbox.claim(INBOX_SOURCE, key, CLAIM_LEASE)
            await uow.commit()
        if attempt is None:
            # Finished, parked, or another copy (maybe on another replica) is working on it.
            log.info("slack delivery %s is handled or being handled; ignoring the copy", key)
            return BoltResponse(status=200, body="")
        if attempt > MAX_ATTEMPTS:
            log.error("slack delivery %s parked after %d attempts", key, attempt - 1)
            await self._finish(key, f"gave up after {attempt - 1} attempts")
            return BoltResponse(status=200, body="")
        context["inbox_key"] = key  # the listener finishes the delivery or lets go of it
        return await next()

    async def _finish(self, key: str | None, error: str | None = None) -> None:
        if key is None:
            return
        async with self.db.uow() as uow:
            await uow.inbox.mark(INBOX_SOURCE, key, "parked" if error else "done", error)
            await uow.commit()

    async def _let_go(self, key: str | None) -> None:
        """Give the claim back after a failed attempt, so that a redelivery runs it again."""
        if key is None:
            return
        try:
            async with self.db.uow() as uow:
                await uow.inbox.release(INBOX_SOURCE, key)
                await uow.commit()
        except Exception as error:  # the lease runs out by itself
            log.warning("could not let go of slack delivery %s: %s", key, type(error).__name__)

    async def replay_pending(self, older_than: timedelta = timedelta(minutes=1)) -> int:
        """Run again the deliveries left pending (a crash, a failed attempt nobody retried)."""
        async with self.db.uow() as uow:
            rows = await uow.inbox.pending(INBOX_SOURCE, older_than, REPLAY_BATCH)
        for _, payload in rows:
            # Socket Mode requests skip the signature check: these were verified on arrival.
            # The gate claims each one as for a redelivery.
            await self.app.async_dispatch(
                AsyncBoltRequest(body=json.dumps(payload), mode="socket_mode")
            )
        return len(rows)

    async def replay_forever(self, stop: asyncio.Event, every: float = REPLAY_EVERY) -> None:
        """`replay_pending` every `every` seconds until `stop` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            if stop.is_set():
                return
            try:
                await self.replay_pending()
            except Exception as error:  # the database briefly down: the next round retries
                log.warning("could not replay pending Slack events (%s)", type(error).__name__)

    # -- events --------------------------------------------------------------------------------
    async def _on_ignored(self, context: Any) -> None:
        await self._finish(context.get("inbox_key"))

    async def _on_message(self, event: dict[str, Any], body: dict[str, Any], context: Any) -> None:
        key = context.get("inbox_key")
        error: str | None = None
        try:
            if await self._handle_message(event, str(body.get("team_id") or ""), key):
                return  # finished in the reply's own transaction
        except (DomainError, PermanentFailure, Unreachable) as failure:
            error = str(failure)  # the same input would fail the same way: park it
        except RetryLater as failure:
            log.warning("slack delivery %s left pending for a retry: %s", key, failure)
            await self._let_go(key)
            return
        except BaseException:
            await self._let_go(key)  # a redelivery (or the replay) runs it again
            raise
        try:
            await self._finish(key, error)
        except BaseException:
            # Not recorded as done: running it again has no second effect (the services and
            # the engine dedupe, answers are posted under markers), so let a redelivery do it.
            await self._let_go(key)
            raise

    async def _handle_message(self, event: dict[str, Any], team_id: str, key: str | None) -> bool:
        """Handle one message; True when its delivery (`key`) was marked done in the same
        transaction as its effect (an agent's reply or note: one commit for both)."""
        if event.get("bot_id") or event.get("subtype") not in (None, "file_share"):
            return False  # other bots, edits, deletions, joins: never tickets' business
        user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
        if not user or not channel or not ts:
            return False
        if event.get("channel_type") == "im":
            await self._customer_turn(event, user, channel, ts)
            return False
        thread_ts = event.get("thread_ts")
        if not thread_ts or thread_ts == ts:
            return False  # top-level channel chatter is not a ticket reply
        async with self.db.uow() as uow:  # one read for the thread and a linked agent
            ticket_id = await uow.threads.ticket_of(team_id, channel, thread_ts)
            agent = await uow.agents.by_slack_user(user) if ticket_id is not None else None
        if ticket_id is None:
            return False
        if agent is None or not agent.active:  # link them by email, or tell them why not
            agent = await self._agent_or_refuse(user, channel, thread_ts)
            if agent is None:
                return False
        is_note, text = kit.split_note(event.get("text") or "")
        files = await self._fetch_files(event, owner=None, ticket_id=ticket_id)
        assert agent.id is not None
        try:
            async with self.db.uow() as uow:
                if is_note:
                    await services.add_internal_note(
                        domain(uow),
                        ticket_id,
                        text,
                        agent_id=agent.id,
                        external_id=f"{channel}:{ts}",
                    )
                else:
                    await services.add_agent_reply(
                        domain(uow),
                        ticket_id,
                        agent.id,
                        text,
                        external_id=f"{channel}:{ts}",
                        attachments=[dict(a) for a in files],
                    )
                if key is not None:
                    await uow.inbox.mark(INBOX_SOURCE, key, "done")
                await uow.commit()
        except DomainError as error:
            await self._ephemeral(channel, user, f"Not sent: {error}", thread_ts=thread_ts)
            raise
        return key is not None

    async def _customer_turn(self, event: dict[str, Any], user: str, channel: str, ts: str) -> None:
        if self.engine is None:
            return
        files = await self._fetch_files(event, owner=f"{Channel.SLACK.value}:{user}")
        said = UserSaid(
            channel=Channel.SLACK,
            user_id=user,
            chat_id=channel,
            text=event.get("text") or "",
            message_id=f"{channel}:{ts}",
            display_name=await self.display_name(user),
            attachments=tuple(Attachment(**a) for a in files),
        )
        await self._answer(said)

    async def _fetch_files(
        self, event: dict[str, Any], *, owner: str | None, ticket_id: int | None = None
    ) -> list[dict[str, Any]]:
        """The message's files, copied into the file store (or, without one, as Slack names
        them); the sender hears about those that were not kept."""
        shared = [f for f in event.get("files") or [] if isinstance(f, dict)]
        if not shared:
            return []
        if self.files is None:
            return [a.as_dict() for a in _attachments(event)]
        fetched = await self.files.fetch(shared, owner=owner, ticket_id=ticket_id)
        if fetched.refusals:
            note = "Not kept: " + "; ".join(fetched.refusals)
            with contextlib.suppress(Exception):
                await self._ephemeral(
                    str(event.get("channel")), str(event.get("user")), note,
                    thread_ts=event.get("thread_ts"),
                )  # fmt: skip
        return list(fetched.attachments)

    async def _answer(self, said: UserSaid) -> None:
        """Run the turn and post its answers, each at most once whatever is redelivered.

        A redelivered message gets the answers the engine remembers for it; each goes under a
        marker derived from the message, so one an earlier attempt already posted is found in
        the DM instead of being posted again.
        """
        assert self.engine is not None
        for n, reply in enumerate(await self.engine.handle_turn(said)):
            await self.customers.send(said.chat_id, reply, marker=answer_marker(said, n))

    async def _on_customer_choice(
        self, ack: Callable[[], Awaitable[Any]], body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        await ack()
        if self.engine is None:
            return
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id") or body["container"]["channel_id"]
        said = UserSaid(
            channel=Channel.SLACK,
            user_id=user,
            chat_id=channel,
            text=(action.get("text") or {}).get("text", ""),
            message_id=f"{channel}:{action.get('action_ts')}",
            display_name=await self.display_name(user),
            choice=action.get("value"),
        )
        await self._answer(said)

    # -- agents --------------------------------------------------------------------------------
    async def _agent_or_refuse(
        self, user: str, channel: str, thread_ts: str | None
    ) -> Agent | None:
        """The agent behind a Slack user, or None after telling them (only them) why not."""
        agent = await self.agent_for(user)
        if agent is None:
            await self._ephemeral(channel, user, REFUSAL, thread_ts=thread_ts)
        return agent

    async def agent_for(self, slack_user_id: str) -> Agent | None:
        """The active agent behind a Slack user, linking them by email on first contact."""
        async with self.db.uow() as uow:
            agent = await uow.agents.by_slack_user(slack_user_id)
            if agent is not None:
                return agent if agent.active else None
        email = await self._email_of(slack_user_id)
        if not email:
            return None
        async with self.db.uow() as uow:
            agent = await uow.agents.by_email(email)
            if agent is None or not agent.active or agent.slack_user_id is not None:
                return None  # unknown, deactivated, or already linked to another Slack user
            agent.slack_user_id = slack_user_id
            await uow.commit()
            log.info("linked Slack user %s to agent %s by email", slack_user_id, agent.id)
            return agent

    async def _email_of(self, slack_user_id: str) -> str | None:
        try:
            answer = await self.api.call("users.info", user=slack_user_id)
        except SlackApiError:
            return None
        user = answer.get("user") or {}
        if user.get("is_bot") or user.get("deleted"):
            return None
        email = (user.get("profile") or {}).get("email")
        return str(email).strip().lower() if email else None

    async def display_name(self, slack_user_id: str) -> str:
        if slack_user_id not in self._names:
            try:
                user = (await self.api.call("users.info", user=slack_user_id)).get("user") or {}
            except (SlackApiError, RetryLater):
                user = {}
            profile = user.get("profile") or {}
            self._names[slack_user_id] = str(
                profile.get("display_name") or profile.get("real_name") or user.get("name") or ""
            )
        return self._names[slack_user_id]

    # -- buttons -------------------------------------------------------------------------------
    async def _on_ticket_action(
        self, ack: Callable[[], Awaitable[Any]], body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        await ack()
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id") or body["container"]["channel_id"]
        thread_ts = (body.get("container") or {}).get("message_ts")
        reference = _reference_in(action)
        ticket_id = ticket_id_from_reference(reference or "")
        if ticket_id is None:
            return
        agent = await self._agent_or_refuse(user, channel, thread_ts)
        if agent is None:
            return
        action_id = action["action_id"]
        try:
            if action_id == kit.ASSIGN:
                target = await self.agent_for(action.get("selected_user") or "")
                if target is None:
                    who = action.get("selected_user")
                    await self._ephemeral(channel, user, f"<@{who}> is not a Careline agent.")
                    return
                await self._work(ticket_id, agent, "assign", target=target)
            elif action_id == kit.PRIORITY:
                value = (action.get("selected_option") or {}).get("value", "")
                await self._work(ticket_id, agent, "priority", argument=value.rsplit(":", 1)[-1])
            else:
                await self._work(ticket_id, agent, action_id.removeprefix("ticket_"))
        except DomainError as error:
            await self._ephemeral(channel, user, f"{reference}: {error}")

    async def _work(
        self,
        ticket_id: int,
        agent: Agent,
        verb: str,
        *,
        target: Agent | None = None,
        argument: str = "",
    ) -> Ticket:
        """One desk action on a ticket, committed; the relay then updates the thread."""
        actor = f"agent:{agent.id}"
        assert agent.id is not None
        async with self.db.uow() as uow:
            match verb:
                case "claim":
                    ticket = await services.assign_ticket(
                        domain(uow), ticket_id, agent.id, actor=actor
                    )
                case "assign":
                    assert target is not None and target.id is not None
                    ticket = await services.assign_ticket(
                        domain(uow), ticket_id, target.id, actor=actor
                    )
                case "priority":
                    ticket = await services.change_priority(
                        domain(uow), ticket_id, Priority(argument), actor=actor
                    )
                case "resolve":
                    ticket = await services.resolve_ticket(domain(uow), ticket_id, actor=actor)
                case "close":
                    ticket = await services.close_ticket(domain(uow), ticket_id, actor=actor)
                case "reopen":
                    ticket = await services.reopen_ticket(domain(uow), ticket_id, actor=actor)
                case "note":
                    await services.add_internal_note(
                        domain(uow), ticket_id, argument, agent_id=agent.id
                    )
                    ticket = await services.get_ticket(domain(uow), ticket_id)
                case _:
                    ticket = await services.get_ticket(domain(uow), ticket_id)
            await uow.commit()
        return ticket

    # -- /careline -------------------------------------------------------------------------------
    async def _on_command(
        self, ack: Callable[..., Awaitable[Any]], command: dict[str, Any]
    ) -> None:
        await ack()
        user, channel = command["user_id"], command["channel_id"]
        parsed = kit.parse_command(command.get("text") or "")
        if parsed.verb == "help" or parsed.problem:
            await self._ephemeral(
                channel, user, "\n\n".join(filter(None, [parsed.problem, kit.HELP]))
            )
            return
        agent = await self.agent_for(user)
        if agent is None:
            await self._ephemeral(channel, user, REFUSAL)
            return
        ticket_id = ticket_id_from_reference(parsed.reference or "")
        assert ticket_id is not None
        try:
            target = None
            if parsed.verb == "assign":
                target = await self.agent_for(parsed.user_id or "")
                if target is None:
                    await self._ephemeral(
                        channel, user, f"<@{parsed.user_id}> is not a Careline agent."
                    )
                    return
            ticket = await self._work(
                ticket_id, agent, parsed.verb, target=target, argument=parsed.argument
            )
            async with self.db.uow() as uow:
                card = await ticket_card(uow, ticket, self.files.link if self.files else None)
        except DomainError as error:
            await self._ephemeral(channel, user, f"{parsed.reference}: {error}")
            return
        done = {
            "status": "",
            "note": "Note added.",
            "assign": f"Assigned to {kit.who(card)}.",
            "claim": "It's yours.",
        }.get(parsed.verb, "Done.")
        await self._ephemeral(channel, user, "\n".join(filter(None, [done, kit.status_text(card)])))

    async def _ephemeral(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None
    ) -> None:
        try:
            await self.api.call(
                "chat.postEphemeral", channel=channel, user=user, text=text, thread_ts=thread_ts
            )
        except (SlackApiError, RetryLater) as error:
            log.warning("could not tell %s in %s: %s", user, channel, error)


def _inbox_key(body: dict[str, Any]) -> str:
    """`channel:ts` for messages (the same message may come as several events), else event id."""
    event = body.get("event") or {}
    message = event.get("type") == "message" and not event.get("subtype")
    if message and event.get("channel") and event.get("ts"):
        return f"{event['channel']}:{event['ts']}"
    return str(body.get("event_id") or f"{event.get('type')}:{event.get('event_ts')}")


def answer_marker(said: UserSaid, n: int) -> str:
    """The marker of the `n`-th answer to a customer's message (the same for every copy)."""
    return f"answer:{said.message_id}:{n}"


def _reference_in(action: dict[str, Any]) -> str | None:
    for candidate in (
        str(action.get("value") or "").split(":")[0],
        str((action.get("selected_option") or {}).get("value") or "").split(":")[0],
        str(action.get("block_id") or "").removeprefix(kit.ACTIONS_BLOCK_PREFIX),
    ):
        if ticket_id_from_reference(candidate) is not None:
            return candidate.upper()
    return None


def _attachments(event: dict[str, Any]) -> list[Attachment]:
    return [
        Attachment(
            kind="file",
            file_id=f.get("id"),
            name=f.get("name") or f.get("title"),
            mime_type=f.get("mimetype"),
            size=f.get("size"),
        )
        for f in event.get("files") or []
    ]
