"""A fake WhatsApp Cloud API (Meta's Graph API): a real HTTP server on a loopback port, for tests.

It answers in the shapes https://developers.facebook.com/docs/whatsapp/cloud-api/reference documents, so
production code reaches it with ``SWITCHBOARD_WHATSAPP_API_URL=fake.base_url``:

- ``POST /v21.0/{phone-number-id}/messages`` sends a message: ``{"messaging_product": "whatsapp",
  "contacts": [{"input", "wa_id"}], "messages": [{"id": "wamid.…"}]}``;
- ``GET /v21.0/{media-id}`` describes a media file added with :meth:`FakeWhatsAppApi.add_media`:
  ``{"messaging_product", "url", "mime_type", "sha256", "file_size", "id"}``; the URL serves it
  (``GET /media/{media-id}``) to a request with the same bearer token.
- Errors are Graph's ``{"error": {"message", "type", "code", "fbtrace_id"}}``: a wrong token gets 401 code
  190, an unknown media ID or phone number ID 400 code 100; :meth:`fail_next` plans others.

It also plays Meta's side of the webhook: :func:`signed` gives the body and headers of a webhook signed
with an app secret, and :func:`message_webhook` / :func:`status_webhook` build payloads in the real shapes.
Every call is recorded as a :class:`GraphCall`, including the refused ones.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.recording import RecordingFakeApi

VERSION = "v21.0"
DEFAULT_ACCESS_TOKEN = "EAAfake-whatsapp-access-token"
DEFAULT_PHONE_NUMBER_ID = "106540352242922"
BUSINESS_ACCOUNT_ID = "102290129340398"
DISPLAY_PHONE_NUMBER = "15550783881"


@dataclass(frozen=True)
class GraphCall:
    """One call the fake received: `method` is "messages", "media" or "download"."""

    method: str
    path: str
    args: dict[str, Any]
    status: int
    response: dict[str, Any]
    at: float

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def text(self) -> str | None:
        """A sent text message's body."""
        return (self.args.get("text") or {}).get("body")


class _GraphError(Exception):
    def __init__(self, status: int, code: int, message: str, kind: str = "OAuthException"):
        super().__init__(message)
        self.status, self.code, self.message, self.kind = status, code, message, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "code": self.code, "fbtrace_id": "AfakeTrace"}}


class FakeWhatsAppApi(RecordingFakeApi[GraphCall]):
    def __init__(self, *, access_token: str = DEFAULT_ACCESS_TOKEN, phone_number_id: str = DEFAULT_PHONE_NUMBER_ID):
        super().__init__(
            "fake-whatsapp-api",
            [
                Route(f"/{VERSION}/{{phone_number_id}}/messages", self._handle_messages, methods=["POST"]),
                Route(f"/{VERSION}/{{media_id}}", self._handle_media, methods=["GET"]),
                Route("/media/{media_id}", self._handle_download, methods=["GET"]),
            ],
        )
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self._media: dict[str, tuple[bytes, str]] = {}
        self._planned: defaultdict[str, deque[_GraphError]] = defaultdict(deque)
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        """The value for SWITCHBOARD_WHATSAPP_API_URL."""
        return f"{self._origin}/{VERSION}/"

    def add_media(self, media_id: str, content: bytes, mime_type: str) -> None:
        with self._state:
            self._media[media_id] = (content, mime_type)

    def fail_next(self, method: str, status: int, code: int, message: str, count: int = 1) -> None:
        """Answer the next `count` calls to `method` ("messages", "media", "download") with this Graph error,
        e.g. ``fail_next("messages", 400, 131047, "Re-engagement message")``."""
        with self._state:
            self._planned[method].extend([_GraphError(status, code, message)] * count)

    def _describe(self, call: GraphCall) -> str:
        return f"{call.method} {call.status} {call.path} args={call.args!r} -> {call.response!r}"

    # --- HTTP ------------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        return request.headers.get("authorization", "") == f"Bearer {self.access_token}"

    def _answer(self, method: str, request: Request, args: dict[str, Any], result: Any) -> JSONResponse:
        """Records the call and answers `result` (a dict) or the error it is (or a planned one)."""
        with self._state:
            if not self._authorised(request):
                result = _GraphError(401, 190, "Invalid OAuth access token - Cannot parse access token")
            elif self._planned[method]:
                result = self._planned[method].popleft()
            if isinstance(result, _GraphError):
                status, body = result.status, result.body()
            else:
                status, body = 200, result
            self._record(GraphCall(method, request.url.path, args, status, body, time.monotonic()))
        return JSONResponse(body, status_code=status)

    async def _handle_messages(self, request: Request) -> JSONResponse:
        try:
            args = json.loads(await request.body())
        except ValueError:
            args = {}
        return self._answer("messages", request, args, self._send(request.path_params["phone_number_id"], args))

    def _send(self, phone_number_id: str, args: dict[str, Any]) -> dict[str, Any] | _GraphError:
        if phone_number_id != self.phone_number_id:
            return _GraphError(400, 100, f"Unsupported post request. Object with ID '{phone_number_id}' does not exist")
        to = args.get("to")
        if args.get("messaging_product") != "whatsapp" or not isinstance(to, str) or not to.lstrip("+").isdigit():
            return _GraphError(400, 100, "(#100) Invalid parameter")
        if args.get("type") == "text" and not (args.get("text") or {}).get("body"):
            return _GraphError(400, 100, "(#100) The parameter text['body'] is required.")
        with self._state:
            number = next(self._ids)
        wamid = f"wamid.HBgL{to.lstrip('+')}FQIAERgS{number:020d}"
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
            "messages": [{"id": wamid}],
        }

    async def _handle_media(self, request: Request) -> JSONResponse:
        media_id = request.path_params["media_id"]
        with self._state:
            stored = self._media.get(media_id)
        if stored is None:
            result: dict[str, Any] | _GraphError = _GraphError(400, 100, "(#100) Invalid parameter")
        else:
            content, mime_type = stored
            result = {
                "messaging_product": "whatsapp",
                "url": f"{self._origin}/media/{media_id}?ext=1&hash=ATfake",
                "mime_type": mime_type,
                "sha256": hashlib.sha256(content).hexdigest(),
                "file_size": len(content),
                "id": media_id,
            }
        return self._answer("media", request, {"media_id": media_id}, result)

    async def _handle_download(self, request: Request) -> Response:
        media_id = request.path_params["media_id"]
        with self._state:
            stored = self._media.get(media_id)
        if stored is None or not self._authorised(request):
            return self._answer("download", request, {"media_id": media_id}, _GraphError(404, 100, "Not found"))
        with self._state:
            self._record(GraphCall("download", request.url.path, {"media_id": media_id}, 200, {}, time.monotonic()))
        return Response(stored[0], media_type=stored[1])


# --- Meta's side of the webhook ---------------------------------------------------------------------


def signed(payload: dict[str, Any], app_secret: str) -> tuple[bytes, dict[str, str]]:
    """The body of a webhook and its headers, signed as Meta signs them (X-Hub-Signature-256)."""
    body = json.dumps(payload).encode()
    signature = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={signature}"}


def _webhook(value: dict[str, Any], phone_number_id: str) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_PHONE_NUMBER, "phone_number_id": phone_number_id},
        **value,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": BUSINESS_ACCOUNT_ID, "changes": [{"value": value, "field": "messages"}]}],
    }


def message_webhook(
    wa_id: str,
    message: dict[str, Any],
    *,
    wamid: str,
    timestamp: int,
    name: str = "Ana Pérez",
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
) -> dict[str, Any]:
    """A webhook with one customer message, e.g. ``message_webhook("34600123456", {"type": "text", "text":
    {"body": "hi"}}, wamid="wamid.X", timestamp=...)``."""
    return _webhook(
        {
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": wamid, "timestamp": str(timestamp), **message}],
        },
        phone_number_id,
    )


def status_webhook(
    wamid: str,
    status: str,
    *,
    recipient: str,
    timestamp: int,
    tracking: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
) -> dict[str, Any]:
    """A webhook with the status of a message we sent (`tracking`: the biz_opaque_callback_data sent with it)."""
    entry: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(timestamp), "recipient_id": recipient}
    if tracking is not None:
        entry["biz_opaque_callback_data"] = tracking
    if errors:
        entry["errors"] = errors
    return _webhook({"statuses": [entry]}, phone_number_id)
