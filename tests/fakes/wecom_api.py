"""A fake WeCom server API (企业微信 服务端API) for WeChat Customer Service: a real HTTP server on a loopback port.

It answers in the shapes https://developer.work.weixin.qq.com/document/path/90664 documents:
``{"errcode": 0, "errmsg": "ok", ...}``, or a non-zero errcode with its errmsg (always HTTP 200, as
WeCom does). Services reach it through ``SWITCHBOARD_WECOM_API_URL=fake.base_url``.

- ``gettoken?corpid&corpsecret`` hands out access tokens; a call with another token gets 40014
  ("invalid access_token"), and :meth:`FakeWecomApi.expire_tokens` makes the current ones answer 42001.
- ``kf/sync_msg`` pages through the messages queued with :meth:`add_message` /
  :meth:`add_enter_session` per account (`limit`, `cursor` → `next_cursor`, `has_more`); a callback's
  Token from :meth:`callback` is accepted, an unknown one gets 95007 ("invalid token").
- ``kf/send_msg`` and ``kf/send_msg_on_event`` are recorded and answered with a `msgid`.
- ``media/get`` serves files added with :meth:`add_media` (with Content-Type and
  Content-Disposition), else 40007 ("invalid media_id").
- :meth:`callback` builds the signed, encrypted callback WeCom would POST to our URL.

Every call is recorded as a :class:`WecomCall`, including the refused ones.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.intake.wecom_crypto import WecomCrypto
from tests.fakes.recording import RecordingFakeApi

CORP_ID = "ww0f1e2d3c4b5a6978"
SECRET = "kf-app-secret-for-switchboard-tests"
TOKEN = "sbWecomToken42"
ENCODING_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
OPEN_KFID = "wkSwitchboardTestAccount01"


@dataclass(frozen=True)
class WecomCall:
    method: str
    args: dict[str, Any]
    at: float
    response: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.response.get("errcode", 0) == 0


class FakeWecomApi(RecordingFakeApi[WecomCall]):
    def __init__(self, *, page_limit: int = 1000) -> None:
        super().__init__(
            "fake-wecom-api",
            [
                Route("/cgi-bin/gettoken", self._gettoken, methods=["GET"]),
                Route("/cgi-bin/media/get", self._media_get, methods=["GET"]),
                Route("/cgi-bin/{method:path}", self._method, methods=["POST"]),
            ],
        )
        self.crypto = WecomCrypto(TOKEN, ENCODING_AES_KEY, CORP_ID)
        self.page_limit = page_limit
        self._tokens: dict[str, bool] = {}
        self._callback_tokens: set[str] = set()
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._media: dict[str, tuple[bytes, str, str]] = {}
        self._planned: dict[str, list[tuple[int, str]]] = {}
        self._sent = 0

    @property
    def base_url(self) -> str:
        """The value for SWITCHBOARD_WECOM_API_URL."""
        return f"{self._origin}/cgi-bin/"

    def env(self) -> dict[str, str]:
        """The environment of a service that talks to this fake."""
        return {
            "SWITCHBOARD_WECOM_CORP_ID": CORP_ID,
            "SWITCHBOARD_WECOM_SECRET": SECRET,
            "SWITCHBOARD_WECOM_TOKEN": TOKEN,
            "SWITCHBOARD_WECOM_ENCODING_AES_KEY": ENCODING_AES_KEY,
            "SWITCHBOARD_WECOM_API_URL": self.base_url,
        }

    # --- test controls ---------------------------------------------------------

    def add_message(
        self,
        external_userid: str,
        msgtype: str = "text",
        content: dict[str, Any] | None = None,
        *,
        open_kfid: str = OPEN_KFID,
        msgid: str | None = None,
        send_time: int | None = None,
        origin: int = 3,
    ) -> str:
        """Queue a customer's message for kf/sync_msg; returns its msgid. `content` is the msgtype's object
        (``{"content": "hello"}`` for text)."""
        msgid = msgid or f"msg{secrets.token_hex(8)}"
        item = {
            "msgid": msgid,
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "send_time": send_time or int(time.time()),
            "origin": origin,
            "msgtype": msgtype,
            msgtype: content if content is not None else {},
        }
        with self._state:
            self._messages.setdefault(open_kfid, []).append(item)
        return msgid

    def add_enter_session(self, external_userid: str, welcome_code: str, *, open_kfid: str = OPEN_KFID) -> str:
        msgid = f"evt{secrets.token_hex(8)}"
        event = {
            "event_type": "enter_session",
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "scene": "",
            "welcome_code": welcome_code,
        }
        item = {
            "msgid": msgid,
            "open_kfid": open_kfid,
            "send_time": int(time.time()),
            "origin": 4,
            "msgtype": "event",
            "event": event,
        }
        with self._state:
            self._messages.setdefault(open_kfid, []).append(item)
        return msgid

    def add_media(self, media_id: str, content: bytes, content_type: str, filename: str) -> None:
        with self._state:
            self._media[media_id] = (content, content_type, filename)

    def expire_tokens(self) -> None:
        """The access tokens handed out so far answer 42001 ("access_token expired") from now on."""
        with self._state:
            self._tokens = {token: False for token in self._tokens}

    def fail_next(self, method: str, errcode: int, errmsg: str, count: int = 1) -> None:
        with self._state:
            self._planned.setdefault(method, []).extend([(errcode, errmsg)] * count)

    def callback(
        self,
        *,
        open_kfid: str = OPEN_KFID,
        crypto: WecomCrypto | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """The query and body of a `kf_msg_or_event` callback, as WeCom POSTs it. `crypto` encrypts and signs
        (another key or corp ID makes a callback we must refuse); `signature` replaces the right one."""
        crypto = crypto or self.crypto
        token = f"ENC{secrets.token_hex(12)}"
        with self._state:
            self._callback_tokens.add(token)
        created = timestamp or int(time.time())
        plain = (
            f"<xml><ToUserName><![CDATA[{crypto.receive_id}]]></ToUserName><CreateTime>{created}</CreateTime>"
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>"
            f"<Token><![CDATA[{token}]]></Token><OpenKfId><![CDATA[{open_kfid}]]></OpenKfId></xml>"
        )
        encrypted = crypto.encrypt(plain)
        nonce = str(secrets.randbelow(10**9))
        query = {
            "msg_signature": signature or crypto.signature(str(created), nonce, encrypted),
            "timestamp": str(created),
            "nonce": nonce,
        }
        body = (
            f"<xml><ToUserName><![CDATA[{crypto.receive_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>"
        )
        return query, body.encode()

    def verification(self, echo: str) -> dict[str, str]:
        """The query of WeCom's URL verification GET, with `echo` encrypted as its echostr."""
        encrypted = self.crypto.encrypt(echo)
        created, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
        return {
            "msg_signature": self.crypto.signature(created, nonce, encrypted),
            "timestamp": created,
            "nonce": nonce,
            "echostr": encrypted,
        }

    @staticmethod
    def callback_url(base_url: str, query: dict[str, str]) -> str:
        return f"{base_url}/v1/wecom/callback?{urlencode(query)}"

    def _describe(self, call: WecomCall) -> str:
        return f"{call.method} {call.response.get('errcode')} {call.response.get('errmsg', '')} args={call.args!r}"

    # --- HTTP ------------------------------------------------------------------

    async def _gettoken(self, request: Request) -> JSONResponse:
        query = dict(request.query_params)
        with self._state:
            if query.get("corpid") != CORP_ID:
                answer = {"errcode": 40013, "errmsg": "invalid corpid"}
            elif query.get("corpsecret") != SECRET:
                answer = {"errcode": 40001, "errmsg": "invalid credential"}
            else:
                token = f"at-{secrets.token_hex(16)}"
                self._tokens[token] = True
                answer = {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}
            self._record(WecomCall("gettoken", {"corpid": query.get("corpid")}, time.time(), answer))
        return JSONResponse(answer)

    def _token_refusal(self, token: str | None) -> dict[str, Any] | None:
        valid = self._tokens.get(token or "")
        if valid is None:
            return {"errcode": 40014, "errmsg": "invalid access_token"}
        if valid is False:
            return {"errcode": 42001, "errmsg": "access_token expired"}
        return None

    async def _media_get(self, request: Request) -> Response:
        query = dict(request.query_params)
        with self._state:
            answer = self._token_refusal(query.get("access_token"))
            found = self._media.get(query.get("media_id", ""))
            if answer is None and found is None:
                answer = {"errcode": 40007, "errmsg": "invalid media_id"}
            self._record(
                WecomCall("media/get", {"media_id": query.get("media_id")}, time.time(), answer or {"errcode": 0})
            )
        if answer is not None:
            return JSONResponse(answer)
        content, content_type, filename = found
        headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
        return Response(content, media_type=content_type, headers=headers)

    async def _method(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = None
        with self._state:
            answer = self._token_refusal(request.query_params.get("access_token"))
            if answer is None and not isinstance(body, dict):
                answer = {"errcode": 47001, "errmsg": "data format error"}
            if answer is None and (planned := self._planned.get(method)):
                errcode, errmsg = planned.pop(0)
                answer = {"errcode": errcode, "errmsg": errmsg}
            if answer is None:
                handler = {
                    "kf/sync_msg": self._sync_msg,
                    "kf/send_msg": self._send_msg,
                    "kf/send_msg_on_event": self._send_msg_on_event,
                }.get(method)
                answer = handler(body) if handler else {"errcode": 40078, "errmsg": f"no such method {method}"}
            self._record(WecomCall(method, body if isinstance(body, dict) else {}, time.time(), answer))
        return JSONResponse(answer)

    def _sync_msg(self, body: dict[str, Any]) -> dict[str, Any]:
        token = body.get("token")
        if token is not None and token not in self._callback_tokens:
            return {"errcode": 95007, "errmsg": "invalid msg token"}
        queued = self._messages.get(body.get("open_kfid", ""), [])
        cursor = body.get("cursor") or "cur-0"
        if not cursor.startswith("cur-") or not cursor[4:].isdigit():
            return {"errcode": 95008, "errmsg": "invalid cursor"}
        start = int(cursor[4:])
        limit = min(int(body.get("limit") or 1000), 1000, self.page_limit)
        page = queued[start : start + limit]
        end = start + len(page)
        return {
            "errcode": 0,
            "errmsg": "ok",
            "next_cursor": f"cur-{end}",
            "has_more": 1 if end < len(queued) else 0,
            "msg_list": page,
        }

    def _send_msg(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("touser") or not body.get("open_kfid"):
            return {"errcode": 40003, "errmsg": "invalid userid"}
        self._sent += 1
        return {"errcode": 0, "errmsg": "ok", "msgid": body.get("msgid") or f"sent{self._sent}"}

    def _send_msg_on_event(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("code"):
            return {"errcode": 95016, "errmsg": "invalid code"}
        self._sent += 1
        return {"errcode": 0, "errmsg": "ok", "msgid": body.get("msgid") or f"sent{self._sent}"}
