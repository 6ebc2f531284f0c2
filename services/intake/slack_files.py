"""Files a customer shared in Slack, fetched with the bot token and stored under the attachment policy.

Slack serves a file at its `url_private_download` to a request that carries the bot token
(`Authorization: Bearer`, https://api.slack.com/types/file#auth); in Slack Connect channels the event
may leave the file's details to `files.info` (`file_access: check_file_info`). A file the policy
refuses (checked with the size Slack announces, before downloading) or that cannot be fetched in
time is not lost: the message names it, with its type, size and link, for the agent to open in Slack.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from pydantic import ValidationError
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from services.intake.slack_messages import SlackFile
from shared.attachments import AttachmentRejected, AttachmentStore
from shared.events import Attachment

logger = logging.getLogger(__name__)

# Where Slack serves files (files.slack.com, GovSlack's slack-gov.com); the bot token goes nowhere else.
SLACK_FILE_DOMAINS = ("slack.com", "slack-gov.com")


@dataclass
class FetchedFiles:
    """The files stored, and a line of text for each one that is only referenced."""

    stored: list[Attachment] = field(default_factory=list)
    referenced: list[str] = field(default_factory=list)


class FileNotFetched(Exception):
    """Why a file stays a reference; the message is for the agent."""


def may_receive_token(url: str, api_url: str) -> bool:
    """True for a Slack file host, or the configured API's own host (a proxy, or a test's fake)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        # e.g. "Invalid IPv6 URL": no address to send anything to.
        return False
    if host and host == (urlsplit(api_url).hostname or "").lower():
        return parts.scheme in ("https", "http")
    on_slack = any(host == domain or host.endswith(f".{domain}") for domain in SLACK_FILE_DOMAINS)
    return parts.scheme == "https" and on_slack


def reference(file: SlackFile, reason: str) -> str:
    """The line naming a file that was not stored: name, type, size, link and why."""
    details = ", ".join(
        part for part in (file.mimetype, f"{file.size} bytes" if file.size is not None else None) if part
    )
    link = f" {file.link}" if file.link else ""
    return f"[file {file.label}{f' ({details})' if details else ''} not stored: {reason}]{link}"


class SlackFiles:
    def __init__(self, store: AttachmentStore, client: AsyncWebClient, token: str, api_url: str):
        self.store = store
        self.client = client
        self.token = token
        self.api_url = api_url

    async def fetch(self, files: tuple[SlackFile, ...], deadline: float) -> FetchedFiles:
        """Fetches `files` until `deadline` (time.monotonic()); the rest are referenced."""
        result = FetchedFiles()
        if not files:
            return result
        async with aiohttp.ClientSession() as session:
            for file in files:
                try:
                    async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                        result.stored.append(await self._fetch_one(session, file))
                except FileNotFetched as reason:
                    result.referenced.append(reference(file, str(reason)))
                except AttachmentRejected as rejection:
                    result.referenced.append(reference(file, str(rejection)))
                except (TimeoutError, aiohttp.ClientError, SlackApiError) as error:
                    logger.warning("Slack file not fetched", extra={"slack_file": file.id, "error": repr(error)})
                    result.referenced.append(reference(file, "Slack did not hand it over in time"))
        return result

    async def _fetch_one(self, session: aiohttp.ClientSession, file: SlackFile) -> Attachment:
        if file.needs_file_info:
            file = await self._file_info(file)
        if file.mode == "tombstone":
            raise FileNotFetched("deleted in Slack")
        if file.mode == "hidden_by_limit":
            raise FileNotFetched("hidden by the Slack workspace's plan")
        if file.mode == "external":
            raise FileNotFetched("kept outside Slack")
        # Checked with the size Slack announces, before downloading: no point fetching a refusal.
        self.store.check(file.label, file.content_type, file.size or 0)
        url = file.url_private_download or file.url_private
        if url is None:
            raise FileNotFetched("Slack gave no download address")
        if not may_receive_token(url, self.api_url):
            raise FileNotFetched("not on a Slack file host")
        headers = {"Authorization": f"Bearer {self.token}"}
        async with session.get(url, headers=headers) as response:
            # Without a valid token Slack answers with its sign-in page, not an error status.
            signed_out = response.content_type == "text/html" and not file.content_type.startswith("text/html")
            if response.status != 200 or signed_out:
                raise FileNotFetched(f"Slack refused the download (HTTP {response.status})")
            content = await _read_at_most(response.content, self.store.max_bytes + 1)
        return self.store.save(content, filename=file.label, content_type=file.content_type)

    async def _file_info(self, file: SlackFile) -> SlackFile:
        response = await self.client.files_info(file=file.id)
        try:
            return SlackFile.model_validate(response["file"])
        except (KeyError, ValidationError):
            raise FileNotFetched("files.info described no file") from None


async def _read_at_most(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The body, or its first `limit` bytes: one byte past the policy's limit tells that the
    announced size was wrong, and the store refuses it."""
    content = bytearray()
    while len(content) < limit and (chunk := await stream.read(min(64 * 1024, limit - len(content)))):
        content += chunk
    return bytes(content)
