"""A fake Slack Web API: a real HTTP server on a loopback port, for tests.

It answers in the shapes https://api.slack.com/methods documents, so production
code talks to it through an unmodified ``slack_sdk`` client
(``AsyncWebClient(token=..., base_url=fake.base_url)``), and services started as
subprocesses reach it through ``SWITCHBOARD_SLACK_API_URL=fake.base_url``.

The server runs uvicorn on its own thread and event loop, so it keeps answering
whatever the test's own loop is doing, including while a test blocks on a
subprocess.

Every request is recorded as a :class:`SlackCall`, including the ones the fake
refused, so tests can assert both on what was sent and on how it was answered.

Messages posted are kept: ``conversations.history`` lists a conversation's
top-level messages (newest first) and ``conversations.replies`` a thread (its
parent, then the replies oldest first), with Slack's time windows and cursor
pagination, and each message's ``metadata`` when asked for it
(https://api.slack.com/methods/conversations.history,
https://api.slack.com/methods/conversations.replies,
https://api.slack.com/metadata).

Users for ``users.info`` and ``users.getPresence`` are given as partial Slack
user objects keyed by user id; missing fields get defaults::

    FakeSlackApi(users={"U1": {"name": "alice",
                               "profile": {"email": "alice@example.com",
                                           "real_name": "Alice Liddell"}}})

Files registered with :meth:`FakeSlackApi.add_file` are described by ``files.info`` and served at
their ``url_private`` and ``url_private_download`` to requests with the bot token in an
``Authorization: Bearer`` header; like Slack, a request without it is redirected to a sign-in page
(HTML, status 200). Each download is recorded as a call to ``files.download``.

Uploads follow Slack's external upload flow (https://api.slack.com/messaging/files#uploading_files):
``files.getUploadURLExternal`` (filename, length) answers an ``upload_url`` and a ``file_id``; a POST of the
bytes to that URL is recorded as a call to ``files.upload_external``; ``files.completeUploadExternal`` (files:
``[{"id", "title"}]``, ``channel_id``) shares them, and :meth:`FakeSlackApi.shared_files` lists what a
channel got.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.fakes.recording import RecordingFakeApi

TEAM_ID = "T0SWITCHB"
TEAM_NAME = "Switchboard Test"
TEAM_URL = "https://switchboard-test.slack.com/"
BOT_USER_ID = "UBOT"
BOT_USER_NAME = "switchboard"
BOT_ID = "BBOT"

# Fields that, besides `text`, give a message something to show; form-encoded
# requests carry them as JSON strings, JSON requests as lists.
_STRUCTURED_MESSAGE_FIELDS = ("blocks", "attachments")
# Page sizes: Slack's defaults, and the most it returns in one page.
_HISTORY_LIMIT = 100
_REPLIES_LIMIT = 1000
_MAX_LIMIT = 999
_CURSOR_PREFIX = "next_ts:"

Handler = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class SlackCall:
    """One request the fake received, and what it answered."""

    method: str
    args: dict[str, Any]
    token: str | None
    at: float
    response: dict[str, Any]
    rate_limited: bool = False

    @property
    def ok(self) -> bool:
        return self.response.get("ok") is True


class FakeSlackApi(RecordingFakeApi[SlackCall]):
    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test",
        users: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(
            "fake-slack-api",
            [
                Route("/api/{method}", self._handle, methods=["GET", "POST"]),
                Route("/files-pri/{file_key}/{name}", self._download),
                Route("/files-pri/{file_key}/download/{name}", self._download),
                Route("/signin", self._sign_in_page),
                Route("/upload/v1/{file_id}", self._upload, methods=["POST"]),
            ],
        )
        self.bot_token = bot_token
        self._users = {user_id: _complete_user(user_id, given) for user_id, given in (users or {}).items()}
        self._pending_rate_limits: defaultdict[str, deque[int]] = defaultdict(deque)
        self._pending_failures: defaultdict[str, deque[str]] = defaultdict(deque)
        self._messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._presence: dict[str, str] = {}
        self._last_ts_micros = 0
        self._files: dict[str, tuple[dict[str, Any], bytes]] = {}
        # Upload URLs handed out, by file ID: (filename, announced length, bytes posted or None).
        self._uploads: dict[str, tuple[str, int, bytes | None]] = {}
        self._handlers: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "files.info": self._files_info,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "conversations.history": self._conversations_history,
            "conversations.open": self._conversations_open,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "users.getPresence": self._users_get_presence,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "reactions.add": self._reactions_add,
            "views.open": self._views_open,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
        }
        # trigger_ids handed out with interactions (`issue_trigger_id`): each opens one view, briefly.
        self._triggers: set[str] = set()

    # --- addresses -----------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self._origin}/api/"

    # --- test controls ---------------------------------------------------------

    def add_message(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> str:
        """A message a person posted (as Slack would then send in a `message` event); returns its ts."""
        ts = self._next_ts()
        message = {"type": "message", "user": user, "text": text, "team": TEAM_ID, "ts": ts}
        if thread_ts:
            message["thread_ts"] = thread_ts
        with self._state:
            self._messages[(channel, ts)] = message
        return ts

    def issue_trigger_id(self) -> str:
        """A trigger_id as Slack puts in an interaction payload; views.open accepts it once."""
        trigger_id = f"{int(time.time())}.{len(self._triggers) + 1}.{secrets.token_hex(8)}"
        self._triggers.add(trigger_id)
        return trigger_id

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The message as Slack holds it now (after updates and reactions), or None."""
        message = self._messages.get((channel, ts))
        return dict(message) if message is not None else None

    def rate_limit_next(self, method: str, count: int = 1, retry_after: int = 1) -> None:
        """Answer the next `count` calls to `method` with HTTP 429 and Retry-After."""
        with self._state:
            self._pending_rate_limits[method].extend([retry_after] * count)

    def fail_next(self, method: str, error: str, count: int = 1) -> None:
        """Answer the next `count` calls to `method` with {"ok": false, "error": error}."""
        with self._state:
            self._pending_failures[method].extend([error] * count)

    def set_presence(self, user_id: str, presence: str) -> None:
        """Set what users.getPresence reports for a user ("active" or "away")."""
        with self._state:
            self._presence[user_id] = presence

    def add_file(
        self, content: bytes, name: str, mimetype: str, *, user: str = "U0CUSTOMER", size: int | None = None
    ) -> dict[str, Any]:
        """Host a file as Slack does and return its file object (https://api.slack.com/types/file).

        `size` is what Slack announces, when it should differ from the content's length.
        """
        with self._state:
            file_id = f"F{hashlib.sha256(content + name.encode()).hexdigest()[:10].upper()}"
            key = f"{TEAM_ID}-{file_id}"
            file = {
                "id": file_id,
                "created": int(time.time()),
                "name": name,
                "title": name,
                "mimetype": mimetype,
                "filetype": name.rpartition(".")[2],
                "user": user,
                "size": len(content) if size is None else size,
                "mode": "hosted",
                "is_external": False,
                "url_private": f"{self._origin}/files-pri/{key}/{name}",
                "url_private_download": f"{self._origin}/files-pri/{key}/download/{name}",
                "permalink": f"{TEAM_URL}files/{user}/{file_id}/{name}",
            }
            self._files[key] = (file, content)
            return dict(file)

    def shared_files(self, channel: str) -> list[tuple[dict[str, Any], bytes]]:
        """The files shared to `channel` by ``files.completeUploadExternal`` (file object, content), in order."""
        with self._state:
            return [
                (dict(file), content) for file, content in self._files.values() if channel in file.get("channels", ())
            ]

    def _describe(self, call: SlackCall) -> str:
        return f"{call.method} ok={call.ok} error={call.response.get('error')} args={call.args!r}"

    # --- HTTP ------------------------------------------------------------------

    async def _handle(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        args: dict[str, Any] = dict(request.query_params)
        args.update(await _body_args(request))
        token = _bearer_token(request) or args.get("token")
        with self._state:
            body, retry_after = self._respond(method, args, token)
            self._record(
                SlackCall(
                    method=method,
                    args=args,
                    token=token,
                    at=time.monotonic(),
                    response=body,
                    rate_limited=retry_after is not None,
                )
            )
        if retry_after is not None:
            return JSONResponse(body, status_code=429, headers={"Retry-After": str(retry_after)})
        # Slack reports API-level errors with HTTP 200 and "ok": false.
        return JSONResponse(body)

    async def _download(self, request: Request) -> Response:
        key = request.path_params["file_key"]
        token = _bearer_token(request)
        with self._state:
            file, content = self._files.get(key, (None, b""))
            served = file is not None and token == self.bot_token
            self._record(
                SlackCall(
                    method="files.download",
                    args={"file": file["id"] if file else key},
                    token=token,
                    at=time.monotonic(),
                    response={"ok": served},
                )
            )
        if file is None:
            return HTMLResponse("<html><body>File not found</body></html>", status_code=404)
        if not served:
            return RedirectResponse(f"{self._origin}/signin", status_code=302)
        return Response(content, media_type=file["mimetype"])

    async def _upload(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        content = await request.body()
        with self._state:
            pending = self._uploads.get(file_id)
            accepted = pending is not None and pending[2] is None
            if accepted:
                self._uploads[file_id] = (pending[0], pending[1], content)
            self._record(
                SlackCall(
                    method="files.upload_external",
                    args={"file_id": file_id, "size": len(content)},
                    token=None,
                    at=time.monotonic(),
                    response={"ok": accepted},
                )
            )
        if not accepted:
            return Response("unknown or used upload URL", status_code=404)
        return Response(f"OK - {len(content)}", media_type="text/plain")

    async def _sign_in_page(self, request: Request) -> HTMLResponse:
        return HTMLResponse("<html><body>Sign in to Switchboard Test</body></html>")

    def _respond(self, method: str, args: dict[str, Any], token: str | None) -> tuple[dict[str, Any], int | None]:
        """Slack's answer to one call, and the Retry-After if it is rate limited."""
        handler = self._handlers.get(method)
        if handler is None:
            return _error("unknown_method"), None
        if token is None:
            return _error("not_authed"), None
        if token != self.bot_token:
            return _error("invalid_auth"), None
        if self._pending_rate_limits[method]:
            return _error("ratelimited"), self._pending_rate_limits[method].popleft()
        if self._pending_failures[method]:
            return _error(self._pending_failures[method].popleft()), None
        return handler(args), None

    # --- methods -------------------------------------------------------------
    # Each runs with self._state held and returns the JSON body to answer with.

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": TEAM_URL,
            "team": TEAM_NAME,
            "user": BOT_USER_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _files_info(self, args: dict[str, Any]) -> dict[str, Any]:
        for file, _ in self._files.values():
            if file["id"] == args.get("file"):
                return {"ok": True, "file": dict(file)}
        return _error("file_not_found")

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel:
            return _error("channel_not_found")
        try:
            content = _message_content(args)
        except ValueError:
            return _error("invalid_blocks_format")
        if not any(content.values()):
            return _error("no_text")
        try:
            metadata = _metadata(args)
        except ValueError as error:
            return _error(str(error))
        # Posting to a user id delivers to the bot's DM with that user, and
        # Slack answers with the DM's conversation id.
        channel_id = _dm_channel_id(channel) if _is_user_id(channel) else channel
        ts = self._next_ts()
        message = {
            "type": "message",
            "text": "",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "team": TEAM_ID,
            "ts": ts,
            **content,
        }
        if args.get("thread_ts"):
            message["thread_ts"] = args["thread_ts"]
        if metadata is not None:
            message["metadata"] = metadata
        self._messages[(channel_id, ts)] = message
        return {"ok": True, "channel": channel_id, "ts": ts, "message": message}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel:
            return _error("channel_not_found")
        original = self._messages.get((channel, args.get("ts")))
        if original is None:
            return _error("message_not_found")
        try:
            content = _message_content(args)
        except ValueError:
            return _error("invalid_blocks_format")
        if not any(content.values()):
            return _error("no_text")
        # Fields left out of an update keep their previous values, as on Slack.
        # A new dict keeps the responses already recorded for earlier calls intact.
        updated = {
            **original,
            **content,
            "edited": {"user": BOT_USER_ID, "ts": self._next_ts()},
        }
        self._messages[(channel, original["ts"])] = updated
        return {
            "ok": True,
            "channel": channel,
            "ts": original["ts"],
            "text": updated["text"],
            "message": updated,
        }

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = args.get("users")
        if not users:
            return _error("users_list_not_supplied")
        user_ids = users.split(",")
        if len(user_ids) > 1:
            # Group DMs are out of this fake's scope; say so instead of
            # answering with a made-up shape.
            return _error("fake_slack_api_does_not_support_group_dms")
        return {"ok": True, "channel": {"id": _dm_channel_id(user_ids[0])}}

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """The channel's messages that are not thread replies, newest first."""
        channel = args.get("channel")
        # A user id is not a conversation: a DM is read by the id conversations.open answers.
        if not channel or _is_user_id(channel):
            return _error("channel_not_found")
        top_level = [
            message
            for (channel_id, _), message in self._messages.items()
            if channel_id == channel and message.get("thread_ts", message["ts"]) == message["ts"]
        ]
        return self._page(list(reversed(top_level)), args, _HISTORY_LIMIT, newest_first=True)

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """A thread: its parent (first page only), then the replies oldest first."""
        channel, ts = args.get("channel"), args.get("ts")
        if not channel or _is_user_id(channel):
            return _error("channel_not_found")
        parent = self._messages.get((channel, ts))
        if parent is None:
            return _error("thread_not_found")
        root = parent.get("thread_ts", ts)
        replies = [
            message
            for (channel_id, reply_ts), message in self._messages.items()
            if channel_id == channel and reply_ts != root and message.get("thread_ts") == root
        ]
        root_message = None if args.get("cursor") else self._messages.get((channel, root))
        page = self._page(replies, args, _REPLIES_LIMIT, newest_first=False, reserved=int(root_message is not None))
        if page["ok"] and root_message is not None:
            page["messages"].insert(0, self._shown(root_message, args))
        return page

    def _page(
        self,
        messages: list[dict[str, Any]],
        args: dict[str, Any],
        default_limit: int,
        *,
        newest_first: bool,
        reserved: int = 0,
    ) -> dict[str, Any]:
        """One page of `messages` (in the order given) within Slack's oldest/latest window;
        `reserved` places of the page are taken by a message the caller adds (a thread's parent)."""
        try:
            oldest = _ts_micros(args.get("oldest") or "0")
            latest = _ts_micros(args["latest"]) if args.get("latest") else None
            limit = min(_MAX_LIMIT, int(args.get("limit") or default_limit)) or default_limit
            resume_at = _cursor_micros(args["cursor"]) if args.get("cursor") else None
        except ValueError:
            return _error("invalid_arguments")
        inclusive = _is_true(args.get("inclusive"))

        def in_window(message: dict[str, Any]) -> bool:
            at = _ts_micros(message["ts"])
            if at < oldest or (not inclusive and at == oldest):
                return False
            if latest is not None and (at > latest or (not inclusive and at == latest)):
                return False
            if resume_at is None:
                return True
            return at <= resume_at if newest_first else at >= resume_at

        selected = [message for message in messages if in_window(message)]
        size = max(1, limit - reserved)
        page, rest = selected[:size], selected[size:]
        body: dict[str, Any] = {
            "ok": True,
            "messages": [self._shown(message, args) for message in page],
            "has_more": bool(rest),
        }
        if rest:
            cursor = base64.b64encode(f"{_CURSOR_PREFIX}{rest[0]['ts'].replace('.', '')}".encode()).decode()
            body["response_metadata"] = {"next_cursor": cursor}
        return body

    def _shown(self, message: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
        """A stored message as a history answers it: metadata only when asked for."""
        if _is_true(args.get("include_all_metadata")):
            return dict(message)
        return {field: value for field, value in message.items() if field != "metadata"}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self._users.get(args.get("user"))
        if user is None:
            return _error("user_not_found")
        if not _is_true(args.get("include_locale")):
            # Slack sends the locale only to a caller who asks for it.
            user = {field: value for field, value in user.items() if field != "locale"}
        return {"ok": True, "user": user}

    def _users_get_presence(self, args: dict[str, Any]) -> dict[str, Any]:
        # Without a `user` argument Slack reports the calling user, the bot.
        user_id = args.get("user") or BOT_USER_ID
        if user_id != BOT_USER_ID and user_id not in self._users:
            return _error("user_not_found")
        return {"ok": True, "presence": self._presence.get(user_id, "active")}

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        # https://api.slack.com/methods/chat.postEphemeral: seen by `user` only, never stored in history.
        if not args.get("channel"):
            return _error("channel_not_found")
        if not args.get("user"):
            return _error("user_not_in_channel")
        try:
            content = _message_content(args)
        except ValueError:
            return _error("invalid_blocks_format")
        if not any(content.values()):
            return _error("no_text")
        return {"ok": True, "message_ts": self._next_ts()}

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        # https://api.slack.com/methods/reactions.add
        message = self._messages.get((args.get("channel"), args.get("timestamp")))
        if message is None:
            return _error("message_not_found")
        name = args.get("name")
        if not name:
            return _error("invalid_name")
        reactions = message.setdefault("reactions", [])
        if any(reaction["name"] == name for reaction in reactions):
            return _error("already_reacted")
        reactions.append({"name": name, "users": [BOT_USER_ID], "count": 1})
        return {"ok": True}

    def _files_get_upload_url_external(self, args: dict[str, Any]) -> dict[str, Any]:
        filename, length = args.get("filename"), args.get("length")
        if not filename or length is None or not str(length).isdigit():
            return _error("invalid_arguments")
        file_id = f"F{secrets.token_hex(5).upper()}"
        self._uploads[file_id] = (filename, int(length), None)
        return {"ok": True, "upload_url": f"{self._origin}/upload/v1/{file_id}", "file_id": file_id}

    def _files_complete_upload_external(self, args: dict[str, Any]) -> dict[str, Any]:
        files = args.get("files")
        if isinstance(files, str):
            try:
                files = json.loads(files)
            except json.JSONDecodeError:
                return _error("invalid_arguments")
        if not isinstance(files, list) or not files:
            return _error("invalid_arguments")
        completed = []
        for entry in files:
            pending = self._uploads.get(entry.get("id", ""))
            if pending is None or pending[2] is None:
                return _error("file_not_found")
            if len(pending[2]) != pending[1]:
                return _error("file_upload_size_mismatch")
        for entry in files:
            filename, _, content = self._uploads.pop(entry["id"])
            channel = args.get("channel_id")
            file = {
                "id": entry["id"],
                "created": int(time.time()),
                "name": filename,
                "title": entry.get("title") or filename,
                "mimetype": "image/png" if filename.endswith(".png") else "application/octet-stream",
                "filetype": filename.rpartition(".")[2],
                "user": BOT_USER_ID,
                "size": len(content),
                "channels": [channel] if channel else [],
                "initial_comment": args.get("initial_comment"),
                "thread_ts": args.get("thread_ts"),
            }
            self._files[f"{TEAM_ID}-{entry['id']}"] = (file, content)
            completed.append({key: file[key] for key in ("id", "title", "name", "mimetype", "size")})
        return {"ok": True, "files": completed}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        # https://api.slack.com/methods/views.open: a trigger_id opens one view (Slack: within 3 s).
        trigger_id = args.get("trigger_id")
        if trigger_id not in self._triggers:
            return _error("invalid_trigger_id" if trigger_id else "invalid_arguments")
        self._triggers.discard(trigger_id)
        view = args.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except ValueError:
                return _error("invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "modal" or "title" not in view:
            return _error("invalid_arguments")
        return {"ok": True, "view": {"id": f"V{len(self._triggers) + 1:08d}", **view}}

    def _next_ts(self) -> str:
        """A message timestamp: Unix seconds with six digits, strictly increasing."""
        micros = max(time.time_ns() // 1000, self._last_ts_micros + 1)
        self._last_ts_micros = micros
        seconds, fraction = divmod(micros, 1_000_000)
        return f"{seconds}.{fraction:06d}"


def _error(code: str) -> dict[str, Any]:
    return {"ok": False, "error": code}


async def _body_args(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body:
        return {}
    if request.headers.get("content-type", "").startswith("application/json"):
        return json.loads(body)
    return dict(parse_qsl(body.decode(), keep_blank_values=True))


def _bearer_token(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials
    return None


def _message_content(args: dict[str, Any]) -> dict[str, Any]:
    """The displayable fields sent with a message; raises ValueError on bad JSON."""
    content: dict[str, Any] = {}
    if "text" in args:
        content["text"] = args["text"]
    for field in _STRUCTURED_MESSAGE_FIELDS:
        value = args.get(field)
        if isinstance(value, str):
            value = json.loads(value)
        if value is not None:
            content[field] = value
    return content


def _metadata(args: dict[str, Any]) -> dict[str, Any] | None:
    """The message metadata sent (a JSON string in a form, an object in JSON); raises ValueError
    with Slack's error code when it is not `{"event_type": str, "event_payload": object}`."""
    metadata = args.get("metadata")
    if metadata is None:
        return None
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            raise ValueError("invalid_metadata_format") from None
    if (
        not isinstance(metadata, dict)
        or not isinstance(metadata.get("event_type"), str)
        or not isinstance(metadata.get("event_payload"), dict)
    ):
        raise ValueError("invalid_metadata_schema")
    return {"event_type": metadata["event_type"], "event_payload": metadata["event_payload"]}


def _is_true(value: Any) -> bool:
    # slack_sdk sends booleans as "1"/"0" in a query, JSON bodies as true/false.
    return value is True or str(value).lower() in ("1", "true")


def _ts_micros(ts: str) -> int:
    """A message timestamp ("1700000000.000100", or whole seconds) in microseconds; ValueError if not one."""
    seconds, _, fraction = str(ts).partition(".")
    return int(seconds) * 1_000_000 + int((fraction or "0")[:6].ljust(6, "0"))


def _cursor_micros(cursor: str) -> int:
    """Where a page starts: the cursor is base64 of "next_ts:" and the ts's digits, as Slack's look."""
    try:
        decoded = base64.b64decode(cursor, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(cursor) from None
    if not decoded.startswith(_CURSOR_PREFIX):
        raise ValueError(cursor)
    return int(decoded.removeprefix(_CURSOR_PREFIX))


def _is_user_id(conversation: str) -> bool:
    return conversation[0] in "UW"


def _dm_channel_id(user_id: str) -> str:
    """The bot's DM conversation id with a user, the same on every call."""
    return "D" + user_id[1:]


def _complete_user(user_id: str, given: dict[str, Any]) -> dict[str, Any]:
    """A users.info user object: `given` over defaults for the fields Slack always sends."""
    name = given.get("name", user_id.lower())
    profile = {"real_name": name, "display_name": name, **given.get("profile", {})}
    return {
        "id": user_id,
        "team_id": TEAM_ID,
        "name": name,
        "real_name": profile["real_name"],
        "deleted": False,
        "is_bot": False,
        **given,
        "profile": profile,
    }
