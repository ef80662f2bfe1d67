"""Files shared in Slack, copied into Careline's file store (core.files).

Slack hands a shared file's bytes only to a request with the bot token
(`Authorization: Bearer xoxb-…`) at the file's `url_private_download`
(https://docs.slack.dev/messaging/working-with-files#authenticating). The token goes only to
Slack's own file host (or, in tests, to the configured Web API host): an event naming another
host is not followed. A file that is too large or of a kind we do not keep is left out, and
the sender is told why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from core.files import FileLinks, FileRefused, StoredFile, describe, human_size, platform_file_id
from core.ports import FileStore

log = logging.getLogger(__name__)

FILE_HOSTS = ("files.slack.com",)


@dataclass(frozen=True, slots=True)
class Fetched:
    """What came of a message's files: the attachments kept, and why others were not."""

    attachments: tuple[dict[str, Any], ...]
    refusals: tuple[str, ...]


class SlackFiles:
    def __init__(
        self,
        store: FileStore | None,
        token: str,
        *,
        api_url: str,
        max_bytes: int,
        links: Callable[[], FileLinks | None] = lambda: None,
        link_ttl_seconds: float = 7 * 24 * 3600,
        timeout: float = 30.0,
    ) -> None:
        self.store = store
        self._token = token
        self.hosts = {*FILE_HOSTS, urlsplit(api_url).netloc}
        self.max_bytes = max_bytes
        self.links = links
        self.link_ttl_seconds = link_ttl_seconds
        self.timeout = timeout

    def link(self, stored_id: str) -> str | None:
        """A link for the ticket thread (it outlives a click, not a week)."""
        links = self.links()
        return links.url(stored_id, ttl=self.link_ttl_seconds) if links is not None else None

    async def fetch(
        self, files: Sequence[dict[str, Any]], *, owner: str | None, ticket_id: int | None
    ) -> Fetched:
        """Copy each of an event's files into the store; the rest become refusals."""
        kept: list[dict[str, Any]] = []
        refusals: list[str] = []
        for file in files:
            name = str(file.get("name") or file.get("title") or "file")
            try:
                stored = await self._fetch_one(file, name, owner, ticket_id)
            except FileRefused as refusal:
                refusals.append(f"{name}: {refusal}")
                continue
            except (httpx.HTTPError, ValueError) as error:
                log.warning("could not fetch a Slack file (%s)", type(error).__name__)
                refusals.append(f"{name}: Slack did not hand the file over; try again.")
                continue
            attachment = stored.attachment()
            attachment["file_id"] = file.get("id")
            kept.append(attachment)
        return Fetched(tuple(kept), tuple(refusals))

    async def _fetch_one(
        self, file: dict[str, Any], name: str, owner: str | None, ticket_id: int | None
    ) -> StoredFile:
        if self.store is None:
            raise FileRefused("files are not kept by this server.")
        size = file.get("size")
        if isinstance(size, int) and size > self.max_bytes:
            raise FileRefused(f"too large: the limit is {human_size(self.max_bytes)}.")
        url = str(file.get("url_private_download") or file.get("url_private") or "")
        if urlsplit(url).scheme not in ("https", "http") or urlsplit(url).netloc not in self.hosts:
            raise ValueError("the file is not on Slack's file host")
        file_id = platform_file_id("slack", str(file.get("id") or url))
        kept = await self.store.info(file_id)
        if kept is not None:  # a redelivered event: fetched before
            return kept
        content = await self._download(url)
        stored = describe(
            content,
            name=name,
            declared=file.get("mimetype"),
            limit=self.max_bytes,
            file_id=file_id,
            owner=owner,
            ticket_id=ticket_id,
        )
        return await self.store.put(stored, content)

    async def _download(self, url: str) -> bytes:
        headers = {"Authorization": f"Bearer {self._token}"}
        async with (
            httpx.AsyncClient(timeout=self.timeout) as client,
            client.stream("GET", url, headers=headers) as answer,
        ):
            answer.raise_for_status()
            if "text/html" in answer.headers.get("content-type", ""):
                raise ValueError("Slack answered with a page (no access to the file)")
            chunks: list[bytes] = []
            seen = 0
            async for chunk in answer.aiter_bytes():
                seen += len(chunk)
                if seen > self.max_bytes:
                    raise FileRefused(f"too large: the limit is {human_size(self.max_bytes)}.")
                chunks.append(chunk)
        return b"".join(chunks)
