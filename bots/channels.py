"""The outbound port every chat channel implements, the errors it may raise, and the
contract of a channel packaged as a plug (`ChannelPlug`, made from a `PlugSpec`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from core.model import Channel
from dialogs.turn import Reply, TurnRecorder, UserSaid

if TYPE_CHECKING:
    from bots.metrics import Metrics
    from core.config import Settings
    from core.db.database import Database
    from core.files import FileLinks
    from core.ports import FileStore


class TurnEngine(Protocol):
    """The dialog engine as every channel sees it."""

    async def handle_turn(self, said: UserSaid) -> list[Reply]:
        """Run one turn (commits its own unit of work); return what to answer."""
        ...


class RecordingTurnEngine(TurnEngine, Protocol):
    """An engine that says `records_in_turn` (dialogs.engine.DialogEngine): a `recorder`
    (dialogs.turn.TurnRecorder) writes in the turn's transaction, so a channel's inbox
    record and the replies it will send commit with the turn (one commit for all), and
    anything it raises ends the turn with nothing written."""

    records_in_turn: bool

    async def handle_turn(
        self, said: UserSaid, *, recorder: TurnRecorder | None = None
    ) -> list[Reply]: ...


class DeliveryError(Exception):
    """Base of what a channel raises when a message could not be delivered."""


class RetryLater(DeliveryError):
    """A transient failure (rate limit, 5xx, timeout): try again after `seconds`."""

    def __init__(self, message: str, seconds: float = 1.0) -> None:
        super().__init__(message)
        self.seconds = seconds


class Unreachable(DeliveryError):
    """The platform will not let us write to this chat (blocked, deactivated): use email."""


class PermanentFailure(DeliveryError):
    """The message can never be delivered as it is (bad request); do not retry."""


class ChatChannel(Protocol):
    """Sends replies into one platform's chats."""

    channel: Channel

    async def send(self, chat_id: str, reply: Reply) -> str:
        """Deliver `reply`; return the provider's message id. Raises a DeliveryError."""
        ...


@dataclass(frozen=True, slots=True)
class OutgoingFile:
    """A stored file for a customer's chat: the bytes for a channel that carries files, the
    link (a signed path on this server, or None) for one that can only point at them."""

    name: str
    mime_type: str
    content: bytes
    caption: str = ""  # who sent it, in the customer's language
    link: str | None = None
    sender: str = ""  # the agent's name


@runtime_checkable
class FileChannel(Protocol):
    """A chat channel that can deliver a file itself (Telegram, the web chat)."""

    async def send_file(self, chat_id: str, file: OutgoingFile) -> str:
        """Deliver the file; return the provider's message id. Raises a DeliveryError."""
        ...


class ChatLocks:
    """One asyncio lock per chat, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


# -- channel plugs ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlugBuild:
    """What a plug is made from, before any I/O (`create_app`)."""

    settings: Settings
    db: Database
    metrics: Metrics
    files: FileStore  # attachments' bytes
    links: Callable[[], FileLinks | None]  # signed file links, once the secret is loaded


@dataclass(frozen=True, slots=True)
class PlugStart:
    """What a plug gets when the server starts it (the engine is built by then)."""

    engine: TurnEngine | None  # None in the relay role: no turns run there
    public_url: str | None
    receives: bool  # this process serves the webhooks (web roles)
    stopping: asyncio.Event
    secret: str  # the server's secret (settings, else kept in the database)


@dataclass(frozen=True, slots=True)
class Mail:
    """How customer notices are emailed: the sender (bots.email.EmailSender) and, where
    replies by email reach the ticket, a ticket's reply address."""

    sender: Any
    reply_to: Callable[[int], str] | None = None


class ChannelPlug(Protocol):
    """A channel as one package: what the server needs of it, and nothing else.

    The server builds every enabled plug (`bots.plugs`), mounts its routes, starts it once
    the engine exists, gives its outbound channel to the relay's notices, lets it register
    relay handlers of its own and stops it on shutdown; it never names a channel.
    """

    @property
    def channel(self) -> ChatChannel | None:
        """The outbound chat channel customer notices use (valid once started); None for a
        plug that is not a chat (email)."""
        ...

    @property
    def mail(self) -> Mail | None:
        """How notices are emailed (valid once started): the email plug's; None for chats."""
        ...

    def routes(self) -> list[Any]:
        """FastAPI routers of its webhooks (mounted in the web roles, before start)."""
        ...

    def register(self, handlers: Any) -> None:
        """Relay handlers of its own (bots.relay.Handlers), beyond the customer notices."""
        ...

    async def start(self, start: PlugStart) -> list[asyncio.Task[None]]:
        """Connect and start background work; the tasks the server waits for on shutdown.
        A platform that is down must not fail the start: retry in a task."""
        ...

    async def stop(self, grace: float) -> None: ...


@dataclass(frozen=True, slots=True)
class PlugSpec:
    """How to make a plug from the settings, and what the server says and hides about it."""

    name: str
    enabled: Callable[[Settings], bool]
    build: Callable[[PlugBuild], ChannelPlug]
    banner: Callable[[Settings, str], list[str]]  # its start-up banner lines (public URL)
    secrets: tuple[str, ...]  # the names of its settings whose values are never logged
