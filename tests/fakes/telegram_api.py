"""A fake Telegram Bot API: a real HTTP server on a loopback port, for tests.

It answers in the shapes https://core.telegram.org/bots/api documents, so production code talks
to it through an unmodified python-telegram-bot ``Bot`` (``base_url=fake.base_url``,
``base_file_url=fake.file_base_url``), and services started as subprocesses reach it through
``SWITCHBOARD_TELEGRAM_API_URL=fake.base_url``.

- Methods live at ``/bot<TOKEN>/<method>`` (case-insensitive, as on Telegram) and take their
  parameters from the query string and a JSON, form-encoded or multipart body.
- Answers are ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
  "description": "..."}`` with the same HTTP status; a 429 carries
  ``"parameters": {"retry_after": N}`` and a ``Retry-After`` header.
- A well-formed but wrong token gets 401 "Unauthorized"; a malformed token or an unknown method
  gets 404 "Not Found", as Telegram answers.
- Messages the bot sent are kept (``fake.message(chat_id, message_id)``), so that
  ``editMessageReplyMarkup`` can change their inline keyboard; ``answerCallbackQuery`` answers a
  button press.
- Files registered with :meth:`FakeTelegramApi.add_file` are described by ``getFile`` and served
  at ``/file/bot<TOKEN>/<file_path>``.

The server runs uvicorn on its own thread and event loop, so it keeps answering whatever the
test's own loop is doing. Every method call is recorded as a :class:`TelegramCall`, including the
refused ones.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.recording import RecordingFakeApi

DEFAULT_BOT_TOKEN = "7000000001:AAF-fake-telegram-bot-api-test-token"
BOT_USER = {
    "id": 7000000001,
    "is_bot": True,
    "first_name": "Switchboard",
    "username": "switchboard_test_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
# Telegram's limits on what a bot may send and download.
MAX_TEXT_LENGTH = 4096
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024

# Form-encoded and query values arrive as strings; Telegram reads each as its parameter's type.
_INTEGER_PARAMETERS = frozenset(
    {"chat_id", "message_id", "reply_to_message_id", "message_thread_id", "max_connections"}
)
_BOOLEAN_PARAMETERS = frozenset({"disable_notification", "protect_content", "drop_pending_updates"})
_JSON_PARAMETERS = frozenset(
    {"reply_parameters", "reply_markup", "entities", "link_preview_options", "allowed_updates"}
)
_TOKEN_SHAPE = re.compile(r"^\d+:[\w-]+$")
_SECRET_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")

Handler = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class TelegramCall:
    """One method call the fake received, and what it answered."""

    method: str
    args: dict[str, Any]
    token: str
    at: float
    status: int
    response: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.response.get("ok") is True

    @property
    def reply_to_message_id(self) -> int | None:
        """The message this one answers, however the caller said so."""
        reply_parameters = self.args.get("reply_parameters") or {}
        return reply_parameters.get("message_id", self.args.get("reply_to_message_id"))


@dataclass(frozen=True)
class _StoredFile:
    content: bytes
    file_path: str


class ApiError(Exception):
    """An error answer: Telegram's error_code (also the HTTP status) and description."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None):
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


class FakeTelegramApi(RecordingFakeApi[TelegramCall]):
    def __init__(self, *, bot_token: str = DEFAULT_BOT_TOKEN) -> None:
        super().__init__(
            "fake-telegram-api",
            [
                Route("/bot{token}/{method}", self._handle_method, methods=["GET", "POST"]),
                Route("/file/bot{token}/{file_path:path}", self._handle_download, methods=["GET"]),
            ],
        )
        self.bot_token = bot_token
        self._planned_errors: defaultdict[str, deque[ApiError]] = defaultdict(deque)
        self._files: dict[str, _StoredFile] = {}
        self._webhook: dict[str, Any] | None = None
        self._last_message_id = 0
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        handlers: dict[str, Handler] = {
            "getMe": self._get_me,
            "sendMessage": self._send_message,
            "answerCallbackQuery": self._answer_callback_query,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "getFile": self._get_file,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
        }
        self._handlers = {name.lower(): (name, handler) for name, handler in handlers.items()}

    # --- addresses -----------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The value for SWITCHBOARD_TELEGRAM_API_URL: ``<base_url><token>/<method>`` is a method URL."""
        return f"{self._origin}/bot"

    @property
    def file_base_url(self) -> str:
        """``<file_base_url><token>/<file_path>`` downloads a file."""
        return f"{self._origin}/file/bot"

    # --- test controls ---------------------------------------------------------

    @property
    def webhook(self) -> dict[str, Any] | None:
        """What the last setWebhook set (url, secret_token, ...), or None when no webhook is set."""
        with self._state:
            return dict(self._webhook) if self._webhook is not None else None

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """A message the bot sent, as it stands now (its `reply_markup` gone once edited away)."""
        with self._state:
            found = self._messages.get((chat_id, message_id))
            return dict(found) if found is not None else None

    def add_file(self, file_id: str, content: bytes, file_path: str) -> None:
        """Make `file_id` known to getFile and its content downloadable at `file_path`."""
        with self._state:
            self._files[file_id] = _StoredFile(content, file_path)

    def rate_limit_next(self, method: str, count: int = 1, retry_after: int = 1) -> None:
        """Answer the next `count` calls to `method` with 429 and retry_after."""
        error = ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)
        self._plan(method, error, count)

    def fail_next(self, method: str, error_code: int, description: str, count: int = 1) -> None:
        """Answer the next `count` calls to `method` with this error, e.g.
        ``fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")``."""
        self._plan(method, ApiError(error_code, description), count)

    def _plan(self, method: str, error: ApiError, count: int) -> None:
        with self._state:
            self._planned_errors[method.lower()].extend([error] * count)

    def _is_call_to(self, call: TelegramCall, method: str) -> bool:
        # Telegram matches method names case-insensitively.
        return call.method.lower() == method.lower()

    def _describe(self, call: TelegramCall) -> str:
        return f"{call.method} {call.status} {call.response.get('description', '')} args={call.args!r}"

    # --- HTTP ------------------------------------------------------------------

    async def _handle_method(self, request: Request) -> JSONResponse:
        token = request.path_params["token"]
        requested = request.path_params["method"]
        try:
            args = await _request_args(request)
        except ValueError as error:
            args = {}
            unreadable: ApiError | None = ApiError(400, f"Bad Request: can't parse parameters: {error}")
        else:
            unreadable = None
        with self._state:
            method, answer = self._answer(token, requested, args, unreadable)
            if isinstance(answer, ApiError):
                status, body = answer.error_code, answer.body()
            else:
                status, body = 200, {"ok": True, "result": answer}
            self._record(
                TelegramCall(method=method, args=args, token=token, at=time.monotonic(), status=status, response=body)
            )
        headers = {}
        if isinstance(answer, ApiError) and answer.retry_after is not None:
            headers["Retry-After"] = str(answer.retry_after)
        return JSONResponse(body, status_code=status, headers=headers)

    def _answer(self, token: str, requested: str, args: dict[str, Any], unreadable: ApiError | None) -> tuple[str, Any]:
        """The method's canonical name and its result, or the ApiError Telegram would answer."""
        method, handler = self._handlers.get(requested.lower(), (requested, None))
        if token != self.bot_token:
            if _TOKEN_SHAPE.match(token):
                return method, ApiError(401, "Unauthorized")
            return method, ApiError(404, "Not Found")
        if handler is None:
            return method, ApiError(404, "Not Found")
        if unreadable is not None:
            return method, unreadable
        if self._planned_errors[method.lower()]:
            return method, self._planned_errors[method.lower()].popleft()
        try:
            return method, handler(args)
        except ApiError as error:
            return method, error

    async def _handle_download(self, request: Request) -> Response:
        file_path = request.path_params["file_path"]
        with self._state:
            stored = next((file for file in self._files.values() if file.file_path == file_path), None)
        if request.path_params["token"] != self.bot_token or stored is None:
            return JSONResponse(ApiError(404, "Not Found").body(), status_code=404)
        return Response(stored.content, media_type="application/octet-stream")

    # --- methods -------------------------------------------------------------
    # Each runs with self._state held and returns the result, or raises ApiError.

    def _get_me(self, args: dict[str, Any]) -> dict[str, Any]:
        return dict(BOT_USER)

    def _send_message(self, args: dict[str, Any]) -> dict[str, Any]:
        chat_id = args.get("chat_id")
        if chat_id in (None, ""):
            raise ApiError(400, "Bad Request: chat_id is empty")
        text = args.get("text") or ""
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        # Telegram counts UTF-16 code units.
        if len(text.encode("utf-16-le")) // 2 > MAX_TEXT_LENGTH:
            raise ApiError(400, "Bad Request: message is too long")
        self._last_message_id += 1
        message = {
            "message_id": self._last_message_id,
            "from": dict(BOT_USER),
            "chat": {"id": chat_id, "type": "private"},
            "date": int(time.time()),
            "text": text,
        }
        if args.get("reply_markup"):
            message["reply_markup"] = args["reply_markup"]
        self._messages[(chat_id, self._last_message_id)] = message
        return dict(message)

    def _answer_callback_query(self, args: dict[str, Any]) -> bool:
        if not args.get("callback_query_id"):
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        if len(args.get("text") or "") > 200:
            raise ApiError(400, "Bad Request: text is too long")
        return True

    def _edit_message_reply_markup(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._messages.get((args.get("chat_id"), args.get("message_id")))
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        markup = args.get("reply_markup") or None
        if markup == message.get("reply_markup"):
            raise ApiError(400, "Bad Request: message is not modified")
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        return dict(message)

    def _get_file(self, args: dict[str, Any]) -> dict[str, Any]:
        file_id = args.get("file_id")
        if not file_id:
            raise ApiError(400, "Bad Request: file_id is empty")
        stored = self._files.get(file_id)
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if len(stored.content) > MAX_DOWNLOAD_BYTES:
            raise ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": file_id,
            "file_unique_id": hashlib.sha256(stored.content).hexdigest()[:16],
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }

    def _set_webhook(self, args: dict[str, Any]) -> bool:
        # Telegram treats an empty url as "remove the webhook".
        if not args.get("url"):
            return self._delete_webhook(args)
        secret_token = args.get("secret_token")
        if secret_token is not None and not _SECRET_TOKEN_SHAPE.match(secret_token):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        self._webhook = {key: value for key, value in args.items() if key != "certificate"}
        return True

    def _delete_webhook(self, args: dict[str, Any]) -> bool:
        self._webhook = None
        return True


async def _request_args(request: Request) -> dict[str, Any]:
    """The call's parameters, typed as Telegram reads them; ValueError when they cannot be read."""
    args: dict[str, Any] = {key: _typed(key, value) for key, value in request.query_params.items()}
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        body = await request.body()
        parsed = json.loads(body) if body else {}
        if not isinstance(parsed, dict):
            raise ValueError("expected a JSON object")
        args.update(parsed)
    elif content_type.startswith("application/x-www-form-urlencoded"):
        args.update((key, _typed(key, value)) for key, value in parse_qsl((await request.body()).decode()))
    elif content_type.startswith("multipart/form-data"):
        async with request.form() as form:
            for key, value in form.multi_items():
                args[key] = await value.read() if isinstance(value, UploadFile) else _typed(key, value)
    return args


def _typed(name: str, value: str) -> Any:
    if name in _INTEGER_PARAMETERS and re.fullmatch(r"-?\d+", value):
        return int(value)
    if name in _BOOLEAN_PARAMETERS:
        return value.lower() == "true"
    if name in _JSON_PARAMETERS:
        return json.loads(value)
    return value
