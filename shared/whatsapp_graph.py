"""The three calls of the WhatsApp Cloud API (Meta's Graph API) Switchboard makes, over httpx.

- `GET /{media-id}`: where a customer's media file is (a short-lived URL), its type and size;
- `GET <that URL>` with the same bearer token: the file;
- `POST /{phone-number-id}/messages`: a text message to a customer (replies, acknowledgements).

Reference: https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media and
/reference/messages. Errors come as `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`
(https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes) and become `GraphError`;
network errors (httpx.TransportError) propagate.

Plain httpx rather than a client library such as pywa: pywa's client is built around owning the webhook
(its own FastAPI/Flask routes, signature check and handler dispatch), where intake must check the
signature on the raw body, normalise in pure code and answer only after Kafka has the message; the three
calls above are all Switchboard needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from shared.settings import Settings

TIMEOUT_SECONDS = 20.0
# Codes that mean "slow down" (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes):
# application and account throughput, and messages to one user sent too fast (pair rate limit).
RATE_LIMIT_CODES = frozenset({4, 80007, 130429, 131056})
# Graph answers 5xx, or code 1/2/131000 ("something went wrong"), for trouble on its side worth a retry.
TRANSIENT_CODES = frozenset({1, 2, 131000})
# What we send with each message (`biz_opaque_callback_data`) so that its statuses name their ticket.
TRACKING_SEPARATOR = " "


class GraphError(Exception):
    """The Graph API answered with an error: HTTP `status`, Graph's `code` and message."""

    def __init__(self, status: int, code: int | None, message: str):
        super().__init__(f"{code} {message}" if code is not None else message)
        self.status = status
        self.code = code
        self.message = message

    @property
    def rate_limited(self) -> bool:
        return self.status == 429 or self.code in RATE_LIMIT_CODES

    @property
    def transient(self) -> bool:
        return self.status >= 500 or self.code in TRANSIENT_CODES


@dataclass(frozen=True)
class Media:
    """Where a media file can be downloaded (for about five minutes), and what WhatsApp says it is."""

    url: str
    mime_type: str
    size: int | None = None


@dataclass(frozen=True)
class Tracking:
    """The ticket, delivery purpose and ticket message a sent message was for (`biz_opaque_callback_data`)."""

    ticket_id: str
    purpose: str
    message_id: str | None = None

    def encode(self) -> str:
        return TRACKING_SEPARATOR.join([self.ticket_id, self.purpose, self.message_id or "-"])

    @classmethod
    def decode(cls, value: object) -> Tracking | None:
        if not isinstance(value, str):
            return None
        parts = value.split(TRACKING_SEPARATOR)
        if len(parts) != 3 or not all(parts):
            return None
        return cls(parts[0], parts[1], None if parts[2] == "-" else parts[2])


class WhatsAppGraph:
    """A Graph API client for one business phone number; `aclose` when done."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        assert settings.whatsapp_access_token is not None and settings.whatsapp_phone_number_id is not None
        self.phone_number_id = settings.whatsapp_phone_number_id
        self._http = httpx.AsyncClient(
            base_url=settings.whatsapp_api_url,
            headers={"Authorization": f"Bearer {settings.whatsapp_access_token.get_secret_value()}"},
            timeout=TIMEOUT_SECONDS,
            transport=transport,
        )

    async def media(self, media_id: str) -> Media:
        """Where media `media_id` is; raises GraphError (e.g. 100 for an unknown or expired ID)."""
        answer = _json(await self._http.get(httpx.URL(media_id)), "media")
        url, mime_type = answer.get("url"), answer.get("mime_type")
        if not isinstance(url, str) or not isinstance(mime_type, str):
            raise GraphError(502, None, "the media lookup named no url and mime_type")
        size = answer.get("file_size")
        return Media(url, mime_type, int(size) if isinstance(size, int | str) and str(size).isdigit() else None)

    async def download(self, url: str, limit: int) -> bytes | None:
        """The file at a media URL, or None when it is larger than `limit` bytes (not read past the limit)."""
        async with self._http.stream("GET", url) as response:
            if response.status_code != 200:
                await response.aread()
                _json(response, "media download")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    return None
                chunks.append(chunk)
        return b"".join(chunks)

    async def send_text(self, to: str, text: str, *, reply_to: str | None = None, tracking: str | None = None) -> str:
        """Sends `text` to the WhatsApp user `to` (their number, digits only), quoting message `reply_to`;
        returns the sent message's ID (wamid). `tracking` comes back with its statuses
        (`biz_opaque_callback_data`, at most 512 characters). Raises GraphError."""
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"body": text, "preview_url": False},
        }
        if reply_to:
            body["context"] = {"message_id": reply_to}
        if tracking:
            body["biz_opaque_callback_data"] = tracking[:512]
        answer = _json(await self._http.post(f"{self.phone_number_id}/messages", json=body), "messages")
        messages = answer.get("messages")
        if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
            raise GraphError(502, None, "the messages endpoint named no sent message")
        return str(messages[0].get("id"))

    async def aclose(self) -> None:
        await self._http.aclose()


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    """The answer's JSON object; raises GraphError for an error answer or one that is no JSON object."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code == 200 and isinstance(answer, dict):
        return answer
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        raise GraphError(response.status_code, code if isinstance(code, int) else None, str(error.get("message", "")))
    raise GraphError(response.status_code, None, f"{what}: HTTP {response.status_code} without a Graph error")
